//! `texts.toml`: the sentences the renderer builds around what it found (durations, headings,
//! short findings, ACR variant names), shared by the card types.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::parse_toml;
use super::registry::{CardType, Family};
use super::{ContentError, Template};

pub(super) const FILE: &str = "texts.toml";

#[derive(Debug, Clone)]
pub struct Texts {
    pub duration_none: Template,
    pub duration_chronic: Template,
    pub duration_known: Template,
    pub duration_unknown: Template,
    pub short_none: Template,
    pub short_chronic: Template,
    pub short_unknown: Template,
    pub one_day: Template,
    pub days: Template,
    pub one_week: Template,
    pub weeks: Template,
    pub notes_heading: Template,
    pub past_red_flags: Template,
    pub no_scores: Template,
    pub caution_source: Template,
    pub not_rated: Template,
    pub start_back_app: Template,
    pub pt_referral_found: Template,
    pub start_back_found: Template,
    pub continue_therapy_found: Template,
    pub reassess_no_scores_found: Template,
    pub reassess_found: Template,
    pub stratified_care_found: Template,
    /// By `imaging-conditional` variant.
    pub acr_variant: BTreeMap<String, Template>,
    /// When each card type fires, in a line (the console's content browser); red-flag category
    /// cards are described by their rules instead.
    pub fires_when: BTreeMap<CardType, String>,
    /// The brief form's sentences (`[brief]`).
    pub brief: Brief,
}

