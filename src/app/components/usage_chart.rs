//! A key's usage as an SVG bar chart, drawn by hand (no chart library): requests on top,
//! tokens below, one bar pair per hour or day, each with a `<title>` tooltip. The SVG is a
//! string built the same way on the server and in the browser, so hydration finds it as
//! rendered.

use leptos::prelude::*;

use crate::{app::components::key_format::compact_count, wire::UsageBucketView};

/// How the buckets of a chart are labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Hourly buckets: "14:00".
    Hours,
    /// Daily buckets: "Nov 3".
    Days,
}

impl Period {
    fn axis_label(self, ms: i64) -> String {
        let at = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            Self::Hours => at.format("%H:00").to_string(),
            Self::Days => at.format("%b %-d").to_string(),
        }
    }

    fn bucket_label(self, ms: i64) -> String {
        let at = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            Self::Hours => {
                let end = at + chrono::Duration::hours(1);
                format!("{}–{} UTC", at.format("%b %-d, %H:00"), end.format("%H:00"))
            }
            Self::Days => at.format("%a, %b %-d (UTC)").to_string(),
        }
    }

    /// Every how many buckets the x axis has a label.
    fn label_every(self) -> usize {
        match self {
            Self::Hours => 6,
            Self::Days => 7,
        }
    }

    fn span(self) -> &'static str {
        match self {
            Self::Hours => "the last 24 hours",
            Self::Days => "the last 30 days",
        }
    }
}

const WIDTH: f64 = 640.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const PANEL: f64 = 72.0;
const REQUESTS_TOP: f64 = 22.0;
const TOKENS_TOP: f64 = 128.0;
const AXIS_Y: f64 = TOKENS_TOP + PANEL + 16.0;
const HEIGHT: f64 = AXIS_Y + 6.0;
const REQUESTS_COLOUR: &str = "#0ea5e9";
const TOKENS_COLOUR: &str = "#6366f1";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{} {many}", compact_count(n)) }
}

/// The accessible summary of a chart ("Requests and tokens per hour over the last 24 hours:
/// 12 requests, 3.4k tokens in all").
pub fn summary(buckets: &[UsageBucketView], period: Period) -> String {
    let requests: u64 = buckets.iter().map(|b| b.requests).sum();
    let tokens: u64 = buckets.iter().map(|b| b.tokens).sum();
    let per = if period == Period::Hours { "hour" } else { "day" };
    if requests == 0 && tokens == 0 {
        format!("Requests and tokens per {per} over {}: no requests.", period.span())
    } else {
        format!(
            "Requests and tokens per {per} over {}: {} and {} in all.",
            period.span(),
            plural(requests, "request", "requests"),
            plural(tokens, "token", "tokens")
        )
    }
}

