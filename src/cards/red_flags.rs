//! Red-flag cards (one per category found) and the past red flags card.

use super::actions::Target;
use super::text::{duration_sentence, findings_markdown, lowercase_first, shorten, without_parentheses};
use super::{RenderContext, build_card, card_uuid};
use crate::assess::{Assessment, RedFlag};
use crate::content::registry::RedFlagValues;
use crate::content::{CardType, Content};
use crate::hooks::Card;

pub(super) fn card(
    card_type: CardType,
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
    let values = RedFlagValues {
        finding_summary,
        findings: findings_markdown(flags),
        duration: duration_sentence(assessment, content),
        data_notes: notes.to_owned(),
    };
    let uuid = card_uuid(ctx, card_type, "");
    let target = Target { order: None, patient_id: ctx.patient_id, content, referral_allowed: true };
    build_card(template, &values, uuid, None, &target)
}
