//! One page per file.

pub mod api_keys;
pub mod login;
pub mod not_found;
pub mod sessions;