/// The chart's SVG document.
pub fn render_svg(buckets: &[UsageBucketView], period: Period) -> String {
    use std::fmt::Write;
    let n = buckets.len().max(1);
    let step = (WIDTH - LEFT - RIGHT) / n as f64;
    let gap = (step * 0.25).clamp(1.0, 6.0);
    let max_requests = buckets.iter().map(|b| b.requests).max().unwrap_or(0);
    let max_tokens = buckets.iter().map(|b| b.tokens).max().unwrap_or(0);
    let mut svg = String::with_capacity(8_192);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" class="h-auto w-full min-w-[30rem]" font-family="ui-sans-serif, system-ui, sans-serif" font-size="11">"#,
        escape(&summary(buckets, period))
    );
    for (top, label, max) in [(REQUESTS_TOP, "Requests", max_requests), (TOKENS_TOP, "Tokens", max_tokens)] {
        let base = top + PANEL;
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" fill="#334155" font-weight="600">{label}</text><line x1="{LEFT}" x2="{}" y1="{top}" y2="{top}" stroke="#e2e8f0" stroke-dasharray="3 3"/><line x1="{LEFT}" x2="{}" y1="{base}" y2="{base}" stroke="#cbd5e1"/><text x="{}" y="{}" fill="#64748b" text-anchor="end">0</text>"##,
            top - 8.0,
            WIDTH - RIGHT,
            WIDTH - RIGHT,
            LEFT - 6.0,
            base + 4.0,
        );
        if max > 0 {
            // The scale's top: the busiest bucket.
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" fill="#64748b" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                top + 4.0,
                compact_count(max)
            );
        }
        if max == 0 {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" fill="#94a3b8" text-anchor="middle">No {} in this period</text>"##,
                LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
                top + PANEL / 2.0 + 4.0,
                label.to_lowercase()
            );
        }
    }
    for (i, b) in buckets.iter().enumerate() {
        let x = LEFT + i as f64 * step;
        let title = format!(
            "{}: {}, {}",
            period.bucket_label(b.start),
            plural(b.requests, "request", "requests"),
            plural(b.tokens, "token", "tokens")
        );
        let _ = write!(svg, r#"<g class="bar"><title>{}</title>"#, escape(&title));
        // The whole column answers the pointer, so that empty buckets have their tooltip too.
        let _ =
            write!(svg, r#"<rect x="{x:.2}" y="{REQUESTS_TOP}" width="{step:.2}" height="{}" fill="transparent"/>"#, AXIS_Y - REQUESTS_TOP);
        for (value, max, top, colour) in
            [(b.requests, max_requests, REQUESTS_TOP, REQUESTS_COLOUR), (b.tokens, max_tokens, TOKENS_TOP, TOKENS_COLOUR)]
        {
            if value > 0 && max > 0 {
                let h = (value as f64 / max as f64 * PANEL).max(2.0);
                let _ = write!(
                    svg,
                    r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" rx="1.5" fill="{colour}"/>"#,
                    x + gap / 2.0,
                    top + PANEL - h,
                    step - gap
                );
            }
        }
        svg.push_str("</g>");
        let last = i + 1 == buckets.len();
        let every = period.label_every();
        if i % every == 0 || (last && i % every >= 3) {
            let _ = write!(
                svg,
                r##"<text x="{:.2}" y="{AXIS_Y}" fill="#64748b" text-anchor="middle">{}</text>"##,
                x + step / 2.0,
                escape(&period.axis_label(b.start))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A titled card with the chart and its legend.
#[component]
pub fn UsageChart(title: &'static str, buckets: Vec<UsageBucketView>, period: Period) -> impl IntoView {
    let requests: u64 = buckets.iter().map(|b| b.requests).sum();
    let tokens: u64 = buckets.iter().map(|b| b.tokens).sum();
    let svg = render_svg(&buckets, period);
    view! {
        <figure class="min-w-0 rounded-xl border border-slate-200 bg-white p-4 shadow-xs sm:p-5">
            <figcaption class="flex flex-wrap items-baseline justify-between gap-x-4 gap-y-1">
                <span class="text-sm font-semibold text-slate-900">{title}</span>
                <span class="flex items-center gap-4 text-xs text-slate-600">
                    <span class="inline-flex items-center gap-1.5">
                        <span class="h-2.5 w-2.5 rounded-sm bg-sky-500" aria-hidden="true"></span>
                        {format!("{} requests", compact_count(requests))}
                    </span>
                    <span class="inline-flex items-center gap-1.5">
                        <span class="h-2.5 w-2.5 rounded-sm bg-indigo-500" aria-hidden="true"></span>
                        {format!("{} tokens", compact_count(tokens))}
                    </span>
                </span>
            </figcaption>
            <div class="-mx-1 mt-3 overflow-x-auto px-1" inner_html=svg></div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(values: &[(u64, u64)]) -> Vec<UsageBucketView> {
        values
            .iter()
            .enumerate()
            .map(|(i, &(requests, tokens))| UsageBucketView { start: i as i64 * 3_600_000, requests, tokens })
            .collect()
    }

    #[test]
    fn every_bucket_has_a_tooltip_and_only_non_empty_ones_a_bar() {
        let mut values = vec![(0, 0); 24];
        values[3] = (2, 1_500);
        values[23] = (1, 10);
        let svg = render_svg(&buckets(&values), Period::Hours);
        assert_eq!(svg.matches("<title>").count(), 24);
        assert_eq!(svg.matches(REQUESTS_COLOUR).count(), 2);
        assert_eq!(svg.matches(TOKENS_COLOUR).count(), 2);
        assert!(svg.contains("Jan 1, 03:00–04:00 UTC: 2 requests, 1.5k tokens"), "{svg}");
        assert!(svg.contains(r#"role="img""#) && svg.contains("3 requests and 1.5k tokens in all"), "{svg}");
        assert!(svg.contains(">00:00<") && svg.contains(">18:00<") && svg.contains(">23:00<"), "axis labels");
    }

    #[test]
    fn all_zero_data_draws_no_bars_and_says_so() {
        let svg = render_svg(&buckets(&[(0, 0); 30]), Period::Days);
        assert_eq!(svg.matches("<title>").count(), 30);
        assert!(!svg.contains(REQUESTS_COLOUR) && !svg.contains(TOKENS_COLOUR));
        assert!(svg.contains("No requests in this period") && svg.contains("no requests."));
        assert_eq!(svg.matches(">0<").count(), 2, "one zero per panel, no scale top");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(render_svg(&[], Period::Days).ends_with("</svg>"));
    }
}
