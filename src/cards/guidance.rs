//! Guidance cards: what helps instead of imaging (referral, screening, stratified care,
//! continuing therapy, reassessment) and safety advice on medication and modality orders.

use super::actions::Target;
use super::brief::{Facts, Provenance};
use super::text::{duration_sentence, duration_short, evidence_markdown, shorten, uppercase_first};
use super::{CardValues, Notes, RenderContext, SUMMARY_LIMIT, build_card, card_uuid, factors, variant_advice};
use crate::assess::{Assessment, Caution, Evidence, OrderRef, Recommendation, Stage};
use crate::content::registry::GuidanceValues;
use crate::content::{CardDetail, Content, VariantTemplate};
use crate::hooks::{Card, Link, response::LinkType};
use crate::record::PatientRecord;

/// What the recommendation adds to the card's values: its evidence, short finding, risk, order.
struct Specific<'a> {
    variant: Option<&'static str>,
    evidence: String,
    /// The evidence, for the brief form's `{facts}`.
    facts: Vec<&'a Evidence>,
    finding_summary: String,
    risk: String,
    risk_data: String,
    order: Option<&'a OrderRef>,
    cautions: &'a [Caution],
}

fn specific<'a>(recommendation: &'a Recommendation, assessment: &Assessment, content: &Content) -> Specific<'a> {
    let texts = &content.texts;
    let plain = |template: &crate::content::Template| template.render(|_| None);
    let mut out = Specific {
        variant: None,
        evidence: String::new(),
        facts: Vec::new(),
        finding_summary: String::new(),
        risk: String::new(),
        risk_data: String::new(),
        order: None,
        cautions: &[],
    };
    match recommendation {
        Recommendation::PtReferral { evidence } => {
            out.evidence = evidence_markdown(evidence);
            out.facts.extend(evidence);
            out.finding_summary = plain(&texts.pt_referral_found);
        }
        Recommendation::StartBackScreening => out.finding_summary = plain(&texts.start_back_found),
        Recommendation::StratifiedCare(result) => {
            let scores = match (result.total, result.distress) {
                (Some(total), Some(distress)) => format!(" (total {total}/9, distress {distress}/5)"),
                _ => String::new(),
            };
            let risk = result.risk.key();
            out.risk = format!("{risk}{scores}");
            out.finding_summary = texts.stratified_care_found.render(|name| (name == "risk").then_some(risk));
            let date = result.date.map(|d| format!(", recorded {d}")).unwrap_or_default();
            out.risk_data = format!("{}{date}", result.source);
            out.evidence = evidence_markdown(&result.evidence);
            out.facts.extend(&result.evidence);
            out.variant = Some(risk);
        }
        Recommendation::ContinueTherapy { session } => {
            out.evidence = evidence_markdown(session);
            out.facts.extend(session);
            out.finding_summary = plain(&texts.continue_therapy_found);
        }
        Recommendation::ReassessProgress { stage, measures, care } => {
            out.facts.extend(measures.iter().chain(care));
            out.evidence = if measures.is_empty() {
                format!("- {}\n{}", plain(&texts.no_scores), evidence_markdown(care))
            } else {
                let mut evidence = measures.clone();
                evidence.extend(care.iter().cloned());
                evidence_markdown(&evidence)
            };
            out.finding_summary = match stage {
                Stage::NoScores => plain(&texts.reassess_no_scores_found),
                _ => {
                    let short = duration_short(assessment, content);
                    texts.reassess_found.render(|name| (name == "duration_short").then_some(short.as_str()))
                }
            };
            out.variant = Some(stage.key());
        }
        Recommendation::MedicationAdvice { order, class, cautions } => {
            out.finding_summary = class.key().replace('-', " ");
            out.order = Some(order);
            out.cautions = cautions;
            out.variant = Some(class.key());
        }
        Recommendation::PassiveModality { order, kind, cautions } => {
            out.finding_summary = kind.clone();
            out.order = Some(order);
            out.cautions = cautions;
            out.variant =
                Some(if content.rules.advice.caution_only.contains(kind) { "manipulation" } else { "passive" });
        }
    }
    out
}

