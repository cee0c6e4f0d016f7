//! The built-in local identity provider for running without Google credentials: a real
//! OpenID Connect issuer (discovery, an authorize page where you type an email and a name,
//! a token endpoint that checks the client secret and the PKCE verifier, JWKS), served
//! under `/_dev/idp`. The sign-in code talks to it over HTTP exactly as it talks to Google.
//! It has its own router and state and is mounted only in local development, which
//! configuration allows only on a loopback listen address and a loopback `WJ_PUBLIC_URL`
//! (see `config::local_development_allowed`); with Google configured its routes do not exist.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};
use rand::RngCore;
use rsa::{pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use url::Url;

/// Where the provider is mounted.
pub const MOUNT: &str = "/_dev/idp";
/// The client id the server uses with it.
pub const CLIENT_ID: &str = "workjet-local-development";
const CODE_TTL: Duration = Duration::from_secs(60);

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

struct PendingCode {
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    email: String,
    name: String,
    email_verified: bool,
    issued: Instant,
}

/// The provider's state: its client secret, signing key (generated on first use) and
/// outstanding authorization codes (single use, 60 seconds).
pub struct DevIdp {
    issuer: Url,
    redirect_uri: String,
    client_secret: SecretString,
    key: OnceCell<SigningKey>,
    codes: Mutex<HashMap<String, PendingCode>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DevIdp {
    pub fn new(public_url: &Url) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        Self {
            issuer: Url::parse(&format!("{base}{MOUNT}")).expect("valid issuer URL"),
            redirect_uri: format!("{base}/auth/google/callback"),
            client_secret: SecretString::from(random_token()),
            key: OnceCell::new(),
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer URL the relying party discovers.
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The client secret the relying party authenticates with (random per process).
    pub fn client_secret(&self) -> SecretString {
        self.client_secret.clone()
    }

    async fn key(&self) -> &SigningKey {
        self.key
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| {
                    let private = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, 2048).expect("RSA key generation");
                    let der = private.to_pkcs1_der().expect("PKCS#1 encoding");
                    let kid = format!("dev-{}", &random_token()[..12]);
                    let jwk = json!({
                        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
                    });
                    SigningKey { kid, encoding: EncodingKey::from_rsa_der(der.as_bytes()), jwk }
                })
                .await
                .expect("key generation task")
            })
            .await
    }
}

/// The provider's routes with their own state, to be nested at [`MOUNT`].
pub fn router(idp: Arc<DevIdp>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize_page).post(authorize))
        .route("/token", axum::routing::post(token))
        .route("/jwks", get(jwks))
        .with_state(idp)
}

async fn discovery(State(idp): State<Arc<DevIdp>>) -> Response {
    let base = idp.issuer.as_str();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "email", "email_verified", "name", "hd", "nonce"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Arc<DevIdp>>) -> Response {
    Json(json!({"keys": [idp.key().await.jwk.clone()]})).into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (status, Html(page("Sign-in request refused", &format!(r#"<p class="mt-4 text-sm text-red-700">{}</p>"#, escape(message)))))
        .into_response()
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Workjet local identity provider</title><link rel="stylesheet" href="/pkg/workjet.css"><link rel="icon" href="/favicon.svg"></head>
<body class="min-h-screen bg-slate-100 text-slate-900 antialiased"><main class="mx-auto max-w-md px-4 py-12 sm:py-20">
<div class="mb-6 flex items-center justify-center gap-2 text-sm font-semibold uppercase tracking-wider text-amber-700">
<span class="rounded-full bg-amber-100 px-3 py-1">Local development identity provider</span></div>
<section class="rounded-2xl border border-slate-200 bg-white p-8 shadow-sm"><h1 class="text-xl font-semibold tracking-tight">{title}</h1>{body}</section>
<p class="mt-6 text-center text-xs text-slate-500">This stands in for Google on your own machine: it signs in whatever identity you type. It only runs when Workjet has no Google credentials and listens on, and is reached through, a loopback address.</p>
</main></body></html>"#
    )
}

fn check_request(idp: &DevIdp, q: &AuthorizeQuery) -> Result<(), &'static str> {
    if q.client_id.as_deref() != Some(CLIENT_ID) {
        return Err("Unknown client_id.");
    }
    if q.redirect_uri.as_deref() != Some(idp.redirect_uri.as_str()) {
        return Err("The redirect_uri is not registered for this client.");
    }
    if q.response_type.as_deref() != Some("code") {
        return Err("Only response_type=code is supported.");
    }
    if q.code_challenge_method.as_deref() != Some("S256") || q.code_challenge.as_deref().is_none_or(|c| c.len() < 43 || c.len() > 128) {
        return Err("PKCE with S256 is required.");
    }
    if q.state.as_deref().is_none_or(str::is_empty) {
        return Err("A state parameter is required.");
    }
    if !q.scope.as_deref().unwrap_or_default().split(' ').any(|s| s == "openid") {
        return Err("The openid scope is required.");
    }
    Ok(())
}

async fn authorize_page(State(idp): State<Arc<DevIdp>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if let Err(message) = check_request(&idp, &q) {
        return error_page(StatusCode::BAD_REQUEST, message);
    }
    let hidden = [
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("response_type", &q.response_type),
        ("state", &q.state),
        ("nonce", &q.nonce),
        ("code_challenge", &q.code_challenge),
        ("code_challenge_method", &q.code_challenge_method),
        ("scope", &q.scope),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v))))
    .collect::<String>();
    let input = "mt-1 block w-full rounded-lg border border-slate-300 px-3 py-2 text-sm shadow-xs focus:border-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-500/30";
    let body = format!(
        r#"<p class="mt-2 text-sm text-slate-600">Choose who to sign in to Workjet as.</p>
<form method="post" action="{MOUNT}/authorize" class="mt-6 space-y-4">{hidden}
<div><label for="email" class="block text-sm font-medium text-slate-700">Email</label>
<input id="email" name="email" type="email" required maxlength="254" autocomplete="email" autofocus placeholder="ada@example.com" class="{input}"></div>
<div><label for="name" class="block text-sm font-medium text-slate-700">Name</label>
<input id="name" name="name" type="text" maxlength="100" autocomplete="name" placeholder="Ada Lovelace" class="{input}"></div>
<label class="flex items-center gap-2 text-sm text-slate-700"><input type="checkbox" name="email_verified" value="true" checked class="h-4 w-4 rounded border-slate-300">Email address is verified</label>
<div class="flex gap-3 pt-2"><button type="submit" name="action" value="approve" class="flex-1 rounded-lg bg-slate-900 px-4 py-2.5 text-sm font-semibold text-white shadow-sm hover:bg-slate-700">Continue</button>
<button type="submit" name="action" value="deny" formnovalidate class="rounded-lg border border-slate-300 px-4 py-2.5 text-sm font-semibold text-slate-700 hover:bg-slate-50">Cancel</button></div>
</form>"#
    );
    Html(page("Sign in to Workjet", &body)).into_response()
}

