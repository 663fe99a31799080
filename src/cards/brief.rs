//! The brief form's pieces (`--card-detail brief`): what was found in the record in plain words
//! with dates (`{facts}`), one line on what could not be read (`{data_note}`), and each card's
//! provenance (rule ids and FHIR references), which the brief text leaves out and the response's
//! extension keeps.

use serde_json::{Value, json};
use time::Date;

use super::text::uppercase_first;
use crate::assess::{Assessment, Evidence};
use crate::content::{CardTemplate, Content, Template};
use crate::record::{Availability, PatientRecord, ResourceKind};

/// Lines of `{facts}` shown; past it, one line says how many more.
const FACTS_SHOWN: usize = 5;
/// The data note's list of what could not be read, at most (characters).
const DATA_NOTE_LIMIT: usize = 200;

/// What one card rests on: the rules that fired and the resources they read. The brief text
/// names neither; `extension["lbp-cds"].cards[uuid]` carries both.
#[derive(Debug, Clone, Default)]
pub(super) struct Provenance {
    pub rules: Vec<String>,
    pub references: Vec<String>,
}

impl Provenance {
    pub fn rule(&mut self, rule: impl Into<String>) {
        let rule = rule.into();
        if !self.rules.contains(&rule) {
            self.rules.push(rule);
        }
    }

    /// `{cardType, rules, references}`; a card that cites no resource has no `references` (the
    /// specification's rule against empty arrays, kept in our own extension too).
    pub fn to_json(&self, card_type: &str) -> Value {
        let mut out = json!({"cardType": card_type, "rules": self.rules});
        if !self.references.is_empty() {
            out["references"] = json!(self.references);
        }
        out
    }
}

/// The evidence a card cites, in order, each resource once.
#[derive(Debug, Default)]
pub(super) struct Facts<'a> {
    /// A draft order of this call (label, reference): "MRI lumbar spine, ordered today".
    order: Option<(&'a str, &'a str)>,
    evidence: Vec<&'a Evidence>,
}

impl<'a> Facts<'a> {
    pub fn order(&mut self, label: &'a str, reference: &'a str) {
        self.order = Some((label, reference));
    }

    pub fn extend(&mut self, evidence: impl IntoIterator<Item = &'a Evidence>) {
        self.evidence.extend(evidence);
    }

    /// What makes an NSAID a caution for this patient, where the card's texts say what comes first
    /// (`{first_line}`: "nonpharmacologic care (NSAID caution)").
    pub fn nsaid_cautions(&mut self, assessment: &'a Assessment, template: &CardTemplate, variant: Option<&str>) {
        let variant = variant.and_then(|key| template.variants.get(key));
        let named = template.detail.uses("first_line") || variant.is_some_and(|v| v.advice.uses("first_line"));
        if named {
            self.evidence.extend(assessment.factors.cautions.iter().flat_map(|c| &c.evidence));
        }
    }

    /// The episode's diagnoses, which date the symptoms.
    pub fn episode(&mut self, assessment: &'a Assessment) {
        if let Some(episode) = &assessment.episode {
            self.evidence.extend(&episode.evidence);
        }
    }

    /// The `{facts}` Markdown (heading and list; empty without evidence), and every reference.
    pub fn render(&self, record: &PatientRecord, content: &Content, provenance: &mut Provenance) -> String {
        let texts = &content.texts.brief;
        let mut lines: Vec<String> = Vec::new();
        let mut cited = |line: Option<String>, reference: &str| {
            // Each resource once, however many rules cite it.
            if provenance.references.iter().any(|r| r == reference) {
                return;
            }
            provenance.references.push(reference.to_owned());
            if let Some(line) = line.filter(|l| !l.is_empty() && !lines.contains(l)) {
                lines.push(line);
            }
        };
        if let Some((label, reference)) = self.order {
            cited(Some(capitalised(&texts.order.render(|name| (name == "name").then_some(label)))), reference);
        }
        for evidence in &self.evidence {
            cited(Some(plain(evidence, record, content)), &evidence.reference);
        }
        let lines = numbered_runs(lines);
        if lines.is_empty() {
            return String::new();
        }
        let mut out = texts.facts_heading.render(|_| None);
        out.push('\n');
        for line in lines.iter().take(FACTS_SHOWN) {
            out.push_str(&format!("- {line}\n"));
        }
        if lines.len() > FACTS_SHOWN {
            let n = (lines.len() - FACTS_SHOWN).to_string();
            out.push_str(&format!("- {}\n", texts.more.render(|name| (name == "n").then_some(n.as_str()))));
        }
        out.trim_end().to_owned()
    }
}

