//! API keys: their format, hashing, and the service that creates, lists, revokes and
//! authenticates them.

pub mod format;
pub mod last_used;
pub mod name;
pub mod service;

pub use format::{ApiKeyHash, KeyFormatError, PlainApiKey};
pub use name::KeyName;
pub use service::{ApiKeyError, ApiKeyRecord, ApiKeyService, AuthFailure, KeyPrincipal, Known, MAX_ACTIVE_KEYS, NewKeyOptions};
