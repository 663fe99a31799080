//! The current low back pain episode and how long it has lasted.

use time::Date;

use super::{Evidence, LumbarOrder, days_between};
use crate::content::{Content, ValueSetId};
use crate::record::PatientRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// Earliest onset or recorded date of the episode's diagnoses.
    pub start: Option<Date>,
    /// Days from `start` to today; at least 12 weeks when a chronic diagnosis is recorded.
    pub duration_days: Option<i64>,
    /// The diagnoses (and order reasons) that establish the episode.
    pub evidence: Vec<Evidence>,
    /// Whether a diagnosis says "chronic".
    pub chronic_diagnosis: bool,
    /// Active diagnoses that carry no date.
    pub undated: usize,
    /// The latest abatement of a resolved low back pain diagnosis in the episode: a STarT Back
    /// result from before it belongs to the episode that resolved.
    pub last_resolved: Option<Date>,
    /// A chronic diagnosis, or symptoms for `thresholds.chronic_weeks` or more.
    chronic: bool,
}

impl Episode {
    /// Chronic: a chronic diagnosis, or symptoms for `thresholds.chronic_weeks` or more.
    pub fn is_chronic(&self) -> bool {
        self.chronic
    }

    /// The Conditions that establish the episode (`Condition/<id>`), without order reasons.
    pub fn conditions(&self) -> Vec<&str> {
        self.evidence
            .iter()
            .map(|evidence| evidence.reference.as_str())
            .filter(|reference| reference.starts_with("Condition/") || reference.starts_with("Condition ("))
            .collect()
    }
}

/// Finds the current episode: active low back pain diagnoses, grouped with earlier ones while
/// consecutive diagnoses are less than `episode_gap_days` apart (HEDIS: 180 days), plus draft
/// imaging orders whose reason is low back pain.
pub(super) fn current_episode(
    record: &PatientRecord,
    content: &Content,
    today: Date,
    orders: &[LumbarOrder],
    notes: &mut Vec<String>,
) -> Option<Episode> {
    let lbp = content.value_set(ValueSetId::LbpDiagnosis);
    let gap = i64::from(content.rules.thresholds.episode_gap_days);
    let diagnoses: Vec<_> = record
        .conditions
        .iter()
        .filter(|condition| condition.counts())
        .filter_map(|condition| lbp.match_concept(&condition.code).map(|m| (condition, m)))
        .collect();
    let active: Vec<_> = diagnoses.iter().filter(|(condition, _)| condition.is_active()).collect();
    let order_reasons: Vec<Evidence> = orders
        .iter()
        .filter_map(|order| {
            order.reasons.iter().find_map(|reason| lbp.match_concept(reason)).map(|m| Evidence {
                reference: order.reference.clone(),
                description: format!("order reason {}", m.concept.describe()),
            })
        })
        .collect();
    if active.is_empty() && order_reasons.is_empty() {
        return None;
    }

    // Dates of every diagnosis (active or not), latest first, cut where the gap is too long.
    let mut dated: Vec<(Date, usize)> = diagnoses
        .iter()
        .enumerate()
        .filter_map(|(index, (condition, _))| condition.first_date().filter(|d| *d <= today).map(|d| (d, index)))
        .collect();
    dated.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let latest_active = active.iter().filter_map(|(condition, _)| condition.first_date()).filter(|d| *d <= today).max();
    let mut start = None;
    let mut members = Vec::new();
    if let Some(latest) = latest_active {
        let mut previous = latest;
        for (date, index) in dated.iter().copied().filter(|(date, _)| *date <= latest) {
            if days_between(date, previous) > gap {
                break;
            }
            start = Some(date);
            members.push(index);
            previous = date;
        }
    }
    let undated = active.iter().filter(|(condition, _)| condition.first_date().is_none()).count();
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut chronic_diagnosis = false;
    for (index, (condition, matched)) in diagnoses.iter().enumerate() {
        let in_episode = members.contains(&index) || (condition.is_active() && condition.first_date().is_none());
        if !in_episode {
            continue;
        }
        chronic_diagnosis |= matched.concept.group.as_deref() == Some("chronic");
        let date = condition
            .first_date()
            .map(|d| format!(", since {d}"))
            .unwrap_or_else(|| ", no onset or recorded date".to_owned());
        evidence.push(Evidence {
            reference: condition.reference.clone(),
            description: format!("{}{date}", matched.concept.describe()),
        });
    }
    evidence.extend(order_reasons);

    let chronic_days = i64::from(content.rules.thresholds.chronic_weeks) * 7;
    let mut duration_days = start.map(|start| days_between(start, today));
    if chronic_diagnosis {
        duration_days = Some(duration_days.unwrap_or(0).max(chronic_days));
    }
    let last_resolved = diagnoses
        .iter()
        .filter(|(condition, _)| !condition.is_active())
        .filter_map(|(condition, _)| condition.abatement)
        .filter(|date| *date <= today && start.is_none_or(|start| *date >= start))
        .max();
    if undated > 0 && start.is_some() {
        notes.push(format!(
            "{undated} active low back pain diagnosis(es) carry no date: symptoms may have lasted longer than the dated diagnoses show."
        ));
    }
    if duration_days.is_none() {
        notes.push(
            "No onset or recorded date is on record for the low back pain diagnoses: symptom duration is unknown."
                .into(),
        );
    }
    let chronic = chronic_diagnosis || duration_days.is_some_and(|days| days >= chronic_days);
    Some(Episode { start, duration_days, evidence, chronic_diagnosis, undated, last_resolved, chronic })
}
