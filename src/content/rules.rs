//! `rules.toml`: thresholds, red-flag rules, advice suppressions, cautions and the ACR imaging
//! variants, with their validation. Value sets named here are resolved once, at load.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::parse_toml;
use super::registry::{CardType, DRUG_CLASSES, ValueSetId};
use super::{ContentError, Modality, SetRef, Template, ValueSets};
use crate::record::ResourceKind;

/// The red-flag categories; each has its own card type and ACR variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedFlagCategory {
    CaudaEquina,
    NeurologicDeficit,
    Cancer,
    Infection,
    Fracture,
    PriorSurgery,
    Inflammatory,
}

impl RedFlagCategory {
    pub const ALL: [RedFlagCategory; 7] = [
        RedFlagCategory::CaudaEquina,
        RedFlagCategory::NeurologicDeficit,
        RedFlagCategory::Cancer,
        RedFlagCategory::Infection,
        RedFlagCategory::Fracture,
        RedFlagCategory::PriorSurgery,
        RedFlagCategory::Inflammatory,
    ];

    pub fn key(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "cauda-equina",
            RedFlagCategory::NeurologicDeficit => "neurologic-deficit",
            RedFlagCategory::Cancer => "cancer",
            RedFlagCategory::Infection => "infection",
            RedFlagCategory::Fracture => "fracture",
            RedFlagCategory::PriorSurgery => "prior-surgery",
            RedFlagCategory::Inflammatory => "inflammatory",
        }
    }

    pub fn parse(key: &str) -> Option<RedFlagCategory> {
        RedFlagCategory::ALL.into_iter().find(|c| c.key() == key)
    }

    pub fn card_type(self) -> CardType {
        match self {
            RedFlagCategory::CaudaEquina => CardType::RedFlagCaudaEquina,
            RedFlagCategory::NeurologicDeficit => CardType::RedFlagNeurologicDeficit,
            RedFlagCategory::Cancer => CardType::RedFlagCancer,
            RedFlagCategory::Infection => CardType::RedFlagInfection,
            RedFlagCategory::Fracture => CardType::RedFlagFracture,
            RedFlagCategory::PriorSurgery => CardType::RedFlagPriorSurgery,
            RedFlagCategory::Inflammatory => CardType::RedFlagInflammatory,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "cauda equina syndrome",
            RedFlagCategory::NeurologicDeficit => "neurological deficit",
            RedFlagCategory::Cancer => "cancer",
            RedFlagCategory::Infection => "infection",
            RedFlagCategory::Fracture => "fracture",
            RedFlagCategory::PriorSurgery => "prior lumbar surgery",
            RedFlagCategory::Inflammatory => "spondyloarthritis",
        }
    }
}

/// Numeric thresholds and windows (`rules.toml` `[thresholds]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub adult_age_years: i32,
    /// Below this many weeks without a red flag, lumbar imaging is "not indicated".
    pub imaging_threshold_weeks: u32,
    /// A gap this long between low back pain diagnoses starts a new episode.
    pub episode_gap_days: u32,
    pub fever_celsius: f64,
    pub fever_lookback_days: u32,
    pub weight_loss_percent: f64,
    pub weight_loss_window_days: u32,
    pub steroid_min_days: u32,
    pub steroid_lookback_days: u32,
    pub fracture_age_years: i32,
    /// Without documented improvement after this many weeks, review (4-6 weeks: ACR, ACP).
    pub reassess_early_weeks: u32,
    /// After this many weeks despite conservative care: multidisciplinary rehabilitation.
    pub reassess_late_weeks: u32,
    /// A fall of this percentage in pain or Oswestry score counts as improvement.
    pub improvement_percent: f64,
    /// Chronic low back pain: at least this many weeks (ACP 2017: more than 12 weeks).
    pub chronic_weeks: u32,
    /// `continue-therapy` waits this many days after the single session, the time a second one
    /// could have taken place.
    pub continue_therapy_min_gap_days: u32,
    /// With no pain or Oswestry score on record, `reassess-progress` asks for one during this many
    /// days from the early reassessment point, then stays quiet until a score is recorded.
    pub reassess_ask_window_days: u32,
}

/// How far back a condition counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// Any time, active or resolved (cancer history, HIV, transplant).
    AnyTime,
    /// Active, or dated within this many days.
    Days(u32),
}

