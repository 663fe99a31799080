//! Cards and system actions, rendered from an assessment with the texts in `cards/`.

mod factors;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::assess::{
    Assessment, Caution, ConditionalReason, Episode, Evidence, ImagingAssessment, ImagingVerdict, OrderScope,
    PamaRating, Recommendation, RedFlag,
};
use crate::content::{ActionKind, CardTemplate, Content, PAST_RED_FLAGS};
use crate::hooks::{
    Action, Card, CdsResponse, Coding, Hook, Link, Source, Suggestion,
    response::{ActionType, LinkType},
};
use crate::record::PatientRecord;

pub const CARD_TYPE_SYSTEM: &str = "urn:lbp-cds:card-type";
/// The key of this service's member in a response's `extension`.
pub const EXTENSION_KEY: &str = "lbp-cds";
const PAMA_RATING: &str = "http://fhir.org/argonaut/Extension/pama-rating";
const PAMA_RATING_SYSTEM: &str = "http://fhir.org/argonaut/CodeSystem/pama-rating";
const PAMA_CONSULTED: &str = "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted";
const PAMA_CONSULT_ID: &str = "http://fhir.org/argonaut/Extension/pama-rating-consult-id";
const PAMA_AUC: &str = "http://fhir.org/argonaut/Extension/pama-rating-auc-applied";
const SUMMARY_LIMIT: usize = 139;
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
    let notes = data_notes(&assessment.data_notes);

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
            cards.push(red_flag_card(category.card_type(), &flags, assessment, content, ctx, &notes));
        }
        // Past red flags are information on patient-view (a line in the imaging card on orders).
        if ctx.hook == Hook::PatientView && !assessment.past_red_flags.is_empty() {
            let past: Vec<&RedFlag> = assessment.past_red_flags.iter().collect();
            cards.push(red_flag_card(PAST_RED_FLAGS, &past, assessment, content, ctx, &notes));
        }
    }
    if assessment.adult_rules_apply() {
        for imaging in &assessment.imaging {
            cards.push(imaging_card(imaging, assessment, content, ctx, &notes));
            if let Some(rating) = imaging.pama
                && let Some(action) = pama_action(imaging, rating, record, content, ctx)
            {
                system_actions.push(action);
            }
        }
    }
    if assessment.adult_rules_apply() {
        for recommendation in &assessment.recommendations {
            cards.push(guidance_card(recommendation, assessment, content, ctx, &notes));
        }
    }
    // Most urgent first, as clients display them.
    cards.sort_by_key(|card| std::cmp::Reverse(card.indicator));

    let mut extension = serde_json::Map::new();
    let mut report = data_report(record, assessment);
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

fn card_uuid(ctx: &RenderContext<'_>, card_type: &str, subject: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, format!("{}|{card_type}|{subject}", ctx.hook_instance).as_bytes())
}

fn red_flag_card(
    card_type: &str,
    flags: &[&RedFlag],
    assessment: &Assessment,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &str,
) -> Card {
    let template = content.card(card_type);
    let finding_summary = shorten(
        &flags.iter().map(|f| lowercase_first(&without_parentheses(&f.finding))).collect::<Vec<_>>().join("; "),
        50,
    );
    let vars = BTreeMap::from([
        ("finding_summary", finding_summary),
        ("findings", findings_markdown(flags)),
        ("duration", duration_sentence(assessment)),
        ("data_notes", notes.to_owned()),
    ]);
    let uuid = card_uuid(ctx, card_type, "");
    let target = Target { order: None, patient_id: ctx.patient_id, content, referral_allowed: true };
    build_card(template, vars, uuid, None, &target)
}

