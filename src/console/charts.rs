//! Charts as SVG built on the server: no JavaScript library, nothing fetched. Each chart carries
//! its numbers twice, as `<title>` tooltips and as a table beside it (screen readers and tests
//! read the table and the `data-` attributes).

use std::fmt::Write;

use super::pages::escape;

/// One card type's answers on one day.
#[derive(Clone, Copy, Default, Debug)]
pub struct DayCounts {
    pub shown: i64,
    pub accepted: i64,
    pub overridden: i64,
}

/// One card type over the days of the range.
pub struct Series {
    pub card_type: String,
    pub days: Vec<(time::Date, DayCounts)>,
}

impl Series {
    fn total(&self) -> DayCounts {
        self.days.iter().fold(DayCounts::default(), |acc, (_, d)| DayCounts {
            shown: acc.shown + d.shown,
            accepted: acc.accepted + d.accepted,
            overridden: acc.overridden + d.overridden,
        })
    }
}

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 190.0;
const ROW: f64 = 34.0;

/// Acceptance per card type over time: a row per card type, a stacked bar per day (accepted,
/// overridden, no answer), the bar's height scaled to the busiest day of that row.
pub fn acceptance(series: &[Series]) -> String {
    if series.is_empty() {
        return "<p class=\"empty\">No cards were issued in this range.</p>".into();
    }
    let days = series.first().map_or(0, |s| s.days.len()).max(1);
    let plot = WIDTH - LABEL_WIDTH - 70.0;
    let step = plot / days as f64;
    let bar = (step * 0.7).max(1.0);
    let height = ROW * series.len() as f64 + 24.0;
    let accepted_total: i64 = series.iter().map(|s| s.total().accepted).sum();
    let mut svg = format!(
        "<svg class=\"chart acceptance\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-labelledby=\"acceptance-title\" \
         data-accepted-total=\"{accepted_total}\"><title id=\"acceptance-title\">Answers per card type and day</title>"
    );
    for (row, one) in series.iter().enumerate() {
        let top = row as f64 * ROW + 4.0;
        let total = one.total();
        let busiest = one.days.iter().map(|(_, d)| d.shown).max().unwrap_or(0).max(1) as f64;
        let rate = if total.shown > 0 {
            format!("{:.0}%", 100.0 * total.accepted as f64 / total.shown as f64)
        } else {
            "–".into()
        };
        let _ = write!(
            svg,
            "<g data-card-type=\"{0}\" data-shown=\"{1}\" data-accepted=\"{2}\" data-overridden=\"{3}\">\
             <text x=\"0\" y=\"{4}\" class=\"label\">{0}</text>",
            escape(&one.card_type),
            total.shown,
            total.accepted,
            total.overridden,
            top + ROW / 2.0 + 4.0
        );
        for (index, (day, counts)) in one.days.iter().enumerate() {
            if counts.shown == 0 {
                continue;
            }
            let x = LABEL_WIDTH + index as f64 * step;
            let scale = (ROW - 8.0) / busiest;
            let no_answer = (counts.shown - counts.accepted - counts.overridden).max(0);
            let mut y = top + ROW - 4.0;
            for (value, class) in
                [(counts.accepted, "accepted"), (counts.overridden, "overridden"), (no_answer, "unanswered")]
            {
                if value == 0 {
                    continue;
                }
                let h = value as f64 * scale;
                y -= h;
                let _ = write!(
                    svg,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{day}: {value} {class}</title></rect>"
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{rate} of {}</text></g>",
            WIDTH - 66.0,
            top + ROW / 2.0 + 4.0,
            total.shown
        );
    }
    let (first, last) = (series[0].days.first().map(|d| d.0), series[0].days.last().map(|d| d.0));
    if let (Some(first), Some(last)) = (first, last) {
        let _ = write!(
            svg,
            "<text x=\"{LABEL_WIDTH}\" y=\"{:.1}\" class=\"axis\">{first}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{last}</text>",
            height - 4.0,
            LABEL_WIDTH + plot,
            height - 4.0
        );
    }
    svg.push_str("</svg><p class=\"legend\"><span class=\"key accepted\"></span> accepted <span class=\"key overridden\"></span> overridden <span class=\"key unanswered\"></span> no answer</p>");
    svg.push_str("<table class=\"numbers acceptance-table\"><thead><tr><th scope=\"col\">card type</th><th scope=\"col\">shown</th><th scope=\"col\">accepted</th><th scope=\"col\">overridden</th><th scope=\"col\">acceptance</th></tr></thead><tbody>");
    for one in series {
        let total = one.total();
        let rate = if total.shown > 0 {
            format!("{:.1}%", 100.0 * total.accepted as f64 / total.shown as f64)
        } else {
            "–".into()
        };
        let _ = write!(
            svg,
            "<tr data-card-type=\"{0}\"><td>{0}</td><td>{1}</td><td class=\"accepted-count\">{2}</td><td>{3}</td><td>{rate}</td></tr>",
            escape(&one.card_type),
            total.shown,
            total.accepted,
            total.overridden
        );
    }
    svg.push_str("</tbody></table>");
    svg
}

/// One bar of a horizontal bar chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Shown after the bar ("3", "12.5 per 100").
    pub shown: String,
    /// CSS class (an indicator colour, or `reason`).
    pub class: &'static str,
}

/// Horizontal bars, longest first as given.
pub fn bars(name: &str, title: &str, bars: &[Bar]) -> String {
    if bars.is_empty() {
        return "<p class=\"empty\">Nothing to show.</p>".into();
    }
    let label_width = 260.0;
    let plot = WIDTH - label_width - 90.0;
    let most = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let row = 24.0;
    let height = row * bars.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg class=\"chart {name}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-labelledby=\"{name}-title\">\
         <title id=\"{name}-title\">{}</title>",
        escape(title)
    );
    for (index, bar) in bars.iter().enumerate() {
        let y = index as f64 * row + 4.0;
        let w = (bar.value / most * plot).max(1.0);
        let _ = write!(
            svg,
            "<g data-label=\"{0}\" data-value=\"{1}\"><text x=\"0\" y=\"{2:.1}\" class=\"label\">{3}</text>\
             <rect class=\"{4}\" x=\"{label_width}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{5:.1}\"><title>{0}: {6}</title></rect>\
             <text x=\"{7:.1}\" y=\"{2:.1}\" class=\"value\">{6}</text></g>",
            escape(&bar.label),
            bar.value,
            y + row / 2.0 + 3.0,
            escape(&shorten(&bar.label, 38)),
            bar.class,
            row - 6.0,
            escape(&bar.shown),
            label_width + w + 6.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_rows_carry_their_totals_and_escape_names() {
        let day = time::macros::date!(2026 - 03 - 02);
        let series = vec![Series {
            card_type: "<x>".into(),
            days: vec![
                (day, DayCounts { shown: 3, accepted: 1, overridden: 1 }),
                (day.next_day().unwrap(), DayCounts::default()),
            ],
        }];
        let svg = acceptance(&series);
        assert!(svg.contains("data-accepted-total=\"1\""), "{svg}");
        assert!(svg.contains("data-card-type=\"&lt;x&gt;\" data-shown=\"3\" data-accepted=\"1\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3, "accepted, overridden and unanswered: {svg}");
        assert!(svg.contains("33% of 3"));
        assert!(!svg.contains("<x>"));
    }

    #[test]
    fn bars_scale_to_the_longest() {
        let svg = bars(
            "burden",
            "t",
            &[
                Bar { label: "a".into(), value: 10.0, shown: "10".into(), class: "info" },
                Bar { label: "b".into(), value: 5.0, shown: "5".into(), class: "warning" },
            ],
        );
        assert!(svg.contains("width=\"290.0\""), "{svg}");
        assert!(svg.contains("width=\"145.0\""), "{svg}");
        assert!(bars("x", "t", &[]).contains("Nothing to show"));
    }
}
