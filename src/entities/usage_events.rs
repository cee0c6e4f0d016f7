//! `usage_events`: one row per gateway request.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub api_key_id: Option<i64>,
    pub model: String,
    pub provider: Option<String>,
    pub status: i16,
    pub latency_ms: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub streamed: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
