//! `patient-factors.toml`: what in the record changes the advice (NSAID cautions, pregnancy, what
//! has already been tried), with the texts the cards show for it. Kept apart from `rules.toml`
//! because these factors change *how* a card advises, not *whether* it fires.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::parse_toml;
use super::{ContentError, SetRef, Template, ValueSets};

pub const FILE: &str = "patient-factors.toml";

/// The kinds of NSAID caution. Each has an entry under `[cautions.<key>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CautionKind {
    SevereKidneyDisease,
    GiBleeding,
    Anticoagulant,
    HeartFailure,
    Allergy,
    Pregnancy,
    EarlyPregnancy,
    OlderAdult,
}

impl CautionKind {
    pub const ALL: [CautionKind; 8] = [
        CautionKind::SevereKidneyDisease,
        CautionKind::GiBleeding,
        CautionKind::Anticoagulant,
        CautionKind::HeartFailure,
        CautionKind::Allergy,
        CautionKind::Pregnancy,
        CautionKind::EarlyPregnancy,
        CautionKind::OlderAdult,
    ];

    pub fn key(self) -> &'static str {
        match self {
            CautionKind::SevereKidneyDisease => "severe-kidney-disease",
            CautionKind::GiBleeding => "gi-bleeding",
            CautionKind::Anticoagulant => "anticoagulant",
            CautionKind::HeartFailure => "heart-failure",
            CautionKind::Allergy => "allergy",
            CautionKind::Pregnancy => "pregnancy",
            CautionKind::EarlyPregnancy => "early-pregnancy",
            CautionKind::OlderAdult => "older-adult",
        }
    }
}

/// "avoid": a systemic NSAID would harm; "caution": offer alternatives first, watch if used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CautionLevel {
    Caution,
    Avoid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CautionText {
    /// Whether a topical NSAID may still be offered instead.
    pub topical_ok: bool,
    pub level: CautionLevel,
    pub short: String,
    pub why: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorThresholds {
    pub egfr_below: f64,
    pub egfr_lookback_days: u32,
    pub pregnancy_avoid_weeks: u32,
    pub pregnancy_max_days: u32,
    pub older_adult_age_years: i32,
    pub allergy_text: Vec<String>,
    pub topical_route_text: Vec<String>,
}

/// How far back a caution condition counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CautionLookback {
    /// Active or resolved (a past ulcer or bleed still counts).
    AnyTime,
    /// Active and not abated.
    Active,
}

