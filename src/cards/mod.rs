//! Cards and system actions, rendered from an assessment with the texts in `cards/`.
//!
//! `render` puts the answer together; one module per card family fills that family's
//! placeholders (`red_flags`, `imaging`, `guidance`; `factors` for the patient-factor texts);
//! `actions` builds suggestions and system actions; `text` holds the Markdown helpers; `brief`
//! the brief form's plain-language evidence, data note and per-card provenance. The brief form
//! (default) renders each template's `detail` and links to the guideline and the console; the
//! full form (`--card-detail full`) renders `detail_full` with the card file's links.

mod actions;
mod brief;
mod factors;
mod guidance;
mod imaging;
mod red_flags;
mod text;

use serde_json::{Value, json};
use uuid::Uuid;

pub use actions::referral_resource;
pub use text::shorten;

use crate::assess::{Assessment, Episode, OrderScope, RedFlag};
use crate::content::registry::Placeholders;
use crate::content::{CardDetail, CardTemplate, CardType, Content};
use crate::hooks::{Card, CdsResponse, Coding, Hook, Link, Source, response::LinkType};
use crate::record::PatientRecord;

pub const CARD_TYPE_SYSTEM: &str = "urn:lbp-cds:card-type";
/// The key of this service's member in a response's `extension`.
pub const EXTENSION_KEY: &str = "lbp-cds";
const SUMMARY_LIMIT: usize = 139;
/// The console's page for a card type, under the public URL (`{base}{CONSOLE_CARD_TYPE}{type}`).
const CONSOLE_CARD_TYPE: &str = "/console/content/cards/";
/// Card uuids are derived from the hook instance, so a repeated call (clients re-fire hooks)
/// returns the same uuids and feedback matches either answer.
const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6c62_702d_6364_7300_8000_0000_0000_0001);

/// What the renderer needs to know about the call.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    pub hook: Hook,
    pub hook_instance: &'a str,
    pub patient_id: &'a str,
    /// Mirror systemActions into `extension.systemActions` for older clients.
    pub mirror_system_actions: bool,
    /// A SMART app that administers the STarT Back tool, linked from `start-back-screening`.
    pub start_back_app_url: Option<String>,
    /// Brief (the default) or full `detail`.
    pub detail: CardDetail,
    /// The service's public base URL: brief cards link to `{base}/console/content/cards/{type}`.
    /// Without it there is no console link (card links must be absolute).
    pub public_url: Option<String>,
}

impl RenderContext<'_> {
    pub fn scope(&self) -> OrderScope {
        match self.hook {
            Hook::PatientView => OrderScope::None,
            Hook::OrderSelect => OrderScope::Selected,
            Hook::OrderSign => OrderScope::All,
        }
    }
}

pub fn render(
    assessment: &Assessment,
    record: &PatientRecord,
    content: &Content,
    ctx: &RenderContext<'_>,
) -> CdsResponse {
    let mut cards = Vec::new();
    let mut system_actions = Vec::new();
    let notes = Notes {
        full: text::data_notes(&assessment.data_notes, content),
        brief: brief::data_note(assessment, record, content),
    };

    // Red flags show on patient-view for an episode of low back pain, and on the order hooks
    // beside a lumbar imaging order (not on every unrelated order).
    let show_red_flags = assessment.adult_rules_apply()
        && match ctx.hook {
            Hook::PatientView => assessment.episode.is_some(),
            Hook::OrderSelect | Hook::OrderSign => !assessment.imaging.is_empty(),
        };
    if show_red_flags {
        let shown = assessment.shown_red_flags();
        for category in assessment.red_flag_categories() {
            let flags: Vec<&RedFlag> = shown.iter().copied().filter(|f| f.category == category).collect();
            cards.push(red_flags::card(category.card_type(), &flags, assessment, record, content, ctx, &notes));
        }
        // Past red flags are information on patient-view (a line in the imaging card on orders).
        if ctx.hook == Hook::PatientView && !assessment.past_red_flags.is_empty() {
            let past: Vec<&RedFlag> = assessment.past_red_flags.iter().collect();
            cards.push(red_flags::card(CardType::PastRedFlags, &past, assessment, record, content, ctx, &notes));
        }
    }
    if assessment.adult_rules_apply() {
        for imaging in &assessment.imaging {
            cards.push(imaging::card(imaging, assessment, record, content, ctx, &notes));
            if let Some(rating) = imaging.pama
                && let Some(action) = actions::pama_action(imaging, rating, record, content, ctx)
            {
                system_actions.push(action);
            }
        }
    }
    if assessment.adult_rules_apply() {
        for recommendation in &assessment.recommendations {
            cards.push(guidance::card(recommendation, assessment, record, content, ctx, &notes));
        }
    }
    // Most urgent first, as clients display them.
    cards.sort_by_key(|(card, _)| std::cmp::Reverse(card.indicator));

    let mut extension = serde_json::Map::new();
    let mut report = data_report(record, assessment);
    // The brief text names no rule ids or FHIR references: each card's are kept here.
    if ctx.detail == CardDetail::Brief && !cards.is_empty() {
        let provenance: serde_json::Map<String, Value> = cards
            .iter()
            .map(|(card, provenance)| {
                let card_type = card.source.topic.as_ref().map(|t| t.code.as_str()).unwrap_or_default();
                (card.uuid.clone(), provenance.to_json(card_type))
            })
            .collect();
        report.insert("cards".to_owned(), Value::Object(provenance));
    }
    let cards: Vec<Card> = cards.into_iter().map(|(card, _)| card).collect();
    // Which content produced these cards: a reload changes it, and feedback and audits cite it.
    report.insert("contentVersion".to_owned(), Value::String(content.version.clone()));
    extension.insert(EXTENSION_KEY.to_owned(), Value::Object(report));
    if ctx.mirror_system_actions && !system_actions.is_empty() {
        extension.insert("systemActions".to_owned(), serde_json::to_value(&system_actions).unwrap_or(Value::Null));
    }
    CdsResponse { cards, system_actions, extension }
}