/// The brief form's sentences: the plain-language evidence lines, the data note, the link to
/// the console.
#[derive(Debug, Clone)]
pub struct Brief {
    pub facts_heading: Template,
    pub more: Template,
    pub condition: Template,
    pub condition_resolved: Template,
    pub procedure: Template,
    pub referral: Template,
    pub medication: Template,
    pub questionnaire: Template,
    pub order: Template,
    pub data_note: Template,
    pub unread: Template,
    pub partial: Template,
    pub missing: Template,
    pub console_link: Template,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTexts {
    duration: WireDuration,
    duration_short: WireShort,
    weeks: WireWeeks,
    notes: WireNotes,
    finding_summary: WireFound,
    acr_variant: BTreeMap<String, String>,
    fires_when: BTreeMap<String, String>,
    brief: WireBrief,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBrief {
    facts_heading: String,
    more: String,
    condition: String,
    condition_resolved: String,
    procedure: String,
    referral: String,
    medication: String,
    questionnaire: String,
    order: String,
    data_note: String,
    unread: String,
    partial: String,
    missing: String,
    console_link: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDuration {
    none: String,
    chronic: String,
    known: String,
    unknown: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireShort {
    none: String,
    chronic: String,
    unknown: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireWeeks {
    one_day: String,
    days: String,
    one_week: String,
    weeks: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireNotes {
    heading: String,
    past_red_flags: String,
    no_scores: String,
    caution_source: String,
    not_rated: String,
    start_back_app: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WireFound {
    pt_referral: String,
    start_back_screening: String,
    continue_therapy: String,
    reassess_no_scores: String,
    reassess: String,
    stratified_care: String,
}

pub(super) fn parse(text: &str) -> Result<Texts, ContentError> {
    let wire: WireTexts = parse_toml(FILE, text)?;
    let t = |field: &str, text: &str, allowed: &[&str]| Template::parse(FILE, field, text, allowed);
    let d = &wire.duration;
    let s = &wire.duration_short;
    let w = &wire.weeks;
    let n = &wire.notes;
    let f = &wire.finding_summary;
    let variants = CardType::ImagingConditional.variants();
    let mut acr_variant = BTreeMap::new();
    for variant in variants {
        let text = wire.acr_variant.get(*variant).ok_or_else(|| {
            ContentError::new(FILE, format!("acr_variant.{variant}"), "is required (a variant of imaging-conditional)")
        })?;
        acr_variant.insert((*variant).to_owned(), t(&format!("acr_variant.{variant}"), text, &[])?);
    }
    if let Some(extra) = wire.acr_variant.keys().find(|key| !variants.contains(&key.as_str())) {
        return Err(ContentError::new(
            FILE,
            format!("acr_variant.{extra}"),
            format!("is not a variant of imaging-conditional (expected: {})", variants.join(", ")),
        ));
    }
    let mut fires_when = BTreeMap::new();
    for (key, text) in &wire.fires_when {
        let field = format!("fires_when.{key}");
        let card_type = CardType::parse(key)
            .ok_or_else(|| ContentError::new(FILE, &field, format!("`{key}` is not a card type")))?;
        if text.trim().is_empty() {
            return Err(ContentError::new(FILE, &field, "must not be empty"));
        }
        fires_when.insert(card_type, text.clone());
    }
    for card_type in CardType::ALL.iter().filter(|c| c.family() != Family::RedFlag || **c == CardType::PastRedFlags) {
        if !fires_when.contains_key(card_type) {
            return Err(ContentError::new(FILE, format!("fires_when.{card_type}"), "is required"));
        }
    }
    Ok(Texts {
        fires_when,
        duration_none: t("duration.none", &d.none, &[])?,
        duration_chronic: t("duration.chronic", &d.chronic, &["chronic_weeks", "sources"])?,
        duration_known: t("duration.known", &d.known, &["weeks", "days", "start", "sources"])?,
        duration_unknown: t("duration.unknown", &d.unknown, &["sources"])?,
        short_none: t("duration_short.none", &s.none, &[])?,
        short_chronic: t("duration_short.chronic", &s.chronic, &["chronic_weeks"])?,
        short_unknown: t("duration_short.unknown", &s.unknown, &[])?,
        one_day: t("weeks.one_day", &w.one_day, &[])?,
        days: t("weeks.days", &w.days, &["n"])?,
        one_week: t("weeks.one_week", &w.one_week, &[])?,
        weeks: t("weeks.weeks", &w.weeks, &["n"])?,
        notes_heading: t("notes.heading", &n.heading, &[])?,
        past_red_flags: t("notes.past_red_flags", &n.past_red_flags, &[])?,
        no_scores: t("notes.no_scores", &n.no_scores, &[])?,
        caution_source: t("notes.caution_source", &n.caution_source, &["guideline", "rule"])?,
        not_rated: t("notes.not_rated", &n.not_rated, &[])?,
        start_back_app: t("notes.start_back_app", &n.start_back_app, &[])?,
        pt_referral_found: t("finding_summary.pt-referral", &f.pt_referral, &[])?,
        start_back_found: t("finding_summary.start-back-screening", &f.start_back_screening, &[])?,
        continue_therapy_found: t("finding_summary.continue-therapy", &f.continue_therapy, &[])?,
        reassess_no_scores_found: t("finding_summary.reassess-no-scores", &f.reassess_no_scores, &[])?,
        reassess_found: t("finding_summary.reassess", &f.reassess, &["duration_short"])?,
        stratified_care_found: t("finding_summary.stratified-care", &f.stratified_care, &["risk"])?,
        acr_variant,
        brief: brief(&wire.brief)?,
    })
}

fn brief(b: &WireBrief) -> Result<Brief, ContentError> {
    let t = |field: &str, text: &str, allowed: &[&str]| Template::parse(FILE, &format!("brief.{field}"), text, allowed);
    let dated = &["name", "date"];
    Ok(Brief {
        facts_heading: t("facts_heading", &b.facts_heading, &[])?,
        more: t("more", &b.more, &["n"])?,
        condition: t("condition", &b.condition, dated)?,
        condition_resolved: t("condition_resolved", &b.condition_resolved, dated)?,
        procedure: t("procedure", &b.procedure, dated)?,
        referral: t("referral", &b.referral, dated)?,
        medication: t("medication", &b.medication, dated)?,
        questionnaire: t("questionnaire", &b.questionnaire, &["date"])?,
        order: t("order", &b.order, &["name"])?,
        data_note: t("data_note", &b.data_note, &["what"])?,
        unread: t("unread", &b.unread, &["n", "kind"])?,
        partial: t("partial", &b.partial, &["kind"])?,
        missing: t("missing", &b.missing, &["kind"])?,
        console_link: t("console_link", &b.console_link, &["topic"])?,
    })
}
