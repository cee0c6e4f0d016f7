//! A local OpenID Connect provider for the tests: its own server (a different origin from
//! Workjet), real RS256 keys, PKCE checked, and switches to misbehave in every way the
//! sign-in code must survive.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};
use rsa::{pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "test-client.apps.example";
pub const CLIENT_SECRET: &str = "test-client-secret-value-0123456789";

/// An RSA key with its kid.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
    pub public_der: Vec<u8>,
}

fn make_key(kid: &str) -> TestKey {
    let private = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, 2048).expect("rsa");
    let der = private.to_pkcs1_der().expect("der");
    use rsa::pkcs1::EncodeRsaPublicKey;
    let public_der = private.to_public_key().to_pkcs1_der().expect("public der").as_bytes().to_vec();
    TestKey {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be())}),
        public_der,
    }
}

/// Three keys generated once per test run: `keys()[0]` published first, `[1]` after a
/// rotation, `[2]` never published.
pub fn keys() -> &'static [TestKey; 3] {
    static KEYS: OnceLock<[TestKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| [make_key("key-2026-a"), make_key("key-2026-b"), make_key("key-rogue")])
}

/// How the provider behaves; tests change it between steps.
#[derive(Clone, Debug)]
pub struct Behavior {
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub sub: String,
    pub hd: Option<String>,
    pub audience: String,
    pub issuer_override: Option<String>,
    pub expires_in: i64,
    pub nonce_override: Option<String>,
    /// Index into [`keys`] used to sign.
    pub signing_key: usize,
    /// Indexes published in the JWKS.
    pub published_keys: Vec<usize>,
    pub sign_hs256_with_public_key: bool,
    pub token_status: Option<u16>,
    pub token_delay: Option<Duration>,
    pub discovery_status: Option<u16>,
    pub omit_id_token: bool,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            email: "ada@example.com".into(),
            email_verified: true,
            name: "Ada Lovelace".into(),
            sub: "1000001".into(),
            hd: None,
            audience: CLIENT_ID.into(),
            issuer_override: None,
            expires_in: 3600,
            nonce_override: None,
            signing_key: 0,
            published_keys: vec![0],
            sign_hs256_with_public_key: false,
            token_status: None,
            token_delay: None,
            discovery_status: None,
            omit_id_token: false,
        }
    }
}

struct Pending {
    redirect_uri: String,
    challenge: String,
    nonce: String,
}

#[derive(Default)]
struct Inner {
    behavior: Mutex<Behavior>,
    codes: Mutex<HashMap<String, Pending>>,
    jwks_fetches: Mutex<u32>,
    token_requests: Mutex<Vec<String>>,
}

/// A running provider.
#[derive(Clone)]
pub struct TestIdp {
    pub issuer: String,
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl TestIdp {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
        let addr = listener.local_addr().expect("addr");
        let idp = Self { issuer: format!("http://{addr}"), addr, inner: Arc::new(Inner::default()) };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        idp
    }

    pub fn set(&self, change: impl FnOnce(&mut Behavior)) {
        change(&mut self.inner.behavior.lock().expect("lock"));
    }

    pub fn jwks_fetches(&self) -> u32 {
        *self.inner.jwks_fetches.lock().expect("lock")
    }

    /// The raw bodies of the token requests received (to check what Workjet sends).
    pub fn token_requests(&self) -> Vec<String> {
        self.inner.token_requests.lock().expect("lock").clone()
    }

    /// Workjet settings that point sign-in at this provider.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WJ_OIDC_ISSUER", self.issuer.clone()),
            ("WJ_GOOGLE_CLIENT_ID", CLIENT_ID.into()),
            ("WJ_GOOGLE_CLIENT_SECRET", CLIENT_SECRET.into()),
        ]
    }
}

async fn discovery(State(idp): State<TestIdp>) -> Response {
    if let Some(status) = idp.inner.behavior.lock().expect("lock").discovery_status {
        return StatusCode::from_u16(status).expect("status").into_response();
    }
    let i = &idp.issuer;
    Json(json!({
        "issuer": i, "authorization_endpoint": format!("{i}/authorize"), "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"), "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<TestIdp>) -> Json<Value> {
    *idp.inner.jwks_fetches.lock().expect("lock") += 1;
    let published = idp.inner.behavior.lock().expect("lock").published_keys.clone();
    Json(json!({"keys": published.iter().map(|i| keys()[*i].jwk.clone()).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    response_type: String,
}

/// Approves at once (the "user" is whoever [`Behavior`] says).
async fn authorize(State(idp): State<TestIdp>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.client_id != CLIENT_ID || q.response_type != "code" || q.code_challenge_method.as_deref() != Some("S256") {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = format!("code-{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()));
    idp.inner.codes.lock().expect("lock").insert(
        code.clone(),
        Pending {
            redirect_uri: q.redirect_uri.clone(),
            challenge: q.code_challenge.unwrap_or_default(),
            nonce: q.nonce.unwrap_or_default(),
        },
    );
    let mut target = url::Url::parse(&q.redirect_uri).expect("redirect uri");
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", &q.state);
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(idp): State<TestIdp>, headers: HeaderMap, body: String) -> Response {
    idp.inner.token_requests.lock().expect("lock").push(body.clone());
    let behavior = idp.inner.behavior.lock().expect("lock").clone();
    if let Some(delay) = behavior.token_delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = behavior.token_status {
        return (StatusCode::from_u16(status).expect("status"), "<html>upstream error</html>").into_response();
    }
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let Some(pending) = form.get("code").and_then(|c| idp.inner.codes.lock().expect("lock").remove(c)) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "unknown or used code"})))
            .into_response();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != pending.challenge
        || form.get("redirect_uri") != Some(&pending.redirect_uri)
    {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "PKCE verification failed"})))
            .into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": behavior.issuer_override.clone().unwrap_or_else(|| idp.issuer.clone()),
        "aud": behavior.audience, "sub": behavior.sub, "email": behavior.email, "email_verified": behavior.email_verified,
        "name": behavior.name, "iat": now, "exp": now + behavior.expires_in,
        "nonce": behavior.nonce_override.clone().unwrap_or(pending.nonce),
    });
    if let Some(hd) = &behavior.hd {
        claims["hd"] = json!(hd);
    }
    let key = &keys()[behavior.signing_key];
    let id_token = if behavior.sign_hs256_with_public_key {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key.public_der)).expect("sign")
    } else {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign")
    };
    let mut response = json!({"access_token": "at-123", "token_type": "Bearer", "expires_in": 3600});
    if !behavior.omit_id_token {
        response["id_token"] = json!(id_token);
    }
    Json(response).into_response()
}
