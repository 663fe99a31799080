//! Clinical assessment: pure functions of (record, content, today). No I/O, no clock, no globals,
//! so every rule is a table of cases in the tests and a line in a benchmark.

mod cautions;
mod criteria;
mod episode;
mod guidance;
mod imaging;
mod red_flags;

use time::Date;

pub use cautions::{NsaidCaution, PatientFactors, Pregnancy, Unchecked};
pub use episode::Episode;
pub use guidance::{Caution, DrugClass, OrderRef, Recommendation, Risk, Stage, StartBack, classify as start_back_risk};
pub use imaging::{ConditionalReason, ImagingAssessment, ImagingVerdict, LumbarOrder, PamaRating};
pub use red_flags::RedFlag;

use crate::content::{Content, RedFlagCategory};
use crate::record::{PatientRecord, ResourceKind};

/// A resource that supports a finding, with a short description of what in it counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub reference: String,
    pub description: String,
}

/// Which draft orders the hook asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderScope {
    /// patient-view: no orders.
    None,
    /// order-select: `context.selections` only.
    Selected,
    /// order-sign: every draft order.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeGroup {
    Adult(i32),
    Child(i32),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Assessment {
    pub age: AgeGroup,
    /// The current low back pain episode, if the record shows one.
    pub episode: Option<Episode>,
    /// Red flags in their windows (some count only for imaging: `RedFlag::imaging_only`).
    pub red_flags: Vec<RedFlag>,
    /// Red-flag diagnoses on record outside their windows: history, not a current red flag.
    pub past_red_flags: Vec<RedFlag>,
    pub imaging: Vec<ImagingAssessment>,
    /// Guidance on what helps (referral, stratified care, ...: none beside a red flag) and
    /// safety advice on orders (beside red flags too).
    pub recommendations: Vec<Recommendation>,
    /// Missing, incomplete or ambiguous data, in words for the cards.
    pub data_notes: Vec<String>,
    /// NSAID cautions, pregnancy and what was already tried: they change how cards advise.
    pub factors: PatientFactors,
}

impl Assessment {
    /// Whether the adult low back pain rules apply at all.
    pub fn adult_rules_apply(&self) -> bool {
        !matches!(self.age, AgeGroup::Child(_))
    }

    /// Whether a physical therapy referral is offered (the imaging warning suggests one only then).
    pub fn referral_offered(&self) -> bool {
        self.recommendations.iter().any(|r| matches!(r, Recommendation::PtReferral { .. }))
    }

    /// Red flags shown for this hook: those that count only for imaging need an imaging order.
    pub fn shown_red_flags(&self) -> Vec<&RedFlag> {
        let imaging = !self.imaging.is_empty();
        self.red_flags.iter().filter(|flag| imaging || !flag.imaging_only).collect()
    }

    pub fn red_flag_categories(&self) -> Vec<RedFlagCategory> {
        let mut categories: Vec<RedFlagCategory> = self.shown_red_flags().iter().map(|flag| flag.category).collect();
        categories.sort();
        categories.dedup();
        categories
    }
}

