//! The readable summary printed by `lbp-cds evaluate`.

use std::fmt::Write;

use crate::evaluate::Outcome;
use crate::hooks::{CdsResponse, response::ActionType};

pub fn readable(outcome: &Outcome, header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let response: &CdsResponse = &outcome.response;
    if response.cards.is_empty() {
        let _ = writeln!(out, "\nNo cards.");
    }
    for (index, card) in response.cards.iter().enumerate() {
        let topic = card.source.topic.as_ref().map(|t| t.code.as_str()).unwrap_or("-");
        let _ = writeln!(out, "\n{}. [{}] {}", index + 1, card.indicator.as_str().to_uppercase(), card.summary);
        let _ = writeln!(out, "   type: {topic}   source: {}", card.source.label);
        if let Some(detail) = &card.detail {
            for line in detail.lines() {
                let _ = writeln!(out, "   | {line}");
            }
        }
        for suggestion in &card.suggestions {
            let recommended = if suggestion.is_recommended == Some(true) { " (recommended)" } else { "" };
            let _ = writeln!(out, "   > suggestion: {}{recommended}", suggestion.label);
            for action in &suggestion.actions {
                let target = action.resource_id.clone().unwrap_or_else(|| {
                    action
                        .resource
                        .as_ref()
                        .and_then(|r| r.pointer("/code/text").and_then(|t| t.as_str()).map(str::to_owned))
                        .unwrap_or_default()
                });
                let _ = writeln!(out, "       {:?} {target}: {}", action.action_type, action.description);
            }
        }
        if !card.override_reasons.is_empty() {
            let reasons: Vec<&str> = card.override_reasons.iter().filter_map(|r| r.display.as_deref()).collect();
            let _ = writeln!(out, "   override reasons: {}", reasons.join("; "));
        }
    }
    for action in &response.system_actions {
        if action.action_type == ActionType::Update {
            let _ = writeln!(out, "\nsystem action: {}", action.description);
        }
    }
    let _ = writeln!(out, "\n{}", episode_line(outcome));
    let record = &outcome.record;
    if !record.skipped.is_empty() || record.ignored > 0 {
        let _ = writeln!(out, "\ndata: {} resource(s) skipped, {} ignored", record.skipped.len(), record.ignored);
        for skipped in &record.skipped {
            let _ = writeln!(
                out,
                "   skipped {} {} in `{}`: {}",
                skipped.resource_type.as_deref().unwrap_or("?"),
                skipped.id.as_deref().unwrap_or(""),
                skipped.prefetch_key,
                skipped.reason
            );
        }
    }
    out
}

/// What the service understood: the episode it recognised (as in `extension["lbp-cds"].episode`).
fn episode_line(outcome: &Outcome) -> String {
    let Some(episode) = &outcome.assessment.episode else {
        return "episode: no low back pain episode recognised".to_owned();
    };
    let since = match (episode.start, episode.duration_days) {
        (Some(start), Some(days)) => format!("since {start} ({days} days)"),
        (None, Some(days)) => format!("at least {days} days (chronic diagnosis, no date)"),
        _ => "start unknown (no dated diagnosis)".to_owned(),
    };
    let chronic = if episode.is_chronic() { "chronic" } else { "not chronic" };
    let conditions = episode.conditions();
    let conditions = if conditions.is_empty() { "from order reasons only".to_owned() } else { conditions.join(", ") };
    format!("episode: {since}, {chronic}; {conditions}")
}