/// Where a rule looks in the record: a value set, the kinds of resource, and a window.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// The value set's id, as the file names it.
    pub value_set: String,
    /// `value_set`, resolved at load.
    pub set: SetRef,
    pub resources: Vec<ResourceKind>,
    pub lookback: Lookback,
    /// Codes of this value set never count (a lumbar strain is low back pain, not trauma).
    pub except: Option<SetRef>,
}

/// One red-flag rule (`rules.toml` `[[red_flags]]`): a criterion on the record, an age, or both.
#[derive(Debug, Clone)]
pub struct RedFlagRule {
    pub id: String,
    pub category: RedFlagCategory,
    /// `None`: an age-only rule (`min_age_years` is then required).
    pub criterion: Option<Criterion>,
    pub finding: String,
    /// The rule fires only above this age.
    pub min_age_years: Option<i32>,
    /// Only where ACR rates an imaging order (older age alone): no card on patient-view, and
    /// routine guidance does not yield to it.
    pub imaging_only: bool,
    /// Outside its window the finding is shown as history (`past-red-flags`); off for findings
    /// whose history says nothing (an old fever, a sprained ankle years ago).
    pub show_history: bool,
    pub guideline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRedFlagRule {
    #[serde(default = "yes")]
    show_history: bool,
    id: String,
    category: RedFlagCategory,
    #[serde(default)]
    value_set: Option<String>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    finding: String,
    #[serde(default)]
    lookback: Option<String>,
    #[serde(default)]
    min_age_years: Option<i32>,
    #[serde(default)]
    imaging_only: bool,
    #[serde(default)]
    except_value_set: Option<String>,
    guideline: String,
}

/// Records in which medication and modality safety advice is withheld (`[[advice_suppressions]]`).
#[derive(Debug, Clone)]
pub struct AdviceSuppression {
    pub id: String,
    pub criterion: Criterion,
    pub finding: String,
    pub guideline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSuppression {
    id: String,
    value_set: String,
    #[serde(default)]
    resources: Option<Vec<String>>,
    lookback: String,
    finding: String,
    guideline: String,
}

/// What makes a caution apply to an order.
#[derive(Debug, Clone)]
pub enum CautionTrigger {
    /// A code of the value set in the record, within the window.
    Record(Criterion),
    /// Another order of these drug classes, drafted now or already active.
    WithDrugs(Vec<ValueSetId>),
    /// Age at least this many years.
    MinAge(i32),
    /// Chronic pain (`thresholds.chronic_weeks`) or an unknown duration.
    ChronicPain,
    /// These red flags (rule ids or categories), current or past.
    RedFlags { rules: Vec<String>, categories: Vec<RedFlagCategory> },
}

/// A caution that makes medication or modality advice stronger (`[[cautions]]`).
#[derive(Debug, Clone)]
pub struct CautionRule {
    pub id: String,
    /// Drug classes (`opioid`, ...) or order kinds (`traction`, `manipulation`, ...).
    pub applies_to: Vec<String>,
    pub trigger: CautionTrigger,
    pub guideline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCaution {
    id: String,
    applies_to: Vec<String>,
    guideline: String,
    #[serde(default)]
    value_set: Option<String>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    lookback: Option<String>,
    #[serde(default)]
    with_drugs: Option<Vec<String>>,
    #[serde(default)]
    min_age_years: Option<i32>,
    #[serde(default)]
    chronic_pain: bool,
    #[serde(default)]
    red_flag_rules: Vec<String>,
    #[serde(default)]
    red_flag_categories: Vec<RedFlagCategory>,
}

/// `[corticosteroids]`: what makes a corticosteroid order local rather than systemic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorticosteroidRoutes {
    /// Route codes (SNOMED CT, or the EHR's own) of local routes.
    pub local_route_codes: Vec<String>,
    /// Whole words of route texts and displays.
    pub local_routes: Vec<String>,
    /// Whole words of local dose forms in the product name ("inhaler", "cream").
    pub local_forms: Vec<String>,
}

/// `[advice]`: how order advice is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdviceRules {
    /// Order kinds that get a card only when a caution applies (spinal manipulation is an
    /// ACP 2017 option, harmful only where bone is fragile).
    pub caution_only: Vec<String>,
}

/// ACR rating words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcrRating {
    UsuallyAppropriate,
    MayBeAppropriate,
    UsuallyNotAppropriate,
}

