//! `workjet.toml`: providers and upstream timeouts.
//!
//! ```toml
//! [upstream]                 # optional; milliseconds
//! connect_ms = 5000          # TCP/TLS connect
//! first_byte_ms = 120000     # until the response headers
//! idle_ms = 60000            # between two chunks of a stream
//!
//! [[providers]]
//! name = "anthropic"
//! kind = "anthropic"                          # or "openai" for any OpenAI-compatible API
//! base_url = "https://api.anthropic.com"      # openai kind: include /v1, as the OpenAI SDK does
//! api_key_env = "ANTHROPIC_API_KEY"           # optional (a local Ollama needs none)
//! models = { "claude-4-sonnet" = "claude-sonnet-4-20250514" }   # or ["gpt-4o", "gpt-4o-mini"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

/// The file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub upstream: UpstreamTimeouts,
}

/// `openai` (pass-through to any OpenAI-compatible API) or `anthropic` (translated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
}

/// One `[[providers]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Url,
    pub api_key_env: Option<String>,
    pub models: Models,
}

/// `models`: a list (same name both sides) or a table (public name = upstream id).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Models {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl Models {
    /// (public name, upstream id) pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Models::List(list) => list.iter().map(|m| (m.clone(), m.clone())).collect(),
            Models::Map(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

/// Upstream timeouts, in milliseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub idle_ms: u64,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self { connect_ms: 5_000, first_byte_ms: 120_000, idle_ms: 60_000 }
    }
}

/// Parses and checks the file's text. Errors name the line (TOML errors carry it).
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut names = std::collections::HashSet::new();
    for p in &file.providers {
        if p.name.trim().is_empty() {
            return Err("a provider has an empty name".into());
        }
        if !names.insert(p.name.clone()) {
            return Err(format!("two providers are named {:?}", p.name));
        }
        if !matches!(p.base_url.scheme(), "http" | "https") {
            return Err(format!("provider {:?}: base_url must be http(s)", p.name));
        }
        if p.models.pairs().is_empty() {
            return Err(format!("provider {:?}: models is empty", p.name));
        }
        if p.models.pairs().iter().any(|(public, upstream)| public.is_empty() || upstream.is_empty()) {
            return Err(format!("provider {:?}: a model name is empty", p.name));
        }
    }
    for (name, value) in
        [("connect_ms", file.upstream.connect_ms), ("first_byte_ms", file.upstream.first_byte_ms), ("idle_ms", file.upstream.idle_ms)]
    {
        if value == 0 {
            return Err(format!("upstream.{name} must be at least 1"));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_model_forms_parse() {
        let file = parse(
            r#"
            [[providers]]
            name = "anthropic"
            kind = "anthropic"
            base_url = "https://api.anthropic.com"
            api_key_env = "ANTHROPIC_API_KEY"
            models = { "claude-4-sonnet" = "claude-sonnet-4-20250514" }

            [[providers]]
            name = "local"
            kind = "openai"
            base_url = "http://127.0.0.1:11434/v1"
            models = ["llama3.2"]
            "#,
        )
        .expect("valid");
        assert_eq!(file.providers.len(), 2);
        assert_eq!(file.providers[0].models.pairs(), vec![("claude-4-sonnet".to_owned(), "claude-sonnet-4-20250514".to_owned())]);
        assert_eq!(file.providers[1].models.pairs(), vec![("llama3.2".to_owned(), "llama3.2".to_owned())]);
        assert_eq!(file.upstream, UpstreamTimeouts::default());
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("[[providers]]\nname = \"x\"\nkind = \"cohere\"\nbase_url = \"https://x\"\nmodels = [\"m\"]\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let err =
            parse("[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"https://x\"\nmodels = [\"m\"]\ntypo = 1\n").unwrap_err();
        assert!(err.contains("line 6") && err.contains("typo"), "{err}");
        assert!(parse("[upstream]\nidle_ms = 0\n").is_err());
        let dup = "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"https://x\"\nmodels = [\"m\"]\n[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"https://y\"\nmodels = [\"n\"]\n";
        assert!(parse(dup).unwrap_err().contains("two providers"));
    }
}
