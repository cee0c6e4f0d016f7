//! `audit_events`: who did what to which object, and from where.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub actor_user_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTimeUtc,
    pub user_agent: Option<String>,
    /// What changed, as JSON (e.g. the fields an edit set); never a secret.
    pub detail: Option<String>,
    /// The user whose account or key the action concerned, when not the actor (an
    /// administrator's action): their security log shows it too.
    pub subject_user_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
