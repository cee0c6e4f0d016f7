//! Workjet's database schema, as an ordered list of reversible SeaORM migrations.
//!
//! A migration is never edited once it has landed on `main`: change the schema with a new
//! `mYYYYMMDD_NNNNNN_verb_noun.rs` file appended to [`Migrator::migrations`].

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_schema;
mod m20261128_000001_create_usage_events;
mod m20261130_000001_add_usage_provider;
mod m20261130_000002_add_key_guardrails;
mod m20261130_000003_add_audit_subject;

/// Runs Workjet's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_schema::Migration),
            Box::new(m20261128_000001_create_usage_events::Migration),
            Box::new(m20261130_000001_add_usage_provider::Migration),
            Box::new(m20261130_000002_add_key_guardrails::Migration),
            Box::new(m20261130_000003_add_audit_subject::Migration),
        ]
    }
}
