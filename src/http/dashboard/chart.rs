//! Events per hour stacked by category, drawn as inline SVG on the server: no script, no CDN, and every label is
//! text that maud escapes.

use std::collections::BTreeMap;

use maud::{html, Markup};

use crate::store::activity::HourRow;

/// The categories with a colour of their own, and their colours: Okabe and Ito's eight, then Paul Tol's muted
/// palette, chosen to stay apart for the common kinds of colour blindness. Anything else is grey.
const COLOURS: [(&str, &str); 11] = [
    ("authentication", "#D55E00"),
    ("configuration", "#0072B2"),
    ("integrity", "#CC79A7"),
    ("hardware", "#E69F00"),
    ("availability", "#009E73"),
    ("network", "#56B4E9"),
    ("intrusion_detection", "#000000"),
    ("audit", "#332288"),
    ("key_management", "#DDCC77"),
    ("session", "#882255"),
    ("process", "#44AA99"),
];

/// The colour of each category (and of anything else), fixed so that charts read the same on every page.
pub fn colour(category: &str) -> &'static str {
    COLOURS.iter().find(|(name, _)| *name == category).map_or("#BBBBBB", |(_, colour)| colour)
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;

/// A stacked bar per hour for the `hours` hours ending with `last_hour`.
pub fn hourly(rows: &[HourRow], last_hour: i64, hours: i64) -> Markup {
    let first_hour = last_hour - hours + 1;
    let mut bars: BTreeMap<i64, BTreeMap<&str, i64>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.hour >= first_hour && r.hour <= last_hour) {
        *bars.entry(row.hour).or_default().entry(row.category.as_str()).or_default() += row.events;
    }
    let highest = bars.values().map(|b| b.values().sum::<i64>()).max().unwrap_or(0).max(1);
    let categories: std::collections::BTreeSet<&str> = bars.values().flat_map(|b| b.keys().copied()).collect();
    let slot = (WIDTH - LEFT) / hours as f64;
    let scale = (HEIGHT - BOTTOM - 10.0) / highest as f64;
    html! {
        figure.chart {
            svg role="img" aria-label="Events per hour by category" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) {
                text x="0" y="12" class="axis" { (highest) }
                text x="0" y=(HEIGHT - BOTTOM) class="axis" { "0" }
                line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) class="baseline" {}
                @for hour in first_hour..=last_hour {
                    @let x = LEFT + (hour - first_hour) as f64 * slot;
                    @if let Some(stack) = bars.get(&hour) {
                        @let mut y = HEIGHT - BOTTOM;
                        @for (category, count) in stack {
                            @let h = *count as f64 * scale;
                            @let top = { y -= h; y };
                            rect x=(format!("{:.1}", x + 1.0)) y=(format!("{top:.1}")) width=(format!("{:.1}", slot - 2.0)) height=(format!("{h:.1}")) fill=(colour(category)) {
                                title { (hour_label(hour)) " " (category) ": " (count) }
                            }
                        }
                    }
                    @if (hour - first_hour) % 6 == 0 {
                        text x=(format!("{x:.1}")) y=(HEIGHT - 4.0) class="axis" { (hour_label(hour)) }
                    }
                }
            }
            figcaption {
                @for category in &categories {
                    // A presentation attribute, not a style: the Content-Security-Policy forbids inline styles.
                    span.legend { svg.swatch width="10" height="10" { rect width="10" height="10" fill=(colour(category)) {} } " " (category) }
                }
                @if categories.is_empty() { "No events in these hours." }
            }
        }
    }
}

/// `HH:00` (UTC) of an hour since the epoch.
fn hour_label(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0).map_or_else(String::new, |t| t.format("%H:00").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour: i64, category: &str, events: i64) -> HourRow {
        HourRow { hour, host: "h".into(), category: category.into(), events, failed_logins: 0 }
    }

    #[test]
    fn every_category_has_a_colour_of_its_own() {
        let mut colours: Vec<&str> = COLOURS.iter().map(|(_, c)| *c).chain([colour("anything else")]).collect();
        colours.sort_unstable();
        colours.dedup();
        assert_eq!(colours.len(), COLOURS.len() + 1);
    }

    #[test]
    fn bars_stack_and_labels_are_escaped() {
        let svg = hourly(&[row(100, "authentication", 3), row(100, "<script>", 1), row(90, "hardware", 5)], 100, 24)
            .into_string();
        assert_eq!(svg.matches("<rect x=").count(), 3, "three bar segments: {svg}");
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"), "{svg}");
    }
}
