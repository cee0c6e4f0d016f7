//! How the portal shows values: dates (in UTC, the same on the server and in the browser),
//! browsers (from their user agent) and security-log events (in words).

/// Formats unix milliseconds as a short UTC date ("Nov 27, 2026").
pub fn format_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%b %-d, %Y").to_string()).unwrap_or_default()
}

/// Formats unix milliseconds as date and time in UTC ("Nov 27, 2026, 21:45 UTC").
pub fn format_date_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%b %-d, %Y, %H:%M UTC").to_string()).unwrap_or_default()
}

/// How long before `now_ms` the time `ms` was, in words ("just now", "5 minutes ago",
/// "3 hours ago", "2 days ago"); past a month, the date.
pub fn format_relative(ms: i64, now_ms: i64) -> String {
    let seconds = (now_ms - ms).max(0) / 1_000;
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit} ago") } else { format!("{n} {unit}s ago") };
    match seconds {
        0..=59 => "just now".to_owned(),
        60..=3_599 => plural(seconds / 60, "minute"),
        3_600..=86_399 => plural(seconds / 3_600, "hour"),
        86_400..=2_591_999 => plural(seconds / 86_400, "day"),
        _ => format_date(ms),
    }
}

/// A key field of an audit event's `changed` list, in words.
fn field_in_words(field: &str) -> String {
    match field {
        "rate_limit_per_minute" | "rate_limit" => "rate limit".to_owned(),
        "daily_token_limit" => "daily token budget".to_owned(),
        "expires_at" | "expires_in_days" | "expiry" => "expiry".to_owned(),
        other => other.replace('_', " "),
    }
}

/// What an audit event says happened, in words ("Created API key “CI”", "Edited API key
/// “CI” (rate limit, models)"). Without a name in `detail`, the key's id from `target`.
pub fn describe_event(action: &str, target: Option<&str>, detail: Option<&serde_json::Value>) -> String {
    let name = detail.and_then(|d| d.get("name")).and_then(|n| n.as_str()).map(|n| format!("“{n}”"));
    let key = || {
        name.clone()
            .or_else(|| target.and_then(|t| t.strip_prefix("api_key:")).map(|id| format!("#{id}")))
            .map(|k| format!("API key {k}"))
            .unwrap_or_else(|| "an API key".to_owned())
    };
    match action {
        "session.sign_in" => "Signed in".to_owned(),
        "session.sign_out" => "Signed out".to_owned(),
        "session.revoke" => "Signed out another session".to_owned(),
        "session.sign_out_everywhere" => "Signed out everywhere".to_owned(),
        "api_key.create" => format!("Created {}", key()),
        "api_key.revoke" => format!("Revoked {}", key()),
        "api_key.roll" => format!("Rolled {}", key()),
        "admin.key_revoke" => format!("{} revoked by an administrator", key()),
        "admin.user_disable" => format!("Account {}disabled by an administrator", account(detail)),
        "admin.user_enable" => format!("Account {}enabled again by an administrator", account(detail)),
        "api_key.edit" => {
            let changed: Vec<String> = detail
                .and_then(|d| d.get("changed"))
                .and_then(|c| c.as_array())
                .map(|fields| fields.iter().filter_map(|f| f.as_str()).map(field_in_words).collect())
                .unwrap_or_default();
            if changed.is_empty() { format!("Edited {}", key()) } else { format!("Edited {} ({})", key(), changed.join(", ")) }
        }
        other => other.to_owned(),
    }
}

/// The account an administrator's event names (`ada@example.com `), or nothing.
fn account(detail: Option<&serde_json::Value>) -> String {
    detail.and_then(|d| d.get("email")).and_then(|e| e.as_str()).map(|e| format!("{e} ")).unwrap_or_default()
}

/// The id of the API key an audit event's target names (`api_key:42` → 42).
pub fn event_key_id(target: Option<&str>) -> Option<i64> {
    target?.strip_prefix("api_key:")?.parse().ok()
}

