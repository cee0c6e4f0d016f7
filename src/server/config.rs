//! Start-up configuration: every setting comes from a `WJ_*` environment variable, plus the
//! providers: an optional `workjet.toml` (named by `WJ_CONFIG`, or found in the working
//! directory), else the providers' own variables (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`).
//! Read once into a typed [`Config`]. A bad value stops start-up with a message naming the variable.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use secrecy::{SecretBox, SecretSlice, SecretString};
use url::Url;

use ipnet::IpNet;

use crate::domain::{
    api_keys::RateLimits,
    providers::{FileConfig, Source, config as providers_config},
};

/// A configuration error: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The variable (or file) at fault.
    pub name: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { name: name.into(), message: message.into() }
    }
}

/// Google / OpenID Connect client settings.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Issuer whose `/.well-known/openid-configuration` is used (`WJ_OIDC_ISSUER`).
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Where sign-in happens.
#[derive(Clone, Debug)]
pub enum SignIn {
    /// Google (or another OpenID Connect issuer) with real client credentials.
    Oidc(OidcConfig),
    /// No credentials: the built-in development identity provider serves under
    /// `/_dev/idp` (loopback `WJ_LISTEN_ADDR` and `WJ_PUBLIC_URL` only).
    LocalDevelopment,
}

/// Whether API-key and session lookups may be cached in process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheMode {
    /// On for SQLite (one instance) and with Redis; off for PostgreSQL without Redis,
    /// because other instances could revoke a key without this one hearing of it.
    Auto,
    On,
    Off,
}

/// TLS served by Workjet itself.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything Workjet reads at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub public_url: Url,
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_timeout: Duration,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key Workjet writes (several deployments can share a Redis).
    pub redis_prefix: String,
    pub sign_in: SignIn,
    /// The key that seals the `wj_signin` cookie (`WJ_SECRET_KEY`, or derived: see [`SecretKey`]).
    pub secret_key: SecretKey,
    pub allowed_domains: Vec<String>,
    /// Administrators' email addresses, lowercased (`WJ_ADMIN_EMAILS`): see [`crate::domain::admin`].
    pub admin_emails: Vec<String>,
    pub cookie_domain: Option<String>,
    pub allowed_origins: Vec<String>,
    pub tls: Option<TlsConfig>,
    pub max_body_bytes: usize,
    pub rate_limit_per_minute: u32,
    /// The most requests a minute any key may be given (`WJ_MAX_RATE_LIMIT_PER_MINUTE`).
    pub max_rate_limit_per_minute: u32,
    pub auth_failures_per_minute: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub cache_mode: CacheMode,
    pub shutdown_grace: Duration,
    /// `WJ_SERVE_THREADS`: 0 serves every connection on one work-stealing runtime; N ≥ 1 serves
    /// them on N threads, each with a single-threaded runtime of its own that accepts and keeps
    /// its connections (plain HTTP only; with TLS, the work-stealing runtime serves).
    pub serve_threads: usize,
    /// The longest a request body may go without sending data (slow uploads get 408).
    pub body_timeout: Duration,
    pub log_format: LogFormat,
    /// Where Prometheus scrapes `/metrics` (`WJ_METRICS_ADDR`); no metrics when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// Providers and upstream timeouts from `workjet.toml`.
    pub providers: FileConfig,
    /// Where `providers` came from.
    pub providers_source: Source,
    /// The secrets named by the providers' `api_key_env`, read from the environment.
    pub provider_secrets: BTreeMap<String, SecretString>,
    /// Timeout of each request to the identity provider.
    pub oidc_timeout: Duration,
    /// An unchanged session is written back at most this often (rolling expiry).
    pub session_touch_interval: Duration,
}

