//! The OpenID Connect relying party: discovery, the authorization request (PKCE S256,
//! `state`, `nonce`), the code exchange (oauth2 crate), and ID token validation against the
//! issuer's JWKS (signature, `iss`, `aud`, `exp`, `nonce`, `email_verified`, `hd`).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenUrl,
    basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType},
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{domain::users::VerifiedIdentity, wire::SignInErrorCode};

/// Why a sign-in failed. `code()` is what `/login?error=` carries.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the identity provider could not be reached: {0}")]
    ProviderUnavailable(String),
    #[error("the authorization code was refused: {0}")]
    ExchangeFailed(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error("the email address is not verified")]
    EmailUnverified,
    #[error("the account's domain is not allowed")]
    DomainNotAllowed,
}

impl SignInError {
    pub fn code(&self) -> SignInErrorCode {
        match self {
            SignInError::ProviderUnavailable(_) => SignInErrorCode::ProviderUnavailable,
            SignInError::ExchangeFailed(_) => SignInErrorCode::ExchangeFailed,
            SignInError::InvalidToken(_) => SignInErrorCode::InvalidToken,
            SignInError::EmailUnverified => SignInErrorCode::EmailUnverified,
            SignInError::DomainNotAllowed => SignInErrorCode::DomainNotAllowed,
        }
    }
}

/// The issuer's discovery document (the fields we use).
#[derive(Clone, Debug, Deserialize)]
struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

/// The ID token in the token response.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    id_token: Option<String>,
}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What the browser must carry through the provider and back.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
    nonce: Option<String>,
    hd: Option<String>,
}

// Some providers send `"email_verified": "true"`.
fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    Ok(match B::deserialize(d)? {
        B::Bool(b) => b,
        B::Str(s) => s == "true",
    })
}

