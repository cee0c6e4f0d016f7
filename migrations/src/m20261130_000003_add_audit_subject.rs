//! Audit events name the user whose account or key an action concerned when that is not the
//! actor (an administrator disabling someone, revoking someone's key), so that the person
//! concerned finds it in their own security log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(AuditEvents::Table).add_column(big_integer_null(AuditEvents::SubjectUserId)).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_subject")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::SubjectUserId)
                    .col(AuditEvents::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_audit_events_subject").table(AuditEvents::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(AuditEvents::Table).drop_column(AuditEvents::SubjectUserId).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    SubjectUserId,
}
