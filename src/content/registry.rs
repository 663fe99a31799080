//! The one definition of every card type (its file, family, variants and placeholders) and of
//! every value set the Rust code reads by name. Adding a card type is one line in `card_types!`;
//! adding a placeholder is one name in `placeholders!`. Start-up refuses content that does not
//! match these definitions, naming the file and field, so no lookup can fail at call time and no
//! placeholder renders as empty text because the renderer forgot it: the renderer fills a struct
//! with one field per placeholder, and the compiler checks every field is given.

/// Which renderer fills a card type's texts, and so which placeholders they may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    RedFlag,
    Imaging,
    Guidance,
}

impl Family {
    /// The placeholders this family's texts may name.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Family::RedFlag => RedFlagValues::NAMES,
            Family::Imaging => ImagingValues::NAMES,
            Family::Guidance => GuidanceValues::NAMES,
        }
    }
}

macro_rules! card_types {
    ($($(#[$doc:meta])* $name:ident = $key:literal, $family:ident, [$($variant:literal),*],
        uses [$($set:ident),*], thresholds [$($threshold:literal),*];)*) => {
        /// Card types, as sent in `source.topic.code` (system `urn:lbp-cds:card-type`); each has
        /// its texts in `cards/<key>.toml`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CardType {
            $($(#[$doc])* $name,)*
        }

        impl CardType {
            pub const ALL: &'static [CardType] = &[$(CardType::$name),*];

            pub fn key(self) -> &'static str {
                match self {
                    $(CardType::$name => $key,)*
                }
            }

            pub fn family(self) -> Family {
                match self {
                    $(CardType::$name => Family::$family,)*
                }
            }

            /// Variant keys the card file must define (`[variants.<key>]`), and no others.
            pub fn variants(self) -> &'static [&'static str] {
                match self {
                    $(CardType::$name => &[$($variant),*],)*
                }
            }

            /// Value sets its logic reads by name (red-flag cards: besides their rules' sets in
            /// `rules.toml`), shown in the console's content browser.
            pub fn value_sets(self) -> &'static [ValueSetId] {
                match self {
                    $(CardType::$name => &[$(ValueSetId::$set),*],)*
                }
            }

            /// `rules.toml` `[thresholds]` its logic reads (besides rules' windows).
            pub fn thresholds(self) -> &'static [&'static str] {
                match self {
                    $(CardType::$name => &[$($threshold),*],)*
                }
            }
        }
    };
}

