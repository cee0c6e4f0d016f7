//! Keys people can live with: per-key guardrails (a model allow-list, a daily token budget),
//! the address and user agent of a key's last use, the key a rolled key was replaced by, the
//! per-day token counts budgets are checked against (when Redis does not hold them), and
//! richer audit events (user agent, what changed) for the security log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        let key_columns = [
            text_null(ApiKeys::Models),
            big_integer_null(ApiKeys::DailyTokenLimit),
            string_len_null(ApiKeys::LastUsedIp, 64),
            string_len_null(ApiKeys::LastUsedUserAgent, 300),
            big_integer_null(ApiKeys::ReplacedBy),
        ];
        for mut column in key_columns {
            manager.alter_table(Table::alter().table(ApiKeys::Table).add_column(&mut column).to_owned()).await?;
        }
        for mut column in [string_len_null(AuditEvents::UserAgent, 300), text_null(AuditEvents::Detail)] {
            manager.alter_table(Table::alter().table(AuditEvents::Table).add_column(&mut column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyDailyTokens::Table)
                    .if_not_exists()
                    .col(big_integer(ApiKeyDailyTokens::ApiKeyId))
                    .col(string_len(ApiKeyDailyTokens::Day, 10))
                    .col(big_integer(ApiKeyDailyTokens::Tokens))
                    .primary_key(Index::create().col(ApiKeyDailyTokens::ApiKeyId).col(ApiKeyDailyTokens::Day))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_key_daily_tokens_key")
                            .from(ApiKeyDailyTokens::Table, ApiKeyDailyTokens::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The key detail page's charts read one key's usage over 30 days.
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_events_key_created")
                    .table(UsageEvents::Table)
                    .col(UsageEvents::ApiKeyId)
                    .col(UsageEvents::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_usage_events_key_created").table(UsageEvents::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ApiKeyDailyTokens::Table).if_exists().to_owned()).await?;
        for column in [AuditEvents::UserAgent, AuditEvents::Detail] {
            manager.alter_table(Table::alter().table(AuditEvents::Table).drop_column(column).to_owned()).await?;
        }
        for column in [ApiKeys::Models, ApiKeys::DailyTokenLimit, ApiKeys::LastUsedIp, ApiKeys::LastUsedUserAgent, ApiKeys::ReplacedBy] {
            manager.alter_table(Table::alter().table(ApiKeys::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Models,
    DailyTokenLimit,
    LastUsedIp,
    LastUsedUserAgent,
    ReplacedBy,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    UserAgent,
    Detail,
}

#[derive(DeriveIden)]
enum ApiKeyDailyTokens {
    Table,
    ApiKeyId,
    Day,
    Tokens,
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    ApiKeyId,
    CreatedAt,
}
