//! How the API Keys page words a key's expiry, guardrails, paging and the choices of its
//! dialogs. Pure functions of their arguments (the time is passed in), unit-tested.

use crate::{
    display::{format_date, format_date_time},
    wire::ApiKeyView,
};

/// "1.2k", "3.4M": compact counts for the usage column.
pub fn compact_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1_000.0).replace(".0k", "k"),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0).replace(".0M", "M"),
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How urgent an expiry looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Far away, or never.
    Calm,
    /// Within a week: amber.
    Soon,
    /// Already past.
    Past,
}

/// A key's expiry in words, with its tone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryText {
    pub text: String,
    pub tone: Tone,
}

/// "Never expires", "Expires Dec 30, 2026", "Expires in 3 days" (under a week), "Expires in
/// 5 h" (under a day), "Expires in 12 min" (under an hour), "Expired Nov 2, 2026".
pub fn expiry_text(expires_at: Option<i64>, now_ms: i64) -> ExpiryText {
    let Some(at) = expires_at else {
        return ExpiryText { text: "Never expires".into(), tone: Tone::Calm };
    };
    let left = at - now_ms;
    let (text, tone) = if left <= 0 {
        (format!("Expired {}", format_date(at)), Tone::Past)
    } else if left < HOUR_MS {
        (format!("Expires in {} min", (left / MINUTE_MS).max(1)), Tone::Soon)
    } else if left < DAY_MS {
        (format!("Expires in {} h", left / HOUR_MS), Tone::Soon)
    } else if left < 7 * DAY_MS {
        let days = left / DAY_MS;
        (format!("Expires in {days} day{}", if days == 1 { "" } else { "s" }), Tone::Soon)
    } else {
        (format!("Expires {}", format_date(at)), Tone::Calm)
    };
    ExpiryText { text, tone }
}

/// The key's guardrails, compactly: "claude-4-sonnet" or "3 models", "60 req/min",
/// "12.3k / 100k tokens today" (or "100k tokens a day" when today's use is unknown).
/// Empty when the key has none.
pub fn guardrails(key: &ApiKeyView) -> Vec<String> {
    let mut parts = Vec::new();
    match key.models.as_deref() {
        None => {}
        Some([only]) => parts.push(only.clone()),
        Some(models) => parts.push(format!("{} model{}", models.len(), if models.len() == 1 { "" } else { "s" })),
    }
    if let Some(rate) = key.rate_limit_per_minute {
        parts.push(format!("{rate} req/min"));
    }
    if let Some(limit) = key.daily_token_limit {
        parts.push(match key.tokens_today {
            Some(used) => format!("{} / {} tokens today", compact_count(used), compact_count(limit)),
            None => format!("{} tokens a day", compact_count(limit)),
        });
    }
    parts
}

/// "1–50 of 130" for a page of the list (pages from 1); "0 of 0" when there is nothing.
pub fn page_range(page: u32, per_page: u32, total: u64) -> String {
    if total == 0 {
        return "0 of 0".into();
    }
    let first = u64::from(page.max(1) - 1) * u64::from(per_page) + 1;
    let last = (first + u64::from(per_page) - 1).min(total);
    if first > total { format!("{total} of {total}") } else { format!("{first}\u{2013}{last} of {total}") }
}

/// The number of the last page (at least 1).
pub fn last_page(per_page: u32, total: u64) -> u32 {
    let per_page = u64::from(per_page.max(1));
    u32::try_from(total.div_ceil(per_page).max(1)).unwrap_or(u32::MAX)
}

/// "1 day", "30 days", "1 year".
pub fn days_label(days: u32) -> String {
    match days {
        1 => "1 day".into(),
        365 => "1 year".into(),
        d => format!("{d} days"),
    }
}

/// An expiry choice with the date it lands on: "30 days — Dec 30, 2026".
pub fn expiry_choice_label(days: u32, now_ms: i64) -> String {
    format!("{} \u{2014} {}", days_label(days), format_date(now_ms + i64::from(days) * DAY_MS))
}

/// The expiries the create dialog offers (days).
pub const EXPIRY_CHOICES: [u32; 5] = [7, 30, 90, 180, 365];

