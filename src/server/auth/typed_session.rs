//! The `wj_session` session as Workjet uses it: who is signed in, written once at sign-in.
//! Handlers speak to this type, never to the session's raw keys (as zero2prod's
//! `TypedSession`); the keys themselves are [`domain::sessions::keys`](crate::domain::sessions::keys),
//! which the session store also reads.

use axum::{extract::FromRequestParts, http::request::Parts};
use tower_sessions::{Session, session::Error};

use crate::domain::sessions::{keys, token_hash};

/// A request's session.
#[derive(Clone, Debug)]
pub struct TypedSession(Session);

impl TypedSession {
    pub fn new(session: Session) -> Self {
        Self(session)
    }

    /// The signed-in user, if any.
    pub async fn user_id(&self) -> Result<Option<i64>, Error> {
        self.0.get::<i64>(keys::USER_ID).await
    }

    /// Signs `user_id` in: a new session id (any id the browser brought is replaced, never
    /// promoted), then who, since when, and from which browser and address.
    pub async fn sign_in(&self, user_id: i64, user_agent: &str, ip: Option<&str>) -> Result<(), Error> {
        self.0.cycle_id().await?;
        self.0.insert(keys::USER_ID, user_id).await?;
        self.0.insert(keys::SIGNED_IN_AT, chrono::Utc::now().timestamp()).await?;
        self.0.insert(keys::USER_AGENT, user_agent).await?;
        self.0.insert(keys::IP, ip).await
    }

    /// Ends the session: deleted on the server at once, the cookie removed.
    pub async fn end(&self) -> Result<(), Error> {
        self.0.flush().await
    }

    /// The SHA-256 of the session token (what the sessions table stores), if it has one.
    pub fn token_hash(&self) -> Option<[u8; 32]> {
        self.0.id().map(|id| token_hash(&id))
    }

    /// The session itself, for its expiry.
    pub fn inner(&self) -> &Session {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TypedSession {
    type Rejection = <Session as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state).await.map(Self)
    }
}