/// Unreadable resources listed one by one in a response.
const SKIPPED_SHOWN: usize = 20;

/// What the service could not read or use, so the client (and its logs) can see it.
fn data_report(record: &PatientRecord, assessment: &Assessment) -> serde_json::Map<String, Value> {
    let mut report = serde_json::Map::new();
    if record.keys.iter().any(|key| key.status != "loaded" && key.status != "null") {
        report.insert("prefetch".into(), json!(record.keys));
    }
    if !record.skipped.is_empty() {
        // The first few, with the total: enough to find the problem, and a hostile server's
        // thousands of broken resources cannot inflate the response.
        let shown = &record.skipped[..record.skipped.len().min(SKIPPED_SHOWN)];
        report.insert("skippedResources".into(), json!(shown));
        if record.skipped.len() > SKIPPED_SHOWN {
            report.insert("skippedResourceCount".into(), json!(record.skipped.len()));
        }
    }
    if record.ignored > 0 {
        report.insert("ignoredResources".into(), json!(record.ignored));
    }
    if !assessment.data_notes.is_empty() {
        report.insert("dataNotes".into(), json!(assessment.data_notes));
    }
    let cautions = assessment.factors.caution_keys();
    if !cautions.is_empty() {
        report.insert("nsaidCautions".into(), json!(cautions));
    }
    if let Some(episode) = &assessment.episode {
        report.insert("episode".into(), episode_report(episode));
    }
    report
}

/// What the service understood the episode to be (`extension["lbp-cds"].episode`), so an
/// integrator can see at a glance that a record was recognised, and from which Conditions.
/// Unknown members are left out rather than sent as `null`.
pub fn episode_report(episode: &Episode) -> Value {
    let mut report = serde_json::Map::new();
    if let Some(start) = episode.start {
        report.insert("start".into(), json!(start.to_string()));
    }
    if let Some(days) = episode.duration_days {
        report.insert("durationDays".into(), json!(days));
    }
    report.insert("chronic".into(), json!(episode.is_chronic()));
    let conditions = episode.conditions();
    if !conditions.is_empty() {
        report.insert("conditions".into(), json!(conditions));
    }
    Value::Object(report)
}

/// The data notes in both forms: the full list, and the brief form's one line.
struct Notes {
    full: String,
    brief: String,
}

fn card_uuid(ctx: &RenderContext<'_>, card_type: impl std::fmt::Display, subject: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, format!("{}|{card_type}|{subject}", ctx.hook_instance).as_bytes())
}

/// The values a card's texts are rendered with (any family's [`Placeholders`]).
trait CardValues {
    fn value(&self, name: &str) -> Option<&str>;
}

impl<T: Placeholders> CardValues for T {
    fn value(&self, name: &str) -> Option<&str> {
        Placeholders::value(self, name)
    }
}

/// The chosen variant's advice, rendered with the card's other values (`{advice}`).
fn variant_advice(
    template: &CardTemplate,
    variant: Option<&str>,
    values: &dyn CardValues,
    detail: CardDetail,
) -> String {
    variant
        .and_then(|key| template.variants.get(key))
        .map(|variant| variant.advice_in(detail).render(|name| values.value(name)))
        .unwrap_or_default()
}

