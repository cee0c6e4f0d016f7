//! The `wj_signin` cookie: the sign-in transaction in progress (`state`, `nonce`, PKCE
//! verifier, return path), sealed with AES-256-GCM (the `cookie` crate's private jar) under a
//! key derived from `WJ_SECRET_KEY`. It lives for ten minutes, is sent only to the callback,
//! and is cleared by the callback whatever happens, so a visitor who has not signed in
//! costs no database row and leaves no `wj_session`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, CookieJar, Key, SameSite};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::server::config::SecretKey;

/// The cookie's name.
pub const NAME: &str = "wj_signin";
/// The only path the browser sends it to.
pub const PATH: &str = "/auth/google/callback";
/// How long a sign-in may take, in the browser (`Max-Age`) and on the server (`issued_at`).
pub const TTL: Duration = Duration::from_secs(600);
/// The HKDF purpose of the sealing key: another purpose gets an independent key.
const KEY_PURPOSE: &str = "workjet wj_signin cookie v1";
/// A sealed transaction is a few hundred bytes; anything much larger is not ours.
const MAX_COOKIE_LEN: usize = 4096;

/// One sign-in in progress. `Debug` prints no secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignInTransaction {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// Unix seconds when the flow started: the server enforces [`TTL`] itself, because a
    /// copied cookie does not expire with the browser's copy.
    pub issued_at: i64,
}

impl std::fmt::Debug for SignInTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInTransaction").field("return_to", &self.return_to).field("issued_at", &self.issued_at).finish_non_exhaustive()
    }
}

/// Why the callback found no usable transaction.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no sign-in cookie")]
    Missing,
    #[error("the sign-in cookie does not open with this key (tampered, or sealed by another deployment)")]
    Tampered,
    #[error("the sign-in cookie is older than ten minutes")]
    Expired,
}

/// Seals and opens `wj_signin` cookies.
#[derive(Clone)]
pub struct SignInCookies {
    key: Key,
    secure: bool,
}

impl std::fmt::Debug for SignInCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInCookies").field("secure", &self.secure).finish_non_exhaustive()
    }
}

impl SignInCookies {
    /// `secure`: the same rule as `wj_session`'s `Secure` flag.
    pub fn new(secret: &SecretKey, secure: bool) -> Self {
        let derived = secret.derive(KEY_PURPOSE);
        Self { key: Key::from(&derived.expose_secret()[..]), secure }
    }

    fn base(&self, value: String) -> Cookie<'static> {
        Cookie::build((NAME, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(PATH)
            .max_age(time::Duration::seconds(TTL.as_secs() as i64))
            .build()
    }

    /// The `Set-Cookie` value that carries `transaction`, sealed.
    pub fn seal(&self, transaction: &SignInTransaction) -> HeaderValue {
        let json = serde_json::to_string(transaction).expect("a transaction serializes");
        let mut jar = CookieJar::new();
        // The private jar encrypts and authenticates the value, with the name as associated
        // data: a value cut from another cookie does not open as this one.
        jar.private_mut(&self.key).add(self.base(json));
        let sealed = jar.get(NAME).expect("just added").clone();
        HeaderValue::from_str(&sealed.to_string()).expect("a sealed cookie is a valid header value")
    }

    /// The `Set-Cookie` value that removes the cookie (same name and path).
    pub fn removal(&self) -> HeaderValue {
        let mut cookie = self.base(String::new());
        cookie.make_removal();
        HeaderValue::from_str(&cookie.to_string()).expect("a removal cookie is a valid header value")
    }

    /// Opens the transaction the browser sent back, checking its age against `now` (Unix seconds).
    pub fn open(&self, headers: &HeaderMap, now: i64) -> Result<SignInTransaction, OpenError> {
        let mut jar = CookieJar::new();
        let mut found = false;
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for cookie in Cookie::split_parse(text.to_owned()).flatten() {
                if cookie.name() == NAME && cookie.value().len() <= MAX_COOKIE_LEN {
                    found = true;
                    jar.add_original(cookie.into_owned());
                }
            }
        }
        if !found {
            return Err(OpenError::Missing);
        }
        let opened = jar.private(&self.key).get(NAME).ok_or(OpenError::Tampered)?;
        let transaction: SignInTransaction = serde_json::from_str(opened.value()).map_err(|_| OpenError::Tampered)?;
        let age = now - transaction.issued_at;
        if !(0..TTL.as_secs() as i64).contains(&age) {
            return Err(OpenError::Expired);
        }
        Ok(transaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies() -> SignInCookies {
        SignInCookies::new(&SecretKey::parse(&"ab".repeat(32)).expect("key"), true)
    }

    fn transaction(issued_at: i64) -> SignInTransaction {
        SignInTransaction {
            state: "state-value".into(),
            nonce: "nonce-value".into(),
            pkce_verifier: "verifier-value-0123456789".into(),
            return_to: "/settings/sessions".into(),
            issued_at,
        }
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().expect("ascii").split(';').next().expect("pair").to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {pair}")).expect("header"));
        headers
    }

    #[test]
    fn a_sealed_transaction_opens_and_hides_its_secrets() {
        let c = cookies();
        let sealed = c.seal(&transaction(1_000));
        let text = sealed.to_str().expect("ascii");
        for secret in ["state-value", "nonce-value", "verifier-value", "settings"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let attributes: Vec<String> = text.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
        for expected in ["httponly", "secure", "samesite=lax", "path=/auth/google/callback", "max-age=600"] {
            assert!(attributes.iter().any(|a| a == expected), "{expected} missing from {text}");
        }
        assert_eq!(c.open(&request_with(&sealed), 1_100), Ok(transaction(1_000)));
        assert!(!format!("{:?} {c:?}", transaction(1)).contains("value"), "Debug shows no secret");
    }

    #[test]
    fn tampered_foreign_expired_and_missing_cookies_do_not_open() {
        let c = cookies();
        let sealed = c.seal(&transaction(1_000));
        assert_eq!(c.open(&request_with(&sealed), 1_000 + 600), Err(OpenError::Expired));
        assert_eq!(c.open(&request_with(&sealed), 900), Err(OpenError::Expired), "from the future");
        assert_eq!(c.open(&HeaderMap::new(), 1_000), Err(OpenError::Missing));
        let text = sealed.to_str().expect("ascii");
        let value_at = text.find('=').expect("=") + 5;
        let mut bytes = text.as_bytes().to_vec();
        bytes[value_at] = if bytes[value_at] == b'A' { b'B' } else { b'A' };
        let flipped = HeaderValue::from_bytes(&bytes).expect("header");
        assert_eq!(c.open(&request_with(&flipped), 1_000), Err(OpenError::Tampered));
        let other = SignInCookies::new(&SecretKey::parse(&"cd".repeat(32)).expect("key"), true);
        assert_eq!(other.open(&request_with(&sealed), 1_000), Err(OpenError::Tampered), "another key");
        let removal = c.removal();
        let removal = removal.to_str().expect("ascii").to_ascii_lowercase();
        assert!(removal.starts_with("wj_signin=;") && removal.contains("max-age=0") && removal.contains("path=/auth/google/callback"));
    }
}
