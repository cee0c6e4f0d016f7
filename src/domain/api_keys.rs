//! API keys: their format, hashing, and the service that creates, lists, revokes and
//! authenticates them.

pub mod format;

pub use format::{ApiKeyHash, KeyFormatError, PlainApiKey};
