//! SeaORM entities, one per table. They never leave the server: domain code maps them to
//! its own types and the wire types sent to clients.

pub mod api_key_daily_tokens;
pub mod api_keys;
pub mod audit_events;
pub mod sessions;
pub mod usage_events;
pub mod users;