/// A short description of a browser from its User-Agent ("Chrome on macOS").
pub fn describe_user_agent(ua: &str) -> String {
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("HeadlessChrome/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else {
        ""
    };
    let os = if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        ""
    };
    match (browser, os) {
        ("", "") => "Unknown browser".to_owned(),
        (b, "") => b.to_owned(),
        ("", o) => format!("Browser on {o}"),
        (b, o) => format!("{b} on {o}"),
    }
}

#[cfg(test)]
mod user_agent_tests {
    use super::describe_user_agent;

    #[test]
    fn common_browsers_are_recognised() {
        let chrome_mac =
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
        assert_eq!(describe_user_agent(chrome_mac), "Chrome on macOS");
        let firefox_linux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe_user_agent(firefox_linux), "Firefox on Linux");
        let safari_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_user_agent(safari_ios), "Safari on iOS");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0";
        assert_eq!(describe_user_agent(edge), "Edge on Windows");
        assert_eq!(describe_user_agent(""), "Unknown browser");
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates_are_formatted_in_utc() {
        assert_eq!(format_date(1_795_815_900_000), "Nov 27, 2026");
        assert_eq!(format_date_time(1_795_815_900_000), "Nov 27, 2026, 21:45 UTC");
    }
}

#[cfg(test)]
mod event_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_are_told_in_words() {
        assert_eq!(describe_event("session.sign_in", Some("session:7"), None), "Signed in");
        assert_eq!(describe_event("session.sign_out", None, None), "Signed out");
        assert_eq!(
            describe_event("admin.key_revoke", Some("api_key:4"), Some(&json!({"name": "CI", "owner_user_id": 2}))),
            "API key “CI” revoked by an administrator"
        );
        assert_eq!(
            describe_event("admin.user_disable", Some("user:2"), Some(&json!({"email": "bob@example.com"}))),
            "Account bob@example.com disabled by an administrator"
        );
        assert_eq!(describe_event("admin.user_enable", Some("user:2"), None), "Account enabled again by an administrator");
        assert_eq!(describe_event("session.revoke", Some("session:8"), None), "Signed out another session");
        assert_eq!(describe_event("session.sign_out_everywhere", None, None), "Signed out everywhere");
        let ci = json!({"name": "CI"});
        assert_eq!(describe_event("api_key.create", Some("api_key:4"), Some(&ci)), "Created API key “CI”");
        assert_eq!(describe_event("api_key.revoke", Some("api_key:4"), Some(&ci)), "Revoked API key “CI”");
        assert_eq!(
            describe_event("api_key.roll", Some("api_key:4"), Some(&json!({"name": "CI", "replaced_by": 5}))),
            "Rolled API key “CI”"
        );
        let edit = json!({"name": "CI", "changed": ["rate_limit_per_minute", "models"]});
        assert_eq!(describe_event("api_key.edit", Some("api_key:4"), Some(&edit)), "Edited API key “CI” (rate limit, models)");
        assert_eq!(describe_event("api_key.edit", Some("api_key:4"), Some(&ci)), "Edited API key “CI”");
    }

    #[test]
    fn events_without_detail_fall_back_to_the_target() {
        assert_eq!(describe_event("api_key.create", Some("api_key:42"), None), "Created API key #42");
        assert_eq!(describe_event("api_key.revoke", None, Some(&json!("odd"))), "Revoked an API key");
        assert_eq!(describe_event("something.new", None, None), "something.new");
        assert_eq!(event_key_id(Some("api_key:42")), Some(42));
        assert_eq!(event_key_id(Some("session:42")), None);
    }

    #[test]
    fn relative_times() {
        let now = 1_795_815_900_000;
        assert_eq!(format_relative(now - 5_000, now), "just now");
        assert_eq!(format_relative(now + 5_000, now), "just now");
        assert_eq!(format_relative(now - 60_000, now), "1 minute ago");
        assert_eq!(format_relative(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(format_relative(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(format_relative(now - 2 * 86_400_000, now), "2 days ago");
        assert_eq!(format_relative(now - 40 * 86_400_000, now), "Oct 18, 2026");
    }
}
