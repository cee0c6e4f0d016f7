//! Daily token budgets of API keys, counted across instances: the database holds each key's
//! tokens per UTC day (the record, written as each request ends); with Redis the count is
//! read from Redis (one round trip), which is seeded from the database whenever it does not
//! hold a day's count (first read, after a restart or a flush) — so a Redis that lost its
//! data never forgets what was spent. When Redis cannot answer, the database does.
//!
//! Only keys with a budget pay any of this: the others are never counted here.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, Set,
    sea_query::{Expr, OnConflict},
};

use crate::{
    domain::{
        api_keys::guardrails::{BudgetedKey, GuardrailRefusal, Guardrails, utc_day},
        shared_state::SharedState,
    },
    entities::api_key_daily_tokens as daily,
};

/// How long Redis keeps a day's count (past the day's end, for late requests).
const COUNTER_LIFETIME: Duration = Duration::from_secs(2 * 86_400);

/// The token budgets of every key.
#[derive(Clone)]
pub struct TokenBudgets {
    db: DatabaseConnection,
    shared: Option<Arc<SharedState>>,
}

impl TokenBudgets {
    pub fn new(db: DatabaseConnection, shared: Option<Arc<SharedState>>) -> Self {
        Self { db, shared }
    }

    /// The one decision for an inference request of a key with `guardrails` for `model`:
    /// the model must be allowed and, when the key has a budget, its tokens today under it.
    /// Answers the budget to count the request's tokens against, if any.
    pub async fn admit(&self, guardrails: Option<&Guardrails>, model: &str) -> Result<Option<BudgetedKey>, GuardrailRefusal> {
        let Some(rails) = guardrails else { return Ok(None) };
        rails.check_model(model)?;
        if rails.daily_token_limit.is_none() {
            return Ok(None);
        }
        let now = Utc::now();
        rails.check_budget(self.used_on(rails.budget_key_id, now).await?, now)?;
        Ok(Some(BudgetedKey { budget_key_id: rails.budget_key_id }))
    }

    /// Tokens counted for `key_id` today (UTC).
    pub async fn used_today(&self, key_id: i64) -> Result<u64, DbErr> {
        self.used_on(key_id, Utc::now()).await
    }

    async fn used_on(&self, key_id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let day = utc_day(now);
        if let Some(shared) = &self.shared {
            let name = counter_name(key_id, &day);
            match shared.counter(&name).await {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {
                    let stored = self.stored(key_id, &day).await?;
                    match shared.seed_counter(&name, stored, COUNTER_LIFETIME).await {
                        Ok(value) => return Ok(value),
                        Err(error) => tracing::warn!(%error, "token budget: Redis could not be seeded; counting from the database"),
                    }
                    return Ok(stored);
                }
                Err(error) => tracing::debug!(%error, "token budget: Redis unavailable; counting from the database"),
            }
        }
        self.stored(key_id, &day).await
    }

    async fn stored(&self, key_id: i64, day: &str) -> Result<u64, DbErr> {
        let row = daily::Entity::find().filter(daily::Column::ApiKeyId.eq(key_id)).filter(daily::Column::Day.eq(day)).one(&self.db).await?;
        Ok(row.map_or(0, |r| u64::try_from(r.tokens).unwrap_or(0)))
    }

    /// Counts `tokens` spent now against `budget`: in the database (the record) and in
    /// Redis' count when it holds one. A failure is logged: the request has happened.
    pub async fn spend(&self, budget: BudgetedKey, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let day = utc_day(Utc::now());
        if let Err(error) = self.add_stored(budget.budget_key_id, &day, tokens).await {
            tracing::warn!(error = %crate::domain::describe_db_error(&error), "token budget: tokens not recorded");
        }
        if let Some(shared) = &self.shared
            && let Err(error) = shared.add_to_counter(&counter_name(budget.budget_key_id, &day), tokens).await
        {
            // Redis' count is behind: the database's is not. Forget Redis' so that the next
            // read seeds it again from the database.
            tracing::warn!(%error, "token budget: Redis' count not updated");
        }
    }

    async fn add_stored(&self, key_id: i64, day: &str, tokens: u64) -> Result<(), DbErr> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        daily::Entity::insert(daily::ActiveModel { api_key_id: Set(key_id), day: Set(day.to_owned()), tokens: Set(tokens) })
            .on_conflict(
                OnConflict::columns([daily::Column::ApiKeyId, daily::Column::Day])
                    .value(daily::Column::Tokens, Expr::col((daily::Entity, daily::Column::Tokens)).add(tokens))
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// When a key is rolled, its replacement starts the day with what the old key spent
    /// (both then count against the replacement's budget).
    pub async fn carry_over<C: sea_orm::ConnectionTrait>(txn: &C, from: i64, to: i64) -> Result<(), DbErr> {
        let day = utc_day(Utc::now());
        let Some(row) =
            daily::Entity::find().filter(daily::Column::ApiKeyId.eq(from)).filter(daily::Column::Day.eq(day.as_str())).one(txn).await?
        else {
            return Ok(());
        };
        daily::Entity::insert(daily::ActiveModel { api_key_id: Set(to), day: Set(day), tokens: Set(row.tokens) })
            .on_conflict(OnConflict::columns([daily::Column::ApiKeyId, daily::Column::Day]).update_column(daily::Column::Tokens).to_owned())
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }
}

fn counter_name(key_id: i64, day: &str) -> String {
    format!("tokens:{key_id}:{day}")
}