/// Assesses a record. `today` is the clinical date (the service's clock, or a fixed date).
pub fn assess(record: &PatientRecord, content: &Content, today: Date, scope: OrderScope) -> Assessment {
    let thresholds = &content.rules.thresholds;
    let mut data_notes = Vec::new();
    let age = match record.age_on(today) {
        Some(age) if age >= thresholds.adult_age_years => AgeGroup::Adult(age),
        Some(age) => AgeGroup::Child(age),
        None => {
            data_notes.push(format!(
                "The patient's birth date is not on record: these rules are for adults ({}+), and age-based red flags (fracture risk over {}) could not be checked.",
                thresholds.adult_age_years, thresholds.fracture_age_years
            ));
            AgeGroup::Unknown
        }
    };
    if let AgeGroup::Child(_) = age {
        return Assessment {
            age,
            episode: None,
            red_flags: Vec::new(),
            past_red_flags: Vec::new(),
            imaging: Vec::new(),
            recommendations: Vec::new(),
            data_notes,
            factors: PatientFactors::default(),
        };
    }
    for kind in [ResourceKind::Condition, ResourceKind::Observation, ResourceKind::MedicationRequest] {
        match record.availability(kind) {
            crate::record::Availability::Complete => {}
            crate::record::Availability::Incomplete(reason) => {
                data_notes.push(format!("Only part of the patient's {} was available ({reason}).", kind.plural()));
            }
            crate::record::Availability::Missing(reason) => {
                data_notes.push(format!("The patient's {} were not available ({reason}).", kind.plural()));
            }
        }
    }
    let orders = imaging::lumbar_orders(record, content, scope);
    let episode = episode::current_episode(record, content, today, &orders, &mut data_notes);
    let age_years = match age {
        AgeGroup::Adult(years) | AgeGroup::Child(years) => Some(years),
        AgeGroup::Unknown => None,
    };
    let findings = red_flags::find(record, content, today, age_years, &mut data_notes);
    let imaging = imaging::assess_orders(orders, record, content, episode.as_ref(), &findings.current);
    // Red flags come first: routine guidance yields to them (not to older age alone, which
    // counts only where ACR rates an imaging order). Safety advice on orders fires beside them.
    let routine = !findings.current.iter().any(|flag| !flag.imaging_only);
    let safety = scope == OrderScope::None || advice_allowed(record, content, today, &mut data_notes);
    let flags: Vec<&RedFlag> = findings.current.iter().chain(&findings.history).collect();
    let recommendations = match &episode {
        Some(episode) => {
            let inputs = guidance::Inputs {
                record,
                content,
                today,
                scope,
                episode,
                imaging_not_indicated: imaging.iter().any(|i| matches!(i.verdict, ImagingVerdict::NotIndicated { .. })),
                routine,
                safety,
                flags: &flags,
                age: age_years,
            };
            guidance::recommend(&inputs, &mut data_notes)
        }
        None => Vec::new(),
    };
    let factors = cautions::assess(record, content, today, age, episode.as_ref().and_then(|e| e.start));
    // After the threshold, prior conservative care decides ACR variant 2 versus 3.
    let mut imaging = imaging;
    for assessment in &mut imaging {
        if assessment.verdict == ImagingVerdict::Conditional(ConditionalReason::BeyondThreshold) {
            if !factors.prior_care.is_empty() {
                assessment.verdict =
                    ImagingVerdict::Conditional(ConditionalReason::AfterPriorCare(factors.prior_care.clone()));
            } else if factors.prior_care_known {
                assessment.verdict = ImagingVerdict::Conditional(ConditionalReason::NoPriorCare);
            }
        }
    }
    Assessment {
        age,
        episode,
        red_flags: findings.current,
        past_red_flags: findings.history,
        imaging,
        recommendations,
        data_notes,
        factors,
    }
}

/// Medication and modality advice is withheld only in active cancer treatment, palliative or
/// hospice care (`rules.toml` `[[advice_suppressions]]`), and says so.
fn advice_allowed(record: &PatientRecord, content: &Content, today: Date, notes: &mut Vec<String>) -> bool {
    for rule in &content.rules.advice_suppressions {
        let hits: Vec<String> = criteria::find(record, content, &rule.criterion, today)
            .into_iter()
            .filter(|hit| hit.current)
            .map(|hit| format!("`{}`: {}", hit.evidence.reference, hit.evidence.description))
            .collect();
        if !hits.is_empty() {
            notes.push(format!(
                "{}: medication and modality advice is not given ({}; rule `{}`): {}.",
                rule.finding,
                rule.guideline,
                rule.id,
                hits.join("; ")
            ));
            return false;
        }
    }
    true
}

/// Whole days from `from` to `to` (negative when `from` is later).
pub(crate) fn days_between(from: Date, to: Date) -> i64 {
    (to - from).whole_days()
}
