//! The card texts that depend on this patient's factors (NSAID cautions, pregnancy, what was
//! tried): `{medicines}`, `{first_line}` and `{pregnancy}`, from `cards/patient-factors.toml`.

use crate::assess::{Evidence, PatientFactors, Unchecked};
use crate::content::factors::CautionLevel;
use crate::content::{CardDetail, Content};

/// Short, for summaries: what comes first for this patient.
pub(super) fn first_line(factors: &PatientFactors, content: &Content) -> String {
    let text = &content.factors.text;
    if factors.cautions.is_empty() { text.first_line.clone() } else { text.first_line_with_caution.clone() }
}

/// Markdown bullets on medicines: what was tried, then either the usual NSAID advice, the NSAID
/// already prescribed, or this patient's cautions with what fits instead; and what could not be
/// checked, where it matters.
pub(super) fn medicines(factors: &PatientFactors, content: &Content) -> String {
    let text = &content.factors.text;
    let mut out = String::new();
    let acknowledge_active = factors.cautions.is_empty().then_some(factors.active_nsaid.as_ref()).flatten();
    let tried: Vec<String> = factors.tried.iter().filter(|e| Some(*e) != acknowledge_active).map(cited).collect();
    if !tried.is_empty() {
        let tried = tried.join("; ");
        push(&mut out, text.tried.render(|name| (name == "tried").then_some(tried.as_str())));
    }
    let level = factors.level(content);
    match (level, acknowledge_active) {
        (None, Some(active)) => {
            let nsaid = cited(active);
            push(&mut out, text.nsaid_active.render(|name| (name == "nsaid").then_some(nsaid.as_str())));
        }
        (None, None) => push(&mut out, text.recommend.render(|_| None)),
        (Some(level), _) => {
            let lines: Vec<String> = factors
                .cautions
                .iter()
                .map(|caution| {
                    let entry = content.factors.caution(caution.kind);
                    let references: Vec<String> =
                        caution.evidence.iter().map(|e| format!("`{}`", e.reference)).collect();
                    let finding = format!("{} ({})", caution.finding, references.join(", "));
                    text.caution_line.render(|name| match name {
                        "short" => Some(entry.short.as_str()),
                        "finding" => Some(finding.as_str()),
                        "why" => Some(entry.why.as_str()),
                        "source" => Some(entry.source.as_str()),
                        _ => None,
                    })
                })
                .collect();
            let lines = lines.join("\n");
            let levels = if level == CautionLevel::Avoid { &text.level_avoid } else { &text.level_caution };
            let topical_ok = factors.cautions.iter().all(|c| content.factors.caution(c.kind).topical_ok);
            let instead = if topical_ok { &text.instead_with_topical } else { &text.instead_without_topical };
            push(
                &mut out,
                text.cautions.render(|name| match name {
                    "cautions" => Some(lines.as_str()),
                    "levels" => Some(levels.as_str()),
                    "instead" => Some(instead.as_str()),
                    _ => None,
                }),
            );
            if level == CautionLevel::Caution {
                push(&mut out, text.caution_only.render(|_| None));
            }
        }
    }
    // Missing data matters unless a caution already rules a systemic NSAID out.
    if level != Some(CautionLevel::Avoid) && !factors.unchecked.is_empty() {
        let unchecked: Vec<&str> = factors
            .unchecked
            .iter()
            .map(|u| match u {
                Unchecked::NoEgfr => text.no_egfr.as_str(),
                Unchecked::Observations => text.observations_missing.as_str(),
                Unchecked::Medications => text.medications_missing.as_str(),
                Unchecked::Allergies => text.allergies_missing.as_str(),
                Unchecked::Age => text.age_unknown.as_str(),
            })
            .collect();
        let unchecked = unchecked.join("; ");
        push(&mut out, text.unchecked.render(|name| (name == "unchecked").then_some(unchecked.as_str())));
    }
    out.trim_end().to_owned()
}

/// Markdown for the imaging cards when a pregnancy is on record; empty otherwise.
pub(super) fn pregnancy(factors: &PatientFactors, content: &Content, detail: CardDetail) -> String {
    let Some(pregnancy) = &factors.pregnancy else { return String::new() };
    if detail == CardDetail::Brief {
        return content.factors.text.pregnancy_imaging_brief.render(|_| None).trim().to_owned();
    }
    let mut evidence: Vec<String> = pregnancy.evidence.iter().map(cited).collect();
    if let Some(weeks) = pregnancy.weeks {
        evidence.insert(0, format!("{weeks} weeks of gestation today"));
    }
    let evidence = evidence.join("; ");
    content
        .factors
        .text
        .pregnancy_imaging
        .render(|name| (name == "evidence").then_some(evidence.as_str()))
        .trim()
        .to_owned()
}

fn cited(evidence: &Evidence) -> String {
    format!("{} (`{}`)", evidence.description, evidence.reference)
}

fn push(out: &mut String, block: String) {
    out.push_str(block.trim_matches('\n'));
    out.push('\n');
}
