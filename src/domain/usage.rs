//! Usage accounting off the request path: requests hand a record to a queue; a writer task
//! inserts them in batches, a quarter of a second after the first of a quiet spell, then
//! 500 records a statement group until the queue is empty.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, sea_query::Expr};
use tokio::sync::mpsc;

use crate::entities::usage_events;

/// One gateway request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRecord {
    pub user_id: i64,
    pub api_key_id: Option<i64>,
    pub model: String,
    /// The provider that answered (or the last one tried); `None` if none was.
    pub provider: Option<String>,
    pub status: u16,
    pub latency_ms: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub streamed: bool,
    pub at: DateTime<Utc>,
}

/// Reports one gateway request's usage when it ends, however it ends.
pub struct Meter {
    recorder: UsageRecorder,
    user_id: i64,
    key_id: Option<i64>,
    model: String,
    /// The provider that answered, or the last one tried.
    pub provider: Option<String>,
    started: std::time::Instant,
    streamed: bool,
    /// The token budget the request's tokens count against, if its key has one.
    budget: Option<(crate::domain::token_budget::TokenBudgets, crate::domain::api_keys::guardrails::BudgetedKey)>,
}

impl Meter {
    /// Starts timing a request of `user_id` (through `key_id`, if a key) for `model`.
    pub fn start(recorder: UsageRecorder, user_id: i64, key_id: Option<i64>, model: &str, streamed: bool) -> Self {
        Self {
            recorder,
            user_id,
            key_id,
            model: model.to_owned(),
            provider: None,
            started: std::time::Instant::now(),
            streamed,
            budget: None,
        }
    }

    /// Counts the request's tokens against `budget` too.
    pub fn with_budget(
        mut self,
        budget: Option<(crate::domain::token_budget::TokenBudgets, crate::domain::api_keys::guardrails::BudgetedKey)>,
    ) -> Self {
        self.budget = budget;
        self
    }

    /// Records the request's end; its tokens reach the key's budget (if any) in the
    /// background.
    pub fn record(mut self, status: u16, usage: crate::domain::providers::Usage) {
        if let Some((budgets, key)) = self.budget.take() {
            tokio::spawn(async move { budgets.spend(key, usage.prompt_tokens.saturating_add(usage.completion_tokens)).await });
        }
        self.record_usage(status, usage);
    }

    /// Records the request's end; its tokens are counted against the key's budget (if any)
    /// before this returns — before the answer leaves, so the next request sees them.
    pub async fn finish(mut self, status: u16, usage: crate::domain::providers::Usage) {
        if let Some((budgets, key)) = self.budget.take() {
            budgets.spend(key, usage.prompt_tokens.saturating_add(usage.completion_tokens)).await;
        }
        self.record_usage(status, usage);
    }

    fn record_usage(self, status: u16, usage: crate::domain::providers::Usage) {
        let elapsed = self.started.elapsed();
        if let Some(provider) = &self.provider {
            crate::observe::upstream_request(provider, &self.model, status, elapsed, usage.prompt_tokens, usage.completion_tokens);
        }
        self.recorder.record(UsageRecord {
            user_id: self.user_id,
            api_key_id: self.key_id,
            model: self.model,
            provider: self.provider,
            status,
            latency_ms: elapsed.as_millis().min(u128::from(u32::MAX)) as u32,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            streamed: self.streamed,
            at: Utc::now(),
        });
    }
}

const BATCH: usize = 500;
const QUEUE: usize = 100_000;

/// Where requests report their usage.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageRecord>,
    db: DatabaseConnection,
}

