//! Upstream model providers: the `[[providers]]` of `workjet.toml`, the model routing
//! table, and the two kinds of upstream (any OpenAI-compatible API, and Anthropic's
//! Messages API, translated both ways).

pub mod anthropic;
pub mod config;
pub mod sse;

pub use config::{FileConfig, ProviderConfig, ProviderKind, UpstreamTimeouts};

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use secrecy::SecretString;
use url::Url;

/// One configured provider, with its pooled HTTP client.
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Url,
    pub api_key: Option<SecretString>,
    pub client: reqwest::Client,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Where a public model name goes.
#[derive(Clone, Debug)]
pub struct Route {
    pub provider: Arc<Provider>,
    pub upstream_model: String,
}

/// Every configured model, by public name.
#[derive(Debug, Default)]
pub struct Registry {
    pub routes: BTreeMap<String, Route>,
    pub timeouts: UpstreamTimeouts,
}

impl Registry {
    /// Builds the routing table; `env` resolves `api_key_env` names.
    pub fn build(file: &FileConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        let timeouts = file.upstream.clone();
        for p in &file.providers {
            let api_key = match &p.api_key_env {
                None => None,
                Some(var) => Some(SecretString::from(
                    env(var)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| format!("provider {:?}: the environment variable {var} (api_key_env) is not set", p.name))?,
                )),
            };
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(timeouts.connect_ms))
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(512)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("workjet/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("provider {:?}: cannot build its HTTP client: {e}", p.name))?;
            let provider = Arc::new(Provider { name: p.name.clone(), kind: p.kind, base_url: p.base_url.clone(), api_key, client });
            for (public, upstream) in p.models.pairs() {
                if routes.contains_key(&public) {
                    return Err(format!("model {public:?} is served by two providers; public model names must be unique"));
                }
                routes.insert(public, Route { provider: provider.clone(), upstream_model: upstream });
            }
        }
        Ok(Self { routes, timeouts })
    }

    pub fn route(&self, model: &str) -> Option<&Route> {
        self.routes.get(model)
    }
}
