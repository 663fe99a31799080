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

pub use template::Template;
pub use medications::{Brand, DrugMap, FoundIngredient, Product, RXNORM};
pub use valueset::{canonical_system, parse_instant, system_name, Confirmation, Match, Modality, ValueSet, ValueSetConcept};

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
pub const CARD_TYPES: [&str; 15] = [
    "red-flag-cauda-equina",
    "red-flag-neurologic-deficit",
    "red-flag-cancer",
    "red-flag-infection",
    "red-flag-fracture",
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

/// The guidance card types (what helps instead of imaging); none appears beside a red flag.
pub fn is_guidance(card_type: &str) -> bool {
    !card_type.starts_with("red-flag-") && !card_type.starts_with("imaging-")
}

/// Variant keys each card type must define (`[variants.<key>]`).
pub fn required_variants(card_type: &str) -> &'static [&'static str] {
    match card_type {
        "imaging-indicated" => &["preferred", "other-modality"],
        "imaging-conditional" => {
            &["beyond-threshold", "no-prior-care", "after-prior-care", "unknown-duration", "no-diagnosis", "incomplete-data"]
        }
        "stratified-care" => &["low", "medium", "high"],
        "reassess-progress" => &["early", "late"],
        "medication-advice" => &["opioid", "benzodiazepine", "muscle-relaxant"],
        _ => &[],
    }
}

/// Value sets the rules refer to by name (in code, beyond those named in `rules.toml`).
pub const REQUIRED_VALUE_SETS: [&str; 13] = [
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
];

/// The five red-flag categories; each has its own card type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedFlagCategory {
    CaudaEquina,
    NeurologicDeficit,
    Cancer,
    Infection,
    Fracture,
}

impl RedFlagCategory {
    pub const ALL: [RedFlagCategory; 5] = [
        RedFlagCategory::CaudaEquina,
        RedFlagCategory::NeurologicDeficit,
        RedFlagCategory::Cancer,
        RedFlagCategory::Infection,
        RedFlagCategory::Fracture,
    ];

    pub fn key(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "cauda-equina",
            RedFlagCategory::NeurologicDeficit => "neurologic-deficit",
            RedFlagCategory::Cancer => "cancer",
            RedFlagCategory::Infection => "infection",
            RedFlagCategory::Fracture => "fracture",
        }
    }

    pub fn card_type(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "red-flag-cauda-equina",
            RedFlagCategory::NeurologicDeficit => "red-flag-neurologic-deficit",
            RedFlagCategory::Cancer => "red-flag-cancer",
            RedFlagCategory::Infection => "red-flag-infection",
            RedFlagCategory::Fracture => "red-flag-fracture",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RedFlagCategory::CaudaEquina => "cauda equina syndrome",
            RedFlagCategory::NeurologicDeficit => "neurological deficit",
            RedFlagCategory::Cancer => "cancer",
            RedFlagCategory::Infection => "infection",
            RedFlagCategory::Fracture => "fracture",
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
}

/// How far back a condition counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// Any time, active or resolved (cancer history, HIV, transplant).
    AnyTime,
    /// Active, or dated within this many days.
    Days(u32),
}

/// One condition-based red-flag rule (`rules.toml` `[[red_flags]]`).
#[derive(Debug, Clone)]
pub struct RedFlagRule {
    pub id: String,
    pub category: RedFlagCategory,
    pub value_set: String,
    pub finding: String,
    pub lookback: Lookback,
    /// The rule fires only above this age (for example trauma over 70).
    pub min_age_years: Option<i32>,
    pub guideline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRedFlagRule {
    id: String,
    category: RedFlagCategory,
    value_set: String,
    finding: String,
    lookback: String,
    #[serde(default)]
    min_age_years: Option<i32>,
    guideline: String,
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
    pub imaging: Imaging,
    /// Words that identify TENS, therapeutic ultrasound or traction orders by text.
    pub passive_modality_text: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRules {
    thresholds: Thresholds,
    red_flags: Vec<WireRedFlagRule>,
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
                return Err(ContentError::new(format!("valuesets/{required}.json"), "(file)", "is required by the rules"));
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
        service
            .prefetch
            .iter()
            .filter_map(|key| Some((key.clone(), self.prefetch.get(key)?.kind?)))
            .collect()
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
    for (field, value) in [("thresholds.adult_age_years", t.adult_age_years), ("thresholds.fracture_age_years", t.fracture_age_years)] {
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
        if !value_sets.contains_key(&rule.value_set) {
            return Err(ContentError::new(FILE, field("value_set"), format!("no value set `{}`", rule.value_set)));
        }
        let lookback = match rule.lookback.as_str() {
            "any-time" => Lookback::AnyTime,
            other => match other.strip_suffix(" days").and_then(|n| n.trim().parse::<u32>().ok()) {
                Some(days) if days > 0 && days <= MAX_WINDOW_DAYS => Lookback::Days(days),
                _ => {
                    return Err(ContentError::new(
                        FILE,
                        field("lookback"),
                        format!("must be \"any-time\" or \"N days\" with N from 1 to {MAX_WINDOW_DAYS}"),
                    ));
                }
            },
        };
        red_flags.push(RedFlagRule {
            id: rule.id,
            category: rule.category,
            value_set: rule.value_set,
            finding: rule.finding,
            lookback,
            min_age_years: rule.min_age_years,
            guideline: rule.guideline,
        });
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
    Ok(Rules { thresholds: wire.thresholds, red_flags, imaging, passive_modality_text: wire.passive_modality_text })
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
            let end = after
                .find("}}")
                .ok_or_else(|| ContentError::new(FILE, field("query"), "unclosed `{{` token"))?;
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
                return Err(ContentError::new(FILE, format!("services[{index}].prefetch"), format!("no prefetch key `{key}`")));
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
    let allowed = if card_type.starts_with("red-flag-") {
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
    for (field, url) in
        wire.source.url.iter().map(|u| ("source.url".to_owned(), u)).chain(
            wire.links.iter().enumerate().map(|(i, l)| (format!("links[{i}].url"), &l.url)),
        )
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
                        return Err(ContentError::new(file, format!("{action_field}.referral"), format!("no referral `{name}` in referrals.toml")));
                    }
                    None => return Err(ContentError::new(file, format!("{action_field}.referral"), "is required for create-referral")),
                }
            }
            actions.push(ActionTemplate {
                kind: action.kind,
                description: Template::parse(file, &format!("{action_field}.description"), &action.description, allowed)?,
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