impl UsageRecorder {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db.clone(), rx));
        Self { tx, db }
    }

    /// A recorder whose records go to the returned receiver (no database, no writer task).
    #[cfg(test)]
    pub fn for_tests() -> (Self, mpsc::Receiver<UsageRecord>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx, db: DatabaseConnection::default() }, rx)
    }

    /// Queues a record; never waits. A full queue (the database is far behind) drops the
    /// record and says so, rather than slowing requests.
    pub fn record(&self, record: UsageRecord) {
        if self.tx.try_send(record).is_err() {
            tracing::warn!("usage queue full: a usage record was dropped");
        }
    }

    /// Requests and tokens per key of `user_id` in the last 24 hours, for display: when the
    /// database cannot say, the figures are left out (logged), not the page.
    pub async fn per_key_last_24h(&self, user_id: i64) -> HashMap<i64, (u64, u64)> {
        self.last_24h(user_id).await.unwrap_or_else(|error| {
            tracing::warn!(error = %crate::domain::describe_db_error(&error), "usage query failed");
            HashMap::new()
        })
    }

    /// Requests and tokens per key of `user_id` in the last 24 hours.
    pub async fn last_24h(&self, user_id: i64) -> Result<HashMap<i64, (u64, u64)>, DbErr> {
        #[derive(FromQueryResult)]
        struct Row {
            api_key_id: Option<i64>,
            requests: i64,
            tokens: Option<i64>,
        }
        let since = Utc::now() - chrono::Duration::hours(24);
        let rows = usage_events::Entity::find()
            .select_only()
            .column(usage_events::Column::ApiKeyId)
            .column_as(Expr::cust("COUNT(*)"), "requests")
            .column_as(Expr::cust("SUM(prompt_tokens + completion_tokens)"), "tokens")
            .filter(usage_events::Column::UserId.eq(user_id))
            .filter(usage_events::Column::CreatedAt.gt(since))
            .group_by(usage_events::Column::ApiKeyId)
            .into_model::<Row>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.api_key_id?, (r.requests.max(0) as u64, r.tokens.unwrap_or(0).max(0) as u64))))
            .collect())
    }
}

/// How finely [`UsageRecorder::series`] buckets a key's usage (in UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// The last 24 hours, this hour included.
    Hour,
    /// The last 30 days, today included.
    Day,
}

impl Granularity {
    /// The bucket's length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// How many buckets a series has.
    pub fn buckets(self) -> i64 {
        match self {
            Self::Hour => 24,
            Self::Day => 30,
        }
    }

    /// The start of the first bucket of the series that ends with the bucket holding `now`.
    pub fn series_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let current = now.timestamp().div_euclid(self.seconds());
        DateTime::from_timestamp((current - self.buckets() + 1) * self.seconds(), 0).unwrap_or(now)
    }
}

/// One bucket of a key's usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageBucket {
    /// The bucket's start (UTC, on the hour or at midnight).
    pub start: DateTime<Utc>,
    pub requests: u64,
    /// Prompt + completion tokens.
    pub tokens: u64,
}

/// The series of `granularity` ending with `now`, from the counts by bucket number (Unix
/// seconds / bucket length): every bucket present, empty ones as zeros.
fn fill_series(granularity: Granularity, now: DateTime<Utc>, counts: &HashMap<i64, (u64, u64)>) -> Vec<UsageBucket> {
    let first = granularity.series_start(now).timestamp().div_euclid(granularity.seconds());
    (first..first + granularity.buckets())
        .map(|n| {
            let (requests, tokens) = counts.get(&n).copied().unwrap_or_default();
            let start = DateTime::from_timestamp(n * granularity.seconds(), 0).unwrap_or(now);
            UsageBucket { start, requests, tokens }
        })
        .collect()
}

/// The SQL of a row's bucket number (Unix seconds of `created_at` / `seconds`): the backends
/// spell "Unix seconds" differently.
fn bucket_sql(backend: sea_orm::DatabaseBackend, seconds: i64) -> String {
    match backend {
        sea_orm::DatabaseBackend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM created_at) / {seconds}) AS BIGINT)"),
        // SQLite (and anything else sea-orm may grow) reads the stored RFC 3339 text.
        _ => format!("(CAST(strftime('%s', created_at) AS INTEGER) / {seconds})"),
    }
}

impl UsageRecorder {
    /// Requests and tokens of key `key_id` of `user_id` per hour (the last 24 hours) or per
    /// day (the last 30 days) up to `now`, oldest first, empty buckets as zeros. Another
    /// user's key has no usage here (callers check the key is the user's first).
    pub async fn series(&self, user_id: i64, key_id: i64, granularity: Granularity, now: DateTime<Utc>) -> Result<Vec<UsageBucket>, DbErr> {
        #[derive(FromQueryResult)]
        struct Row {
            bucket: i64,
            requests: i64,
            tokens: Option<i64>,
        }
        let bucket = bucket_sql(self.db.get_database_backend(), granularity.seconds());
        let rows = usage_events::Entity::find()
            .select_only()
            .column_as(Expr::cust(bucket.clone()), "bucket")
            .column_as(Expr::cust("COUNT(*)"), "requests")
            .column_as(Expr::cust("CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT)"), "tokens")
            .filter(usage_events::Column::UserId.eq(user_id))
            .filter(usage_events::Column::ApiKeyId.eq(key_id))
            .filter(usage_events::Column::CreatedAt.gte(granularity.series_start(now)))
            .filter(usage_events::Column::CreatedAt.lte(now))
            .group_by(Expr::cust(bucket))
            .into_model::<Row>()
            .all(&self.db)
            .await?;
        let counts = rows.into_iter().map(|r| (r.bucket, (r.requests.max(0) as u64, r.tokens.unwrap_or(0).max(0) as u64))).collect();
        Ok(fill_series(granularity, now, &counts))
    }
}