impl Config {
    /// Reads the configuration from the process environment (`WJ_*`, and the variables
    /// that `workjet.toml` names for provider secrets).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                match v.into_string() {
                    Ok(v) => Some((k, v)),
                    // Keep the name so that the error below can point at it.
                    Err(_) => Some((k, "\u{FFFD}".to_owned())),
                }
            })
            .collect();
        Self::from_vars(&vars)
    }

    /// Reads the configuration from a map of variables (tests use this directly).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Vars(vars);
        let listen_addr: SocketAddr = env.parse_or("WJ_LISTEN_ADDR", "127.0.0.1:3000".parse().expect("valid"))?;
        let public_url = match env.get("WJ_PUBLIC_URL")? {
            Some(raw) => parse_public_url(&raw)?,
            None => {
                let host = if listen_addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { listen_addr.ip().to_string() };
                let host = if listen_addr.is_ipv6() && !listen_addr.ip().is_unspecified() { format!("[{host}]") } else { host };
                let scheme = if vars.contains_key("WJ_TLS_CERT") { "https" } else { "http" };
                parse_public_url(&format!("{scheme}://{host}:{}", listen_addr.port()))?
            }
        };

        let database_url = env.get("WJ_DATABASE_URL")?.unwrap_or_else(|| "sqlite://workjet.db?mode=rwc".to_owned());
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::new("WJ_DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
        }
        let database_max_connections: u32 = env.parse_or("WJ_DATABASE_MAX_CONNECTIONS", 16)?;
        if database_max_connections == 0 {
            return Err(ConfigError::new("WJ_DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        let database_timeout = Duration::from_millis(env.parse_or("WJ_DATABASE_TIMEOUT_MS", 5_000u64)?);

        let redis_url = env.get("WJ_REDIS_URL")?;
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            return Err(ConfigError::new("WJ_REDIS_URL", "must start with redis://, rediss:// or unix://"));
        }

        let redis_prefix = env.get("WJ_REDIS_PREFIX")?.unwrap_or_else(|| "wj:".to_owned());
        if redis_prefix.len() > 64 || redis_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new("WJ_REDIS_PREFIX", "must be at most 64 characters without spaces"));
        }
        let sign_in = match (env.get("WJ_GOOGLE_CLIENT_ID")?, env.get("WJ_GOOGLE_CLIENT_SECRET")?) {
            (Some(client_id), Some(secret)) => {
                let issuer_raw = env.get("WJ_OIDC_ISSUER")?.unwrap_or_else(|| "https://accounts.google.com".to_owned());
                let issuer = Url::parse(&issuer_raw).map_err(|e| ConfigError::new("WJ_OIDC_ISSUER", format!("not a URL: {e}")))?;
                if issuer.scheme() != "https" && !is_loopback_url(&issuer) {
                    return Err(ConfigError::new("WJ_OIDC_ISSUER", "must be https (plain http is allowed only on loopback)"));
                }
                SignIn::Oidc(OidcConfig { issuer, client_id, client_secret: SecretString::from(secret) })
            }
            (None, None) => {
                local_development_allowed(&listen_addr, &public_url)?;
                SignIn::LocalDevelopment
            }
            (Some(_), None) => return Err(ConfigError::new("WJ_GOOGLE_CLIENT_SECRET", "must be set when WJ_GOOGLE_CLIENT_ID is set")),
            (None, Some(_)) => return Err(ConfigError::new("WJ_GOOGLE_CLIENT_ID", "must be set when WJ_GOOGLE_CLIENT_SECRET is set")),
        };

        let secret_key = match (env.get("WJ_SECRET_KEY")?, &sign_in) {
            (Some(raw), _) => SecretKey::parse(&raw)?,
            (None, SignIn::Oidc(oidc)) => SecretKey::from_client_secret(&oidc.client_secret),
            (None, SignIn::LocalDevelopment) => SecretKey::random(),
        };

        let allowed_domains = env.list("WJ_ALLOWED_DOMAINS")?.into_iter().map(|d| d.to_ascii_lowercase()).collect();
        let admin_emails: Vec<String> = env.list("WJ_ADMIN_EMAILS")?.into_iter().map(|e| e.to_lowercase()).collect();
        if let Some(bad) = admin_emails.iter().find(|e| !e.contains('@') || e.contains(char::is_whitespace)) {
            return Err(ConfigError::new("WJ_ADMIN_EMAILS", format!("{bad:?} is not an email address (a comma-separated list of them)")));
        }
        let cookie_domain = env.get("WJ_COOKIE_DOMAIN")?;
        if let Some(domain) = &cookie_domain {
            let bare = domain.trim_start_matches('.');
            if bare.is_empty() || !bare.contains('.') || !bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                return Err(ConfigError::new("WJ_COOKIE_DOMAIN", "must be a domain such as .workjet.dev"));
            }
        }
        let mut allowed_origins = vec![origin_of(&public_url)];
        for origin in env.list("WJ_ALLOWED_ORIGINS")? {
            let url = Url::parse(&origin).map_err(|e| ConfigError::new("WJ_ALLOWED_ORIGINS", format!("{origin:?} is not a URL: {e}")))?;
            if url.path() != "/" || url.query().is_some() || !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    "WJ_ALLOWED_ORIGINS",
                    format!("{origin:?} must be an origin such as https://marketplace.workjet.dev"),
                ));
            }
            allowed_origins.push(origin_of(&url));
        }

        let tls = match (env.get("WJ_TLS_CERT")?, env.get("WJ_TLS_KEY")?) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert_path: cert.into(), key_path: key.into() }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::new("WJ_TLS_KEY", "must be set when WJ_TLS_CERT is set")),
            (None, Some(_)) => return Err(ConfigError::new("WJ_TLS_CERT", "must be set when WJ_TLS_KEY is set")),
        };

        let max_body_bytes: usize = env.parse_or("WJ_MAX_BODY_BYTES", 4 * 1024 * 1024)?;
        if max_body_bytes < 1024 {
            return Err(ConfigError::new("WJ_MAX_BODY_BYTES", "must be at least 1024"));
        }
        let rate_limit_per_minute: u32 = env.parse_or("WJ_RATE_LIMIT_PER_MINUTE", 600)?;
        if rate_limit_per_minute == 0 || rate_limit_per_minute > 60_000_000 {
            return Err(ConfigError::new("WJ_RATE_LIMIT_PER_MINUTE", "must be between 1 and 60000000"));
        }
        let max_rate_limit_per_minute: u32 = env.parse_or("WJ_MAX_RATE_LIMIT_PER_MINUTE", rate_limit_per_minute)?;
        if max_rate_limit_per_minute < rate_limit_per_minute || max_rate_limit_per_minute > 60_000_000 {
            return Err(ConfigError::new(
                "WJ_MAX_RATE_LIMIT_PER_MINUTE",
                format!("must be between WJ_RATE_LIMIT_PER_MINUTE ({rate_limit_per_minute}) and 60000000"),
            ));
        }
        let auth_failures_per_minute: u32 = env.parse_or("WJ_AUTH_FAILURES_PER_MINUTE", 30)?;
        if auth_failures_per_minute == 0 || auth_failures_per_minute > 60_000_000 {
            return Err(ConfigError::new("WJ_AUTH_FAILURES_PER_MINUTE", "must be between 1 and 60000000"));
        }
        let trusted_proxies = env
            .list("WJ_TRUSTED_PROXIES")?
            .iter()
            .map(|s| s.parse::<IpNet>().map_err(|e| ConfigError::new("WJ_TRUSTED_PROXIES", format!("{s:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        let cache_mode = match env.get("WJ_AUTH_CACHE")?.as_deref() {
            None | Some("auto") => CacheMode::Auto,
            Some("on") => CacheMode::On,
            Some("off") => CacheMode::Off,
            Some(_) => return Err(ConfigError::new("WJ_AUTH_CACHE", "must be auto, on or off")),
        };
        let shutdown_grace = Duration::from_secs(env.parse_or("WJ_SHUTDOWN_GRACE_SECS", 30u64)?);
        let serve_threads: usize = env.parse_or("WJ_SERVE_THREADS", 0)?;
        if serve_threads > 1024 {
            return Err(ConfigError::new("WJ_SERVE_THREADS", "must be between 0 and 1024"));
        }
        let body_timeout_secs: u64 = env.parse_or("WJ_BODY_TIMEOUT_SECS", 30u64)?;
        if !(1..=3600).contains(&body_timeout_secs) {
            return Err(ConfigError::new("WJ_BODY_TIMEOUT_SECS", "must be between 1 and 3600"));
        }
        let body_timeout = Duration::from_secs(body_timeout_secs);
        let log_format = match env.get("WJ_LOG_FORMAT")?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(ConfigError::new("WJ_LOG_FORMAT", "must be text or json")),
        };
        let metrics_addr = match env.get("WJ_METRICS_ADDR")? {
            None => None,
            Some(addr) => Some(
                addr.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::new("WJ_METRICS_ADDR", "must be an address and port, such as 127.0.0.1:9464"))?,
            ),
        };
        if metrics_addr.is_some_and(|m| m == listen_addr) {
            return Err(ConfigError::new("WJ_METRICS_ADDR", "must differ from WJ_LISTEN_ADDR: /metrics has a listener of its own"));
        }
        // Providers: the file WJ_CONFIG names, else ./workjet.toml if there is one, else the
        // providers' own variables (ANTHROPIC_API_KEY, OPENAI_API_KEY).
        let config_file = match env.get("WJ_CONFIG")? {
            Some(path) => Some(("WJ_CONFIG", PathBuf::from(path))),
            None => Some(("workjet.toml", PathBuf::from(DEFAULT_CONFIG_FILE))).filter(|(_, p)| p.is_file()),
        };
        let (providers, providers_source) = match &config_file {
            Some((setting, path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(*setting, format!("{}: {e}", path.display())))?;
                let file = providers_config::parse(&text).map_err(|e| ConfigError::new(*setting, format!("{}: {e}", path.display())))?;
                (file, Source::File(path.clone()))
            }
            None => {
                let (file, used) = providers_config::from_environment(|name| vars.get(name).cloned())
                    .map_err(|(name, message)| ConfigError::new(name, message))?;
                let source = if used.is_empty() { Source::Nothing } else { Source::Environment(used) };
                (file, source)
            }
        };
        let mut provider_secrets = BTreeMap::new();
        for provider in &providers.providers {
            if let Some(name) = &provider.api_key_env {
                let value = vars.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    ConfigError::new(
                        name.clone(),
                        format!("is not set; provider {:?} in the configuration file reads its API key from it", provider.name),
                    )
                })?;
                provider_secrets.insert(name.clone(), SecretString::from(value.clone()));
            }
        }
        let oidc_timeout = Duration::from_millis(env.parse_or("WJ_OIDC_TIMEOUT_MS", 10_000u64)?);
        let session_touch_interval = Duration::from_secs(env.parse_or("WJ_SESSION_TOUCH_SECS", 60u64)?);

        Ok(Self {
            listen_addr,
            public_url,
            database_url,
            database_max_connections,
            database_timeout,
            redis_url,
            redis_prefix,
            sign_in,
            secret_key,
            allowed_domains,
            admin_emails,
            cookie_domain,
            allowed_origins,
            tls,
            max_body_bytes,
            rate_limit_per_minute,
            max_rate_limit_per_minute,
            auth_failures_per_minute,
            trusted_proxies,
            cache_mode,
            shutdown_grace,
            serve_threads,
            body_timeout,
            log_format,
            metrics_addr,
            providers,
            providers_source,
            provider_secrets,
            oidc_timeout,
            session_touch_interval,
        })
    }

    /// The default and the maximum rate limit of a key, as the key service takes them.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits { default_per_minute: self.rate_limit_per_minute, max_per_minute: self.max_rate_limit_per_minute }
    }

    /// True when the database is SQLite (a single instance by construction).
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Whether session cookies get the `Secure` flag. Always, as the contract says; browsers
    /// accept `Secure` cookies from `http://localhost` and `http://127.0.0.1`.
    pub fn secure_cookies(&self) -> bool {
        true
    }
}