pub(super) fn card(
    recommendation: &Recommendation,
    assessment: &Assessment,
    record: &PatientRecord,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &Notes,
) -> (Card, Provenance) {
    let card_type = recommendation.card_type();
    let template = content.card(card_type);
    let specific = specific(recommendation, assessment, content);
    let order = specific.order;
    let mut provenance = Provenance::default();
    provenance.rule(card_type.key());
    let mut facts = Facts::default();
    if let Some(order) = order {
        facts.order(&order.label, &order.reference);
    }
    facts.extend(specific.facts.iter().copied());
    let mut values = GuidanceValues {
        duration: duration_sentence(assessment, content),
        duration_short: duration_short(assessment, content),
        data_notes: notes.full.clone(),
        data_note: notes.brief.clone(),
        facts: String::new(),
        order_name: order.map(|o| o.label.clone()).unwrap_or_default(),
        evidence: specific.evidence,
        finding_summary: specific.finding_summary,
        order: order
            .map(|o| format!("{} (`{}`, recognised by {})", o.label, o.reference, o.matched_by))
            .unwrap_or_default(),
        risk: specific.risk,
        risk_data: specific.risk_data,
        advice: String::new(),
        medicines: factors::medicines(&assessment.factors, content),
        first_line: factors::first_line(&assessment.factors, content),
        cautions: String::new(),
    };
    // Cautions, most severe first: each adds its advice; the most severe sets the summary and
    // raises the indicator. Their texts see the values before advice and cautions are added.
    let mut applied: Vec<(&Caution, &VariantTemplate)> =
        specific.cautions.iter().filter_map(|c| template.cautions.get(&c.id).map(|text| (c, text))).collect();
    applied.sort_by_key(|(_, text)| std::cmp::Reverse(text.indicator));
    let caution_summary = applied
        .first()
        .and_then(|(_, text)| text.summary.as_ref())
        .map(|summary| shorten(&uppercase_first(summary.render(|name| values.value(name)).trim()), SUMMARY_LIMIT));
    for (caution, _) in &applied {
        provenance.rule(caution.id.as_str());
        facts.extend(&caution.evidence);
    }
    facts.nsaid_cautions(assessment, template, specific.variant);
    facts.episode(assessment);
    values.facts = facts.render(record, content, &mut provenance);
    values.cautions = applied
        .iter()
        .map(|(caution, text)| {
            let advice = text.advice_in(ctx.detail).render(|name| values.value(name));
            if ctx.detail == CardDetail::Brief {
                // What the caution found is in `{facts}`; its guideline is behind the links.
                return advice.trim().to_owned();
            }
            let source = content.texts.caution_source.fill(&[("guideline", &caution.guideline), ("rule", &caution.id)]);
            format!("{}\n\n{source}\n{}", advice.trim(), evidence_markdown(&caution.evidence))
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    values.advice = variant_advice(template, specific.variant, &values, ctx.detail);

    let subject = order.map(|o| o.reference.as_str()).unwrap_or("");
    let uuid = card_uuid(ctx, card_type, subject);
    let target = Target {
        order: order.filter(|o| o.has_id).map(|o| o.reference.as_str()),
        patient_id: ctx.patient_id,
        content,
        referral_allowed: true,
    };
    let mut card = build_card(template, &values, uuid, specific.variant, &target, ctx);
    if let Some(summary) = caution_summary {
        card.summary = summary;
    }
    if let Some(strongest) = applied.iter().filter_map(|(_, text)| text.indicator).max() {
        card.indicator = card.indicator.max(strongest);
    }
    if let (Recommendation::StartBackScreening, Some(url)) = (recommendation, &ctx.start_back_app_url) {
        card.links.insert(
            0,
            Link {
                label: content.texts.start_back_app.render(|_| None),
                url: url.clone(),
                link_type: LinkType::Smart,
                app_context: None,
            },
        );
    }
    (card, provenance)
}