/// How long records gather after the first of a quiet spell before they are written.
const GATHER: Duration = Duration::from_millis(250);

/// Writes the records in batches. It waits for a record only when the queue is empty: while
/// records gather (for [`GATHER`]) and while a batch is written, it sleeps without listening,
/// and queueing a record wakes nobody (a request's record costs no task wake-up, and none on
/// another thread). The queue then is read until it is empty, [`BATCH`] records a write.
/// When every recorder has been dropped, what is queued is written and the task ends.
async fn writer(db: DatabaseConnection, mut rx: mpsc::Receiver<UsageRecord>) {
    let sql = InsertSql::new(db.get_database_backend());
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        tokio::time::sleep(GATHER).await;
        loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            if let Err(error) = insert(&db, &sql, &batch).await {
                tracing::warn!(error = %crate::domain::describe_db_error(&error), dropped = batch.len(), "usage records could not be written");
            }
            batch.clear();
        }
    }
}

/// Rows per `INSERT`: a batch is written as statements of 64 rows, then one statement for
/// each binary digit of the remainder, so that every statement's SQL is one of seven texts,
/// which stay prepared in the connection's statement cache. (One `INSERT` of the whole batch
/// had new SQL for every batch size: the database parsed ten placeholders per row again for
/// every batch, which cost more than storing the rows.)
const SHAPES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// The statement sizes a batch of `rows` is written in, largest first (they sum to `rows`).
fn shapes(rows: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(SHAPES[0], rows / SHAPES[0]);
    let remainder = rows % SHAPES[0];
    full.chain(SHAPES[1..].iter().copied().filter(move |shape| remainder & shape != 0))
}

/// The `INSERT` SQL of each of [`SHAPES`] for one backend, built once.
struct InsertSql {
    backend: sea_orm::DatabaseBackend,
    /// In the order of [`SHAPES`].
    by_shape: [String; SHAPES.len()],
}

const COLUMNS: [usage_events::Column; 10] = [
    usage_events::Column::UserId,
    usage_events::Column::ApiKeyId,
    usage_events::Column::Model,
    usage_events::Column::Provider,
    usage_events::Column::Status,
    usage_events::Column::LatencyMs,
    usage_events::Column::PromptTokens,
    usage_events::Column::CompletionTokens,
    usage_events::Column::Streamed,
    usage_events::Column::CreatedAt,
];

impl InsertSql {
    fn new(backend: sea_orm::DatabaseBackend) -> Self {
        // Any record's values: only their types reach the SQL, as placeholders.
        let placeholder = row_values(&UsageRecord::default());
        let by_shape = SHAPES.map(|rows| {
            let mut insert = sea_orm::sea_query::Query::insert();
            insert.into_table(usage_events::Entity).columns(COLUMNS);
            for _ in 0..rows {
                insert.values_panic(placeholder.iter().cloned().map(Into::into));
            }
            backend.build(&insert).sql
        });
        Self { backend, by_shape }
    }

    fn statement(&self, rows: &[UsageRecord]) -> sea_orm::Statement {
        let shape = SHAPES.iter().position(|&shape| shape == rows.len()).expect("one of SHAPES");
        let sql = self.by_shape[shape].clone();
        let values: Vec<sea_orm::Value> = rows.iter().flat_map(row_values).collect();
        sea_orm::Statement::from_sql_and_values(self.backend, sql, values)
    }
}