/// One piece of evidence in plain words with its date, from the resource in the record where
/// there is one; else its description without references.
fn plain(evidence: &Evidence, record: &PatientRecord, content: &Content) -> String {
    let texts = &content.texts.brief;
    let reference = evidence.reference.as_str();
    let line = if let Some(condition) = record.conditions.iter().find(|c| c.reference == reference) {
        let name = condition.code.label();
        match condition.abatement {
            Some(abated) if !condition.is_active() => dated(&texts.condition_resolved, &name, Some(abated)),
            _ => dated(&texts.condition, &name, condition.first_date()),
        }
    } else if let Some(procedure) = record.procedures.iter().find(|p| p.reference == reference) {
        dated(&texts.procedure, &procedure.code.label(), procedure.performed)
    } else if let Some(request) = record.service_requests.iter().find(|s| s.reference == reference) {
        dated(&texts.referral, &request.code.label(), request.authored)
    } else if let Some(response) = record.questionnaire_responses.iter().find(|q| q.reference == reference) {
        match response.authored {
            Some(date) => {
                let date = date.to_string();
                texts.questionnaire.render(|name| (name == "date").then_some(date.as_str()))
            }
            None => without_references(&evidence.description),
        }
    } else if let Some(order) = record.draft_orders.iter().find(|o| o.reference == reference) {
        let label = order.code.label();
        texts.order.render(|name| (name == "name").then_some(label.as_str()))
    } else {
        // Observations, medication courses and age: their descriptions are already plain words
        // with dates ("temperature 38.6 Cel (38.6 °C) on 2026-03-01").
        without_references(&evidence.description)
    };
    capitalised(line.trim())
}

/// "pain score 6" -> "Pain score 6"; "eGFR 24" stays.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(_), Some(second)) if second.is_uppercase() => text.to_owned(),
        _ => uppercase_first(text),
    }
}

/// Consecutive lines that differ only in one numbered word, numbered one after the other, as
/// one line: "STarT Back item1 on 2026-02-02" ... "item9 ..." -> "STarT Back item1-9 on 2026-02-02".
fn numbered_runs(lines: Vec<String>) -> Vec<String> {
    /// A line and the run it starts: the numbered word (index, prefix, first number) and the last.
    struct Run {
        first: String,
        word: Option<(usize, String, u32)>,
        last: u32,
    }
    impl Run {
        fn line(self) -> String {
            let Some((index, prefix, from)) = self.word else { return self.first };
            let mut words: Vec<&str> = self.first.split(' ').collect();
            let range = format!("{prefix}{from}-{}", self.last);
            words[index] = &range;
            words.join(" ")
        }
    }
    let mut out = Vec::new();
    let mut run: Option<Run> = None;
    for line in lines {
        if let Some(current) = &mut run
            && let Some((index, prefix, a, b)) = numbered_difference(&current.first, &line)
        {
            let extends = match &current.word {
                None => b == a + 1,
                Some((i, p, from)) => *i == index && *p == prefix && *from == a && b == current.last + 1,
            };
            if extends {
                current.word = Some((index, prefix, a));
                current.last = b;
                continue;
            }
        }
        out.extend(run.take().map(Run::line));
        run = Some(Run { first: line, word: None, last: 0 });
    }
    out.extend(run.map(Run::line));
    out
}

/// The one word in which two lines differ, when it is a prefix and a number in both with the same
/// prefix ("item1", "item2"): (word index, prefix, number in `a`, number in `b`).
fn numbered_difference(a: &str, b: &str) -> Option<(usize, String, u32, u32)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
    if a.len() != b.len() {
        return None;
    }
    let mut differing = (0..a.len()).filter(|&i| a[i] != b[i]);
    let index = differing.next()?;
    if differing.next().is_some() {
        return None;
    }
    let split = |word: &str| -> Option<(String, u32)> {
        let prefix = word.trim_end_matches(|c: char| c.is_ascii_digit());
        let number = word[prefix.len()..].parse().ok()?;
        (!prefix.is_empty() && prefix.chars().all(char::is_alphabetic)).then(|| (prefix.to_owned(), number))
    };
    let ((prefix, first), (other, second)) = (split(a[index])?, split(b[index])?);
    (prefix == other).then_some((index, prefix, first, second))
}

