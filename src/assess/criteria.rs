//! A value set looked up in the record (conditions, procedures, medication and service requests)
//! with a window: each match is dated, and says which date it used and whether it is current.

use time::Date;

use super::{Evidence, days_between};
use crate::content::{Content, Criterion, Lookback, ValueSet};
use crate::record::{Concept, PatientRecord, ResourceKind};

/// One resource that matched a criterion.
#[derive(Debug, Clone)]
pub struct Hit {
    pub evidence: Evidence,
    /// Inside the window (or dated any time for "any-time" rules, or active without a date).
    pub current: bool,
}

/// Every match of `criterion` in the record, current or not, in the record's order.
pub fn find(record: &PatientRecord, content: &Content, criterion: &Criterion, today: Date) -> Vec<Hit> {
    let set = content.value_sets.at(criterion.set);
    let except = criterion.except.map(|id| content.value_sets.at(id));
    let excluded = |concept: &Concept| except.is_some_and(|except| except.match_concept(concept).is_some());
    let mut hits = Vec::new();
    for kind in &criterion.resources {
        match kind {
            ResourceKind::Condition => {
                for condition in record.conditions.iter().filter(|c| c.counts()) {
                    let Some(m) = set.match_concept(&condition.code) else { continue };
                    if excluded(&condition.code) {
                        continue;
                    }
                    let date = [
                        (condition.onset, "onset"),
                        (condition.recorded, "recorded"),
                        (condition.abatement, "abatement"),
                    ]
                    .into_iter()
                    .filter_map(|(date, label)| date.map(|d| (d, label)))
                    .max_by_key(|(date, _)| *date);
                    let status = condition.clinical_status.as_deref().unwrap_or("no clinical status");
                    hits.push(hit(
                        m.concept.describe(),
                        &condition.reference,
                        status,
                        date,
                        condition.is_active(),
                        criterion.lookback,
                        today,
                    ));
                }
            }
            ResourceKind::Procedure => {
                for procedure in &record.procedures {
                    if !matches!(procedure.status.as_str(), "completed" | "in-progress") {
                        continue;
                    }
                    let Some(m) = set.match_concept(&procedure.code) else { continue };
                    let date = procedure.performed.map(|d| (d, "performed"));
                    let ongoing = procedure.status == "in-progress";
                    hits.push(hit(
                        m.concept.describe(),
                        &procedure.reference,
                        &procedure.status,
                        date,
                        ongoing,
                        criterion.lookback,
                        today,
                    ));
                }
            }
            ResourceKind::MedicationRequest => {
                for medication in &record.medications {
                    if matches!(medication.status.as_str(), "entered-in-error" | "cancelled" | "draft") {
                        continue;
                    }
                    let Some(matched) = medication_match(content, set, &medication.medication) else { continue };
                    // An active order is being taken now, whenever it was written.
                    let active = matches!(medication.status.as_str(), "active" | "on-hold");
                    let date = if active {
                        Some((today, "active order"))
                    } else {
                        [
                            (medication.authored, "authored"),
                            (medication.validity_start, "validity start"),
                            (medication.validity_end.filter(|d| *d <= today), "validity end"),
                        ]
                        .into_iter()
                        .filter_map(|(date, label)| date.map(|d| (d, label)))
                        .max_by_key(|(date, _)| *date)
                    };
                    hits.push(hit(
                        matched,
                        &medication.reference,
                        &medication.status,
                        date,
                        active,
                        criterion.lookback,
                        today,
                    ));
                }
            }
            ResourceKind::ServiceRequest => {
                for request in &record.service_requests {
                    if matches!(request.status.as_str(), "revoked" | "entered-in-error") {
                        continue;
                    }
                    let Some(m) = set.match_concept(&request.code) else { continue };
                    let date = request.authored.map(|d| (d, "authored"));
                    let active = matches!(request.status.as_str(), "active" | "on-hold");
                    hits.push(hit(
                        m.concept.describe(),
                        &request.reference,
                        &request.status,
                        date,
                        active,
                        criterion.lookback,
                        today,
                    ));
                }
            }
            _ => {}
        }
    }
    hits
}

fn hit(
    what: String,
    reference: &str,
    status: &str,
    date: Option<(Date, &str)>,
    active: bool,
    lookback: Lookback,
    today: Date,
) -> Hit {
    let (current, when) = match (lookback, date) {
        (Lookback::AnyTime, Some((date, label))) => (true, format!("{label} {date}; counts at any time")),
        (Lookback::AnyTime, None) => (true, "no date on record; counts at any time".to_owned()),
        (Lookback::Days(days), Some((date, label))) => {
            let age = days_between(date, today);
            if age <= i64::from(days) {
                (true, format!("{label} {date}, within the {days}-day window"))
            } else {
                (false, format!("{label} {date}, more than {days} days ago: history"))
            }
        }
        (Lookback::Days(_), None) if active => {
            (true, "no onset, recorded or abatement date on record: counted as current".to_owned())
        }
        (Lookback::Days(_), None) => (false, "not active and no date on record: history".to_owned()),
    };
    Hit {
        evidence: Evidence { reference: reference.to_owned(), description: format!("{what} ({status}; {when})") },
        current,
    }
}

/// A medication by code or, for product-coded orders, by an ingredient name in its text.
pub fn medication_match(content: &Content, set: &ValueSet, medication: &Concept) -> Option<String> {
    // The ingredient map resolves RxNorm products, brands and text to their class (issue 11).
    content.drugs.class_match(set, medication)
}