/// A record's values, in the order of [`COLUMNS`], as the entity stores them.
fn row_values(r: &UsageRecord) -> [sea_orm::Value; 10] {
    [
        r.user_id.into(),
        r.api_key_id.into(),
        // At most the columns' 200 characters.
        r.model.chars().take(200).collect::<String>().into(),
        r.provider.as_ref().map(|p| p.chars().take(200).collect::<String>()).into(),
        (r.status as i16).into(),
        (r.latency_ms.min(i32::MAX as u32) as i32).into(),
        (r.prompt_tokens.min(i64::MAX as u64) as i64).into(),
        (r.completion_tokens.min(i64::MAX as u64) as i64).into(),
        r.streamed.into(),
        r.at.into(),
    ]
}

/// Writes a batch in one transaction (all of it or none).
async fn insert(db: &DatabaseConnection, sql: &InsertSql, batch: &[UsageRecord]) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = db.begin().await?;
    let mut rest = batch;
    for rows in shapes(batch.len()) {
        let (these, after) = rest.split_at(rows);
        txn.execute_raw(sql.statement(these)).await?;
        rest = after;
    }
    txn.commit().await
}

#[cfg(test)]
mod insert_tests {
    use super::*;

    #[test]
    fn a_batch_is_written_in_at_most_seven_shapes_plus_full_statements() {
        for rows in 0..=1_100 {
            let parts: Vec<usize> = shapes(rows).collect();
            assert_eq!(parts.iter().sum::<usize>(), rows, "{rows}");
            assert!(parts.iter().all(|p| SHAPES.contains(p)), "{rows}: {parts:?}");
            assert!(parts.windows(2).all(|w| w[0] >= w[1]), "{rows}: largest first");
            assert!(parts.len() <= rows / 64 + 6, "{rows}: {parts:?}");
        }
        assert_eq!(shapes(500).collect::<Vec<_>>(), vec![64, 64, 64, 64, 64, 64, 64, 32, 16, 4]);
    }

    #[test]
    fn each_shape_has_one_placeholder_per_value() {
        for backend in [sea_orm::DatabaseBackend::Sqlite, sea_orm::DatabaseBackend::Postgres] {
            let sql = InsertSql::new(backend);
            for (rows, text) in SHAPES.iter().zip(&sql.by_shape) {
                let placeholders = match backend {
                    sea_orm::DatabaseBackend::Postgres => text.matches('$').count(),
                    _ => text.matches('?').count(),
                };
                assert_eq!(placeholders, rows * COLUMNS.len(), "{backend:?}, {rows} rows: {text}");
            }
        }
    }

    #[test]
    fn model_and_provider_names_are_cut_at_200_characters() {
        let stored = |name: String| {
            let values = row_values(&UsageRecord { model: name.clone(), provider: Some(name), ..UsageRecord::default() });
            assert_eq!(values[2], values[3], "model and provider are cut alike");
            values[2].clone()
        };
        assert_eq!(stored("gpt".into()), sea_orm::Value::from("gpt"));
        assert_eq!(stored("é".repeat(250)), sea_orm::Value::from("é".repeat(200)));
        assert_eq!(stored("x".repeat(200)), sea_orm::Value::from("x".repeat(200)));
    }
}

#[cfg(test)]
mod series_tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn series_start_on_whole_utc_hours_and_days() {
        let now = at("2026-11-30T05:57:08Z");
        assert_eq!(Granularity::Hour.series_start(now), at("2026-11-29T06:00:00Z"));
        assert_eq!(Granularity::Day.series_start(now), at("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn empty_buckets_are_zeros_and_counts_land_in_theirs() {
        let now = at("2026-11-30T05:57:08Z");
        let this_hour = now.timestamp().div_euclid(3_600);
        let counts = HashMap::from([(this_hour, (3, 120)), (this_hour - 23, (1, 5)), (this_hour - 24, (9, 9))]);
        let series = fill_series(Granularity::Hour, now, &counts);
        assert_eq!(series.len(), 24);
        assert_eq!(series[0], UsageBucket { start: at("2026-11-29T06:00:00Z"), requests: 1, tokens: 5 });
        assert_eq!(series[23], UsageBucket { start: at("2026-11-30T05:00:00Z"), requests: 3, tokens: 120 });
        assert!(series[1..23].iter().all(|b| b.requests == 0 && b.tokens == 0));
        let days = fill_series(Granularity::Day, now, &HashMap::new());
        assert_eq!(days.len(), 30);
        assert_eq!(days[29].start, at("2026-11-30T00:00:00Z"));
    }
}
