//! Upstream model providers: the `[[providers]]` of `workjet.toml` (or, without a file, the
//! providers the environment's `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` imply), the routing
//! table from public model names to an ordered list of providers, and each provider's health
//! for failover. Each kind of provider speaks its own API ([`api::ProviderApi`]); the
//! [`gateway`] sends a request to the first healthy provider of its model and relays the
//! answer back.

pub mod anthropic;
pub mod api;
pub mod client;
pub mod config;
pub mod gateway;
pub mod h1;
pub mod openai;
pub mod sse;

pub use api::Usage;
pub use config::{FileConfig, ProviderConfig, ProviderKind, UpstreamTimeouts};

use std::{
    collections::BTreeMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::header::HeaderMap;
use url::Url;

use self::api::ProviderApi;

/// One configured provider, with its pooled HTTP client and its health.
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Url,
    /// Where its API's requests go: `base_url` joined with the API's path, parsed once.
    pub endpoint: http::Uri,
    /// The provider's credentials as request headers (marked sensitive: never logged).
    auth_headers: HeaderMap,
    client: client::UpstreamClient,
    /// Until when (ms since [`clock`]'s start) the provider is cooling down after a failure;
    /// 0 when healthy.
    cooling_until_ms: AtomicU64,
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

/// The API a kind of provider speaks.
fn api_of(kind: ProviderKind) -> &'static dyn ProviderApi {
    match kind {
        ProviderKind::Openai => &openai::OpenAi,
        ProviderKind::Anthropic => &anthropic::Anthropic,
    }
}

/// `base` joined with `path` (`base`'s own path kept).
fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{path}"));
    url
}

/// Milliseconds since the first call: a monotonic clock for cool-downs.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Provider {
    /// Whether the provider failed recently and is being skipped.
    pub fn cooling_down(&self) -> bool {
        let until = self.cooling_until_ms.load(Ordering::Relaxed);
        until != 0 && clock() < until
    }

    /// Records a failure: the provider is skipped for `cooldown` (when other providers of the
    /// model remain).
    pub fn failed(&self, cooldown: Duration) {
        if !cooldown.is_zero() {
            self.cooling_until_ms.store(clock().saturating_add(cooldown.as_millis() as u64).max(1), Ordering::Relaxed);
        }
    }

    /// Records an answer: the provider is healthy again.
    pub fn answered(&self) {
        if self.cooling_until_ms.load(Ordering::Relaxed) != 0 {
            self.cooling_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub fn api(&self) -> &'static dyn ProviderApi {
        api_of(self.kind)
    }
}

/// One provider of a public model, with the model's name upstream.
#[derive(Clone, Debug)]
pub struct Route {
    pub provider: Arc<Provider>,
    pub upstream_model: String,
}

/// Where the providers came from, for the start-up log and the "no provider" messages.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Source {
    /// No file and no provider variable: nothing is configured.
    #[default]
    Nothing,
    /// A `workjet.toml` (named by `WJ_CONFIG`, or found in the working directory).
    File(std::path::PathBuf),
    /// The providers' own variables (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`).
    Environment(Vec<&'static str>),
}

/// How to add a provider, said wherever the lack of one shows.
pub const HOW_TO_ADD_A_PROVIDER: &str = "set ANTHROPIC_API_KEY or OPENAI_API_KEY in the server's environment, or configure providers in workjet.toml (see workjet.example.toml)";

/// Every configured model, by public name, each with its providers in the file's order.
#[derive(Debug, Default)]
pub struct Registry {
    routes: BTreeMap<String, Vec<Route>>,
    /// The public names in the order the configuration lists them.
    configured_order: Vec<String>,
    pub timeouts: UpstreamTimeouts,
    pub source: Source,
}