/// The origin (`scheme://host[:port]`) of a URL, as browsers send it in `Origin`.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The one place that decides whether the built-in development identity provider may run:
/// only when nobody but this machine can reach it, that is when the server listens on a
/// loopback address *and* is reached through a loopback URL. Anywhere else it would let
/// whoever reaches the port sign in as any email address.
fn local_development_allowed(listen_addr: &SocketAddr, public_url: &Url) -> Result<(), ConfigError> {
    let problem = if !listen_addr.ip().is_loopback() {
        format!("WJ_LISTEN_ADDR ({listen_addr}) is not a loopback address")
    } else if !is_loopback_url(public_url) {
        "WJ_PUBLIC_URL is not a loopback URL".to_owned()
    } else {
        return Ok(());
    };
    Err(ConfigError::new(
        "WJ_GOOGLE_CLIENT_ID",
        format!(
            "is not set, and the built-in local development sign-in is refused because {problem} (it would let anyone who reaches the port sign in as any email); set WJ_GOOGLE_CLIENT_ID and WJ_GOOGLE_CLIENT_SECRET, or listen on 127.0.0.1"
        ),
    ))
}

/// Where the [`SecretKey`] came from (logged at start-up; never the key itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKeySource {
    /// `WJ_SECRET_KEY`.
    Configured,
    /// Derived from `WJ_GOOGLE_CLIENT_SECRET` (every instance of a deployment shares it).
    DerivedFromClientSecret,
    /// Random for this process (local development: one instance, flows do not survive a restart).
    Random,
}

