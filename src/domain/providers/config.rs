//! `workjet.toml`: providers and upstream timeouts (every option is shown, commented, in
//! `workjet.example.toml`). Without a file, [`from_environment`] builds the same
//! configuration from the variables the providers' own SDKs read.
//!
//! ```toml
//! [upstream]                 # optional; milliseconds
//! connect_ms = 5000          # TCP/TLS connect
//! first_byte_ms = 120000     # until the response headers
//! idle_ms = 60000            # between two chunks of a stream
//! cooldown_ms = 10000        # a failed provider is skipped this long (0: never skipped)
//!
//! [[providers]]
//! name = "anthropic"
//! kind = "anthropic"                          # or "openai" for any OpenAI-compatible API
//! base_url = "https://api.anthropic.com"      # openai kind: include /v1, as the OpenAI SDK does
//! api_key_env = "ANTHROPIC_API_KEY"           # optional (a local Ollama needs none)
//! models = { "claude-4-sonnet" = "claude-sonnet-4-20250514" }   # or ["gpt-4o", "gpt-4o-mini"]
//! ```

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
    Map(OrderedTable),
}

impl Models {
    /// (public name, upstream id) pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Models::List(list) => list.iter().map(|m| (m.clone(), m.clone())).collect(),
            Models::Map(map) => map.0.clone(),
        }
    }
}

/// A table of strings in the file's order (the order the portal shows models in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderedTable(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedTable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedTable;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of public model names to upstream model ids")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedTable, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(OrderedTable(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Upstream timeouts, in milliseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub idle_ms: u64,
    /// How long a provider that failed is skipped while the model has other providers.
    pub cooldown_ms: u64,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self { connect_ms: 5_000, first_byte_ms: 120_000, idle_ms: 60_000, cooldown_ms: 10_000 }
    }
}

