//! The rules (feature `ssr`): API keys, users, sessions, rate limits, upstream providers.
//! No axum and no Leptos here: both doors (portal server functions and `/v1`) call these.

pub mod api_keys;
pub mod audit;
pub mod auth_cache;
pub mod providers;
pub mod rate_limit;
pub mod sessions;
pub mod shared_state;
pub mod usage;
pub mod users;

use sea_orm::DbErr;

/// A short, secret-free description of a database error for logs and error mapping.
pub fn describe_db_error(error: &DbErr) -> String {
    match error {
        DbErr::ConnectionAcquire(_) => "no database connection could be acquired".to_owned(),
        DbErr::Conn(_) => "the database connection failed".to_owned(),
        _ => "the database returned an error".to_owned(),
    }
}

/// Whether a database error means "unavailable" (answer 503) rather than a bug (500).
pub fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(e) | DbErr::Query(e) => {
            let text = e.to_string();
            text.contains("database is locked")
                || text.contains("readonly")
                || text.contains("disk")
                || text.contains("connection")
                || text.contains("closed")
        }
        _ => false,
    }
}
