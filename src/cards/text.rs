//! Markdown and short-text helpers for card texts: evidence lists, durations (their words from
//! `texts.toml`), data notes, tidying and shortening.

use crate::assess::{Assessment, Evidence, RedFlag};
use crate::content::Content;

pub(super) fn evidence_markdown(evidence: &[Evidence]) -> String {
    evidence.iter().map(|e| format!("- `{}`: {}", e.reference, e.description)).collect::<Vec<_>>().join("\n")
}

pub(super) fn findings_markdown(flags: &[&RedFlag]) -> String {
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

/// A chronic diagnosis says at least `chronic_weeks` even when the dates say less.
fn chronic_by_diagnosis(days: i64, chronic_weeks: u32) -> bool {
    days <= i64::from(chronic_weeks) * 7
}

pub(super) fn duration_sentence(assessment: &Assessment, content: &Content) -> String {
    let texts = &content.texts;
    let Some(episode) = &assessment.episode else {
        return texts.duration_none.render(|_| None);
    };
    let sources = evidence_list(&episode.evidence);
    let chronic_weeks = content.rules.thresholds.chronic_weeks.to_string();
    match (episode.duration_days, episode.start) {
        (Some(days), _)
            if episode.chronic_diagnosis
                && episode.start.is_none_or(|_| chronic_by_diagnosis(days, content.rules.thresholds.chronic_weeks)) =>
        {
            texts.duration_chronic.fill(&[("chronic_weeks", &chronic_weeks), ("sources", &sources)])
        }
        (Some(days), Some(start)) => texts.duration_known.fill(&[
            ("weeks", &weeks_text(days, content)),
            ("days", &days.to_string()),
            ("start", &start.to_string()),
            ("sources", &sources),
        ]),
        _ => texts.duration_unknown.fill(&[("sources", &sources)]),
    }
}

pub(super) fn duration_short(assessment: &Assessment, content: &Content) -> String {
    let texts = &content.texts;
    let chronic_weeks = content.rules.thresholds.chronic_weeks;
    match &assessment.episode {
        None => texts.short_none.render(|_| None),
        Some(episode) => match episode.duration_days {
            Some(days) if episode.chronic_diagnosis && chronic_by_diagnosis(days, chronic_weeks) => {
                texts.short_chronic.fill(&[("chronic_weeks", &chronic_weeks.to_string())])
            }
            Some(days) => weeks_text(days, content),
            None => texts.short_unknown.render(|_| None),
        },
    }
}

fn weeks_text(days: i64, content: &Content) -> String {
    let texts = &content.texts;
    let (template, n) = match days / 7 {
        0 if days == 1 => (&texts.one_day, days),
        0 => (&texts.days, days),
        1 => (&texts.one_week, 1),
        weeks => (&texts.weeks, weeks),
    };
    let n = n.to_string();
    template.render(|name| (name == "n").then_some(n.as_str()))
}

pub(super) fn data_notes(notes: &[String], content: &Content) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut out = content.texts.notes_heading.render(|_| None);
    out.push('\n');
    for note in notes {
        out.push_str(&format!("- {note}\n"));
    }
    out.trim_end().to_owned()
}

/// Removes the blank lines left by empty placeholders.
pub(super) fn tidy_markdown(text: &str) -> String {
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
pub(super) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if second.is_lowercase() => {
            first.to_lowercase().chain(std::iter::once(second)).chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

pub(super) fn uppercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Drops parenthesised asides, for summaries that must stay short and balanced.
pub(super) fn without_parentheses(text: &str) -> String {
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

    #[test]
    fn durations_read_in_days_and_weeks_from_the_content() {
        let content = Content::embedded().unwrap();
        assert_eq!(weeks_text(1, &content), "1 day");
        assert_eq!(weeks_text(6, &content), "6 days");
        assert_eq!(weeks_text(13, &content), "1 week");
        assert_eq!(weeks_text(15, &content), "2 weeks");
    }
}