fn dated(template: &Template, name: &str, date: Option<Date>) -> String {
    match date {
        Some(date) => {
            let date = date.to_string();
            template.render(|field| match field {
                "name" => Some(name),
                "date" => Some(date.as_str()),
                _ => None,
            })
        }
        None => name.to_owned(),
    }
}

/// Text without FHIR references (`Condition/abc`, in backticks or not).
pub(super) fn without_references(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|word| !is_reference(word.trim_matches(|c: char| "`()[],;:.".contains(c))))
        .collect();
    words.join(" ").replace('`', "")
}

/// `ResourceType/id`: a capitalised type, a slash and an id.
fn is_reference(word: &str) -> bool {
    let Some((kind, id)) = word.split_once('/') else { return false };
    let mut kind_chars = kind.chars();
    kind_chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && kind.chars().any(|c| c.is_ascii_lowercase())
        && kind_chars.all(|c| c.is_ascii_alphabetic())
        && !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// `{data_note}`: one line on what could not be read or used, or empty.
pub(super) fn data_note(assessment: &Assessment, record: &PatientRecord, content: &Content) -> String {
    if assessment.data_notes.is_empty() {
        return String::new();
    }
    let texts = &content.texts.brief;
    let mut items = Vec::new();
    let mut kinds = Vec::new();
    for kind in ResourceKind::ALL {
        if !record.availability.contains_key(&kind) {
            continue;
        }
        let plural = kind.plural();
        let item = match record.availability(kind) {
            Availability::Complete => continue,
            Availability::Incomplete(_) => {
                let unread =
                    record.skipped.iter().filter(|s| s.resource_type.as_deref() == Some(kind.as_str())).count();
                if unread > 0 {
                    let n = unread.to_string();
                    texts.unread.render(|name| match name {
                        "n" => Some(n.as_str()),
                        "kind" => Some(plural),
                        _ => None,
                    })
                } else {
                    texts.partial.render(|name| (name == "kind").then_some(plural))
                }
            }
            Availability::Missing(_) => texts.missing.render(|name| (name == "kind").then_some(plural)),
        };
        kinds.push(plural);
        items.push(item);
    }
    // Notes that are not about a kind of data listed above, in their own words.
    for note in &assessment.data_notes {
        if !kinds.iter().any(|kind| note.to_lowercase().contains(kind)) {
            items.push(without_references(note).trim_end_matches('.').to_owned());
        }
    }
    let what = super::shorten(&items.join("; "), DATA_NOTE_LIMIT);
    texts.data_note.render(|name| (name == "what").then_some(what.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_left_out_and_other_words_kept() {
        assert_eq!(
            without_references("`Observation/t-1` records a temperature of 38 with no unit (see Condition/a.b)."),
            "records a temperature of 38 with no unit (see"
        );
        assert_eq!(without_references("HIV/AIDS and mL/min stay"), "HIV/AIDS and mL/min stay");
        assert!(is_reference("Condition/patient-view-cauda-equina-ces"));
        assert_eq!(capitalised("eGFR 24 on 2026-01-01"), "eGFR 24 on 2026-01-01");
        assert_eq!(capitalised("pain score 6"), "Pain score 6");
    }

    #[test]
    fn numbered_items_of_one_day_take_one_line() {
        let lines = |texts: &[&str]| texts.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let items: Vec<String> = (1..=9).map(|n| format!("STarT Back item{n} on 2026-02-02")).collect();
        let mut all = items.clone();
        all.push("Low back pain, diagnosed 2026-02-02".into());
        assert_eq!(
            numbered_runs(all),
            lines(&["STarT Back item1-9 on 2026-02-02", "Low back pain, diagnosed 2026-02-02"])
        );
        // Not numbered one after the other, other days, or values rather than names: kept apart.
        let apart = lines(&[
            "STarT Back item1 on 2026-02-02",
            "STarT Back item3 on 2026-02-02",
            "Pain score 7 on 2026-03-01",
            "Pain score 6 on 2026-03-01",
            "Pain score 8 on 2026-02-02",
        ]);
        assert_eq!(numbered_runs(apart.clone()), apart);
        assert!(!is_reference("and/or"));
        assert!(!is_reference("1/2"));
    }
}
