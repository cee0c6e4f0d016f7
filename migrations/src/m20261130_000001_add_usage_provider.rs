//! Usage accounting names the provider that answered (a model may have several: failover).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(UsageEvents::Table).add_column(string_len_null(UsageEvents::Provider, 200)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(UsageEvents::Table).drop_column(UsageEvents::Provider).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    Provider,
}