fn imaging_card(
    imaging: &ImagingAssessment,
    assessment: &Assessment,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &str,
) -> Card {
    let thresholds = &content.rules.thresholds;
    let (card_type, acr_variant, rating, variant) = match &imaging.verdict {
        ImagingVerdict::NotIndicated { variant } => {
            ("imaging-not-indicated", variant.clone(), "usually not appropriate".to_owned(), None)
        }
        ImagingVerdict::Indicated { variants, rating, .. } => {
            let variant = if rating.is_appropriate() { "preferred" } else { "other-modality" };
            ("imaging-indicated", variants.join("; "), rating.label().to_owned(), Some(variant))
        }
        ImagingVerdict::Conditional(reason) => {
            let (variant, acr) = match reason {
                ConditionalReason::BeyondThreshold => {
                    ("beyond-threshold", "ACR variant 2 or 3, depending on prior conservative care")
                }
                ConditionalReason::NoPriorCare => {
                    ("no-prior-care", "ACR variant 2: subacute or chronic, no prior management")
                }
                ConditionalReason::AfterPriorCare(_) => {
                    ("after-prior-care", "ACR variant 3: persistent symptoms after conservative care")
                }
                ConditionalReason::UnknownDuration => {
                    ("unknown-duration", "ACR variant 2 or 3, depending on prior conservative care")
                }
                ConditionalReason::NoDiagnosis => {
                    ("no-diagnosis", "ACR variant 2 or 3, depending on prior conservative care")
                }
                ConditionalReason::IncompleteData => {
                    ("incomplete-data", "ACR variant 2 or 3, depending on prior conservative care")
                }
            };
            ("imaging-conditional", acr.to_owned(), "not rated".to_owned(), Some(variant))
        }
    };
    let red_flags = assessment.shown_red_flags();
    let past: Vec<&RedFlag> = assessment.past_red_flags.iter().collect();
    let history = if past.is_empty() {
        String::new()
    } else {
        format!(
            "**Past red flags** (outside their windows: history, not counted as current red flags):\n\n{}",
            findings_markdown(&past)
        )
    };
    let finding_summary =
        shorten(&assessment.red_flag_categories().iter().map(|c| c.label()).collect::<Vec<_>>().join(", "), 50);
    let order = &imaging.order;
    let vars = BTreeMap::from([
        ("modality", order.modality.label().to_owned()),
        ("order", format!("{} (`{}`, recognised by {})", order.label, order.reference, order.matched_by)),
        ("duration", duration_sentence(assessment)),
        ("duration_short", duration_short(assessment)),
        ("threshold_weeks", thresholds.imaging_threshold_weeks.to_string()),
        ("red_flags", findings_markdown(&red_flags)),
        ("finding_summary", finding_summary),
        ("acr_variant", acr_variant),
        ("rating", rating),
        ("history", history),
        ("data_notes", notes.to_owned()),
        ("medicines", factors::medicines(&assessment.factors, content)),
        ("first_line", factors::first_line(&assessment.factors, content)),
        ("pregnancy", factors::pregnancy(&assessment.factors, content)),
        (
            "prior_care",
            match &imaging.verdict {
                ImagingVerdict::Conditional(ConditionalReason::AfterPriorCare(care)) => evidence_markdown(care),
                _ => String::new(),
            },
        ),
    ]);
    let uuid = card_uuid(ctx, card_type, &order.reference);
    let target = Target {
        order: order.has_id.then_some(order.reference.as_str()),
        patient_id: ctx.patient_id,
        content,
        // No referral suggestion where the pt-referral card withholds one (low STarT Back risk,
        // therapy already on record or being ordered).
        referral_allowed: assessment.referral_offered(),
    };
    build_card(content.card(card_type), vars, uuid, variant, &target)
}

/// What a card's suggestions act on.
struct Target<'a> {
    /// The draft order the card is about, when it has an id (only then can it be deleted).
    order: Option<&'a str>,
    patient_id: &'a str,
    content: &'a Content,
    /// Suggestions that create a referral are offered.
    referral_allowed: bool,
}

