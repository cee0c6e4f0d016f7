//! A key's last use — when, from which address, with which user agent — without a database
//! write per request: uses are coalesced in memory and flushed at most once a minute per
//! key, with a forward-only update. The time is kept to the second: on the hot path a use
//! costs one map read, and a map write only once a second (or when the address or user
//! agent changed); the user agent is copied only when it differs from the one already held.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, sea_query::Expr};

use crate::{domain::audit::MAX_USER_AGENT_CHARS, entities::api_keys};

/// Where a request came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UseSite<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// A use not yet written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUse {
    pub at: DateTime<Utc>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
}

/// The Unix time in whole seconds, without a calendar date (every request reads it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Pending last uses, by key id.
#[derive(Clone, Default)]
pub struct LastUsedTracker {
    pending: Arc<DashMap<i64, PendingUse>>,
}

/// The user agent as kept: trimmed, cut to [`MAX_USER_AGENT_CHARS`]; empty is none.
fn user_agent_of<'a>(site: &UseSite<'a>) -> Option<&'a str> {
    let user_agent = site.user_agent.map(str::trim).filter(|ua| !ua.is_empty())?;
    Some(match user_agent.char_indices().nth(MAX_USER_AGENT_CHARS) {
        Some((end, _)) => &user_agent[..end],
        None => user_agent,
    })
}

impl LastUsedTracker {
    /// Records a use now, from `site`.
    pub fn touch(&self, key_id: i64, site: UseSite<'_>) {
        let user_agent = user_agent_of(&site);
        let ip = site.ip.map(|ip| ip.to_canonical());
        // Used again within the second, from the same place: nothing to write (the time is
        // kept to the second), so a busy key's requests share the map's lock instead of
        // taking it in turn.
        if let Some(pending) = self.pending.get(&key_id)
            && pending.at.timestamp() == unix_now()
            && pending.ip == ip
            && pending.user_agent.as_deref() == user_agent
        {
            return;
        }
        let now = Utc::now();
        self.pending
            .entry(key_id)
            .and_modify(|pending| {
                if now >= pending.at {
                    pending.at = now;
                    pending.ip = ip;
                    if pending.user_agent.as_deref() != user_agent {
                        pending.user_agent = user_agent.map(Arc::from);
                    }
                }
            })
            .or_insert_with(|| PendingUse { at: now, ip, user_agent: user_agent.map(Arc::from) });
    }

    /// The not-yet-flushed use of a key, if any (so lists on this instance are fresh).
    pub fn pending(&self, key_id: i64) -> Option<PendingUse> {
        self.pending.get(&key_id).map(|p| p.clone())
    }

    /// Writes every pending use; only ever moves `last_used_at` forward.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch: Vec<(i64, PendingUse)> = self.pending.iter().map(|e| (*e.key(), e.value().clone())).collect();
        let mut written = 0;
        for (key_id, used) in batch {
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::LastUsedAt, Expr::value(used.at))
                .col_expr(api_keys::Column::LastUsedIp, Expr::value(used.ip.map(|ip| ip.to_string())))
                .col_expr(api_keys::Column::LastUsedUserAgent, Expr::value(used.user_agent.as_deref().map(str::to_owned)))
                .filter(api_keys::Column::Id.eq(key_id))
                .filter(api_keys::Column::LastUsedAt.is_null().or(api_keys::Column::LastUsedAt.lt(used.at)))
                .exec(db)
                .await?;
            // Remove only if no newer use arrived meanwhile.
            self.pending.remove_if(&key_id, |_, p| p.at <= used.at);
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_use_is_kept_with_its_address_and_agent() {
        let tracker = LastUsedTracker::default();
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        tracker.touch(1, UseSite { ip: ip("203.0.113.7"), user_agent: Some("curl/8.5.0") });
        let first = tracker.pending(1).expect("pending");
        assert_eq!((first.ip, first.user_agent.as_deref()), (ip("203.0.113.7"), Some("curl/8.5.0")));
        tracker.touch(1, UseSite { ip: ip("::ffff:198.51.100.1"), user_agent: Some("  OpenAI/Python 2.8.1 ") });
        let second = tracker.pending(1).expect("pending");
        assert_eq!((second.ip, second.user_agent.as_deref()), (ip("198.51.100.1"), Some("OpenAI/Python 2.8.1")));
        assert!(second.at >= first.at);
        let agent = "a".repeat(1000);
        tracker.touch(1, UseSite { ip: None, user_agent: Some(&agent) });
        let held = tracker.pending(1).expect("pending").user_agent.expect("agent");
        assert_eq!(held.chars().count(), MAX_USER_AGENT_CHARS);
        let before = Arc::as_ptr(&held);
        tracker.touch(1, UseSite { ip: None, user_agent: Some(&agent) });
        assert_eq!(
            Arc::as_ptr(&tracker.pending(1).expect("pending").user_agent.expect("agent")),
            before,
            "the same agent is not copied again"
        );
        tracker.touch(1, UseSite { ip: None, user_agent: Some("") });
        assert_eq!(tracker.pending(1).expect("pending").user_agent, None, "an empty agent is none");
        // Many uses from one place: the time kept is right to the second.
        let site = UseSite { ip: ip("203.0.113.9"), user_agent: Some("sdk") };
        for _ in 0..1000 {
            tracker.touch(2, site);
        }
        let held = tracker.pending(2).expect("pending");
        assert!((Utc::now() - held.at).num_milliseconds() < 2000, "{held:?}");
        assert_eq!((held.ip, held.user_agent.as_deref()), (site.ip, Some("sdk")));
    }
}
