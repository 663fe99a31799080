//! The card on a lumbar imaging order: not indicated, indicated by red flags, or conditional.

use super::actions::Target;
use super::text::{duration_sentence, duration_short, evidence_markdown, findings_markdown, shorten};
use super::{RenderContext, build_card, card_uuid, factors, variant_advice};
use crate::assess::{Assessment, ConditionalReason, ImagingAssessment, ImagingVerdict, RedFlag};
use crate::content::registry::ImagingValues;
use crate::content::{AcrRating, CardType, Content};
use crate::hooks::Card;

/// The variant key of a conditional verdict (`imaging-conditional` variants).
pub(super) fn conditional_variant(reason: &ConditionalReason) -> &'static str {
    match reason {
        ConditionalReason::BeyondThreshold => "beyond-threshold",
        ConditionalReason::NoPriorCare => "no-prior-care",
        ConditionalReason::AfterPriorCare(_) => "after-prior-care",
        ConditionalReason::UnknownDuration => "unknown-duration",
        ConditionalReason::NoDiagnosis => "no-diagnosis",
        ConditionalReason::IncompleteData => "incomplete-data",
    }
}

pub(super) fn card(
    imaging: &ImagingAssessment,
    assessment: &Assessment,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &str,
) -> Card {
    let thresholds = &content.rules.thresholds;
    let (card_type, acr_variant, rating, variant) = match &imaging.verdict {
        ImagingVerdict::NotIndicated { variant } => {
            (CardType::ImagingNotIndicated, variant.clone(), AcrRating::UsuallyNotAppropriate.label().to_owned(), None)
        }
        ImagingVerdict::Indicated { variants, rating, .. } => {
            let variant = if rating.is_appropriate() { "preferred" } else { "other-modality" };
            (CardType::ImagingIndicated, variants.join("; "), rating.label().to_owned(), Some(variant))
        }
        ImagingVerdict::Conditional(reason) => {
            let variant = conditional_variant(reason);
            let acr = content.texts.acr_variant.get(variant).map(|t| t.render(|_| None)).unwrap_or_default();
            (CardType::ImagingConditional, acr, content.texts.not_rated.render(|_| None), Some(variant))
        }
    };
    let red_flags = assessment.shown_red_flags();
    let past: Vec<&RedFlag> = assessment.past_red_flags.iter().collect();
    let history = if past.is_empty() {
        String::new()
    } else {
        format!("{}\n\n{}", content.texts.past_red_flags.render(|_| None), findings_markdown(&past))
    };
    let finding_summary =
        shorten(&assessment.red_flag_categories().iter().map(|c| c.label()).collect::<Vec<_>>().join(", "), 50);
    let order = &imaging.order;
    let mut values = ImagingValues {
        modality: order.modality.label().to_owned(),
        order: format!("{} (`{}`, recognised by {})", order.label, order.reference, order.matched_by),
        duration: duration_sentence(assessment, content),
        duration_short: duration_short(assessment, content),
        threshold_weeks: thresholds.imaging_threshold_weeks.to_string(),
        red_flags: findings_markdown(&red_flags),
        finding_summary,
        acr_variant,
        rating,
        history,
        data_notes: notes.to_owned(),
        advice: String::new(),
        medicines: factors::medicines(&assessment.factors, content),
        first_line: factors::first_line(&assessment.factors, content),
        pregnancy: factors::pregnancy(&assessment.factors, content),
        prior_care: match &imaging.verdict {
            ImagingVerdict::Conditional(ConditionalReason::AfterPriorCare(care)) => evidence_markdown(care),
            _ => String::new(),
        },
    };
    let template = content.card(card_type);
    values.advice = variant_advice(template, variant, &values);
    let uuid = card_uuid(ctx, card_type, &order.reference);
    let target = Target {
        order: order.has_id.then_some(order.reference.as_str()),
        patient_id: ctx.patient_id,
        content,
        // No referral suggestion where the pt-referral card withholds one (low STarT Back risk,
        // therapy already on record or being ordered).
        referral_allowed: assessment.referral_offered(),
    };
    build_card(template, &values, uuid, variant, &target)
}
