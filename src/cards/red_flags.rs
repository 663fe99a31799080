//! Red-flag cards (one per category found) and the past red flags card.

use super::actions::Target;
use super::brief::{Facts, Provenance};
use super::text::{duration_sentence, findings_markdown, lowercase_first, shorten, without_parentheses};
use super::{Notes, RenderContext, build_card, card_uuid};
use crate::assess::{Assessment, RedFlag};
use crate::content::registry::RedFlagValues;
use crate::content::{CardType, Content};
use crate::hooks::Card;
use crate::record::PatientRecord;

pub(super) fn card(
    card_type: CardType,
    flags: &[&RedFlag],
    assessment: &Assessment,
    record: &PatientRecord,
    content: &Content,
    ctx: &RenderContext<'_>,
    notes: &Notes,
) -> (Card, Provenance) {
    let template = content.card(card_type);
    let finding_summary = shorten(
        &flags.iter().map(|f| lowercase_first(&without_parentheses(&f.finding))).collect::<Vec<_>>().join("; "),
        50,
    );
    let mut provenance = Provenance::default();
    let mut facts = Facts::default();
    for flag in flags {
        provenance.rule(flag.rule.as_str());
        facts.extend(&flag.evidence);
    }
    facts.episode(assessment);
    let values = RedFlagValues {
        finding_summary,
        findings: findings_markdown(flags),
        duration: duration_sentence(assessment, content),
        data_notes: notes.full.clone(),
        facts: facts.render(record, content, &mut provenance),
        data_note: notes.brief.clone(),
    };
    let uuid = card_uuid(ctx, card_type, "");
    let target = Target { order: None, patient_id: ctx.patient_id, content, referral_allowed: true };
    (build_card(template, &values, uuid, None, &target, ctx), provenance)
}