/// The server's master secret: input keying material from which purpose-bound keys are
/// derived with HKDF-SHA256. `Debug` prints only where it came from.
#[derive(Clone)]
pub struct SecretKey {
    material: std::sync::Arc<SecretSlice<u8>>,
    source: SecretKeySource,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("source", &self.source).finish_non_exhaustive()
    }
}

/// The configuration file read when `WJ_CONFIG` is not set, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "workjet.toml";

/// The fewest bytes `WJ_SECRET_KEY` must decode to.
pub const SECRET_KEY_MIN_BYTES: usize = 32;

impl SecretKey {
    fn new(material: Vec<u8>, source: SecretKeySource) -> Self {
        Self { material: std::sync::Arc::new(SecretSlice::from(material)), source }
    }

    /// Parses `WJ_SECRET_KEY`: hex, or base64 (standard or URL-safe, padded or not), of at
    /// least [`SECRET_KEY_MIN_BYTES`] bytes. The error never repeats the value.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        let raw = raw.trim();
        let is_hex = raw.len().is_multiple_of(2) && raw.bytes().all(|b| b.is_ascii_hexdigit());
        let decoded = if is_hex {
            (0..raw.len()).step_by(2).map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok()).collect::<Option<Vec<u8>>>()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(raw).ok())
        };
        let Some(bytes) = decoded else {
            return Err(ConfigError::new(
                "WJ_SECRET_KEY",
                "is neither hex nor base64; generate one with `openssl rand -base64 32` and give every instance the same",
            ));
        };
        if bytes.len() < SECRET_KEY_MIN_BYTES {
            return Err(ConfigError::new(
                "WJ_SECRET_KEY",
                format!(
                    "decodes to {} bytes; it must be at least {SECRET_KEY_MIN_BYTES} random bytes (e.g. `openssl rand -base64 32`)",
                    bytes.len()
                ),
            ));
        }
        Ok(Self::new(bytes, SecretKeySource::Configured))
    }

    /// The key when `WJ_SECRET_KEY` is not set but Google credentials are.
    pub fn from_client_secret(secret: &SecretString) -> Self {
        use secrecy::ExposeSecret;
        Self::new(secret.expose_secret().as_bytes().to_vec(), SecretKeySource::DerivedFromClientSecret)
    }

    /// A key for this process only.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Self::new(bytes, SecretKeySource::Random)
    }

    pub fn source(&self) -> SecretKeySource {
        self.source
    }

    /// A 64-byte key for one purpose: HKDF-SHA256 over the material, with `purpose` as the
    /// info string, so keys for different purposes are independent.
    pub fn derive(&self, purpose: &str) -> SecretBox<[u8; 64]> {
        use secrecy::ExposeSecret;
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"workjet secret key v1"), self.material.expose_secret());
        let mut out = Box::new([0u8; 64]);
        hkdf.expand(purpose.as_bytes(), out.as_mut()).expect("64 bytes is a valid HKDF-SHA256 output length");
        SecretBox::new(out)
    }
}

