//! Clinical content from `cards/`: thresholds, red-flag rules, value sets, card texts and service
//! definitions. Loaded and validated once at start-up; any error names the file and the field.

pub mod factors;
pub mod live;
mod medications;
mod template;
mod valueset;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use medications::{Brand, DrugMap, FILE as DRUG_MAP_FILE, FoundIngredient, Product, RXNORM};
pub use template::Template;
pub use valueset::{
    Confirmation, Match, Modality, ValueSet, ValueSetConcept, canonical_system, parse_instant, system_name,
};

use crate::hooks::{Hook, Indicator, SelectionBehavior};
use crate::record::ResourceKind;

/// An invalid content file. Start-up stops with this message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid content in {file}, field `{field}`: {message}")]
pub struct ContentError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl ContentError {
    pub fn new(file: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> ContentError {
        ContentError { file: file.into(), field: field.into(), message: message.into() }
    }
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_content.rs"));
}

/// Card types, as sent in `source.topic.code` (system `urn:lbp-cds:card-type`).
pub const CARD_TYPES: [&str; 18] = [
    "red-flag-cauda-equina",
    "red-flag-neurologic-deficit",
    "red-flag-cancer",
    "red-flag-infection",
    "red-flag-fracture",
    "red-flag-prior-surgery",
    "red-flag-inflammatory",
    "past-red-flags",
    "imaging-not-indicated",
    "imaging-indicated",
    "imaging-conditional",
    "pt-referral",
    "start-back-screening",
    "stratified-care",
    "continue-therapy",
    "reassess-progress",
    "medication-advice",
    "passive-modality",
];

/// The guidance card types (what helps instead of imaging, and safety advice on orders).
pub fn is_guidance(card_type: &str) -> bool {
    !card_type.starts_with("red-flag-") && !card_type.starts_with("imaging-") && card_type != PAST_RED_FLAGS
}

/// Safety advice on a draft order: it fires beside red flags too (only end-of-life care or
/// active cancer treatment withholds it).
pub fn is_safety_advice(card_type: &str) -> bool {
    matches!(card_type, "medication-advice" | "passive-modality")
}

/// Routine guidance (referral, screening, stratified care, continuing therapy, reassessment):
/// it yields to red flags.
pub fn is_routine_guidance(card_type: &str) -> bool {
    is_guidance(card_type) && !is_safety_advice(card_type)
}

/// Red-flag diagnoses outside their windows: history, shown as information.
pub const PAST_RED_FLAGS: &str = "past-red-flags";

/// Drug classes the medication rules know, and the value set of each.
pub const DRUG_CLASSES: [(&str, &str); 4] = [
    ("opioid", "opioids"),
    ("benzodiazepine", "benzodiazepines"),
    ("muscle-relaxant", "muscle-relaxants"),
    ("sedative", "sedatives"),
];

/// Variant keys each card type must define (`[variants.<key>]`).
pub fn required_variants(card_type: &str) -> &'static [&'static str] {
    match card_type {
        "imaging-indicated" => &["preferred", "other-modality"],
        "imaging-conditional" => &[
            "beyond-threshold",
            "no-prior-care",
            "after-prior-care",
            "unknown-duration",
            "no-diagnosis",
            "incomplete-data",
        ],
        "stratified-care" => &["low", "medium", "high"],
        "reassess-progress" => &["early", "late", "no-scores"],
        "passive-modality" => &["passive", "manipulation"],
        "medication-advice" => &["opioid", "benzodiazepine", "muscle-relaxant"],
        _ => &[],
    }
}

/// Value sets the rules refer to by name (in code, beyond those named in `rules.toml`).
pub const REQUIRED_VALUE_SETS: [&str; 15] = [
    "lbp-diagnosis",
    "lumbar-imaging",
    "body-temperature",
    "body-weight",
    "systemic-corticosteroids",
    "pt-ot-services",
    "opioids",
    "benzodiazepines",
    "muscle-relaxants",
    "passive-modalities",
    "spinal-manipulation",
    "sedatives",
    "start-back",
    "pain-scores",
    "oswestry",
];

