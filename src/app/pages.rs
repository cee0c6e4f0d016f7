//! One page per file.

pub mod admin;
pub mod api_keys;
pub mod key_detail;
pub mod login;
pub mod not_found;
pub mod security_log;
pub mod sessions;