/// The public model names an `ANTHROPIC_API_KEY` alone serves, and Anthropic's ids for them:
/// the names people write (`claude-4-sonnet`, as in the API documentation's examples),
/// Anthropic's own aliases, and the dated ids themselves.
pub const ANTHROPIC_MODELS: &[(&str, &str)] = &[
    ("claude-4-sonnet", "claude-sonnet-4-20250514"),
    ("claude-sonnet-4", "claude-sonnet-4-20250514"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ("claude-4-opus", "claude-opus-4-20250514"),
    ("claude-opus-4", "claude-opus-4-20250514"),
    ("claude-opus-4-20250514", "claude-opus-4-20250514"),
    ("claude-opus-4-1", "claude-opus-4-1-20250805"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1-20250805"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
    ("claude-opus-4-5", "claude-opus-4-5-20251101"),
    ("claude-opus-4-5-20251101", "claude-opus-4-5-20251101"),
    ("claude-3-5-haiku", "claude-3-5-haiku-20241022"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
];

/// The public model names an `OPENAI_API_KEY` alone serves (the same names upstream).
pub const OPENAI_MODELS: &[&str] =
    &["gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o3", "o3-mini", "o4-mini"];

/// Without a file: an `anthropic` provider when `ANTHROPIC_API_KEY` is set (at
/// `ANTHROPIC_BASE_URL`, default `https://api.anthropic.com`) and an `openai` provider when
/// `OPENAI_API_KEY` is set (at `OPENAI_BASE_URL`, default `https://api.openai.com/v1`).
/// Returns the configuration and the variables it came from, or the variable at fault and
/// what is wrong with it.
pub fn from_environment(var: impl Fn(&str) -> Option<String>) -> Result<(FileConfig, Vec<&'static str>), (&'static str, String)> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let base = |name: &'static str, default: &str| -> Result<Url, (&'static str, String)> {
        let text = set(name).unwrap_or_else(|| default.to_owned());
        let url = Url::parse(text.trim()).map_err(|e| (name, e.to_string()))?;
        check_base_url(&url).map_err(|problem| (name, problem.to_owned()))?;
        Ok(url)
    };
    let mut file = FileConfig::default();
    let mut used = Vec::new();
    if set("ANTHROPIC_API_KEY").is_some() {
        used.push("ANTHROPIC_API_KEY");
        file.providers.push(ProviderConfig {
            name: "anthropic".into(),
            kind: ProviderKind::Anthropic,
            base_url: base("ANTHROPIC_BASE_URL", "https://api.anthropic.com")?,
            api_key_env: Some("ANTHROPIC_API_KEY".into()),
            models: Models::Map(OrderedTable(
                ANTHROPIC_MODELS.iter().map(|(public, id)| ((*public).to_owned(), (*id).to_owned())).collect(),
            )),
        });
    }
    if set("OPENAI_API_KEY").is_some() {
        used.push("OPENAI_API_KEY");
        file.providers.push(ProviderConfig {
            name: "openai".into(),
            kind: ProviderKind::Openai,
            base_url: base("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
            api_key_env: Some("OPENAI_API_KEY".into()),
            models: Models::List(OPENAI_MODELS.iter().map(|m| (*m).to_owned()).collect()),
        });
    }
    Ok((file, used))
}

/// What a provider's base URL must be: http(s), without credentials (a key belongs in
/// `api_key_env`, never in a URL that start-up logs and errors print) or a fragment.
fn check_base_url(url: &Url) -> Result<(), &'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        Err("must be an http(s) URL")
    } else if !url.username().is_empty() || url.password().is_some() {
        Err("must not carry credentials (user:password@): name the key's variable in api_key_env")
    } else if url.fragment().is_some() {
        Err("must not have a #fragment")
    } else {
        Ok(())
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
        if let Err(problem) = check_base_url(&p.base_url) {
            return Err(format!("provider {:?}: base_url {problem}", p.name));
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
    fn a_base_url_with_credentials_or_a_fragment_is_refused_without_echoing_them() {
        let file = |url: &str| format!("[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"{url}\"\nmodels = [\"m\"]\n");
        for url in ["https://user:s3cret@api.example/v1", "https://:s3cret@api.example/v1", "https://user@api.example/v1"] {
            let error = parse(&file(url)).expect_err(url);
            assert!(error.contains("must not carry credentials") && !error.contains("s3cret"), "{error}");
        }
        assert!(parse(&file("https://api.example/v1#x")).expect_err("fragment").contains("fragment"));
        let env = |name: &str| match name {
            "OPENAI_API_KEY" => Some("k".to_owned()),
            "OPENAI_BASE_URL" => Some("https://user:s3cret@api.example/v1".to_owned()),
            _ => None,
        };
        let (variable, problem) = from_environment(env).expect_err("refused");
        assert_eq!(variable, "OPENAI_BASE_URL");
        assert!(problem.contains("must not carry credentials") && !problem.contains("s3cret"), "{problem}");
        assert!(parse(&file("https://api.example/v1?api-version=1")).is_ok(), "a query is kept");
    }

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
        let ordered = parse(
            "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://x/v1\"\nmodels = { \"z\" = \"1\", \"a\" = \"2\" }\n",
        )
        .expect("valid");
        assert_eq!(ordered.providers[0].models.pairs(), [("z".into(), "1".into()), ("a".into(), "2".into())], "the file's order");
        assert_eq!(file.upstream, UpstreamTimeouts::default());
    }

    #[test]
    fn the_environment_alone_configures_anthropic_and_openai() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let (file, used) = from_environment(env(&[])).expect("ok");
        assert!(file.providers.is_empty() && used.is_empty());
        let (file, used) =
            from_environment(env(&[("ANTHROPIC_API_KEY", "sk-ant-x"), ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")])).expect("ok");
        assert_eq!(used, ["ANTHROPIC_API_KEY"]);
        let anthropic = &file.providers[0];
        assert_eq!((anthropic.kind, anthropic.base_url.as_str()), (ProviderKind::Anthropic, "http://127.0.0.1:9/"));
        assert_eq!(anthropic.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        assert!(anthropic.models.pairs().contains(&("claude-4-sonnet".into(), "claude-sonnet-4-20250514".into())), "the seed's model name");
        let (file, used) = from_environment(env(&[("OPENAI_API_KEY", "sk-x"), ("ANTHROPIC_API_KEY", " ")])).expect("ok");
        assert_eq!(used, ["OPENAI_API_KEY"], "a blank key is no key");
        assert_eq!(file.providers[0].base_url.as_str(), "https://api.openai.com/v1");
        assert!(file.providers[0].models.pairs().iter().any(|(m, _)| m == "gpt-4o"));
        assert_eq!(
            from_environment(env(&[("OPENAI_API_KEY", "sk-x"), ("OPENAI_BASE_URL", "ftp://x")])).unwrap_err(),
            ("OPENAI_BASE_URL", "must be an http(s) URL".to_owned())
        );
    }

    #[test]
    fn the_shipped_example_parses_and_shows_the_defaults() {
        let file = parse(include_str!("../../../workjet.example.toml")).expect("workjet.example.toml is valid");
        assert_eq!(file.upstream, UpstreamTimeouts::default(), "the example's [upstream] values are the defaults");
        let names: Vec<&str> = file.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["anthropic", "openai"]);
        assert!(file.providers[0].models.pairs().contains(&("claude-4-sonnet".into(), "claude-sonnet-4-20250514".into())));
        // The commented-out tables are valid too.
        let mut in_table = false;
        let mut uncommented = Vec::new();
        for line in include_str!("../../../workjet.example.toml").lines() {
            in_table = (in_table && line.starts_with("# ")) || line == "# [[providers]]";
            uncommented.push(if in_table { &line[2..] } else { line });
        }
        let uncommented = uncommented.join("\n");
        let all = parse(&uncommented).expect("every example table is valid");
        assert_eq!(all.providers.len(), 4);
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
