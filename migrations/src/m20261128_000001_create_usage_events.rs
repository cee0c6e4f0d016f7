//! Usage accounting: one row per gateway request (key, model, status, latency, tokens).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UsageEvents::Id))
                    .col(big_integer(UsageEvents::UserId))
                    .col(big_integer_null(UsageEvents::ApiKeyId))
                    .col(string_len(UsageEvents::Model, 200))
                    .col(small_integer(UsageEvents::Status))
                    .col(integer(UsageEvents::LatencyMs))
                    .col(big_integer(UsageEvents::PromptTokens))
                    .col(big_integer(UsageEvents::CompletionTokens))
                    .col(boolean(UsageEvents::Streamed))
                    .col(timestamp_with_time_zone(UsageEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_usage_events_user")
                            .from(UsageEvents::Table, UsageEvents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_events_user_created")
                    .table(UsageEvents::Table)
                    .col(UsageEvents::UserId)
                    .col(UsageEvents::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UsageEvents::Table).if_exists().to_owned()).await
    }
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    Id,
    UserId,
    ApiKeyId,
    Model,
    Status,
    LatencyMs,
    PromptTokens,
    CompletionTokens,
    Streamed,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