#[derive(Debug, Clone)]
pub struct ConditionRule {
    pub caution: CautionKind,
    pub value_set: String,
    /// `value_set`, resolved at load.
    pub set: SetRef,
    pub finding: String,
    pub lookback: CautionLookback,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConditionRule {
    caution: CautionKind,
    value_set: String,
    finding: String,
    lookback: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireText {
    first_line: String,
    first_line_with_caution: String,
    level_avoid: String,
    level_caution: String,
    recommend: String,
    nsaid_active: String,
    cautions: String,
    instead_with_topical: String,
    instead_without_topical: String,
    caution_only: String,
    caution_line: String,
    tried: String,
    unchecked: String,
    no_egfr: String,
    observations_missing: String,
    medications_missing: String,
    allergies_missing: String,
    age_unknown: String,
    pregnancy_imaging: String,
    pregnancy_imaging_brief: String,
}

/// The card texts of this file, parsed as templates with their own placeholders.
#[derive(Debug, Clone)]
pub struct FactorTexts {
    pub first_line: String,
    pub first_line_with_caution: String,
    pub level_avoid: String,
    pub level_caution: String,
    pub recommend: Template,
    pub nsaid_active: Template,
    pub cautions: Template,
    pub instead_with_topical: String,
    pub instead_without_topical: String,
    pub caution_only: Template,
    pub caution_line: Template,
    pub tried: Template,
    pub unchecked: Template,
    pub no_egfr: String,
    pub observations_missing: String,
    pub medications_missing: String,
    pub allergies_missing: String,
    pub age_unknown: String,
    pub pregnancy_imaging: Template,
    /// `{pregnancy}` in the brief form: one line, no links (what was found is in `{facts}`).
    pub pregnancy_imaging_brief: Template,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFactors {
    thresholds: FactorThresholds,
    cautions: BTreeMap<CautionKind, CautionText>,
    condition_rules: Vec<WireConditionRule>,
    text: WireText,
}

#[derive(Debug, Clone)]
pub struct Factors {
    pub thresholds: FactorThresholds,
    /// One per kind, in [`CautionKind::ALL`] order (see [`Factors::caution`]).
    cautions: Vec<CautionText>,
    pub condition_rules: Vec<ConditionRule>,
    pub text: FactorTexts,
}

impl Factors {
    /// The text of a kind of caution (present by construction: load requires every kind).
    pub fn caution(&self, kind: CautionKind) -> &CautionText {
        &self.cautions[kind as usize]
    }
}

pub(super) fn parse(text: &str, value_sets: &ValueSets) -> Result<Factors, ContentError> {
    let wire: WireFactors = parse_toml(FILE, text)?;
    let t = &wire.thresholds;
    if !(t.egfr_below > 0.0 && t.egfr_below < 200.0) {
        return Err(ContentError::new(FILE, "thresholds.egfr_below", "must be an eGFR in mL/min/1.73 m² (0-200)"));
    }
    // Bounded like the windows of rules.toml: date arithmetic beyond a century would overflow.
    for (field, days) in [
        ("thresholds.egfr_lookback_days", t.egfr_lookback_days),
        ("thresholds.pregnancy_max_days", t.pregnancy_max_days),
    ] {
        if days == 0 || days > super::MAX_WINDOW_DAYS {
            return Err(ContentError::new(FILE, field, format!("must be from 1 to {} days", super::MAX_WINDOW_DAYS)));
        }
    }
    if !(1..=42).contains(&t.pregnancy_avoid_weeks) {
        return Err(ContentError::new(FILE, "thresholds.pregnancy_avoid_weeks", "must be a week of gestation (1-42)"));
    }
    if !(18..=120).contains(&t.older_adult_age_years) {
        return Err(ContentError::new(FILE, "thresholds.older_adult_age_years", "must be an adult age"));
    }
    for kind in CautionKind::ALL {
        if !wire.cautions.contains_key(&kind) {
            return Err(ContentError::new(FILE, format!("cautions.{}", kind.key()), "is required"));
        }
    }
    for (kind, caution) in &wire.cautions {
        if caution.short.trim().is_empty() || caution.why.trim().is_empty() || caution.source.trim().is_empty() {
            return Err(ContentError::new(FILE, format!("cautions.{}", kind.key()), "needs short, why and source"));
        }
    }
    let mut condition_rules = Vec::new();
    for (index, rule) in wire.condition_rules.into_iter().enumerate() {
        let field = |name: &str| format!("condition_rules[{index}].{name}");
        let set = value_sets
            .resolve(&rule.value_set)
            .ok_or_else(|| ContentError::new(FILE, field("value_set"), format!("no value set `{}`", rule.value_set)))?;
        let lookback = match rule.lookback.as_str() {
            "any-time" => CautionLookback::AnyTime,
            "active" => CautionLookback::Active,
            _ => return Err(ContentError::new(FILE, field("lookback"), "must be \"any-time\" or \"active\"")),
        };
        condition_rules.push(ConditionRule {
            caution: rule.caution,
            value_set: rule.value_set,
            set,
            finding: rule.finding,
            lookback,
        });
    }
    let w = wire.text;
    let template =
        |field: &str, text: &str, allowed: &[&str]| Template::parse(FILE, &format!("text.{field}"), text, allowed);
    let text = FactorTexts {
        recommend: template("recommend", &w.recommend, &[])?,
        nsaid_active: template("nsaid_active", &w.nsaid_active, &["nsaid"])?,
        cautions: template("cautions", &w.cautions, &["cautions", "levels", "instead"])?,
        caution_only: template("caution_only", &w.caution_only, &[])?,
        caution_line: template("caution_line", &w.caution_line, &["short", "finding", "why", "source"])?,
        tried: template("tried", &w.tried, &["tried"])?,
        unchecked: template("unchecked", &w.unchecked, &["unchecked"])?,
        pregnancy_imaging: template("pregnancy_imaging", &w.pregnancy_imaging, &["evidence"])?,
        pregnancy_imaging_brief: template("pregnancy_imaging_brief", &w.pregnancy_imaging_brief, &[])?,
        first_line: w.first_line,
        first_line_with_caution: w.first_line_with_caution,
        instead_with_topical: w.instead_with_topical,
        instead_without_topical: w.instead_without_topical,
        level_avoid: w.level_avoid,
        level_caution: w.level_caution,
        no_egfr: w.no_egfr,
        observations_missing: w.observations_missing,
        medications_missing: w.medications_missing,
        allergies_missing: w.allergies_missing,
        age_unknown: w.age_unknown,
    };
    let mut texts = wire.cautions;
    let cautions = CautionKind::ALL.iter().filter_map(|kind| texts.remove(kind)).collect();
    Ok(Factors { thresholds: wire.thresholds, cautions, condition_rules, text })
}

#[cfg(test)]
mod tests {
    use super::super::Content;
    use std::collections::BTreeMap;

    fn refused(files: BTreeMap<String, String>) -> super::super::ContentError {
        match Content::from_files(files) {
            Ok(_) => panic!("the edited content was accepted"),
            Err(error) => error,
        }
    }

    fn files_with(edit: impl Fn(&str) -> String) -> BTreeMap<String, String> {
        let mut files: BTreeMap<String, String> = super::super::load::embedded_files().collect();
        let text = files.get(super::FILE).expect("shipped").clone();
        files.insert(super::FILE.to_owned(), edit(&text));
        files
    }

    #[test]
    fn a_missing_caution_is_named() {
        // Cut the whole [cautions.heart-failure] table.
        let files = files_with(|t| {
            let start = t.find("[cautions.heart-failure]").expect("shipped");
            let end = start + t[start..].find("[cautions.allergy]").expect("next table");
            format!("{}{}", &t[..start], &t[end..])
        });
        let error = refused(files);
        assert_eq!((error.file.as_str(), error.field.as_str()), (super::FILE, "cautions.heart-failure"), "{error}");
    }

    #[test]
    fn an_unknown_placeholder_in_a_text_is_named() {
        let files = files_with(|t| t.replace("prescribed:** {nsaid}", "prescribed:** {drug}"));
        let error = refused(files);
        assert_eq!((error.file.as_str(), error.field.as_str()), (super::FILE, "text.nsaid_active"));
    }

    #[test]
    fn thresholds_and_lookbacks_are_checked() {
        let error = refused(files_with(|t| t.replace("egfr_below = 30.0", "egfr_below = -1.0")));
        assert_eq!(error.field, "thresholds.egfr_below");
        let error = refused(files_with(|t| t.replace("pregnancy_max_days = 300", "pregnancy_max_days = 4000000000")));
        assert_eq!(error.field, "thresholds.pregnancy_max_days");
        let error = refused(files_with(|t| t.replacen("lookback = \"active\"", "lookback = \"90 days\"", 1)));
        assert_eq!(error.field, "condition_rules[0].lookback");
        let error =
            refused(files_with(|t| t.replacen("value_set = \"gi-bleeding\"", "value_set = \"no-such-set\"", 1)));
        assert_eq!(error.field, "condition_rules[1].value_set");
    }
}
