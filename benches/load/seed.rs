//! Seeding keys in bulk (multi-row inserts in one transaction).

use chrono::Utc;
use rand::{Rng, distr::Alphanumeric};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, sea_query::Query};
use workjet::{
    domain::api_keys::format::{ApiKeyHash, PREFIX, checksum, hint_of},
    entities::api_keys,
};

/// A well-formed key from a fast (non-cryptographic-grade is fine here) generator.
pub fn fake_key() -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(30).map(char::from).collect();
    let checksum = checksum(random.as_bytes());
    format!("{PREFIX}{random}{}", std::str::from_utf8(&checksum).expect("base62 is ASCII"))
}

/// Inserts `total` keys for `user_id`; returns the raw keys of the last `keep` of them.
pub async fn seed_keys(db: &DatabaseConnection, user_id: i64, total: usize, keep: usize) -> Vec<String> {
    let mut kept = Vec::with_capacity(keep);
    let txn = db.begin().await.expect("begin");
    let now = Utc::now();
    let mut done = 0;
    while done < total {
        let batch = (total - done).min(1000);
        let mut insert = Query::insert();
        insert.into_table(api_keys::Entity).columns([
            api_keys::Column::UserId,
            api_keys::Column::Name,
            api_keys::Column::KeyHash,
            api_keys::Column::Hint,
            api_keys::Column::Permissions,
            api_keys::Column::CreatedAt,
        ]);
        for i in 0..batch {
            let raw = fake_key();
            let hash = ApiKeyHash::of(&raw);
            insert.values_panic([
                user_id.into(),
                format!("bench-{}", done + i).into(),
                hash.as_bytes().to_vec().into(),
                hint_of(&raw).into(),
                "all".into(),
                now.into(),
            ]);
            if done + i >= total - keep {
                kept.push(raw);
            }
        }
        txn.execute(&insert).await.expect("insert batch");
        done += batch;
    }
    txn.commit().await.expect("commit");
    kept
}

/// The user that owns the seeded keys.
pub async fn seed_user(db: &sea_orm::DatabaseConnection) -> workjet::domain::users::User {
    workjet::domain::users::UserService::new(db.clone())
        .upsert_from_identity(&workjet::domain::users::VerifiedIdentity {
            issuer: "bench".into(),
            subject: "seed".into(),
            email: "seed@example.com".into(),
            name: "Seed".into(),
            picture: None,
        })
        .await
        .expect("seed user")
}
