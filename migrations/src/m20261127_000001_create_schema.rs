//! The first schema: users, their browser sessions, their API keys, and the audit trail.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    // Users are keyed by the identity provider's (issuer, subject): an email
                    // address can change hands, a subject never does.
                    .col(string_len(Users::OidcIssuer, 255))
                    .col(string_len(Users::OidcSubject, 255))
                    .col(string_len(Users::Email, 320))
                    .col(string_len(Users::Name, 255))
                    .col(text_null(Users::Picture))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::LastSignInAt))
                    .col(timestamp_with_time_zone_null(Users::DisabledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_oidc_identity")
                    .table(Users::Table)
                    .col(Users::OidcIssuer)
                    .col(Users::OidcSubject)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Sessions::Id))
                    // SHA-256 of the cookie token; the token itself is never stored.
                    .col(binary_len(Sessions::TokenHash, 32))
                    // NULL while the browser is still in the sign-in flow.
                    .col(big_integer_null(Sessions::UserId))
                    .col(text(Sessions::Data))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                    .col(string_len_null(Sessions::UserAgent, 512))
                    .col(string_len_null(Sessions::Ip, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(manager, "ux_sessions_token_hash", Sessions::Table, &[Sessions::TokenHash], true).await?;
        create_index(manager, "ix_sessions_user", Sessions::Table, &[Sessions::UserId], false).await?;
        create_index(manager, "ix_sessions_expires_at", Sessions::Table, &[Sessions::ExpiresAt], false).await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ApiKeys::Id))
                    .col(big_integer(ApiKeys::UserId))
                    .col(string_len(ApiKeys::Name, 400))
                    // SHA-256 of the whole key; the key itself is never stored.
                    .col(binary_len(ApiKeys::KeyHash, 32))
                    .col(string_len(ApiKeys::Hint, 32))
                    .col(string_len(ApiKeys::Permissions, 128))
                    .col(integer_null(ApiKeys::RateLimitPerMinute))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_user")
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(manager, "ux_api_keys_key_hash", ApiKeys::Table, &[ApiKeys::KeyHash], true).await?;
        create_index(manager, "ix_api_keys_user_created", ApiKeys::Table, &[ApiKeys::UserId, ApiKeys::CreatedAt], false).await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer_null(AuditEvents::ActorUserId))
                    .col(string_len(AuditEvents::Action, 64))
                    .col(string_len_null(AuditEvents::Target, 128))
                    .col(string_len_null(AuditEvents::Ip, 64))
                    .col(timestamp_with_time_zone(AuditEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_events_actor")
                            .from(AuditEvents::Table, AuditEvents::ActorUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "ix_audit_events_actor_created",
            AuditEvents::Table,
            &[AuditEvents::ActorUserId, AuditEvents::CreatedAt],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [AuditEvents::Table.into_iden(), ApiKeys::Table.into_iden(), Sessions::Table.into_iden(), Users::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

async fn create_index<T: Iden + Copy + 'static, C: Iden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    OidcIssuer,
    OidcSubject,
    Email,
    Name,
    Picture,
    CreatedAt,
    LastSignInAt,
    DisabledAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    Data,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
    UserAgent,
    Ip,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    KeyHash,
    Hint,
    Permissions,
    RateLimitPerMinute,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditEvents {
    Table,
    Id,
    ActorUserId,
    Action,
    Target,
    Ip,
    CreatedAt,
}
