//! The rules (feature `ssr`): API keys, users, sessions, rate limits, upstream providers.
//! No axum and no Leptos here: both doors (portal server functions and `/v1`) call these.

pub mod api_keys;
