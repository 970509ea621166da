//! The dashboard's chart, drawn on the server as inline SVG (no script, nothing fetched): codes
//! started and approved per hour as pairs of bars, with a legend, both axes labelled with their
//! units, tick labels, grid lines, a title and a description for screen readers, and a tooltip
//! on every bar. Colours come from the page's style sheet (`.bar-started`, `.bar-approved`), so
//! that they suit light and dark pages.
use super::texts::AdminTexts;
use chrono::{DateTime, Duration, Utc};
use phonegate_core::traffic::Counts;
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 380.0;
// The plot's box: left and right, top and bottom.
const X0: f64 = 72.0;
const X1: f64 = 944.0;
const Y0: f64 = 52.0;
const Y1: f64 = 316.0;

/// A step between grid lines of 1, 2 or 5 times a power of ten, giving about five lines up
/// to at least `max`; and the top of the scale.
fn scale(max: u32) -> (u32, u32) {
    let raw = f64::from(max.max(4)) / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(raw).max(1.0) as u32;
    (step, max.max(1).div_ceil(step) * step)
}

/// Text for SVG: `<`, `>`, `&` and quotes escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart of `hours` (the first starting at `first`), in the words of `a`.
pub fn hours(a: &AdminTexts, hours: &[Counts], first: DateTime<Utc>) -> String {
    let max = hours.iter().map(|c| c.started.max(c.approved)).max().unwrap_or(0);
    let (step, top) = scale(max);
    let y = |v: u32| Y1 - (Y1 - Y0) * f64::from(v) / f64::from(top);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" font-size="15"><title id="chart-title">{}</title><desc id="chart-desc">{}</desc>"#,
        escape(a.chart_title),
        escape(a.chart_desc)
    );
    // Grid lines and the count axis with its ticks and label.
    for v in (0..=top).step_by(step as usize) {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{X0}" y1="{y:.1}" x2="{X1}" y2="{y:.1}"/><text x="{:.1}" y="{y:.1}" text-anchor="end" dominant-baseline="middle" fill="currentColor">{v}</text>"#,
            X0 - 10.0,
            y = y(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis-label" transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle" fill="currentColor">{}</text>"#,
        (Y0 + Y1) / 2.0,
        escape(a.axis_codes)
    );
    bars(&mut svg, a, hours, first, y);
    // The hour axis: its line, its label.
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{X0}" y1="{Y1}" x2="{X1}" y2="{Y1}"/><text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle" fill="currentColor">{}</text>"#,
        (X0 + X1) / 2.0,
        HEIGHT - 12.0,
        escape(a.axis_hours)
    );
    legend(&mut svg, a);
    svg.push_str("</svg>");
    svg
}

/// A pair of bars per hour, each with its tooltip, and every third hour's label.
fn bars(svg: &mut String, a: &AdminTexts, hours: &[Counts], first: DateTime<Utc>, y: impl Fn(u32) -> f64) {
    let slot = (X1 - X0) / hours.len().max(1) as f64;
    let bar = ((slot - 8.0) / 2.0).max(1.0);
    for (i, c) in hours.iter().enumerate() {
        let x = X0 + slot * i as f64 + 4.0;
        let hour = (first + Duration::hours(i as i64)).format("%H:00").to_string();
        for (class, value, word, at) in
            [("bar-started", c.started, a.started_total, x), ("bar-approved", c.approved, a.approved_total, x + bar)]
        {
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{at:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"><title>{hour}: {value} {}</title></rect>"#,
                y(value),
                Y1 - y(value),
                escape(word)
            );
        }
        let centre = X0 + slot * (i as f64 + 0.5);
        let _ = write!(svg, r#"<line class="axis" x1="{centre:.1}" y1="{Y1}" x2="{centre:.1}" y2="{:.1}"/>"#, Y1 + 5.0);
        if i % 3 == 0 {
            let _ = write!(svg, r#"<text x="{centre:.1}" y="{:.1}" text-anchor="middle" fill="currentColor">{hour}</text>"#, Y1 + 24.0);
        }
    }
}

/// The legend above the plot: a swatch and the series' name for each.
fn legend(svg: &mut String, a: &AdminTexts) {
    let mut x = X0;
    for (class, name) in [("bar-started", a.started), ("bar-approved", a.approved)] {
        let _ = write!(
            svg,
            r#"<g class="legend"><rect class="{class}" x="{x:.1}" y="14" width="16" height="16"/><text x="{:.1}" y="27" fill="currentColor">{}</text></g>"#,
            x + 24.0,
            escape(name)
        );
        x += 24.0 + 9.0 * name.chars().count() as f64 + 32.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_has_about_five_round_steps_up_to_the_largest_value() {
        assert_eq!(scale(0), (1, 1));
        assert_eq!(scale(3), (1, 3));
        assert_eq!(scale(7), (2, 8));
        assert_eq!(scale(10), (2, 10));
        assert_eq!(scale(23), (5, 25));
        assert_eq!(scale(99), (20, 100));
        assert_eq!(scale(1234), (500, 1500));
    }

    #[test]
    fn the_chart_has_a_title_a_legend_and_labelled_axes() {
        let counts = vec![Counts { started: 3, approved: 1 }; 24];
        let first = DateTime::from_timestamp(1_777_000_000, 0).unwrap();
        let svg = hours(&super::super::texts::DE, &counts, first);
        for part in ["<title id=\"chart-title\">Gestartete und bestätigte Codes pro Stunde</title>", "Codes pro Stunde", "Stunde (UTC)"] {
            assert!(svg.contains(part), "{part}: {svg}");
        }
        assert_eq!(svg.matches("class=\"legend\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"bar-started\"").count(), 25, "24 bars and the legend's swatch");
        assert!(svg.contains(">3 gestartet</title>") || svg.contains(": 3 gestartet</title>"));
    }
}