const RED_FLAG_PLACEHOLDERS: &[&str] = &["finding_summary", "findings", "duration", "data_notes"];
const IMAGING_PLACEHOLDERS: &[&str] = &[
    "modality",
    "order",
    "duration",
    "duration_short",
    "threshold_weeks",
    "red_flags",
    "finding_summary",
    "acr_variant",
    "rating",
    "data_notes",
    "advice",
    "medicines",
    "first_line",
    "pregnancy",
    "prior_care",
    "history",
];
const GUIDANCE_PLACEHOLDERS: &[&str] = &[
    "duration",
    "duration_short",
    "data_notes",
    "evidence",
    "finding_summary",
    "order",
    "risk",
    "risk_data",
    "advice",
    "medicines",
    "first_line",
    "cautions",
];

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

    pub fn card_type(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "red-flag-cauda-equina",
            RedFlagCategory::NeurologicDeficit => "red-flag-neurologic-deficit",
            RedFlagCategory::Cancer => "red-flag-cancer",
            RedFlagCategory::Infection => "red-flag-infection",
            RedFlagCategory::Fracture => "red-flag-fracture",
            RedFlagCategory::PriorSurgery => "red-flag-prior-surgery",
            RedFlagCategory::Inflammatory => "red-flag-inflammatory",
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
    pub value_set: String,
    pub resources: Vec<ResourceKind>,
    pub lookback: Lookback,
    /// Codes of this value set never count (a lumbar strain is low back pain, not trauma).
    pub except_value_set: Option<String>,
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
    /// Another order of these drug classes, drafted now or already active (value set ids).
    WithDrugs(Vec<String>),
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

#[derive(Debug, Clone)]
pub struct Rules {
    pub thresholds: Thresholds,
    pub red_flags: Vec<RedFlagRule>,
    pub advice_suppressions: Vec<AdviceSuppression>,
    pub cautions: Vec<CautionRule>,
    pub advice: AdviceRules,
    pub corticosteroids: CorticosteroidRoutes,
    pub imaging: Imaging,
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
    passive_modality_text: BTreeMap<String, Vec<String>>,
}

/// A prefetch key: its query template and the kind of resource it returns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefetchKey {
    pub resource: String,
    pub query: String,
    /// Without this data nothing useful can be said: 412 when neither prefetched nor fetchable.
    #[serde(default)]
    pub required: bool,
    #[serde(skip)]
    pub kind: Option<ResourceKind>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefinition {
    pub id: String,
    pub hook: Hook,
    pub title: String,
    pub description: String,
    pub prefetch: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireServices {
    prefetch: BTreeMap<String, PrefetchKey>,
    services: Vec<ServiceDefinition>,
}

/// A referral the cards can suggest creating (`referrals.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    pub system: String,
    pub code: String,
    pub display: String,
    pub text: String,
    /// Put in ServiceRequest.orderDetail (for example "Telehealth (video) visits").
    #[serde(default)]
    pub order_detail: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceText {
    pub label: String,
    #[serde(default)]
    pub url: Option<String>,
    pub topic_display: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkText {
    pub label: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    DeleteOrder,
    CreateReferral,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAction {
    kind: ActionKind,
    description: String,
    #[serde(default)]
    referral: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSuggestion {
    key: String,
    label: String,
    #[serde(default)]
    recommended: bool,
    actions: Vec<WireAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideReason {
    pub code: String,
    pub display: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireVariant {
    #[serde(default)]
    summary: Option<String>,
    advice: String,
    #[serde(default)]
    indicator: Option<Indicator>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCard {
    #[serde(default)]
    variants: BTreeMap<String, WireVariant>,
    /// Text of each caution (`rules.toml` `[[cautions]]`) this card can carry.
    #[serde(default)]
    cautions: BTreeMap<String, WireVariant>,
    indicator: Indicator,
    summary: String,
    detail: String,
    #[serde(default)]
    selection_behavior: Option<SelectionBehavior>,
    source: SourceText,
    #[serde(default)]
    links: Vec<LinkText>,
    #[serde(default)]
    suggestions: Vec<WireSuggestion>,
    #[serde(default)]
    override_reasons: Vec<OverrideReason>,
}

#[derive(Debug, Clone)]
pub struct ActionTemplate {
    pub kind: ActionKind,
    pub description: Template,
    pub referral: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SuggestionTemplate {
    pub key: String,
    pub label: Template,
    pub recommended: bool,
    pub actions: Vec<ActionTemplate>,
}

/// A variant of a card: its own summary, advice text and (optionally) indicator.
#[derive(Debug, Clone)]
pub struct VariantTemplate {
    pub summary: Option<Template>,
    pub advice: Template,
    pub indicator: Option<Indicator>,
}

#[derive(Debug, Clone)]
pub struct CardTemplate {
    pub variants: BTreeMap<String, VariantTemplate>,
    /// Caution texts by caution id (summary, advice, indicator).
    pub cautions: BTreeMap<String, VariantTemplate>,
    pub card_type: String,
    pub indicator: Indicator,
    pub summary: Template,
    pub detail: Template,
    pub selection_behavior: Option<SelectionBehavior>,
    pub source: SourceText,
    pub links: Vec<LinkText>,
    pub suggestions: Vec<SuggestionTemplate>,
    pub override_reasons: Vec<OverrideReason>,
}

/// All clinical content, validated.
#[derive(Debug, Clone)]
pub struct Content {
    pub rules: Rules,
    pub prefetch: BTreeMap<String, PrefetchKey>,
    pub services: Vec<ServiceDefinition>,
    pub referrals: BTreeMap<String, Referral>,
    pub cards: BTreeMap<String, CardTemplate>,
    pub value_sets: BTreeMap<String, ValueSet>,
    /// NSAID cautions, pregnancy and what was tried (`patient-factors.toml`).
    pub factors: factors::Factors,
    /// RxNorm products and brands to ingredients, for the drug classes.
    pub drugs: DrugMap,
    /// SHA-256 (hex) of every content file's name and text: which content produced an answer
    /// (every response's extension), an audit row, a reload's log line and `/ready`. The one
    /// definition of the content version.
    pub version: String,
}

impl Content {
    /// The content compiled into the binary (a copy of `cards/` at build time).
    pub fn embedded() -> Result<Content, ContentError> {
        Content::from_files(embedded::EMBEDDED.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())))
    }

    /// The version `from_dir` would give, without parsing: how a reload sees that nothing changed.
    pub fn dir_version(dir: &Path) -> Result<String, ContentError> {
        let mut files = Vec::new();
        read_dir(dir, dir, &mut files)?;
        Ok(version_of(&files.into_iter().collect()))
    }

    /// Reads every `.toml` and `.json` file under `dir`.
    pub fn from_dir(dir: &Path) -> Result<Content, ContentError> {
        let mut files = Vec::new();
        read_dir(dir, dir, &mut files)?;
        Content::from_files(files)
    }

    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Content, ContentError> {
        let files: BTreeMap<String, String> = files.into_iter().collect();
        let version = version_of(&files);
        let file = |name: &str| {
            files.get(name).ok_or_else(|| ContentError::new(name, "(file)", "is missing from the content directory"))
        };

        let mut value_sets = BTreeMap::new();
        for (name, text) in files.iter().filter(|(name, _)| name.starts_with("valuesets/")) {
            let set = ValueSet::parse(name, text)?;
            value_sets.insert(set.id.clone(), set);
        }
        for required in REQUIRED_VALUE_SETS {
            if !value_sets.contains_key(required) {
                return Err(ContentError::new(
                    format!("valuesets/{required}.json"),
                    "(file)",
                    "is required by the rules",
                ));
            }
        }

        let rules = parse_rules(file("rules.toml")?, &value_sets)?;
        let factors = factors::parse(file(factors::FILE)?, &value_sets)?;
        let referrals: BTreeMap<String, Referral> = parse_toml("referrals.toml", file("referrals.toml")?)?;
        let services: WireServices = parse_toml("services.toml", file("services.toml")?)?;
        let (prefetch, services) = validate_services(services)?;

        let mut cards = BTreeMap::new();
        for card_type in CARD_TYPES {
            let name = format!("{card_type}.toml");
            let card = parse_card(&name, card_type, file(&name)?, &referrals)?;
            cards.insert(card_type.to_owned(), card);
        }
        let drugs = DrugMap::parse(file(medications::FILE)?)?;
        drugs.check_classes(|id| value_sets.contains_key(id))?;
        validate_cautions(&rules, &cards)?;
        Ok(Content { rules, prefetch, services, referrals, cards, value_sets, factors, drugs, version })
    }

    pub fn value_set(&self, id: &str) -> &ValueSet {
        // Every id used in code is checked at load (REQUIRED_VALUE_SETS and rules.toml).
        self.value_sets.get(id).unwrap_or_else(|| panic!("value set {id} was validated at load"))
    }

    /// Whether a medication is in the drug class of value set `set_id`, and why (see
    /// [`DrugMap::class_match`]).
    pub fn drug_in_class(&self, set_id: &str, medication: &crate::record::Concept) -> Option<String> {
        self.drugs.class_match(self.value_set(set_id), medication)
    }

    pub fn card(&self, card_type: &str) -> &CardTemplate {
        self.cards.get(card_type).unwrap_or_else(|| panic!("card type {card_type} was validated at load"))
    }

    pub fn service(&self, id: &str) -> Option<&ServiceDefinition> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The prefetch keys of a service, with their resource kinds.
    pub fn prefetch_keys(&self, service: &ServiceDefinition) -> Vec<(String, ResourceKind)> {
        service.prefetch.iter().filter_map(|key| Some((key.clone(), self.prefetch.get(key)?.kind?))).collect()
    }
}

/// Names and texts in name order, each followed by a NUL: the same files give the same version
/// whether they come from a directory or from the binary.
fn version_of(files: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (name, text) in files {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every `.toml` and `.json` file below `dir`. Names starting with a dot are skipped: a
/// Kubernetes ConfigMap mount holds `..data` and `..<timestamp>` directories beside the files
/// (which are symbolic links into them), and those would otherwise be read twice.
fn read_dir(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) -> Result<(), ContentError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ContentError::new(dir.display().to_string(), "(directory)", format!("cannot be read: {e}")))?;
    for entry in entries {
        let path = entry
            .map_err(|e| ContentError::new(dir.display().to_string(), "(directory)", format!("cannot be read: {e}")))?
            .path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            read_dir(root, &path, files)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "json")) {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ContentError::new(relative.clone(), "(file)", format!("cannot be read: {e}")))?;
            files.push((relative, text));
        }
    }
    Ok(())
}

fn parse_toml<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<T, ContentError> {
    toml::from_str(text).map_err(|error| {
        let field = error.span().map(|span| locate(text, span.start)).unwrap_or_else(|| "(file)".into());
        ContentError::new(file, field, error.message().to_owned())
    })
}

/// "line 12" for a byte offset, for TOML errors that do not name a field.
fn locate(text: &str, offset: usize) -> String {
    let line = text.get(..offset).map(|before| before.lines().count().max(1)).unwrap_or(1);
    format!("line {line}")
}

/// The longest window a rule may use: a century.
pub const MAX_WINDOW_DAYS: u32 = 36_525;

fn parse_rules(text: &str, value_sets: &BTreeMap<String, ValueSet>) -> Result<Rules, ContentError> {
    const FILE: &str = "rules.toml";
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
                    if !value_sets.contains_key(except) {
                        return Err(ContentError::new(
                            FILE,
                            field("except_value_set"),
                            format!("no value set `{except}`"),
                        ));
                    }
                    criterion.except_value_set = Some(except.clone());
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
            for set in with {
                if !DRUG_CLASSES.iter().any(|(_, id)| id == set) {
                    return Err(ContentError::new(
                        FILE,
                        field("with_drugs"),
                        format!("`{set}` is not a drug class value set"),
                    ));
                }
            }
            triggers.push(CautionTrigger::WithDrugs(with.clone()));
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
    Ok(Rules {
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
    value_sets: &BTreeMap<String, ValueSet>,
    value_set: &str,
    resources: Option<&[String]>,
    lookback: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<Criterion, ContentError> {
    const FILE: &str = "rules.toml";
    if !value_sets.contains_key(value_set) {
        return Err(ContentError::new(FILE, field("value_set"), format!("no value set `{value_set}`")));
    }
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
    Ok(Criterion { value_set: value_set.to_owned(), resources: kinds, lookback, except_value_set: None })
}

/// Every caution has its text in the card it strengthens, and every caution text has a rule.
fn validate_cautions(rules: &Rules, cards: &BTreeMap<String, CardTemplate>) -> Result<(), ContentError> {
    for rule in &rules.cautions {
        let card_type = caution_card_type(rule);
        if !cards.get(card_type).is_some_and(|card| card.cautions.contains_key(&rule.id)) {
            return Err(ContentError::new(
                format!("{card_type}.toml"),
                format!("cautions.{}", rule.id),
                "is required: rules.toml defines this caution",
            ));
        }
    }
    for (card_type, card) in cards {
        for id in card.cautions.keys() {
            if !rules.cautions.iter().any(|rule| &rule.id == id && caution_card_type(rule) == card_type) {
                return Err(ContentError::new(
                    format!("{card_type}.toml"),
                    format!("cautions.{id}"),
                    "has no rule of that id for this card in rules.toml `[[cautions]]`",
                ));
            }
        }
    }
    Ok(())
}

/// The card a caution strengthens: medication advice for drug classes, else passive-modality.
pub fn caution_card_type(rule: &CautionRule) -> &'static str {
    if rule.applies_to.iter().all(|k| DRUG_CLASSES.iter().any(|(class, _)| class == k)) {
        "medication-advice"
    } else {
        "passive-modality"
    }
}

/// CDS Hooks 2.0 prefetch tokens. 3.0's date arithmetic and FHIRPath are not used, so that every
/// 2.0 client can fill the templates.
const PREFETCH_TOKENS: [&str; 7] = [
    "context.patientId",
    "context.encounterId",
    "context.userId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
];

fn validate_services(
    mut wire: WireServices,
) -> Result<(BTreeMap<String, PrefetchKey>, Vec<ServiceDefinition>), ContentError> {
    const FILE: &str = "services.toml";
    for (key, prefetch) in &mut wire.prefetch {
        let field = |name: &str| format!("prefetch.{key}.{name}");
        prefetch.kind = Some(ResourceKind::parse(&prefetch.resource).ok_or_else(|| {
            ContentError::new(FILE, field("resource"), format!("unknown resource type `{}`", prefetch.resource))
        })?);
        let mut rest = prefetch.query.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| ContentError::new(FILE, field("query"), "unclosed `{{` token"))?;
            let token = after[..end].trim();
            if !PREFETCH_TOKENS.contains(&token) {
                return Err(ContentError::new(
                    FILE,
                    field("query"),
                    format!("`{{{{{token}}}}}` is not a CDS Hooks 2.0 prefetch token"),
                ));
            }
            rest = &after[end + 2..];
        }
        let path = prefetch.query.split('?').next().unwrap_or_default();
        if path.starts_with('/') || path.contains("://") {
            return Err(ContentError::new(FILE, field("query"), "must be a relative FHIR query"));
        }
    }
    let mut ids = std::collections::HashSet::new();
    for (index, service) in wire.services.iter().enumerate() {
        if !ids.insert(service.id.as_str()) {
            return Err(ContentError::new(FILE, format!("services[{index}].id"), "duplicate service id"));
        }
        if service.id.is_empty() || !service.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ContentError::new(FILE, format!("services[{index}].id"), "must be letters, digits and '-'"));
        }
        for key in &service.prefetch {
            if !wire.prefetch.contains_key(key) {
                return Err(ContentError::new(
                    FILE,
                    format!("services[{index}].prefetch"),
                    format!("no prefetch key `{key}`"),
                ));
            }
        }
    }
    Ok((wire.prefetch, wire.services))
}

fn parse_card(
    file: &str,
    card_type: &str,
    text: &str,
    referrals: &BTreeMap<String, Referral>,
) -> Result<CardTemplate, ContentError> {
    let wire: WireCard = parse_toml(file, text)?;
    let allowed = if card_type.starts_with("red-flag-") || card_type == PAST_RED_FLAGS {
        RED_FLAG_PLACEHOLDERS
    } else if card_type.starts_with("imaging-") {
        IMAGING_PLACEHOLDERS
    } else {
        GUIDANCE_PLACEHOLDERS
    };
    let mut variants = BTreeMap::new();
    for key in required_variants(card_type) {
        if !wire.variants.contains_key(*key) {
            return Err(ContentError::new(file, format!("variants.{key}"), "is required for this card type"));
        }
    }
    for (key, variant) in &wire.variants {
        if !required_variants(card_type).contains(&key.as_str()) {
            return Err(ContentError::new(
                file,
                format!("variants.{key}"),
                format!("is not a variant of this card type (expected: {})", required_variants(card_type).join(", ")),
            ));
        }
        let field = |name: &str| format!("variants.{key}.{name}");
        variants.insert(
            key.clone(),
            VariantTemplate {
                summary: variant
                    .summary
                    .as_deref()
                    .map(|text| Template::parse(file, &field("summary"), text, allowed))
                    .transpose()?,
                advice: Template::parse(file, &field("advice"), &variant.advice, allowed)?,
                indicator: variant.indicator,
            },
        );
    }
    let mut cautions = BTreeMap::new();
    for (key, caution) in &wire.cautions {
        let field = |name: &str| format!("cautions.{key}.{name}");
        cautions.insert(
            key.clone(),
            VariantTemplate {
                summary: caution
                    .summary
                    .as_deref()
                    .map(|text| Template::parse(file, &field("summary"), text, allowed))
                    .transpose()?,
                advice: Template::parse(file, &field("advice"), &caution.advice, allowed)?,
                indicator: caution.indicator,
            },
        );
    }
    let summary = Template::parse(file, "summary", &wire.summary, allowed)?;
    let detail = Template::parse(file, "detail", &wire.detail, allowed)?;
    if wire.summary.trim().is_empty() {
        return Err(ContentError::new(file, "summary", "must not be empty"));
    }
    if wire.detail.contains('<') && wire.detail.contains('>') && wire.detail.contains("</") {
        return Err(ContentError::new(file, "detail", "must be Markdown without raw HTML"));
    }
    if wire.source.label.trim().is_empty() {
        return Err(ContentError::new(file, "source.label", "must not be empty"));
    }
    for (field, url) in wire
        .source
        .url
        .iter()
        .map(|u| ("source.url".to_owned(), u))
        .chain(wire.links.iter().enumerate().map(|(i, l)| (format!("links[{i}].url"), &l.url)))
    {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(ContentError::new(file, field, "must be an absolute URL"));
        }
    }
    let mut suggestions = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for (index, suggestion) in wire.suggestions.into_iter().enumerate() {
        let field = |name: &str| format!("suggestions[{index}].{name}");
        if !keys.insert(suggestion.key.clone()) {
            return Err(ContentError::new(file, field("key"), "duplicate suggestion key"));
        }
        if suggestion.actions.is_empty() {
            return Err(ContentError::new(file, field("actions"), "needs at least one action"));
        }
        let mut actions = Vec::new();
        for (action_index, action) in suggestion.actions.into_iter().enumerate() {
            let action_field = format!("suggestions[{index}].actions[{action_index}]");
            if action.kind == ActionKind::CreateReferral {
                match &action.referral {
                    Some(name) if referrals.contains_key(name) => {}
                    Some(name) => {
                        return Err(ContentError::new(
                            file,
                            format!("{action_field}.referral"),
                            format!("no referral `{name}` in referrals.toml"),
                        ));
                    }
                    None => {
                        return Err(ContentError::new(
                            file,
                            format!("{action_field}.referral"),
                            "is required for create-referral",
                        ));
                    }
                }
            }
            actions.push(ActionTemplate {
                kind: action.kind,
                description: Template::parse(
                    file,
                    &format!("{action_field}.description"),
                    &action.description,
                    allowed,
                )?,
                referral: action.referral,
            });
        }
        suggestions.push(SuggestionTemplate {
            key: suggestion.key,
            label: Template::parse(file, &field("label"), &suggestion.label, allowed)?,
            recommended: suggestion.recommended,
            actions,
        });
    }
    if !suggestions.is_empty() && wire.selection_behavior.is_none() {
        return Err(ContentError::new(file, "selection_behavior", "is required when the card has suggestions"));
    }
    for (index, reason) in wire.override_reasons.iter().enumerate() {
        if reason.code.trim().is_empty() || reason.display.trim().is_empty() {
            return Err(ContentError::new(file, format!("override_reasons[{index}]"), "needs a code and a display"));
        }
    }
    Ok(CardTemplate {
        variants,
        cautions,
        card_type: card_type.to_owned(),
        indicator: wire.indicator,
        summary,
        detail,
        selection_behavior: wire.selection_behavior,
        source: wire.source,
        links: wire.links,
        suggestions,
        override_reasons: wire.override_reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded_files() -> BTreeMap<String, String> {
        embedded::EMBEDDED.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect()
    }

    #[test]
    fn the_shipped_content_is_valid() {
        let content = Content::embedded().unwrap();
        assert_eq!(content.cards.len(), CARD_TYPES.len());
        assert_eq!(content.services.len(), 3);
    }

    #[test]
    fn a_broken_card_names_its_file_and_field() {
        let mut files = embedded_files();
        let card = files.get_mut("imaging-indicated.toml").unwrap();
        *card = card.replacen("summary = \"", "summary = \"{no_such_thing} ", 1);
        let error = Content::from_files(files).unwrap_err();
        assert_eq!(error.file, "imaging-indicated.toml");
        assert_eq!(error.field, "summary");
    }

    #[test]
    fn a_missing_value_set_is_named() {
        let mut files = embedded_files();
        files.remove("valuesets/cancer.json");
        let error = Content::from_files(files).unwrap_err();
        assert_eq!(error.file, "rules.toml");
        assert!(error.field.starts_with("red_flags["), "{error}");
    }

    /// Windows beyond a century would overflow date arithmetic on every call (a panic): refused.
    #[test]
    fn windows_that_would_overflow_dates_are_refused() {
        for (from, to, field) in [
            ("episode_gap_days = 180", "episode_gap_days = 4000000000", "thresholds.episode_gap_days"),
            ("imaging_threshold_weeks = 6", "imaging_threshold_weeks = 9000", "thresholds.imaging_threshold_weeks"),
            ("lookback = \"365 days\"", "lookback = \"99999999 days\"", "red_flags[0].lookback"),
            ("adult_age_years = 18", "adult_age_years = -5", "thresholds.adult_age_years"),
        ] {
            let mut files = embedded_files();
            let rules = files.get_mut("rules.toml").unwrap();
            assert!(rules.contains(from), "{from}");
            *rules = rules.replacen(from, to, 1);
            let error = Content::from_files(files).unwrap_err();
            assert_eq!((error.file.as_str(), error.field.as_str()), ("rules.toml", field), "{error}");
        }
    }

    #[test]
    fn a_3_0_prefetch_token_is_refused() {
        let mut files = embedded_files();
        let services = files.get_mut("services.toml").unwrap();
        *services = services.replacen("{{context.patientId}}", "{{today() - 90 days}}", 1);
        let error = Content::from_files(files).unwrap_err();
        assert_eq!(error.file, "services.toml");
        assert!(error.field.ends_with(".query"), "{error}");
    }
}