/// The expiries the Edit dialog offers: only those earlier than the key's current expiry
/// (every one when it never expires).
pub fn earlier_expiry_choices(current: Option<i64>, now_ms: i64) -> Vec<u32> {
    [1, 7, 30, 90, 180, 365].into_iter().filter(|days| current.is_none_or(|at| now_ms + i64::from(*days) * DAY_MS < at)).collect()
}

/// How long a rolled key's old key keeps working: seconds and label. 24 hours is the default.
pub const GRACE_CHOICES: [(u64, &str); 4] = [(0, "Immediately"), (3_600, "1 hour"), (86_400, "24 hours"), (604_800, "7 days")];

/// The default grace of a roll (seconds).
pub const DEFAULT_GRACE: u64 = 86_400;

/// What happens to the old key of a roll with `grace_seconds`: it stops now, or at the end of
/// the grace (or at its own expiry, if that comes first).
pub fn old_key_fate(grace_seconds: u64, expires_at: Option<i64>, now_ms: i64) -> String {
    if grace_seconds == 0 {
        return "The old key stops working as soon as you roll it.".into();
    }
    let grace_ends = now_ms + i64::try_from(grace_seconds).unwrap_or(i64::MAX / 2) * 1_000;
    match expires_at {
        Some(at) if at <= grace_ends => format!("The old key keeps working until its own expiry, {}.", format_date_time(at)),
        _ => format!("The old key keeps working until {}, then stops.", format_date_time(grace_ends)),
    }
}

/// Reads the optional daily token budget: empty is no budget; thousands separators (`,`, `_`,
/// spaces) are allowed.
pub fn parse_token_budget(raw: &str) -> Result<Option<u64>, String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ',' | '_' | ' ')).collect();
    if digits.is_empty() {
        return Ok(None);
    }
    match digits.parse::<u64>() {
        Ok(n) if n >= 1 && n <= i64::MAX as u64 => Ok(Some(n)),
        _ => Err("Enter a whole number of tokens a day (at least 1), or leave it empty for no budget.".into()),
    }
}

