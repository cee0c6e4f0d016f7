//! `KeyName`: a key's descriptive name — trimmed, 1 to 100 characters, any Unicode except
//! control characters (they corrupt logs and terminals; PostgreSQL refuses NUL outright).

/// A valid key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName(String);

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

impl KeyName {
    /// Trims and checks a name; the error is a sentence to show beside the field.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("Enter a name for the key, such as \"CI/CD Pipeline\".".into());
        }
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!("The name is {chars} characters long; use at most {MAX_NAME_CHARS}."));
        }
        if name.chars().any(char::is_control) {
            return Err("The name cannot contain control characters (line breaks, tabs, NUL).".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  CI/CD Pipeline \t").expect("valid").as_str(), "CI/CD Pipeline");
        assert!(KeyName::parse("").is_err());
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"a".repeat(100)).is_ok());
        assert!(KeyName::parse(&"a".repeat(101)).is_err());
        // Characters, not bytes: 100 emoji are fine.
        assert!(KeyName::parse(&"🔑".repeat(100)).is_ok());
        assert!(KeyName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn any_unicode_but_no_control_characters() {
        for ok in ["Desktop App", "Déploiement", "本番キー", "<script>alert(1)</script>", "'; DROP TABLE api_keys; --"] {
            assert!(KeyName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a\u{0}b", "line\nbreak", "tab\tinside", "bell\u{7}", "c1\u{85}inside"] {
            assert!(KeyName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
