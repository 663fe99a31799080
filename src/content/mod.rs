//! Clinical content from `cards/`: thresholds, red-flag rules, value sets, card texts and service
//! definitions. Loaded and validated once at start-up; any error names the file and the field.
//!
//! By job: `registry` defines card types, placeholders and the value sets code reads; `load`
//! reads files; `rules`, `services`, `cards`, `factors`, `medications` and `valueset` parse and
//! validate one kind of file each; this module puts them together and checks them against each
//! other; `live` swaps content on reload.

mod cards;
pub mod factors;
pub mod live;
mod load;
mod medications;
pub mod registry;
mod rules;
mod services;
mod template;
pub mod texts;
mod valueset;

use std::collections::BTreeMap;
use std::path::Path;

pub use cards::{
    ActionKind, ActionTemplate, CardDetail, CardTemplate, LinkText, OverrideReason, Referral, SourceText,
    SuggestionTemplate, VariantTemplate,
};
pub use medications::{Brand, DrugMap, FILE as DRUG_MAP_FILE, FoundIngredient, Product, RXNORM};
pub use registry::{CardType, DRUG_CLASSES, Family, ValueSetId};
pub use rules::{
    AcrRating, AdviceRules, AdviceSuppression, CautionRule, CautionTrigger, CorticosteroidRoutes, Criterion, Imaging,
    ImagingText, ImagingVariant, Lookback, MAX_WINDOW_DAYS, Measured, MeasuredRule, RedFlagCategory, RedFlagRule,
    Rules, StartBackRules, Thresholds, caution_card_type,
};
pub use services::{PrefetchKey, PrefetchTemplate, PrefetchToken, ServiceDefinition};
pub use template::Template;
pub use valueset::{
    Confirmation, Match, Modality, SetRef, ValueSet, ValueSetConcept, ValueSets, canonical_system, parse_instant,
    system_name,
};

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

/// All clinical content, validated.
#[derive(Debug, Clone)]
pub struct Content {
    pub rules: Rules,
    pub prefetch: BTreeMap<String, PrefetchKey>,
    pub services: Vec<ServiceDefinition>,
    pub referrals: BTreeMap<String, Referral>,
    /// One per card type, in [`CardType::ALL`] order (see [`Content::card`]).
    pub cards: Vec<CardTemplate>,
    pub value_sets: ValueSets,
    /// NSAID cautions, pregnancy and what was tried (`patient-factors.toml`).
    pub factors: factors::Factors,
    /// RxNorm products and brands to ingredients, for the drug classes.
    pub drugs: DrugMap,
    /// Sentences shared by the card types (`texts.toml`).
    pub texts: texts::Texts,
    /// SHA-256 (hex) of every content file's name and text: which content produced an answer
    /// (every response's extension), an audit row, a reload's log line and `/ready`. The one
    /// definition of the content version.
    pub version: String,
}

impl Content {
    /// The content compiled into the binary (a copy of `cards/` at build time).
    pub fn embedded() -> Result<Content, ContentError> {
        Content::from_files(load::embedded_files())
    }

    /// The version `from_dir` would give, without parsing: how a reload sees that nothing changed.
    pub fn dir_version(dir: &Path) -> Result<String, ContentError> {
        Ok(load::version_of(&load::read_dir(dir)?.into_iter().collect()))
    }

    /// Reads every `.toml` and `.json` file under `dir`.
    pub fn from_dir(dir: &Path) -> Result<Content, ContentError> {
        Content::from_files(load::read_dir(dir)?)
    }

    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Content, ContentError> {
        let files: BTreeMap<String, String> = files.into_iter().collect();
        let version = load::version_of(&files);
        let file = |name: &str| {
            files.get(name).ok_or_else(|| ContentError::new(name, "(file)", "is missing from the content directory"))
        };

        let mut sets = BTreeMap::new();
        for (name, text) in files.iter().filter(|(name, _)| name.starts_with("valuesets/")) {
            let set = ValueSet::parse(name, text)?;
            sets.insert(set.id.clone(), set);
        }
        let value_sets = ValueSets::new(sets)?;

        let rules = rules::parse(file(rules::FILE)?, &value_sets)?;
        let factors = factors::parse(file(factors::FILE)?, &value_sets)?;
        let referrals: BTreeMap<String, Referral> = load::parse_toml(cards::REFERRALS, file(cards::REFERRALS)?)?;
        let (prefetch, services) = services::parse(file(services::FILE)?)?;

        let mut cards = Vec::with_capacity(CardType::ALL.len());
        for card_type in CardType::ALL {
            let name = card_type.file();
            cards.push(cards::parse(&name, *card_type, file(&name)?, &referrals)?);
        }
        let drugs = DrugMap::parse(file(medications::FILE)?)?;
        drugs.check_classes(|id| value_sets.named(id).is_some())?;
        let texts = texts::parse(file(texts::FILE)?)?;
        validate_cautions(&rules, &cards)?;
        Ok(Content { rules, prefetch, services, referrals, cards, value_sets, factors, drugs, texts, version })
    }

    /// A value set the code reads by name (present by construction).
    pub fn value_set(&self, id: ValueSetId) -> &ValueSet {
        self.value_sets.get(id)
    }

    /// Whether a medication is in the drug class of value set `set`, and why (see
    /// [`DrugMap::class_match`]).
    pub fn drug_in_class(&self, set: ValueSetId, medication: &crate::record::Concept) -> Option<String> {
        self.drugs.class_match(self.value_set(set), medication)
    }

    /// The texts of a card type (present by construction).
    pub fn card(&self, card_type: CardType) -> &CardTemplate {
        &self.cards[card_type as usize]
    }

    pub fn service(&self, id: &str) -> Option<&ServiceDefinition> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The prefetch keys of a service, with their resource kinds.
    pub fn prefetch_keys(&self, service: &ServiceDefinition) -> Vec<(String, ResourceKind)> {
        service.prefetch.iter().filter_map(|key| Some((key.clone(), self.prefetch.get(key)?.kind))).collect()
    }
}

/// Every caution has its text in the card it strengthens, and every caution text has a rule.
fn validate_cautions(rules: &Rules, cards: &[CardTemplate]) -> Result<(), ContentError> {
    for rule in &rules.cautions {
        let card_type = caution_card_type(rule);
        if !cards[card_type as usize].cautions.contains_key(&rule.id) {
            return Err(ContentError::new(
                card_type.file(),
                format!("cautions.{}", rule.id),
                "is required: rules.toml defines this caution",
            ));
        }
    }
    for card in cards {
        for id in card.cautions.keys() {
            if !rules.cautions.iter().any(|rule| &rule.id == id && caution_card_type(rule) == card.card_type) {
                return Err(ContentError::new(
                    card.card_type.file(),
                    format!("cautions.{id}"),
                    "has no rule of that id for this card in rules.toml `[[cautions]]`",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded_files() -> BTreeMap<String, String> {
        load::embedded_files().collect()
    }

    #[test]
    fn the_shipped_content_is_valid() {
        let content = Content::embedded().unwrap();
        assert_eq!(content.cards.len(), CardType::ALL.len());
        for card_type in CardType::ALL {
            assert_eq!(content.card(*card_type).card_type, *card_type);
        }
        for id in ValueSetId::ALL {
            assert_eq!(content.value_set(*id).id, id.key());
        }
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
