//! The console's one view of the clinical content: card types with their rules, thresholds,
//! guideline links and value sets; value sets with their codes; search by code or text. Every
//! page reads content through this file only (plain structs, no `content` types), so a change in
//! how `src/content/` holds card types touches this adapter and nothing else in the console.
//!
//! Which value sets and thresholds a card type's logic reads come from its definition in
//! `content::registry`; the line on when it fires from `cards/texts.toml` `[fires_when]`.

use std::collections::{BTreeMap, BTreeSet};

use crate::content::{CautionTrigger, Content, Lookback, Thresholds};
use crate::content::{Confirmation, ValueSet, ValueSetConcept, system_name};
use crate::record::Code;

pub struct CardTypeEntry {
    pub id: String,
    pub indicator: &'static str,
    pub family: &'static str,
    pub fires_when: String,
    pub summary_template: String,
    /// The full explanation (`detail_full`, else `detail`): what the card's console link promises.
    pub detail_template: String,
    /// The brief detail a clinician sees by default (`detail`).
    pub brief_template: String,
    pub variants: Vec<(String, String)>,
    /// Caution texts (a caution id, its advice).
    pub cautions: Vec<(String, String)>,
    pub source_label: String,
    pub source_url: Option<String>,
    pub links: Vec<(String, String)>,
    pub rules: Vec<RuleEntry>,
    pub thresholds: Vec<(&'static str, String)>,
    pub value_sets: Vec<String>,
    pub suggestions: Vec<String>,
    pub override_reasons: Vec<(String, String)>,
}

pub struct RuleEntry {
    pub id: String,
    pub finding: String,
    pub value_set: Option<String>,
    pub window: String,
    pub guideline: String,
}

pub struct ValueSetEntry {
    pub id: String,
    pub title: String,
    pub intensional: bool,
    pub expansion: Option<String>,
    pub definition_date: Option<String>,
    pub versions: Vec<String>,
    pub codes: Vec<CodeEntry>,
}

#[derive(Clone)]
pub struct CodeEntry {
    pub system: String,
    pub system_name: String,
    pub code: String,
    pub display: String,
    /// V confirmed, S seen in third-party material, U convention.
    pub status: char,
    pub group: Option<String>,
}

pub struct SearchHit {
    pub value_set: String,
    pub title: String,
    pub codes: Vec<CodeEntry>,
    pub card_types: Vec<String>,
}

pub struct SearchResult {
    pub value_sets: Vec<SearchHit>,
    /// Card types whose name, rules or texts mention the query.
    pub card_types: Vec<String>,
}

/// Value sets, thresholds and a line on when it fires, for card types whose rules live in Rust.
fn threshold(thresholds: &Thresholds, name: &str) -> Option<String> {
    Some(match name {
        "adult_age_years" => format!("{} years", thresholds.adult_age_years),
        "imaging_threshold_weeks" => format!("{} weeks", thresholds.imaging_threshold_weeks),
        "episode_gap_days" => format!("{} days", thresholds.episode_gap_days),
        "fever_celsius" => format!("{} °C", thresholds.fever_celsius),
        "fever_lookback_days" => format!("{} days", thresholds.fever_lookback_days),
        "weight_loss_percent" => format!("{} %", thresholds.weight_loss_percent),
        "weight_loss_window_days" => format!("{} days", thresholds.weight_loss_window_days),
        "steroid_min_days" => format!("{} days", thresholds.steroid_min_days),
        "steroid_lookback_days" => format!("{} days", thresholds.steroid_lookback_days),
        "fracture_age_years" => format!("{} years", thresholds.fracture_age_years),
        "reassess_early_weeks" => format!("{} weeks", thresholds.reassess_early_weeks),
        "reassess_late_weeks" => format!("{} weeks", thresholds.reassess_late_weeks),
        "improvement_percent" => format!("{} %", thresholds.improvement_percent),
        "chronic_weeks" => format!("{} weeks", thresholds.chronic_weeks),
        "continue_therapy_min_gap_days" => format!("{} days", thresholds.continue_therapy_min_gap_days),
        "reassess_ask_window_days" => format!("{} days", thresholds.reassess_ask_window_days),
        _ => return None,
    })
}

fn window(lookback: Lookback) -> String {
    match lookback {
        Lookback::AnyTime => "any time".to_owned(),
        Lookback::Days(days) => format!("within {days} days"),
    }
}

/// A template as an informaticist reads it: placeholders shown as `{…}`.
fn template_text(template: &crate::content::Template) -> String {
    template.render(|_| Some("{…}"))
}

pub fn card_types(content: &Content) -> Vec<CardTypeEntry> {
    let thresholds = &content.rules.thresholds;
    content
        .cards
        .iter()
        .map(|card| {
            let id = card.card_type.key();
            let fires_when = content.texts.fires_when.get(&card.card_type).map(String::as_str).unwrap_or_default();
            let mut value_sets: BTreeSet<String> =
                card.card_type.value_sets().iter().map(|s| s.key().to_owned()).collect();
            let mut rules = Vec::new();
            let threshold_names: Vec<&'static str> = card.card_type.thresholds().to_vec();
            for rule in &content.rules.red_flags {
                let belongs = rule.category.card_type().key() == id
                    || (id == "past-red-flags" && rule.show_history)
                    || (id == "imaging-indicated");
                if !belongs {
                    continue;
                }
                if let Some(criterion) = &rule.criterion {
                    value_sets.insert(criterion.value_set.clone());
                    value_sets.extend(criterion.except.map(|set| content.value_sets.at(set).id.clone()));
                }
                rules.push(RuleEntry {
                    id: rule.id.clone(),
                    finding: rule.finding.clone(),
                    value_set: rule.criterion.as_ref().map(|c| c.value_set.clone()),
                    window: match (&rule.criterion, rule.min_age_years) {
                        (Some(criterion), _) => window(criterion.lookback),
                        (None, Some(age)) => format!("age over {age}"),
                        (None, None) => String::new(),
                    },
                    guideline: rule.guideline.clone(),
                });
            }
            if card.card_type.is_safety_advice() {
                for caution in &content.rules.cautions {
                    if let CautionTrigger::Record(criterion) = &caution.trigger {
                        value_sets.insert(criterion.value_set.clone());
                        rules.push(RuleEntry {
                            id: caution.id.clone(),
                            finding: format!("caution for {}", caution.applies_to.join(", ")),
                            value_set: Some(criterion.value_set.clone()),
                            window: window(criterion.lookback),
                            guideline: caution.guideline.clone(),
                        });
                    }
                }
            }
            value_sets.retain(|set| content.value_sets.named(set).is_some());
            let fires_when = if fires_when.is_empty() {
                let findings: Vec<String> = rules
                    .iter()
                    .map(|rule| {
                        if rule.window.is_empty() {
                            rule.finding.clone()
                        } else {
                            format!("{} ({})", rule.finding, rule.window)
                        }
                    })
                    .collect();
                format!("{}.", findings.join("; "))
            } else {
                fires_when.to_owned()
            };
            CardTypeEntry {
                id: id.to_owned(),
                indicator: card.indicator.as_str(),
                family: if id.starts_with("red-flag-") || id == "past-red-flags" {
                    "red flag"
                } else if id.starts_with("imaging-") {
                    "imaging"
                } else if card.card_type.is_safety_advice() {
                    "safety advice"
                } else {
                    "routine guidance"
                },
                fires_when,
                summary_template: template_text(&card.summary),
                detail_template: template_text(&card.detail_full),
                brief_template: template_text(&card.detail),
                variants: card
                    .variants
                    .iter()
                    .map(|(key, variant)| (key.clone(), template_text(&variant.advice_full)))
                    .collect(),
                cautions: card
                    .cautions
                    .iter()
                    .map(|(key, caution)| (key.clone(), template_text(&caution.advice_full)))
                    .collect(),
                source_label: card.source.label.clone(),
                source_url: card.source.url.clone(),
                links: card.links.iter().map(|link| (link.label.clone(), link.url.clone())).collect(),
                rules,
                thresholds: threshold_names
                    .into_iter()
                    .filter_map(|name| Some((name, threshold(thresholds, name)?)))
                    .collect(),
                value_sets: value_sets.into_iter().collect(),
                suggestions: card.suggestions.iter().map(|s| template_text(&s.label)).collect(),
                override_reasons: card.override_reasons.iter().map(|r| (r.code.clone(), r.display.clone())).collect(),
            }
        })
        .collect()
}

pub fn card_type(content: &Content, id: &str) -> Option<CardTypeEntry> {
    card_types(content).into_iter().find(|entry| entry.id == id)
}

fn code_entry(concept: &ValueSetConcept) -> CodeEntry {
    CodeEntry {
        system: concept.system.clone(),
        system_name: system_name(&concept.system).to_owned(),
        code: concept.code.clone(),
        display: concept.display.clone(),
        status: match concept.confirmation {
            Confirmation::Confirmed => 'V',
            Confirmation::Seen => 'S',
            Confirmation::Unconfirmed => 'U',
        },
        group: concept.group.clone(),
    }
}

fn format_time(at: Option<time::OffsetDateTime>) -> Option<String> {
    at.and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
}

pub fn value_sets(content: &Content) -> Vec<ValueSetEntry> {
    content.value_sets.iter().map(value_set_entry).collect()
}

fn value_set_entry(set: &ValueSet) -> ValueSetEntry {
    ValueSetEntry {
        id: set.id.clone(),
        title: set.title.clone(),
        intensional: set.intensional,
        expansion: format_time(set.expansion_timestamp),
        definition_date: format_time(set.definition_date),
        versions: set.versions.clone(),
        codes: set.concepts().iter().map(code_entry).collect(),
    }
}

pub fn value_set(content: &Content, id: &str) -> Option<ValueSetEntry> {
    content.value_sets.named(id).map(value_set_entry)
}

/// Which card types use each value set.
pub fn users_of_value_sets(content: &Content) -> BTreeMap<String, Vec<String>> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for card in card_types(content) {
        for set in &card.value_sets {
            users.entry(set.clone()).or_default().push(card.id.clone());
        }
    }
    users
}