/// A card from its template and values: the variant's summary and indicator where it has them.
fn build_card(
    template: &CardTemplate,
    values: &dyn CardValues,
    uuid: Uuid,
    variant: Option<&str>,
    target: &actions::Target<'_>,
    ctx: &RenderContext<'_>,
) -> Card {
    let variant = variant.and_then(|key| template.variants.get(key));
    let lookup = |name: &str| values.value(name);
    let summary_template = variant.and_then(|v| v.summary.as_ref()).unwrap_or(&template.summary);
    let summary = shorten(summary_template.render(lookup).trim(), SUMMARY_LIMIT);
    let detail = text::tidy_markdown(&template.detail_in(ctx.detail).render(lookup));
    let suggestions = actions::suggestions(template, values, uuid, target);
    Card {
        uuid: uuid.to_string(),
        summary,
        detail: (!detail.is_empty()).then_some(detail),
        indicator: variant.and_then(|v| v.indicator).unwrap_or(template.indicator),
        source: Source {
            label: template.source.label.clone(),
            url: template.source.url.clone(),
            topic: Some(Coding {
                system: CARD_TYPE_SYSTEM.to_owned(),
                code: template.card_type.key().to_owned(),
                display: Some(template.source.topic_display.clone()),
            }),
        },
        selection_behavior: if suggestions.is_empty() { None } else { template.selection_behavior },
        suggestions,
        override_reasons: template
            .override_reasons
            .iter()
            .map(|reason| Coding {
                system: "urn:lbp-cds:override-reason".to_owned(),
                code: reason.code.clone(),
                display: Some(reason.display.clone()),
            })
            .collect(),
        links: links(template, target.content, ctx),
    }
}

/// The card's links: in the long form the card file's; in the brief form the guideline (the
/// source, else the first link) and the console's page for the card type, which hold what the
/// brief text leaves out.
fn links(template: &CardTemplate, content: &Content, ctx: &RenderContext<'_>) -> Vec<Link> {
    let absolute = |label: &str, url: &str| Link {
        label: label.to_owned(),
        url: url.to_owned(),
        link_type: LinkType::Absolute,
        app_context: None,
    };
    if ctx.detail == CardDetail::Full {
        return template.links.iter().map(|link| absolute(&link.label, &link.url)).collect();
    }
    let mut links = Vec::new();
    match (&template.source.url, template.links.first()) {
        (Some(url), _) => links.push(absolute(&template.source.label, url)),
        (None, Some(link)) => links.push(absolute(&link.label, &link.url)),
        (None, None) => {}
    }
    if let Some(base) = &ctx.public_url {
        let topic = template.source.topic_display.as_str();
        links.push(absolute(
            &content.texts.brief.console_link.render(|name| (name == "topic").then_some(topic)),
            &format!("{}{CONSOLE_CARD_TYPE}{}", base.trim_end_matches('/'), template.card_type.key()),
        ));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::{ConditionalReason, DrugClass, Risk, Stage};

    /// Every variant key the renderer can pick is one its card type defines (start-up then
    /// guarantees the card file has it), so no card renders without its advice.
    #[test]
    fn every_variant_the_renderer_picks_is_defined() {
        let picked: Vec<(CardType, &str)> = [
            ConditionalReason::BeyondThreshold,
            ConditionalReason::NoPriorCare,
            ConditionalReason::AfterPriorCare(Vec::new()),
            ConditionalReason::UnknownDuration,
            ConditionalReason::NoDiagnosis,
            ConditionalReason::IncompleteData,
        ]
        .iter()
        .map(|reason| (CardType::ImagingConditional, imaging::conditional_variant(reason)))
        .chain(["preferred", "other-modality"].map(|key| (CardType::ImagingIndicated, key)))
        .chain([Risk::Low, Risk::Medium, Risk::High].map(|risk| (CardType::StratifiedCare, risk.key())))
        .chain([Stage::Early, Stage::Late, Stage::NoScores].map(|stage| (CardType::ReassessProgress, stage.key())))
        .chain(DrugClass::ALL.map(|class| (CardType::MedicationAdvice, class.key())))
        .chain(["passive", "manipulation"].map(|key| (CardType::PassiveModality, key)))
        .collect();
        for (card_type, key) in &picked {
            assert!(card_type.variants().contains(key), "{card_type} has no variant {key}");
        }
        // And every defined variant can be picked.
        for card_type in CardType::ALL {
            for key in card_type.variants() {
                assert!(picked.contains(&(*card_type, *key)), "{card_type} variant {key} is never picked");
            }
        }
    }
}
