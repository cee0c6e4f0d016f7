//! The rules (feature `ssr`): API keys, users, sessions, rate limits, upstream providers.
//! No axum and no Leptos here: both doors (portal server functions and `/v1`) call these.

pub mod admin;
pub mod admission;
pub mod api_keys;
pub mod audit;
pub mod auth_cache;
pub mod limits;
pub mod providers;
pub mod rate_limit;
pub mod sessions;
pub mod shared_state;
pub mod token_budget;
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

/// Whether a database error means "unavailable" (answer 503) rather than a bug (500): the
/// connection failed, broke mid-query or could not be had in time, or the database refuses
/// writes for now (locked, read-only, disk full).
pub fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error as SqlxError};
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(e) | DbErr::Query(e) => {
            if let RuntimeErr::SqlxError(e) = e
                && matches!(
                    e.as_ref(),
                    SqlxError::Io(_)
                        | SqlxError::Tls(_)
                        | SqlxError::Protocol(_)
                        | SqlxError::PoolTimedOut
                        | SqlxError::PoolClosed
                        | SqlxError::WorkerCrashed
                )
            {
                return true;
            }
            let text = e.to_string().to_ascii_lowercase();
            [
                "database is locked",
                "readonly",
                "read-only",
                "disk",
                "connection",
                "closed",
                "broken pipe",
                "unexpected eof",
                "end of file",
                "timed out",
                "shutting down",
                "terminating",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{DbErr, RuntimeErr, sqlx};

    use super::is_unavailable;

    #[test]
    fn broken_connections_are_unavailable_and_bugs_are_not() {
        let io =
            || DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))));
        assert!(is_unavailable(&io()));
        assert!(is_unavailable(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)))));
        assert!(is_unavailable(&DbErr::Exec(RuntimeErr::Internal("database is locked".into()))));
        assert!(!is_unavailable(&DbErr::Query(RuntimeErr::Internal("syntax error near SELECT".into()))));
        assert!(!is_unavailable(&DbErr::RecordNotFound("x".into())));
    }
}