card_types! {
    RedFlagCaudaEquina = "red-flag-cauda-equina", RedFlag, [], uses [], thresholds [];
    RedFlagNeurologicDeficit = "red-flag-neurologic-deficit", RedFlag, [], uses [], thresholds [];
    RedFlagCancer = "red-flag-cancer", RedFlag, [], uses [BodyWeight],
        thresholds ["weight_loss_percent", "weight_loss_window_days"];
    RedFlagInfection = "red-flag-infection", RedFlag, [], uses [BodyTemperature],
        thresholds ["fever_celsius", "fever_lookback_days"];
    RedFlagFracture = "red-flag-fracture", RedFlag, [], uses [SystemicCorticosteroids],
        thresholds ["steroid_min_days", "steroid_lookback_days", "fracture_age_years"];
    RedFlagPriorSurgery = "red-flag-prior-surgery", RedFlag, [], uses [], thresholds [];
    RedFlagInflammatory = "red-flag-inflammatory", RedFlag, [], uses [], thresholds [];
    /// Red-flag diagnoses outside their windows: history, shown as information.
    PastRedFlags = "past-red-flags", RedFlag, [], uses [], thresholds [];
    ImagingNotIndicated = "imaging-not-indicated", Imaging, [], uses [LbpDiagnosis, LumbarImaging],
        thresholds ["imaging_threshold_weeks", "adult_age_years"];
    ImagingIndicated = "imaging-indicated", Imaging, ["preferred", "other-modality"], uses [LumbarImaging],
        thresholds ["fracture_age_years"];
    ImagingConditional = "imaging-conditional", Imaging, [
        "beyond-threshold", "no-prior-care", "after-prior-care", "unknown-duration", "no-diagnosis", "incomplete-data"
    ], uses [LbpDiagnosis, LumbarImaging, PtOtServices], thresholds ["imaging_threshold_weeks", "chronic_weeks"];
    PtReferral = "pt-referral", Guidance, [], uses [LbpDiagnosis, PtOtServices, StartBack],
        thresholds ["episode_gap_days"];
    StartBackScreening = "start-back-screening", Guidance, [], uses [LbpDiagnosis, StartBack],
        thresholds ["episode_gap_days"];
    StratifiedCare = "stratified-care", Guidance, ["low", "medium", "high"], uses [LbpDiagnosis, StartBack],
        thresholds ["episode_gap_days"];
    ContinueTherapy = "continue-therapy", Guidance, [], uses [LbpDiagnosis, PtOtServices],
        thresholds ["continue_therapy_min_gap_days"];
    ReassessProgress = "reassess-progress", Guidance, ["early", "late", "no-scores"],
        uses [LbpDiagnosis, PainScores, Oswestry],
        thresholds ["reassess_early_weeks", "reassess_late_weeks", "improvement_percent", "reassess_ask_window_days"];
    /// Safety advice on a draft order: fires beside red flags too.
    MedicationAdvice = "medication-advice", Guidance, ["opioid", "benzodiazepine", "muscle-relaxant"],
        uses [Opioids, Benzodiazepines, MuscleRelaxants, Sedatives], thresholds ["chronic_weeks"];
    /// Safety advice on a draft order: fires beside red flags too.
    PassiveModality = "passive-modality", Guidance, ["passive", "manipulation"],
        uses [PassiveModalities, SpinalManipulation], thresholds [];
}

impl CardType {
    pub fn parse(key: &str) -> Option<CardType> {
        CardType::ALL.iter().copied().find(|card_type| card_type.key() == key)
    }

    /// The card file, relative to the content directory.
    pub fn file(self) -> String {
        format!("{}.toml", self.key())
    }

    /// What helps instead of imaging, and safety advice on orders.
    pub fn is_guidance(self) -> bool {
        self.family() == Family::Guidance
    }

    /// Safety advice on a draft order: it fires beside red flags too (only end-of-life care or
    /// active cancer treatment withholds it).
    pub fn is_safety_advice(self) -> bool {
        matches!(self, CardType::MedicationAdvice | CardType::PassiveModality)
    }

    /// Routine guidance (referral, screening, stratified care, continuing therapy, reassessment):
    /// it yields to red flags.
    pub fn is_routine_guidance(self) -> bool {
        self.is_guidance() && !self.is_safety_advice()
    }
}

impl std::fmt::Display for CardType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// The values a family's texts are rendered with: one field per placeholder.
pub trait Placeholders {
    /// The placeholder names, as written in braces in the card files.
    const NAMES: &'static [&'static str];
    fn value(&self, name: &str) -> Option<&str>;
}

