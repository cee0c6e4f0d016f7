//! `last_used_at` without a database write per request: uses are coalesced in memory and
//! flushed at most once a minute per key, with a forward-only update.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, sea_query::Expr};

use crate::entities::api_keys;

/// Pending `last_used_at` values, by key id.
#[derive(Clone, Default)]
pub struct LastUsedTracker {
    pending: Arc<DashMap<i64, DateTime<Utc>>>,
}

impl LastUsedTracker {
    /// Records a use now (cheap: one map write).
    pub fn touch(&self, key_id: i64) {
        let now = Utc::now();
        self.pending.entry(key_id).and_modify(|t| *t = Ord::max(*t, now)).or_insert(now);
    }

    /// The not-yet-flushed use of a key, if any (so lists on this instance are fresh).
    pub fn pending(&self, key_id: i64) -> Option<DateTime<Utc>> {
        self.pending.get(&key_id).map(|t| *t)
    }

    /// Writes every pending use; only ever moves `last_used_at` forward.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch: Vec<(i64, DateTime<Utc>)> = self.pending.iter().map(|e| (*e.key(), *e.value())).collect();
        let mut written = 0;
        for (key_id, at) in batch {
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
                .filter(api_keys::Column::Id.eq(key_id))
                .filter(api_keys::Column::LastUsedAt.is_null().or(api_keys::Column::LastUsedAt.lt(at)))
                .exec(db)
                .await?;
            // Remove only if no newer use arrived meanwhile.
            self.pending.remove_if(&key_id, |_, t| *t <= at);
            written += 1;
        }
        Ok(written)
    }
}
