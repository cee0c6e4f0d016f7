//! Connecting to the database (SQLite or PostgreSQL) and running migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};

use crate::server::config::Config;

/// Opens the connection pool described by the configuration.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(config.database_max_connections)
        .min_connections(if config.is_sqlite() { 1 } else { 0 })
        .connect_timeout(config.database_timeout)
        .acquire_timeout(config.database_timeout)
        .idle_timeout(Duration::from_secs(300))
        // Statements carry only bound parameters, but keep the log quiet and fast anyway:
        // only slow statements are reported.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
        });
    let mut db = Database::connect(options).await?;
    if crate::observe::trace::enabled() {
        // Each statement becomes a span under the request that ran it.
        let system = if config.is_sqlite() { "sqlite" } else { "postgresql" };
        db.set_metric_callback(move |info| {
            crate::observe::trace::db_statement(system, &info.statement.sql, info.elapsed, info.failed);
        });
    }
    Ok(db)
}

/// Runs every pending migration. On PostgreSQL the run holds a transaction-scoped advisory
/// lock, so instances starting at the same moment migrate one after the other.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7413505262)").await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        _ => Migrator::up(db, None).await,
    }
}

/// Answers whether the database serves reads right now (used by `/readyz`). It reads a real
/// table so that a locked SQLite file or a lost PostgreSQL server both count as down.
pub async fn ping(db: &DatabaseConnection, timeout: Duration) -> Result<(), String> {
    let backend = db.get_database_backend();
    let probe = db.query_one_raw(Statement::from_string(backend, "SELECT count(*) FROM seaql_migrations"));
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(describe_db_error(&e)),
        Err(_) => Err("the database did not answer in time".to_owned()),
    }
}

pub use crate::domain::describe_db_error;

/// The pool's connections right now: (idle, in use).
pub fn pool_connections(db: &DatabaseConnection) -> (u32, u32) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
    (idle, size - idle)
}