/// True for `http(s)://localhost`, `127.0.0.0/8` and `[::1]` URLs.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::new("WJ_PUBLIC_URL", format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new("WJ_PUBLIC_URL", "must be an http(s) URL such as https://portal.workjet.dev"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError::new("WJ_PUBLIC_URL", "must have no path or query (Workjet serves from /)"));
    }
    Ok(url)
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// A variable's value; unset and empty are the same.
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.contains('\u{FFFD}') => Err(ConfigError::new(name, "is not valid UTF-8")),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name)? {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new(name, format!("{raw:?} is not valid: {e}"))),
        }
    }

    fn list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self.get(name)?.map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn defaults_run_on_one_machine_with_nothing_installed() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:3000/");
        assert!(c.is_sqlite());
        assert!(matches!(c.sign_in, SignIn::LocalDevelopment));
        assert_eq!(c.rate_limit_per_minute, 600);
        assert_eq!(c.max_rate_limit_per_minute, 600, "the maximum defaults to the default");
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.allowed_origins, vec!["http://127.0.0.1:3000".to_owned()]);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("WJ_LISTEN_ADDR", "not an address")]).unwrap_err();
        assert_eq!(err.name, "WJ_LISTEN_ADDR");
        let err = config(&[("WJ_RATE_LIMIT_PER_MINUTE", "-5")]).unwrap_err();
        assert_eq!(err.name, "WJ_RATE_LIMIT_PER_MINUTE");
        let err = config(&[("WJ_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.name, "WJ_DATABASE_URL");
        let err = config(&[("WJ_PUBLIC_URL", "https://portal.workjet.dev/app")]).unwrap_err();
        assert_eq!(err.name, "WJ_PUBLIC_URL");
        let err = config(&[("WJ_TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        assert_eq!(err.name, "WJ_TRUSTED_PROXIES");
        let err = config(&[("WJ_COOKIE_DOMAIN", "localhost")]).unwrap_err();
        assert_eq!(err.name, "WJ_COOKIE_DOMAIN");
        let err = config(&[("WJ_TLS_CERT", "cert.pem")]).unwrap_err();
        assert_eq!(err.name, "WJ_TLS_KEY");
        let err = config(&[("WJ_ADMIN_EMAILS", "root@example.com, not an email")]).unwrap_err();
        assert_eq!(err.name, "WJ_ADMIN_EMAILS");
        for bad in ["-1", "two", "1025"] {
            assert_eq!(config(&[("WJ_SERVE_THREADS", bad)]).unwrap_err().name, "WJ_SERVE_THREADS", "{bad}");
        }
    }

    #[test]
    fn administrators_are_a_comma_list_of_emails_in_lower_case() {
        assert!(config(&[]).expect("valid").admin_emails.is_empty(), "nobody by default");
        let c = config(&[("WJ_ADMIN_EMAILS", " Root@Example.com,,ops@example.com ")]).expect("valid");
        assert_eq!(c.admin_emails, ["root@example.com", "ops@example.com"]);
    }

    #[test]
    fn the_maximum_rate_limit_is_at_least_the_default() {
        let c = config(&[("WJ_RATE_LIMIT_PER_MINUTE", "100")]).expect("valid");
        assert_eq!(c.rate_limits(), RateLimits { default_per_minute: 100, max_per_minute: 100 });
        let c = config(&[("WJ_RATE_LIMIT_PER_MINUTE", "100"), ("WJ_MAX_RATE_LIMIT_PER_MINUTE", "5000")]).expect("valid");
        assert_eq!(c.max_rate_limit_per_minute, 5000);
        for bad in ["99", "0", "60000001", "lots"] {
            let err = config(&[("WJ_RATE_LIMIT_PER_MINUTE", "100"), ("WJ_MAX_RATE_LIMIT_PER_MINUTE", bad)]).unwrap_err();
            assert_eq!(err.name, "WJ_MAX_RATE_LIMIT_PER_MINUTE", "{bad}");
        }
    }

    #[test]
    fn local_sign_in_is_refused_off_loopback() {
        let err = config(&[("WJ_PUBLIC_URL", "https://portal.workjet.dev")]).unwrap_err();
        assert_eq!(err.name, "WJ_GOOGLE_CLIENT_ID");
        let ok = config(&[
            ("WJ_PUBLIC_URL", "https://portal.workjet.dev"),
            ("WJ_GOOGLE_CLIENT_ID", "id"),
            ("WJ_GOOGLE_CLIENT_SECRET", "secret"),
        ])
        .expect("valid");
        assert!(matches!(ok.sign_in, SignIn::Oidc(_)));
    }

    #[test]
    fn debug_never_prints_the_client_secret() {
        let c = config(&[("WJ_GOOGLE_CLIENT_ID", "id"), ("WJ_GOOGLE_CLIENT_SECRET", "hunter2-very-secret")]).expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn allowed_origins_are_normalised_origins() {
        let c = config(&[("WJ_ALLOWED_ORIGINS", "https://marketplace.workjet.dev, https://x.workjet.dev:8443")]).expect("valid");
        assert_eq!(c.allowed_origins[1], "https://marketplace.workjet.dev");
        assert_eq!(c.allowed_origins[2], "https://x.workjet.dev:8443");
        assert_eq!(config(&[("WJ_ALLOWED_ORIGINS", "https://a.dev/path")]).unwrap_err().name, "WJ_ALLOWED_ORIGINS");
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn the_provider_file_and_its_secrets_are_read_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("workjet.toml");
        std::fs::write(&path, "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\nmodels = [\"gpt-4o\"]\n").expect("write");
        let mut vars: HashMap<String, String> = [("WJ_CONFIG".to_owned(), path.display().to_string())].into_iter().collect();
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.name, "OPENAI_API_KEY", "a missing provider secret is fatal and named");
        vars.insert("OPENAI_API_KEY".into(), "sk-test-secret".into());
        let config = Config::from_vars(&vars).expect("valid");
        assert_eq!(config.providers.providers.len(), 1);
        assert!(!format!("{config:?}").contains("sk-test-secret"), "Debug never prints provider secrets");
        std::fs::write(&path, "[[providers]]\nname = 1\n").expect("write");
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.name, "WJ_CONFIG");
        assert!(err.message.contains("line 2"), "{}", err.message);
        vars.insert("WJ_CONFIG".into(), "/no/such/file.toml".into());
        assert_eq!(Config::from_vars(&vars).unwrap_err().name, "WJ_CONFIG");
    }
}