impl Registry {
    /// Builds the routing table; `env` resolves `api_key_env` names.
    pub fn build(file: &FileConfig, source: Source, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut routes: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        let mut configured_order = Vec::new();
        let timeouts = file.upstream.clone();
        let proxies = hyper_util::client::proxy::matcher::Matcher::from_env();
        for p in &file.providers {
            let api_key = match &p.api_key_env {
                None => None,
                Some(var) => Some(
                    env(var)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| format!("provider {:?}: the environment variable {var} (api_key_env) is not set", p.name))?,
                ),
            };
            let auth_headers = api_of(p.kind).auth_headers(api_key.as_deref()).map_err(|_: api::NotAHeaderValue| {
                format!(
                    "provider {:?}: the API key in {} is not a valid HTTP header value",
                    p.name,
                    p.api_key_env.as_deref().unwrap_or("?")
                )
            })?;
            let endpoint = client::uri_of(&join(&p.base_url, api_of(p.kind).path()))
                .ok_or_else(|| format!("provider {:?}: base_url {:?} is not a URL requests can be sent to", p.name, p.base_url.as_str()))?;
            let client = client::UpstreamClient::new(&p.name, &endpoint, Duration::from_millis(timeouts.connect_ms), &proxies)
                .map_err(|e| format!("provider {:?}: {e}", p.name))?;
            let provider = Arc::new(Provider {
                name: p.name.clone(),
                kind: p.kind,
                base_url: p.base_url.clone(),
                endpoint,
                auth_headers,
                client,
                cooling_until_ms: AtomicU64::new(0),
            });
            for (public, upstream) in p.models.pairs() {
                if !routes.contains_key(&public) {
                    configured_order.push(public.clone());
                }
                let list = routes.entry(public.clone()).or_default();
                if list.iter().any(|r| Arc::ptr_eq(&r.provider, &provider)) {
                    return Err(format!("provider {:?} lists the model {public:?} twice", p.name));
                }
                list.push(Route { provider: provider.clone(), upstream_model: upstream });
            }
        }
        Ok(Self { routes, configured_order, timeouts, source })
    }

    /// The public model names, sorted, each with its first provider's name.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|(name, routes)| (name.as_str(), routes[0].provider.name.as_str()))
    }

    /// The public model names in the order the configuration lists them (the environment's
    /// catalogue starts with `claude-4-sonnet`).
    pub fn models_in_configured_order(&self) -> impl Iterator<Item = &str> {
        self.configured_order.iter().map(String::as_str)
    }

    /// The first provider's name of `model`, if it is served.
    pub fn owner(&self, model: &str) -> Option<&str> {
        self.routes.get(model).map(|routes| routes[0].provider.name.as_str())
    }

    /// Whether no model is configured at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The providers to try for `model`, in order: the healthy ones in the file's order, then
    /// those cooling down (a last resort beats no answer). `None` if no provider serves it.
    /// Health is read once, when the request begins, so a provider that fails during the
    /// request is not tried twice; nothing is allocated.
    pub fn candidates(&self, model: &str) -> Option<impl Iterator<Item = &Route>> {
        let routes = self.routes.get(model)?;
        // Bit i: route i was cooling down (a model of one provider never skips it; past 64
        // providers of one model, the rest count as healthy).
        let cooling: u64 = if routes.len() == 1 {
            0
        } else {
            routes.iter().take(64).enumerate().filter(|(_, r)| r.provider.cooling_down()).fold(0, |bits, (i, _)| bits | 1 << i)
        };
        let cooled = move |i: usize| i < 64 && cooling >> i & 1 == 1;
        let healthy = routes.iter().enumerate().filter(move |(i, _)| !cooled(*i));
        let last_resorts = routes.iter().enumerate().filter(move |(i, _)| cooled(*i));
        Some(healthy.chain(last_resorts).map(|(_, route)| route))
    }

    /// The cool-down of a failed provider.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.timeouts.cooldown_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(text: &str) -> Registry {
        let file = config::parse(text).expect("valid");
        Registry::build(&file, Source::Nothing, |_| Some("k".into())).expect("builds")
    }

    const TWO: &str = "[upstream]\ncooldown_ms = 60000\n\
        [[providers]]\nname = \"east\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodels = [\"m\", \"only-east\"]\n\
        [[providers]]\nname = \"west\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:2\"\nmodels = { \"m\" = \"m-upstream\" }\n";

    #[test]
    fn a_model_of_several_providers_is_tried_in_file_order_and_a_failed_one_goes_last() {
        let registry = registry(TWO);
        let names = |model: &str| registry.candidates(model).expect("served").map(|r| r.provider.name.clone()).collect::<Vec<_>>();
        assert_eq!(names("m"), ["east", "west"]);
        assert_eq!(registry.candidates("m").expect("m").nth(1).expect("west").upstream_model, "m-upstream");
        assert_eq!(names("only-east"), ["east"]);
        assert!(registry.candidates("nope").is_none());
        let east = registry.candidates("m").expect("m").next().expect("east").provider.clone();
        east.failed(registry.cooldown());
        assert!(east.cooling_down());
        assert_eq!(names("m"), ["west", "east"], "a cooling provider is a last resort");
        // Health is read when the request begins: a provider failing mid-request is not retried.
        let (west, mut rest) = {
            let mut order = registry.candidates("m").expect("m");
            let west = order.next().expect("west").provider.clone();
            west.failed(registry.cooldown());
            (west, order)
        };
        assert_eq!(rest.next().map(|r| r.provider.name.as_str()), Some("east"));
        assert!(rest.next().is_none(), "west, failed during the request, is not tried again");
        west.answered();
        east.answered();
        assert_eq!(names("m"), ["east", "west"]);
        east.failed(Duration::ZERO);
        assert!(!east.cooling_down(), "a zero cool-down never skips");
        assert_eq!(registry.models().collect::<Vec<_>>(), [("m", "east"), ("only-east", "east")]);
        assert_eq!(registry.models_in_configured_order().collect::<Vec<_>>(), ["m", "only-east"]);
    }

    #[test]
    fn a_provider_listing_a_model_twice_is_refused() {
        let file = config::parse("[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://x/v1\"\nmodels = [\"m\", \"m\"]\n")
            .expect("parses");
        assert!(Registry::build(&file, Source::Nothing, |_| None).unwrap_err().contains("twice"));
    }

    #[test]
    fn an_api_key_that_is_not_a_header_value_is_refused_at_start() {
        let file = config::parse(
            "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key_env = \"K\"\nmodels = [\"m\"]\n",
        )
        .expect("parses");
        let err = Registry::build(&file, Source::Nothing, |_| Some("bad\nkey".into())).unwrap_err();
        assert!(err.contains("not a valid HTTP header value") && !err.contains("bad\nkey"), "{err}");
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let registry = registry(TWO);
        let east = &registry.candidates("m").expect("m").next().expect("east").provider;
        assert_eq!(east.endpoint.to_string(), "http://127.0.0.1:1/v1/chat/completions");
    }
}