/// Hits shown per value set at most.
const CODES_PER_HIT: usize = 50;

/// "Which rule knows M54.50?": value sets holding the code (as the service matches it, so
/// `m5450` and a prefix entry count) or a display, title or id containing the text, with the
/// card types that use them; and card types whose texts or rules mention it.
pub fn search(content: &Content, query: &str) -> SearchResult {
    let query = query.trim();
    let needle = query.to_lowercase();
    if needle.is_empty() {
        return SearchResult { value_sets: Vec::new(), card_types: Vec::new() };
    }
    let users = users_of_value_sets(content);
    let mut value_sets = Vec::new();
    for set in content.value_sets.iter() {
        let systems: BTreeSet<&str> = set.concepts().iter().map(|c| c.system.as_str()).collect();
        let mut codes: Vec<CodeEntry> = Vec::new();
        for system in systems {
            let code = Code { system: Some(system.to_owned()), code: Some(query.to_owned()), display: None };
            if let Some(concept) = set.lookup(&code) {
                codes.push(code_entry(concept));
            }
        }
        for concept in set.concepts() {
            let known = codes.iter().any(|c| c.system == concept.system && c.code == concept.code);
            if !known && concept.display.to_lowercase().contains(&needle) {
                codes.push(code_entry(concept));
            }
        }
        let named = set.id.to_lowercase().contains(&needle) || set.title.to_lowercase().contains(&needle);
        if codes.is_empty() && !named {
            continue;
        }
        codes.truncate(CODES_PER_HIT);
        value_sets.push(SearchHit {
            value_set: set.id.clone(),
            title: set.title.clone(),
            codes,
            card_types: users.get(&set.id).cloned().unwrap_or_default(),
        });
    }
    let card_types = card_types(content)
        .into_iter()
        .filter(|card| {
            [&card.id, &card.fires_when, &card.summary_template, &card.detail_template]
                .iter()
                .any(|text| text.to_lowercase().contains(&needle))
                || card.rules.iter().any(|rule| rule.finding.to_lowercase().contains(&needle))
        })
        .map(|card| card.id)
        .collect();
    SearchResult { value_sets, card_types }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every threshold a card type's definition names is a field of `[thresholds]` (a typo in
    /// the registry would silently drop it from the content browser).
    #[test]
    fn every_registry_threshold_is_a_threshold() {
        let content = Content::embedded().unwrap();
        for card_type in crate::content::CardType::ALL {
            for name in card_type.thresholds() {
                assert!(threshold(&content.rules.thresholds, name).is_some(), "{card_type}: {name}");
            }
        }
    }

    #[test]
    fn which_rule_knows_m54_50() {
        let content = Content::embedded().unwrap();
        for query in ["M54.50", "m5450", " M54.50 "] {
            let result = search(&content, query);
            let hit = result.value_sets.iter().find(|hit| hit.value_set == "lbp-diagnosis").expect(query);
            assert!(hit.codes.iter().any(|c| c.code == "M54.50" && c.system_name == "ICD-10-CM"), "{query}");
            for card in ["imaging-not-indicated", "pt-referral", "start-back-screening"] {
                assert!(hit.card_types.iter().any(|c| c == card), "{query}: {card} uses the set");
            }
        }
        assert!(search(&content, "").value_sets.is_empty());
        assert!(search(&content, "no such thing anywhere").value_sets.is_empty());
    }

    #[test]
    fn every_card_type_and_value_set_is_listed_with_what_it_uses() {
        let content = Content::embedded().unwrap();
        let cards = card_types(&content);
        assert_eq!(cards.len(), crate::content::CardType::ALL.len());
        let cauda = cards.iter().find(|c| c.id == "red-flag-cauda-equina").unwrap();
        assert_eq!(cauda.indicator, "critical");
        assert!(cauda.value_sets.contains(&"cauda-equina".to_owned()), "{:?}", cauda.value_sets);
        assert!(cauda.rules.iter().any(|r| r.window == "within 365 days"));
        assert!(
            cauda.fires_when.starts_with("Cauda equina syndrome on record (within 365 days); "),
            "{}",
            cauda.fires_when
        );
        let imaging = cards.iter().find(|c| c.id == "imaging-not-indicated").unwrap();
        assert!(
            imaging.thresholds.iter().any(|(name, value)| *name == "imaging_threshold_weeks" && value == "6 weeks")
        );
        assert!(!imaging.override_reasons.is_empty());
        let medication = cards.iter().find(|c| c.id == "medication-advice").unwrap();
        assert!(!medication.cautions.is_empty() && !medication.variants.is_empty(), "the full texts");
        for card in &cards {
            assert!(
                !card.value_sets.is_empty() || card.id == "past-red-flags" || card.id.starts_with("red-flag-"),
                "{}",
                card.id
            );
            for set in &card.value_sets {
                assert!(content.value_sets.named(set).is_some(), "{} names {set}", card.id);
            }
        }
        let sets = value_sets(&content);
        assert_eq!(sets.len(), content.value_sets.len());
        let lbp = sets.iter().find(|s| s.id == "lbp-diagnosis").unwrap();
        assert!(lbp.codes.iter().all(|c| matches!(c.status, 'V' | 'S' | 'U')));
        assert!(lbp.expansion.is_some(), "the shipped expansion has its timestamp");
    }
}