fn build_card(
    template: &CardTemplate,
    mut vars: BTreeMap<&str, String>,
    uuid: Uuid,
    variant: Option<&str>,
    target: &Target<'_>,
) -> Card {
    let variant = variant.and_then(|key| template.variants.get(key));
    if let Some(variant) = variant {
        let advice = variant.advice.render(|name| vars.get(name).map(String::as_str));
        vars.insert("advice", advice);
    }
    let lookup = |name: &str| vars.get(name).map(String::as_str);
    let summary_template = variant.and_then(|v| v.summary.as_ref()).unwrap_or(&template.summary);
    let summary = shorten(summary_template.render(lookup).trim(), SUMMARY_LIMIT);
    let detail = tidy_markdown(&template.detail.render(lookup));
    let suggestions: Vec<Suggestion> = template
        .suggestions
        .iter()
        // A suggestion that removes the order needs an order with an id.
        .filter(|s| target.order.is_some() || s.actions.iter().all(|a| a.kind != ActionKind::DeleteOrder))
        .filter(|s| target.referral_allowed || s.actions.iter().all(|a| a.kind != ActionKind::CreateReferral))
        .map(|suggestion| Suggestion {
            label: suggestion.label.render(lookup),
            uuid: Uuid::new_v5(&uuid, suggestion.key.as_bytes()).to_string(),
            is_recommended: Some(suggestion.recommended),
            actions: suggestion
                .actions
                .iter()
                .map(|action| {
                    let description = action.description.render(lookup);
                    match action.kind {
                        ActionKind::DeleteOrder => Action {
                            action_type: ActionType::Delete,
                            description,
                            resource: None,
                            resource_id: target.order.map(str::to_owned),
                        },
                        ActionKind::CreateReferral => Action {
                            action_type: ActionType::Create,
                            description,
                            resource: Some(referral_resource(
                                target.content,
                                action.referral.as_deref().unwrap_or_default(),
                                target.patient_id,
                            )),
                            resource_id: None,
                        },
                    }
                })
                .collect(),
        })
        .collect();
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
                code: template.card_type.clone(),
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
        links: template
            .links
            .iter()
            .map(|link| Link {
                label: link.label.clone(),
                url: link.url.clone(),
                link_type: LinkType::Absolute,
                app_context: None,
            })
            .collect(),
    }
}

/// A draft ServiceRequest for a referral from `referrals.toml`.
pub fn referral_resource(content: &Content, name: &str, patient_id: &str) -> Value {
    let Some(referral) = content.referrals.get(name) else { return Value::Null };
    let mut resource = json!({
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]}],
        "code": {
            "coding": [{"system": referral.system, "code": referral.code, "display": referral.display}],
            "text": referral.text
        },
        "subject": {"reference": format!("Patient/{patient_id}")}
    });
    if let Some(detail) = &referral.order_detail {
        resource["orderDetail"] = json!([{"text": detail}]);
    }
    resource
}

/// The draft order with the Argonaut PAMA rating extensions added.
fn pama_action(
    imaging: &ImagingAssessment,
    rating: PamaRating,
    record: &PatientRecord,
    content: &Content,
    ctx: &RenderContext<'_>,
) -> Option<Action> {
    if !imaging.order.has_id {
        return None; // the EHR could not match an update without an id
    }
    let mut resource = record.draft_orders.get(imaging.order.draft_index)?.raw.clone();
    let object = resource.as_object_mut()?;
    let consult = card_uuid(ctx, "pama-consult", &imaging.order.reference);
    let mut extensions: Vec<Value> = match object.remove("extension") {
        Some(Value::Array(existing)) => existing
            .into_iter()
            .filter(|e| {
                !e.get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("http://fhir.org/argonaut/Extension/pama-rating"))
            })
            .collect(),
        _ => Vec::new(),
    };
    extensions.push(json!({
        "url": PAMA_RATING,
        "valueCodeableConcept": {"coding": [{"system": PAMA_RATING_SYSTEM, "code": rating.code()}]}
    }));
    extensions.push(json!({"url": PAMA_CONSULTED, "valueString": content.rules.imaging.qcdsm_name}));
    extensions.push(json!({"url": PAMA_CONSULT_ID, "valueUri": format!("urn:uuid:{consult}")}));
    extensions.push(json!({"url": PAMA_AUC, "valueUri": content.rules.imaging.auc_url}));
    object.insert("extension".into(), Value::Array(extensions));
    Some(Action {
        action_type: ActionType::Update,
        description: format!("PAMA appropriateness rating for {}: {}", imaging.order.reference, rating.code()),
        resource: Some(resource),
        resource_id: None,
    })
}