const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` triggers at most one JWKS refetch in this interval.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// The relying party for one issuer and client.
pub struct OidcClient {
    issuer: Url,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: Url,
    allowed_domains: Vec<String>,
    http: reqwest::Client,
    metadata: Mutex<Option<(ProviderMetadata, Instant)>>,
    jwks: Mutex<Option<(JwkSet, Instant)>>,
    last_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient").field("issuer", &self.issuer.as_str()).field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The HTTP client for the identity provider: no redirects (an attacker-controlled redirect
/// must not carry our client secret elsewhere), short timeouts.
pub fn provider_http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("workjet/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("reqwest client builds")
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

impl OidcClient {
    pub fn new(
        issuer: Url,
        client_id: String,
        client_secret: SecretString,
        redirect_uri: Url,
        allowed_domains: Vec<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            allowed_domains,
            http: provider_http_client(timeout),
            metadata: Mutex::new(None),
            jwks: Mutex::new(None),
            last_refetch: Mutex::new(None),
        }
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, SignInError> {
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| SignInError::ProviderUnavailable(format!("GET {}: {}", url.path(), e.without_url())))?;
        if !response.status().is_success() {
            return Err(SignInError::ProviderUnavailable(format!("GET {} answered {}", url.path(), response.status())));
        }
        response.json().await.map_err(|e| SignInError::ProviderUnavailable(format!("GET {}: bad JSON: {}", url.path(), e.without_url())))
    }

    async fn metadata(&self) -> Result<ProviderMetadata, SignInError> {
        if let Some((m, at)) = self.metadata.lock().expect("lock").as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(m.clone());
        }
        let base = self.issuer.as_str().trim_end_matches('/');
        let url =
            Url::parse(&format!("{base}/.well-known/openid-configuration")).map_err(|e| SignInError::ProviderUnavailable(e.to_string()))?;
        let metadata: ProviderMetadata = self.fetch_json(url).await?;
        if metadata.issuer.trim_end_matches('/') != base {
            return Err(SignInError::ProviderUnavailable(format!("discovery names issuer {:?}, expected {base:?}", metadata.issuer)));
        }
        *self.metadata.lock().expect("lock") = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn oauth_client(&self, metadata: &ProviderMetadata) -> OAuthClient {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint.clone()))
            .set_token_uri(TokenUrl::from_url(metadata.token_endpoint.clone()))
            .set_redirect_uri(RedirectUrl::from_url(self.redirect_uri.clone()))
    }

    /// Builds the URL to send the browser to, with fresh `state`, `nonce` and PKCE verifier.
    pub async fn authorization_request(&self) -> Result<AuthorizationRequest, SignInError> {
        let metadata = self.metadata().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = random_token();
        let client = self.oauth_client(&metadata);
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .add_extra_param("nonce", nonce.clone())
            .add_extra_param("prompt", "select_account")
            .set_pkce_challenge(challenge);
        if let [only] = self.allowed_domains.as_slice() {
            // A hint for Google's account chooser; the ID token's `hd` is what is enforced.
            request = request.add_extra_param("hd", only.clone());
        }
        let (url, state) = request.url();
        Ok(AuthorizationRequest { url, state: state.secret().clone(), nonce, pkce_verifier: verifier.secret().clone() })
    }

    /// Exchanges the code (with the PKCE verifier) and validates the ID token.
    pub async fn exchange_and_verify(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<VerifiedIdentity, SignInError> {
        let metadata = self.metadata().await?;
        let response = self
            .oauth_client(&metadata)
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => SignInError::ExchangeFailed(r.error().to_string()),
                RequestTokenError::Request(e) => SignInError::ProviderUnavailable(format!("token endpoint: {e}")),
                RequestTokenError::Parse(e, _) => {
                    SignInError::ProviderUnavailable(format!("token endpoint answered unparseable JSON: {e}"))
                }
                RequestTokenError::Other(e) => SignInError::ProviderUnavailable(format!("token endpoint: {e}")),
            })?;
        let id_token = response
            .extra_fields()
            .id_token
            .clone()
            .ok_or_else(|| SignInError::InvalidToken("no id_token in the token response".into()))?;
        self.verify_id_token(&metadata, &id_token, nonce).await
    }

    async fn jwks(&self, metadata: &ProviderMetadata, force: bool) -> Result<JwkSet, SignInError> {
        if !force
            && let Some((set, at)) = self.jwks.lock().expect("lock").as_ref()
            && at.elapsed() < JWKS_TTL
        {
            return Ok(set.clone());
        }
        let set: JwkSet = self.fetch_json(metadata.jwks_uri.clone()).await?;
        *self.jwks.lock().expect("lock") = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    async fn verify_id_token(&self, metadata: &ProviderMetadata, token: &str, nonce: &str) -> Result<VerifiedIdentity, SignInError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| SignInError::InvalidToken(format!("header: {e}")))?;
        // Only asymmetric algorithms the issuer advertises: never `none`, never HMAC with a
        // public key as the secret.
        let allowed = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384];
        if !allowed.contains(&header.alg) {
            return Err(SignInError::InvalidToken(format!("algorithm {:?} is not accepted", header.alg)));
        }
        if !metadata.id_token_signing_alg_values_supported.is_empty()
            && !metadata.id_token_signing_alg_values_supported.iter().any(|a| *a == format!("{:?}", header.alg))
        {
            return Err(SignInError::InvalidToken(format!("algorithm {:?} is not advertised by the issuer", header.alg)));
        }
        let kid = header.kid.clone().ok_or_else(|| SignInError::InvalidToken("no kid in the token header".into()))?;
        let mut set = self.jwks(metadata, false).await?;
        if set.find(&kid).is_none() {
            // Providers rotate keys: refetch once (rate limited) before giving up.
            let may_refetch = {
                let mut last = self.last_refetch.lock().expect("lock");
                let ok = last.is_none_or(|t| t.elapsed() >= JWKS_REFETCH_INTERVAL);
                if ok {
                    *last = Some(Instant::now());
                }
                ok
            };
            if may_refetch {
                set = self.jwks(metadata, true).await?;
            }
        }
        let jwk = set.find(&kid).ok_or_else(|| SignInError::InvalidToken("signed with a key the issuer does not publish".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| SignInError::InvalidToken(format!("issuer key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        let mut issuers = vec![metadata.issuer.clone()];
        if metadata.issuer == "https://accounts.google.com" {
            // Google documents both forms of its issuer.
            issuers.push("accounts.google.com".to_owned());
        }
        validation.set_issuer(&issuers);
        validation.set_audience(&[&self.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| SignInError::InvalidToken(e.to_string()))?;
        let claims = data.claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(SignInError::InvalidToken("nonce mismatch".into()));
        }
        let email = claims.email.filter(|e| !e.is_empty()).ok_or_else(|| SignInError::InvalidToken("no email claim".into()))?;
        if !claims.email_verified {
            return Err(SignInError::EmailUnverified);
        }
        if !self.allowed_domains.is_empty() {
            let hd = claims.hd.as_deref().map(str::to_ascii_lowercase);
            if !hd.is_some_and(|hd| self.allowed_domains.contains(&hd)) {
                return Err(SignInError::DomainNotAllowed);
            }
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(SignInError::InvalidToken("bad sub claim".into()));
        }
        Ok(VerifiedIdentity {
            issuer: metadata.issuer.clone(),
            subject: claims.sub,
            email,
            name: claims.name.unwrap_or_default(),
            picture: claims.picture,
        })
    }
}