impl AcrRating {
    pub fn label(self) -> &'static str {
        match self {
            AcrRating::UsuallyAppropriate => "usually appropriate",
            AcrRating::MayBeAppropriate => "may be appropriate",
            AcrRating::UsuallyNotAppropriate => "usually not appropriate",
        }
    }

    /// Under PAMA, "may be appropriate" adheres to the criteria.
    pub fn is_appropriate(self) -> bool {
        !matches!(self, AcrRating::UsuallyNotAppropriate)
    }
}

/// One ACR Appropriateness Criteria variant and its ratings per modality.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagingVariant {
    /// A red-flag category, or `none` for "no red flag, acute".
    pub applies_to: String,
    pub name: String,
    pub xray: AcrRating,
    pub ct: AcrRating,
    pub mri: AcrRating,
    pub myelography: AcrRating,
}

impl ImagingVariant {
    pub fn rating(&self, modality: Modality) -> AcrRating {
        match modality {
            Modality::Xray => self.xray,
            Modality::Ct => self.ct,
            Modality::Mri => self.mri,
            Modality::Myelography => self.myelography,
        }
    }
}

/// Words that identify a lumbar imaging order by its text when its codes are local.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagingText {
    pub lumbar: Vec<String>,
    pub xray: Vec<String>,
    pub ct: Vec<String>,
    pub mri: Vec<String>,
    pub myelography: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imaging {
    /// Red-flag categories, most urgent first: the most urgent one present sets the rating.
    pub urgency: Vec<RedFlagCategory>,
    pub text: ImagingText,
    pub variants: Vec<ImagingVariant>,
    /// `pama-rating-qcdsm-consulted` value.
    pub qcdsm_name: String,
    /// `pama-rating-auc-applied` value.
    pub auc_url: String,
}

