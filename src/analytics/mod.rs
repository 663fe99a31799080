//! Acceptance analytics: per card type and per suggestion, over a date range of issue times,
//! how often a card was shown, accepted, overridden or left unanswered, and the override
//! reasons given. `GET /analytics` (JSON) and `lbp-cds report` (text or `--csv`) both print this
//! one report. Only trusted feedback counts (see `feedback::Flag`).

use std::fmt::Write;

use serde::Serialize;
use time::{Date, Duration};

use crate::storage::{StorageError, Store};

/// Override reasons listed per card type.
const TOP_REASONS: usize = 5;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// First day of the range (UTC), inclusive.
    pub from: String,
    /// Last day of the range (UTC), inclusive.
    pub to: String,
    pub card_types: Vec<CardTypeReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardTypeReport {
    pub card_type: String,
    /// Distinct cards issued (a repeated call for the same hookInstance shows the same card).
    pub shown: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_response: i64,
    /// accepted / shown; `null` when nothing was shown.
    pub acceptance_rate: Option<f64>,
    pub suggestions: Vec<SuggestionReport>,
    pub top_override_reasons: Vec<ReasonReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionReport {
    pub label: String,
    /// Cards that offered it.
    pub offered: i64,
    pub accepted: i64,
    pub acceptance_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonReport {
    pub system: String,
    pub code: String,
    pub display: String,
    pub count: i64,
}

/// The default range: the last 30 days, today included.
pub fn default_range(today: Date) -> (Date, Date) {
    (today - Duration::days(29), today)
}

/// Builds the report for cards issued from `from` to `to`, both days included (UTC).
pub async fn build(store: &Store, from: Date, to: Date) -> Result<Report, StorageError> {
    let start = day_start_ms(from);
    let end = day_start_ms(to) + 86_400_000;
    let cards = store.card_counts(start, end).await?;
    let suggestions = store.suggestion_counts(start, end).await?;
    let reasons = store.reason_counts(start, end).await?;
    let card_types = cards
        .into_iter()
        .map(|c| CardTypeReport {
            suggestions: suggestions
                .iter()
                .filter(|s| s.card_type == c.card_type)
                .map(|s| SuggestionReport {
                    label: s.label.clone(),
                    offered: s.offered,
                    accepted: s.accepted,
                    acceptance_rate: rate(s.accepted, s.offered),
                })
                .collect(),
            top_override_reasons: reasons
                .iter()
                .filter(|r| r.card_type == c.card_type)
                .take(TOP_REASONS)
                .map(|r| ReasonReport {
                    system: r.system.clone(),
                    code: r.code.clone(),
                    display: if r.label.is_empty() { r.code.clone() } else { r.label.clone() },
                    count: r.count,
                })
                .collect(),
            acceptance_rate: rate(c.accepted, c.shown),
            card_type: c.card_type,
            shown: c.shown,
            accepted: c.accepted,
            overridden: c.overridden,
            no_response: c.no_response,
        })
        .collect();
    Ok(Report { from: from.to_string(), to: to.to_string(), card_types })
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| ((part as f64 / whole as f64) * 1000.0).round() / 1000.0)
}

fn day_start_ms(day: Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp() * 1000
}

impl Report {
    /// One CSV row per card type (suggestion and reason columns empty) and per suggestion and
    /// override reason under it (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "card_type,row,label,shown_or_offered,accepted,overridden,no_response,acceptance_rate,count\n",
        );
        let rate = |r: Option<f64>| r.map(|r| format!("{r:.3}")).unwrap_or_default();
        for card in &self.card_types {
            let _ = writeln!(
                out,
                "{},card,,{},{},{},{},{},",
                csv(&card.card_type),
                card.shown,
                card.accepted,
                card.overridden,
                card.no_response,
                rate(card.acceptance_rate)
            );
            for s in &card.suggestions {
                let _ = writeln!(
                    out,
                    "{},suggestion,{},{},{},,,{},",
                    csv(&card.card_type),
                    csv(&s.label),
                    s.offered,
                    s.accepted,
                    rate(s.acceptance_rate)
                );
            }
            for r in &card.top_override_reasons {
                let _ = writeln!(out, "{},override-reason,{},,,,,,{}", csv(&card.card_type), csv(&r.display), r.count);
            }
        }
        out
    }

    /// For a person at a terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!("Cards issued {} to {} (UTC); only trusted feedback counts.\n", self.from, self.to);
        if self.card_types.is_empty() {
            out.push_str("\nNo cards were issued in this range.\n");
        }
        let percent = |r: Option<f64>| r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "-".into());
        for card in &self.card_types {
            let _ = writeln!(
                out,
                "\n{}: shown {}, accepted {}, overridden {}, no response {}, acceptance {}",
                card.card_type,
                card.shown,
                card.accepted,
                card.overridden,
                card.no_response,
                percent(card.acceptance_rate)
            );
            for s in &card.suggestions {
                let _ = writeln!(
                    out,
                    "   suggestion \"{}\": offered {}, accepted {} ({})",
                    s.label,
                    s.offered,
                    s.accepted,
                    percent(s.acceptance_rate)
                );
            }
            for r in &card.top_override_reasons {
                let _ = writeln!(out, "   override reason \"{}\": {}", r.display, r.count);
            }
        }
        out
    }
}

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
pub fn csv(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// A day as `YYYY-MM-DD`.
pub fn parse_day(value: &str) -> Result<Date, String> {
    Date::parse(value, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("must be a date YYYY-MM-DD: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv("plain label"), "plain label");
        assert_eq!(csv("a, b"), "\"a, b\"");
        assert_eq!(csv("say \"no\""), "\"say \"\"no\"\"\"");
        assert_eq!(csv("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv("-1"), "'-1");
    }
}
