//! API keys: their format, hashing, and the service that creates, lists, revokes and
//! authenticates them.

pub mod format;
pub mod grant;
pub mod guardrails;
pub mod last_used;
pub mod name;
pub mod service;

pub use format::{ApiKeyHash, KeyFormatError, PlainApiKey};
pub use grant::{Grant, GrantError, KeyTerms, NewKeyOptions, RateCeiling, RateLimits};
pub use name::KeyName;
pub use service::{ApiKeyError, ApiKeyRecord, ApiKeyService, AuthFailure, KeyPrincipal, Known, MAX_ACTIVE_KEYS, MAX_EXPIRY_DAYS};