/// `[measured.<rule>]`: the finding and guideline of a red flag measured from observations or a
/// medication course (its thresholds are in `[thresholds]`).
#[derive(Debug, Clone)]
pub struct MeasuredRule {
    pub finding: Template,
    pub guideline: String,
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub fever: MeasuredRule,
    pub weight_loss: MeasuredRule,
    pub corticosteroids: MeasuredRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMeasuredRule {
    finding: String,
    guideline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WireMeasured {
    fever_observation: WireMeasuredRule,
    weight_loss_observation: WireMeasuredRule,
    corticosteroid_course: WireMeasuredRule,
}

/// `[start_back]`: STarT Back Screening Tool scoring (Hill 2008) and the answer codes of a
/// recorded risk level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBackRules {
    /// A total (0-9) of at most this is low risk.
    pub low_max_total: u32,
    /// Otherwise a distress subscore (0-5) of at least this is high risk; else medium.
    pub high_min_distress: u32,
    pub low_answers: Vec<String>,
    pub medium_answers: Vec<String>,
    pub high_answers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Rules {
    pub thresholds: Thresholds,
    pub red_flags: Vec<RedFlagRule>,
    pub advice_suppressions: Vec<AdviceSuppression>,
    pub cautions: Vec<CautionRule>,
    pub advice: AdviceRules,
    pub corticosteroids: CorticosteroidRoutes,
    pub imaging: Imaging,
    pub measured: Measured,
    pub start_back: StartBackRules,
    /// Words that identify TENS, therapeutic ultrasound or traction orders by text.
    pub passive_modality_text: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRules {
    thresholds: Thresholds,
    red_flags: Vec<WireRedFlagRule>,
    advice_suppressions: Vec<WireSuppression>,
    cautions: Vec<WireCaution>,
    advice: AdviceRules,
    corticosteroids: CorticosteroidRoutes,
    imaging: Imaging,
    measured: WireMeasured,
    start_back: StartBackRules,
    passive_modality_text: BTreeMap<String, Vec<String>>,
}

pub(super) const FILE: &str = "rules.toml";

/// The longest window a rule may use: a century.
pub const MAX_WINDOW_DAYS: u32 = 36_525;

pub(super) fn parse(text: &str, value_sets: &ValueSets) -> Result<Rules, ContentError> {
    let wire: WireRules = parse_toml(FILE, text)?;
    let t = &wire.thresholds;
    let positive = [
        ("thresholds.imaging_threshold_weeks", t.imaging_threshold_weeks),
        ("thresholds.episode_gap_days", t.episode_gap_days),
        ("thresholds.fever_lookback_days", t.fever_lookback_days),
        ("thresholds.weight_loss_window_days", t.weight_loss_window_days),
        ("thresholds.steroid_min_days", t.steroid_min_days),
        ("thresholds.steroid_lookback_days", t.steroid_lookback_days),
    ];
    for (field, value) in positive {
        if value == 0 {
            return Err(ContentError::new(FILE, field, "must be greater than zero"));
        }
    }
    // Date arithmetic with a window beyond any lifetime would overflow (a panic on every call):
    // windows are bounded to a century, in their own unit.
    let days = MAX_WINDOW_DAYS;
    let bounded = [
        ("thresholds.imaging_threshold_weeks", t.imaging_threshold_weeks, days / 7),
        ("thresholds.episode_gap_days", t.episode_gap_days, days),
        ("thresholds.fever_lookback_days", t.fever_lookback_days, days),
        ("thresholds.weight_loss_window_days", t.weight_loss_window_days, days),
        ("thresholds.steroid_min_days", t.steroid_min_days, days),
        ("thresholds.steroid_lookback_days", t.steroid_lookback_days, days),
        ("thresholds.reassess_early_weeks", t.reassess_early_weeks, days / 7),
        ("thresholds.reassess_late_weeks", t.reassess_late_weeks, days / 7),
    ];
    for (field, value, most) in bounded {
        if value > most {
            return Err(ContentError::new(FILE, field, format!("must be at most {most}")));
        }
    }
    for (field, value) in
        [("thresholds.adult_age_years", t.adult_age_years), ("thresholds.fracture_age_years", t.fracture_age_years)]
    {
        if !(0..=130).contains(&value) {
            return Err(ContentError::new(FILE, field, "must be an age from 0 to 130"));
        }
    }
    if !(35.0..=43.0).contains(&t.fever_celsius) {
        return Err(ContentError::new(FILE, "thresholds.fever_celsius", "must be a body temperature in °C (35-43)"));
    }
    if !(0.0..100.0).contains(&t.weight_loss_percent) || t.weight_loss_percent == 0.0 {
        return Err(ContentError::new(FILE, "thresholds.weight_loss_percent", "must be between 0 and 100"));
    }
    let mut red_flags = Vec::new();
    for (index, rule) in wire.red_flags.into_iter().enumerate() {
        let field = |name: &str| format!("red_flags[{index}].{name}");
        let criterion = match (&rule.value_set, &rule.lookback) {
            (Some(set), Some(lookback)) => {
                let mut criterion = criterion(value_sets, set, rule.resources.as_deref(), lookback, &field)?;
                if let Some(except) = &rule.except_value_set {
                    criterion.except = Some(value_sets.resolve(except).ok_or_else(|| {
                        ContentError::new(FILE, field("except_value_set"), format!("no value set `{except}`"))
                    })?);
                }
                Some(criterion)
            }
            (None, None)
                if rule.min_age_years.is_some() && rule.resources.is_none() && rule.except_value_set.is_none() =>
            {
                None
            }
            _ => {
                return Err(ContentError::new(
                    FILE,
                    field("value_set"),
                    "needs `value_set` with `lookback`, or only `min_age_years` for an age rule",
                ));
            }
        };
        red_flags.push(RedFlagRule {
            id: rule.id,
            category: rule.category,
            criterion,
            finding: rule.finding,
            min_age_years: rule.min_age_years,
            imaging_only: rule.imaging_only,
            show_history: rule.show_history,
            guideline: rule.guideline,
        });
    }
    let mut ids = std::collections::HashSet::new();
    for (index, rule) in red_flags.iter().enumerate() {
        if !ids.insert(rule.id.as_str()) {
            return Err(ContentError::new(FILE, format!("red_flags[{index}].id"), "duplicate rule id"));
        }
    }
    let mut advice_suppressions = Vec::new();
    for (index, rule) in wire.advice_suppressions.into_iter().enumerate() {
        let field = |name: &str| format!("advice_suppressions[{index}].{name}");
        advice_suppressions.push(AdviceSuppression {
            criterion: criterion(value_sets, &rule.value_set, rule.resources.as_deref(), &rule.lookback, &field)?,
            id: rule.id,
            finding: rule.finding,
            guideline: rule.guideline,
        });
    }
    let known_rules: Vec<&str> = red_flags
        .iter()
        .map(|r| r.id.as_str())
        .chain(["fever-observation", "weight-loss-observation", "corticosteroid-course"])
        .collect();
    let mut kinds: Vec<&str> = DRUG_CLASSES.iter().map(|(class, _)| *class).collect();
    kinds.extend(wire.passive_modality_text.keys().map(String::as_str));
    let mut cautions = Vec::new();
    for (index, rule) in wire.cautions.into_iter().enumerate() {
        let field = |name: &str| format!("cautions[{index}].{name}");
        if rule.applies_to.is_empty() {
            return Err(ContentError::new(
                FILE,
                field("applies_to"),
                "must name at least one drug class or order kind",
            ));
        }
        for kind in &rule.applies_to {
            if !kinds.contains(&kind.as_str()) {
                return Err(ContentError::new(
                    FILE,
                    field("applies_to"),
                    format!("`{kind}` is not a drug class or an order kind of passive_modality_text"),
                ));
            }
        }
        let drug = rule.applies_to.iter().all(|k| DRUG_CLASSES.iter().any(|(class, _)| class == k));
        let modality = rule.applies_to.iter().all(|k| !DRUG_CLASSES.iter().any(|(class, _)| class == k));
        if !drug && !modality {
            return Err(ContentError::new(FILE, field("applies_to"), "must be all drug classes or all order kinds"));
        }
        let mut triggers = Vec::new();
        if let Some(set) = &rule.value_set {
            let lookback = rule.lookback.as_deref().unwrap_or("any-time");
            triggers.push(CautionTrigger::Record(criterion(
                value_sets,
                set,
                rule.resources.as_deref(),
                lookback,
                &field,
            )?));
        }
        if let Some(with) = &rule.with_drugs {
            let mut sets = Vec::new();
            for set in with {
                let Some((_, id)) = DRUG_CLASSES.iter().find(|(_, id)| id.key() == set) else {
                    return Err(ContentError::new(
                        FILE,
                        field("with_drugs"),
                        format!("`{set}` is not a drug class value set"),
                    ));
                };
                sets.push(*id);
            }
            triggers.push(CautionTrigger::WithDrugs(sets));
        }
        if let Some(age) = rule.min_age_years {
            triggers.push(CautionTrigger::MinAge(age));
        }
        if rule.chronic_pain {
            triggers.push(CautionTrigger::ChronicPain);
        }
        if !rule.red_flag_rules.is_empty() || !rule.red_flag_categories.is_empty() {
            for id in &rule.red_flag_rules {
                if !known_rules.contains(&id.as_str()) {
                    return Err(ContentError::new(FILE, field("red_flag_rules"), format!("no red-flag rule `{id}`")));
                }
            }
            triggers.push(CautionTrigger::RedFlags {
                rules: rule.red_flag_rules.clone(),
                categories: rule.red_flag_categories.clone(),
            });
        }
        if triggers.len() != 1 {
            return Err(ContentError::new(
                FILE,
                field("id"),
                "needs exactly one trigger: value_set, with_drugs, min_age_years, chronic_pain or red_flag_rules/red_flag_categories",
            ));
        }
        cautions.push(CautionRule {
            id: rule.id,
            applies_to: rule.applies_to,
            trigger: triggers.remove(0),
            guideline: rule.guideline,
        });
    }
    for (index, kind) in wire.advice.caution_only.iter().enumerate() {
        if !wire.passive_modality_text.contains_key(kind) {
            return Err(ContentError::new(
                FILE,
                format!("advice.caution_only[{index}]"),
                format!("`{kind}` is not an order kind of passive_modality_text"),
            ));
        }
    }
    let imaging = wire.imaging;
    let mut applies: Vec<&str> = imaging.variants.iter().map(|v| v.applies_to.as_str()).collect();
    applies.sort_unstable();
    let mut expected: Vec<&str> = RedFlagCategory::ALL.iter().map(|c| c.key()).chain(["none"]).collect();
    expected.sort_unstable();
    if applies != expected {
        return Err(ContentError::new(
            FILE,
            "imaging.variants",
            format!("needs exactly one variant for each of: {}", expected.join(", ")),
        ));
    }
    let mut urgency = imaging.urgency.clone();
    urgency.sort();
    if urgency != RedFlagCategory::ALL {
        return Err(ContentError::new(FILE, "imaging.urgency", "must list every red-flag category once"));
    }
    if !(0.0..100.0).contains(&t.improvement_percent) || t.improvement_percent == 0.0 {
        return Err(ContentError::new(FILE, "thresholds.improvement_percent", "must be between 0 and 100"));
    }
    if t.reassess_early_weeks == 0 || t.reassess_late_weeks <= t.reassess_early_weeks {
        return Err(ContentError::new(
            FILE,
            "thresholds.reassess_late_weeks",
            "must be greater than reassess_early_weeks, which must be greater than zero",
        ));
    }
    if t.chronic_weeks == 0 || t.continue_therapy_min_gap_days == 0 || t.reassess_ask_window_days == 0 {
        return Err(ContentError::new(
            FILE,
            "thresholds",
            "chronic_weeks, continue_therapy_min_gap_days and reassess_ask_window_days must be greater than zero",
        ));
    }
    let measured_rule = |key: &str, wire: WireMeasuredRule, allowed: &[&str]| {
        if wire.guideline.trim().is_empty() {
            return Err(ContentError::new(FILE, format!("measured.{key}.guideline"), "must not be empty"));
        }
        Ok(MeasuredRule {
            finding: Template::parse(FILE, &format!("measured.{key}.finding"), &wire.finding, allowed)?,
            guideline: wire.guideline,
        })
    };
    let measured = Measured {
        fever: measured_rule("fever-observation", wire.measured.fever_observation, &["celsius", "days"])?,
        weight_loss: measured_rule(
            "weight-loss-observation",
            wire.measured.weight_loss_observation,
            &["percent", "first_kg", "first_date", "last_kg", "last_date", "threshold", "days"],
        )?,
        corticosteroids: measured_rule(
            "corticosteroid-course",
            wire.measured.corticosteroid_course,
            &["covered", "days", "threshold"],
        )?,
    };
    let start_back = wire.start_back;
    if start_back.low_max_total > 9 {
        return Err(ContentError::new(FILE, "start_back.low_max_total", "must be a total score (0-9)"));
    }
    if !(1..=5).contains(&start_back.high_min_distress) {
        return Err(ContentError::new(FILE, "start_back.high_min_distress", "must be a distress subscore (1-5)"));
    }
    Ok(Rules {
        measured,
        start_back,
        thresholds: wire.thresholds,
        red_flags,
        advice_suppressions,
        cautions,
        advice: wire.advice,
        corticosteroids: wire.corticosteroids,
        imaging,
        passive_modality_text: wire.passive_modality_text,
    })
}

fn yes() -> bool {
    true
}

/// A value set, the resource kinds to search (default: Condition) and a look-back.
fn criterion(
    value_sets: &ValueSets,
    value_set: &str,
    resources: Option<&[String]>,
    lookback: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<Criterion, ContentError> {
    let set = value_sets
        .resolve(value_set)
        .ok_or_else(|| ContentError::new(FILE, field("value_set"), format!("no value set `{value_set}`")))?;
    let lookback = match lookback {
        "any-time" => Lookback::AnyTime,
        other => match other.strip_suffix(" days").and_then(|n| n.trim().parse::<u32>().ok()) {
            Some(days) if days > 0 && days <= MAX_WINDOW_DAYS => Lookback::Days(days),
            _ => return Err(ContentError::new(FILE, field("lookback"), "must be \"any-time\" or \"N days\"")),
        },
    };
    let mut kinds = Vec::new();
    for name in resources.unwrap_or(&["Condition".to_owned()]) {
        match ResourceKind::parse(name) {
            Some(
                kind @ (ResourceKind::Condition
                | ResourceKind::Procedure
                | ResourceKind::MedicationRequest
                | ResourceKind::ServiceRequest),
            ) => kinds.push(kind),
            _ => {
                return Err(ContentError::new(
                    FILE,
                    field("resources"),
                    format!("`{name}`: expected Condition, Procedure, MedicationRequest or ServiceRequest"),
                ));
            }
        }
    }
    Ok(Criterion { value_set: value_set.to_owned(), set, resources: kinds, lookback, except: None })
}

/// The card a caution strengthens: medication advice for drug classes, else passive-modality.
pub fn caution_card_type(rule: &CautionRule) -> CardType {
    if rule.applies_to.iter().all(|k| DRUG_CLASSES.iter().any(|(class, _)| class == k)) {
        CardType::MedicationAdvice
    } else {
        CardType::PassiveModality
    }
}