/// A server message for a field, without the API's `backticks` around field names.
pub fn plain_message(message: &str) -> String {
    let text = message.replace('`', "");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(0), "0");
        assert_eq!(compact_count(999), "999");
        assert_eq!(compact_count(1000), "1k");
        assert_eq!(compact_count(1530), "1.5k");
        assert_eq!(compact_count(2_000_000), "2M");
    }

    const NOW: i64 = 1_795_815_900_000; // Nov 27, 2026, 21:45 UTC

    fn key() -> ApiKeyView {
        ApiKeyView { id: 1, name: "k".into(), hint: "h".into(), ..Default::default() }
    }

    #[test]
    fn expiries_are_worded_by_how_close_they_are() {
        assert_eq!(expiry_text(None, NOW), ExpiryText { text: "Never expires".into(), tone: Tone::Calm });
        assert_eq!(expiry_text(Some(NOW + 30 * DAY_MS), NOW), ExpiryText { text: "Expires Dec 27, 2026".into(), tone: Tone::Calm });
        assert_eq!(expiry_text(Some(NOW + 7 * DAY_MS), NOW).text, "Expires Dec 4, 2026");
        assert_eq!(expiry_text(Some(NOW + 7 * DAY_MS - 1), NOW), ExpiryText { text: "Expires in 6 days".into(), tone: Tone::Soon });
        assert_eq!(expiry_text(Some(NOW + DAY_MS + HOUR_MS), NOW).text, "Expires in 1 day");
        assert_eq!(expiry_text(Some(NOW + DAY_MS - 1), NOW), ExpiryText { text: "Expires in 23 h".into(), tone: Tone::Soon });
        assert_eq!(expiry_text(Some(NOW + HOUR_MS), NOW).text, "Expires in 1 h");
        assert_eq!(expiry_text(Some(NOW + 59 * MINUTE_MS), NOW).text, "Expires in 59 min");
        assert_eq!(expiry_text(Some(NOW + 10_000), NOW).text, "Expires in 1 min");
        assert_eq!(expiry_text(Some(NOW), NOW), ExpiryText { text: "Expired Nov 27, 2026".into(), tone: Tone::Past });
        assert_eq!(expiry_text(Some(NOW - 3 * DAY_MS), NOW).tone, Tone::Past);
    }

    #[test]
    fn guardrails_are_compact() {
        assert!(guardrails(&key()).is_empty());
        let one = ApiKeyView { models: Some(vec!["gpt-4o".into()]), ..key() };
        assert_eq!(guardrails(&one), ["gpt-4o"]);
        let full = ApiKeyView {
            models: Some(vec!["a".into(), "b".into()]),
            rate_limit_per_minute: Some(60),
            daily_token_limit: Some(100_000),
            tokens_today: Some(12_300),
            ..key()
        };
        assert_eq!(guardrails(&full), ["2 models", "60 req/min", "12.3k / 100k tokens today"]);
        let unknown_use = ApiKeyView { daily_token_limit: Some(5_000), ..key() };
        assert_eq!(guardrails(&unknown_use), ["5k tokens a day"]);
    }

    #[test]
    fn pages_are_described_by_their_range() {
        assert_eq!(page_range(1, 50, 0), "0 of 0");
        assert_eq!(page_range(1, 50, 7), "1\u{2013}7 of 7");
        assert_eq!(page_range(1, 50, 130), "1\u{2013}50 of 130");
        assert_eq!(page_range(2, 50, 130), "51\u{2013}100 of 130");
        assert_eq!(page_range(3, 50, 130), "101\u{2013}130 of 130");
        assert_eq!(page_range(9, 50, 130), "130 of 130");
        assert_eq!(last_page(50, 0), 1);
        assert_eq!(last_page(50, 50), 1);
        assert_eq!(last_page(50, 51), 2);
        assert_eq!(last_page(50, 130), 3);
    }

    #[test]
    fn expiry_choices_show_their_dates() {
        assert_eq!(expiry_choice_label(30, NOW), "30 days \u{2014} Dec 27, 2026");
        assert_eq!(expiry_choice_label(365, NOW), "1 year \u{2014} Nov 27, 2027");
        assert_eq!(expiry_choice_label(1, NOW), "1 day \u{2014} Nov 28, 2026");
    }

    #[test]
    fn an_edit_offers_only_earlier_expiries() {
        assert_eq!(earlier_expiry_choices(None, NOW), [1, 7, 30, 90, 180, 365]);
        assert_eq!(earlier_expiry_choices(Some(NOW + 31 * DAY_MS), NOW), [1, 7, 30]);
        assert_eq!(earlier_expiry_choices(Some(NOW + 30 * DAY_MS), NOW), [1, 7]);
        assert!(earlier_expiry_choices(Some(NOW + HOUR_MS), NOW).is_empty());
    }

    #[test]
    fn the_old_key_of_a_roll_stops_at_the_end_of_its_grace() {
        assert_eq!(old_key_fate(0, None, NOW), "The old key stops working as soon as you roll it.");
        assert_eq!(old_key_fate(3_600, None, NOW), "The old key keeps working until Nov 27, 2026, 22:45 UTC, then stops.");
        assert_eq!(
            old_key_fate(604_800, Some(NOW + DAY_MS), NOW),
            "The old key keeps working until its own expiry, Nov 28, 2026, 21:45 UTC."
        );
    }

    #[test]
    fn the_token_budget_is_optional_and_positive() {
        assert_eq!(parse_token_budget(""), Ok(None));
        assert_eq!(parse_token_budget("  "), Ok(None));
        assert_eq!(parse_token_budget("100000"), Ok(Some(100_000)));
        assert_eq!(parse_token_budget("1,000,000"), Ok(Some(1_000_000)));
        assert_eq!(parse_token_budget("50_000"), Ok(Some(50_000)));
        for bad in ["0", "-5", "1.5", "lots", "99999999999999999999"] {
            assert!(parse_token_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_lose_their_backticks() {
        assert_eq!(
            plain_message("an edit can only narrow a key's permissions; create a new key for more"),
            "An edit can only narrow a key's permissions; create a new key for more"
        );
        assert_eq!(plain_message("`models` asks for x"), "Models asks for x");
    }
}