macro_rules! placeholders {
    ($($(#[$doc:meta])* pub struct $name:ident { $($field:ident),* $(,)? })*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Default)]
            pub struct $name {
                $(pub $field: String,)*
            }

            impl Placeholders for $name {
                const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

                fn value(&self, name: &str) -> Option<&str> {
                    match name {
                        $(stringify!($field) => Some(self.$field.as_str()),)*
                        _ => None,
                    }
                }
            }
        )*
    };
}

placeholders! {
    /// Red-flag cards and `past-red-flags`. Every family also has `facts` (what was found in the
    /// record, in plain words with dates, for the brief form) and `data_note` (one line on what
    /// could not be read; empty when everything could).
    pub struct RedFlagValues { finding_summary, findings, duration, data_notes, facts, data_note }

    /// Imaging cards. `advice` is the chosen variant's advice, rendered with the other values.
    pub struct ImagingValues {
        modality, order, duration, duration_short, threshold_weeks, red_flags, finding_summary, acr_variant,
        rating, data_notes, advice, medicines, first_line, pregnancy, prior_care, history, facts, data_note,
        order_name,
    }

    /// Guidance cards. `advice` is the chosen variant's advice; `cautions` the texts of the
    /// cautions that apply, most severe first.
    pub struct GuidanceValues {
        duration, duration_short, data_notes, evidence, finding_summary, order, risk, risk_data, advice,
        medicines, first_line, cautions, facts, data_note, order_name,
    }
}

macro_rules! value_sets {
    ($($name:ident = $key:literal,)*) => {
        /// Value sets the Rust code reads by name (rules in `rules.toml` and
        /// `patient-factors.toml` name theirs in the file). Each must be in `cards/valuesets/`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ValueSetId {
            $($name,)*
        }

        impl ValueSetId {
            pub const ALL: &'static [ValueSetId] = &[$(ValueSetId::$name),*];

            pub fn key(self) -> &'static str {
                match self {
                    $(ValueSetId::$name => $key,)*
                }
            }
        }
    };
}

value_sets! {
    LbpDiagnosis = "lbp-diagnosis",
    LumbarImaging = "lumbar-imaging",
    BodyTemperature = "body-temperature",
    BodyWeight = "body-weight",
    SystemicCorticosteroids = "systemic-corticosteroids",
    PtOtServices = "pt-ot-services",
    Opioids = "opioids",
    Benzodiazepines = "benzodiazepines",
    MuscleRelaxants = "muscle-relaxants",
    Sedatives = "sedatives",
    PassiveModalities = "passive-modalities",
    SpinalManipulation = "spinal-manipulation",
    StartBack = "start-back",
    PainScores = "pain-scores",
    Oswestry = "oswestry",
    Nsaids = "nsaids",
    Anticoagulants = "anticoagulants",
    NsaidAllergy = "nsaid-allergy",
    Egfr = "egfr",
    PregnancyConditions = "pregnancy-conditions",
    PregnancyObservations = "pregnancy-observations",
    PregnancyStatusAnswers = "pregnancy-status-answers",
}

impl ValueSetId {
    pub fn parse(key: &str) -> Option<ValueSetId> {
        ValueSetId::ALL.iter().copied().find(|id| id.key() == key)
    }
}

/// Drug classes the medication rules and cautions know (`applies_to`, `with_drugs`), and the
/// value set of each.
pub const DRUG_CLASSES: [(&str, ValueSetId); 4] = [
    ("opioid", ValueSetId::Opioids),
    ("benzodiazepine", ValueSetId::Benzodiazepines),
    ("muscle-relaxant", ValueSetId::MuscleRelaxants),
    ("sedative", ValueSetId::Sedatives),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_parse_back() {
        for card_type in CardType::ALL {
            assert_eq!(CardType::parse(card_type.key()), Some(*card_type));
        }
        for id in ValueSetId::ALL {
            assert_eq!(ValueSetId::parse(id.key()), Some(*id));
        }
        assert_eq!(CardType::parse("no-such-card"), None);
    }

    /// `Content::card`, `ValueSets::get` and `Factors::caution` index by discriminant.
    #[test]
    fn discriminants_follow_the_all_lists() {
        for (index, card_type) in CardType::ALL.iter().enumerate() {
            assert_eq!(*card_type as usize, index);
        }
        for (index, id) in ValueSetId::ALL.iter().enumerate() {
            assert_eq!(*id as usize, index);
        }
        for (index, kind) in crate::content::factors::CautionKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index);
        }
    }

    #[test]
    fn every_placeholder_has_a_value() {
        let values = ImagingValues { acr_variant: "variant 1".into(), ..Default::default() };
        for name in ImagingValues::NAMES {
            assert!(values.value(name).is_some(), "{name}");
        }
        assert_eq!(values.value("acr_variant"), Some("variant 1"));
        assert_eq!(values.value("no_such_placeholder"), None);
    }
}
