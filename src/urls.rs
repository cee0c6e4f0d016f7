//! Same-site links: which return paths are safe to send a browser back to, and query values
//! encoded for them.

/// A same-origin path that is safe to send a browser back to after sign-in, or `None`.
/// Rejects absolute and scheme-relative URLs (`//evil`, `/\evil`), control characters and
/// overlong values, so `return_to` can never become an open redirect.
pub fn safe_return_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(path)
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters pass through).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_cannot_leave_the_site() {
        assert_eq!(safe_return_path("/settings/api-keys"), Some("/settings/api-keys"));
        assert_eq!(safe_return_path("/settings/api-keys?tab=1"), Some("/settings/api-keys?tab=1"));
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "evil", "", "/a\nb", "/a b", "/\t/evil"] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(600))), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("/settings/api-keys?x=1&y"), "/settings/api-keys%3Fx%3D1%26y");
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }
}