fn guidance_card(
    recommendation: &Recommendation,
    assessment: &Assessment,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &str,
) -> Card {
    let card_type = recommendation.card_type();
    let mut vars = BTreeMap::from([
        ("duration", duration_sentence(assessment)),
        ("duration_short", duration_short(assessment)),
        ("data_notes", notes.to_owned()),
        ("medicines", factors::medicines(&assessment.factors, content)),
        ("first_line", factors::first_line(&assessment.factors, content)),
    ]);
    let mut order = None;
    let mut cautions: &[Caution] = &[];
    let variant = match recommendation {
        Recommendation::PtReferral { evidence } => {
            vars.insert("evidence", evidence_markdown(evidence));
            vars.insert("finding_summary", "no therapy referral or session this episode".into());
            None
        }
        Recommendation::StartBackScreening => {
            vars.insert("finding_summary", "no STarT Back result this episode".into());
            None
        }
        Recommendation::StratifiedCare(result) => {
            let scores = match (result.total, result.distress) {
                (Some(total), Some(distress)) => format!(" (total {total}/9, distress {distress}/5)"),
                _ => String::new(),
            };
            vars.insert("risk", format!("{}{scores}", result.risk.key()));
            vars.insert("finding_summary", format!("{} risk", result.risk.key()));
            let date = result.date.map(|d| format!(", recorded {d}")).unwrap_or_default();
            vars.insert("risk_data", format!("{}{date}", result.source));
            vars.insert("evidence", evidence_markdown(&result.evidence));
            Some(result.risk.key())
        }
        Recommendation::ContinueTherapy { session } => {
            vars.insert("evidence", evidence_markdown(session));
            vars.insert("finding_summary", "one physical therapy session so far".into());
            None
        }
        Recommendation::ReassessProgress { stage, measures, care } => {
            let mut evidence = measures.clone();
            evidence.extend(care.iter().cloned());
            vars.insert(
                "evidence",
                if measures.is_empty() {
                    format!(
                        "- No pain score or Oswestry score is recorded in this episode.\n{}",
                        evidence_markdown(care)
                    )
                } else {
                    evidence_markdown(&evidence)
                },
            );
            let found = match stage {
                crate::assess::Stage::NoScores => "no pain or Oswestry score recorded in this episode".to_owned(),
                _ => format!("no documented improvement, {}", duration_short(assessment)),
            };
            vars.insert("finding_summary", found);
            Some(stage.key())
        }
        Recommendation::MedicationAdvice { order: target, class, cautions: found } => {
            vars.insert(
                "order",
                format!("{} (`{}`, recognised by {})", target.label, target.reference, target.matched_by),
            );
            vars.insert("finding_summary", class.key().replace('-', " "));
            order = Some(target);
            cautions = found.as_slice();
            Some(class.key())
        }
        Recommendation::PassiveModality { order: target, kind, cautions: found } => {
            vars.insert(
                "order",
                format!("{} (`{}`, recognised by {})", target.label, target.reference, target.matched_by),
            );
            vars.insert("finding_summary", kind.clone());
            order = Some(target);
            cautions = found.as_slice();
            Some(if content.rules.advice.caution_only.contains(kind) { "manipulation" } else { "passive" })
        }
    };
    let subject = order.map(|o| o.reference.as_str()).unwrap_or("");
    let uuid = card_uuid(ctx, card_type, subject);
    let target = Target {
        order: order.filter(|o| o.has_id).map(|o| o.reference.as_str()),
        patient_id: ctx.patient_id,
        content,
        referral_allowed: true,
    };
    let template = content.card(card_type);
    // Cautions, most severe first: each adds its advice; the most severe sets the summary and
    // raises the indicator.
    let mut applied: Vec<(&Caution, &crate::content::VariantTemplate)> =
        cautions.iter().filter_map(|c| template.cautions.get(&c.id).map(|text| (c, text))).collect();
    applied.sort_by_key(|(_, text)| std::cmp::Reverse(text.indicator));
    let lookup_vars = vars.clone();
    let lookup = |name: &str| lookup_vars.get(name).map(String::as_str);
    let cautions_markdown = applied
        .iter()
        .map(|(caution, text)| {
            format!(
                "{}\n\n*{}; rule `{}`.* Found in the record:\n{}",
                text.advice.render(lookup).trim(),
                caution.guideline,
                caution.id,
                evidence_markdown(&caution.evidence)
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    vars.insert("cautions", cautions_markdown);
    let mut card = build_card(template, vars, uuid, variant, &target);
    if let Some(summary) = applied.first().and_then(|(_, text)| text.summary.as_ref()) {
        card.summary = shorten(&uppercase_first(summary.render(lookup).trim()), SUMMARY_LIMIT);
    }
    if let Some(strongest) = applied.iter().filter_map(|(_, text)| text.indicator).max() {
        card.indicator = card.indicator.max(strongest);
    }
    if let (Recommendation::StartBackScreening, Some(url)) = (recommendation, &ctx.start_back_app_url) {
        card.links.insert(
            0,
            Link {
                label: "Open the STarT Back screening app".into(),
                url: url.clone(),
                link_type: LinkType::Smart,
                app_context: None,
            },
        );
    }
    card
}

fn evidence_markdown(evidence: &[Evidence]) -> String {
    evidence.iter().map(|e| format!("- `{}`: {}", e.reference, e.description)).collect::<Vec<_>>().join("\n")
}

fn findings_markdown(flags: &[&RedFlag]) -> String {
    let mut out = String::new();
    for flag in flags {
        out.push_str(&format!("- **{}** ({}; rule `{}`)\n", flag.finding, flag.guideline, flag.rule));
        for evidence in &flag.evidence {
            out.push_str(&format!("  - `{}`: {}\n", evidence.reference, evidence.description));
        }
    }
    out.trim_end().to_owned()
}

fn evidence_list(evidence: &[Evidence]) -> String {
    evidence.iter().map(|e| format!("`{}`", e.reference)).collect::<Vec<_>>().join(", ")
}

fn duration_sentence(assessment: &Assessment) -> String {
    let Some(episode) = &assessment.episode else {
        return "**Symptom duration:** no low back pain diagnosis is on record.".to_owned();
    };
    let sources = evidence_list(&episode.evidence);
    match (episode.duration_days, episode.start) {
        (Some(days), _) if episode.chronic_diagnosis && episode.start.is_none_or(|_| days <= 84) => format!(
            "**Symptom duration:** at least 12 weeks: a chronic low back pain diagnosis is recorded ({sources})."
        ),
        (Some(days), Some(start)) => format!(
            "**Symptom duration:** {} ({days} days) since {start}, the earliest low back pain diagnosis of this episode ({sources}).",
            weeks_text(days)
        ),
        _ => format!(
            "**Symptom duration:** unknown: the low back pain diagnoses carry no onset or recorded date ({sources})."
        ),
    }
}

fn duration_short(assessment: &Assessment) -> String {
    match &assessment.episode {
        None => "no LBP diagnosis".to_owned(),
        Some(episode) => match episode.duration_days {
            Some(days) if episode.chronic_diagnosis && days <= 84 => "chronic, ≥ 12 weeks".to_owned(),
            Some(days) => weeks_text(days),
            None => "duration unknown".to_owned(),
        },
    }
}

fn weeks_text(days: i64) -> String {
    match days / 7 {
        0 => format!("{days} day{}", if days == 1 { "" } else { "s" }),
        1 => "1 week".to_owned(),
        weeks => format!("{weeks} weeks"),
    }
}

fn data_notes(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("**Data notes:**\n");
    for note in notes {
        out.push_str(&format!("- {note}\n"));
    }
    out.trim_end().to_owned()
}

/// Removes the blank lines left by empty placeholders.
fn tidy_markdown(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in text.trim().lines() {
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line.trim_end());
    }
    out
}

/// "Cancer, current or history" -> "cancer, current or history"; acronyms ("HIV") stay.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if second.is_lowercase() => {
            first.to_lowercase().chain(std::iter::once(second)).chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

fn uppercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Drops parenthesised asides, for summaries that must stay short and balanced.
fn without_parentheses(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts text to at most `limit` characters at a word boundary, ending with "…".
pub fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let cut: String = text.chars().take(limit - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > limit / 2 => cut[..space].trim_end_matches([',', ';', ':']).to_owned(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_at_word_boundaries_within_the_limit() {
        let text = "one two three four five six seven eight nine ten";
        let short = shorten(text, 20);
        assert!(short.chars().count() <= 20, "{short}");
        assert!(short.ends_with('…'));
        assert_eq!(shorten("short", 20), "short");
    }

    #[test]
    fn summary_words_keep_acronyms_and_drop_asides() {
        assert_eq!(lowercase_first("HIV infection"), "HIV infection");
        assert_eq!(lowercase_first("Osteoporosis"), "osteoporosis");
        assert_eq!(without_parentheses("Motor deficit (foot drop, monoplegia) of the leg"), "Motor deficit of the leg");
    }

    #[test]
    fn tidies_blank_lines_left_by_empty_placeholders() {
        assert_eq!(tidy_markdown("a\n\n\n\nb\n\n\n"), "a\n\nb");
        assert_eq!(tidy_markdown("- a\n- b"), "- a\n- b");
    }
}