#[derive(Deserialize)]
struct AuthorizeForm {
    #[serde(flatten)]
    request: AuthorizeQuery,
    email: Option<String>,
    name: Option<String>,
    email_verified: Option<String>,
    action: Option<String>,
}

async fn authorize(State(idp): State<Arc<DevIdp>>, Form(form): Form<AuthorizeForm>) -> Response {
    if let Err(message) = check_request(&idp, &form.request) {
        return error_page(StatusCode::BAD_REQUEST, message);
    }
    let mut target = Url::parse(&idp.redirect_uri).expect("valid redirect URI");
    let request_state = form.request.state.clone().unwrap_or_default();
    if form.action.as_deref() != Some("approve") {
        target.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", &request_state);
        return Redirect::to(target.as_str()).into_response();
    }
    let email = form.email.unwrap_or_default().trim().to_ascii_lowercase();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
    if !valid_email || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return error_page(StatusCode::BAD_REQUEST, "Enter a valid email address.");
    }
    let name = form.name.unwrap_or_default().trim().chars().take(100).collect::<String>();
    let code = random_token();
    {
        let mut codes = idp.codes.lock().expect("lock");
        codes.retain(|_, c| c.issued.elapsed() < CODE_TTL);
        codes.insert(
            code.clone(),
            PendingCode {
                redirect_uri: idp.redirect_uri.clone(),
                code_challenge: form.request.code_challenge.clone().unwrap_or_default(),
                nonce: form.request.nonce.clone(),
                email,
                name,
                email_verified: form.email_verified.as_deref() == Some("true"),
                issued: Instant::now(),
            },
        );
    }
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", &request_state);
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}

fn client_authenticated(idp: &DevIdp, headers: &HeaderMap, form: &TokenForm) -> bool {
    let expected = idp.client_secret.expose_secret();
    if let Some(basic) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")) {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else { return false };
        let Ok(decoded) = String::from_utf8(decoded) else { return false };
        let Some((id, secret)) = decoded.split_once(':') else { return false };
        let id = url::form_urlencoded::parse(format!("x={id}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
        let secret = url::form_urlencoded::parse(format!("x={secret}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
        return id == CLIENT_ID && constant_time_eq(secret.as_bytes(), expected.as_bytes());
    }
    form.client_id.as_deref() == Some(CLIENT_ID)
        && form.client_secret.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn token(State(idp): State<Arc<DevIdp>>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Response {
    if !client_authenticated(&idp, &headers, &form) {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.grant_type.as_deref() != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Single use: the code is gone whatever happens next.
    let Some(pending) = form.code.as_deref().and_then(|c| idp.codes.lock().expect("lock").remove(c)) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if pending.issued.elapsed() >= CODE_TTL || form.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str()) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let verifier = form.code_verifier.unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if verifier.len() < 43 || !constant_time_eq(challenge.as_bytes(), pending.code_challenge.as_bytes()) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let key = idp.key().await;
    let now = chrono::Utc::now().timestamp();
    let subject = format!("dev-{}", &hex(&Sha256::digest(pending.email.as_bytes()))[..32]);
    let domain = pending.email.rsplit('@').next().unwrap_or_default().to_owned();
    let mut claims = json!({
        "iss": idp.issuer.as_str(),
        "aud": CLIENT_ID,
        "sub": subject,
        "email": pending.email,
        "email_verified": pending.email_verified,
        "name": pending.name,
        "iat": now,
        "exp": now + 300,
    });
    if let Some(nonce) = pending.nonce {
        claims["nonce"] = json!(nonce);
    }
    if !matches!(domain.as_str(), "gmail.com" | "googlemail.com") {
        claims["hd"] = json!(domain);
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    let id_token = match jsonwebtoken::encode(&header, &claims, &key.encoding) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "development identity provider could not sign a token");
            return token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        }
    };
    Json(json!({"access_token": random_token(), "token_type": "Bearer", "expires_in": 300, "id_token": id_token, "scope": "openid email profile"})).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
