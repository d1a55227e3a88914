//! The DingTalk token cache's [`TokenBook`] on PostgreSQL (`shared_tokens`): several cloud
//! instances share each app and corp token, and one at a time fetches a new one, under a
//! transaction-scoped advisory lock of the token's key (released with the transaction, or with
//! the connection of a refresher that dies mid-fetch). The fetch — one HTTP call, bounded by the
//! client's timeout — runs inside that transaction, so the instances waiting on the lock find its
//! token when they get it.

use application::ports::{StoreError, UpstreamError};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use super::{PgStore, db_error};
use crate::outbound::dingtalk::{FetchResult, SharedToken, TokenBook};

diesel::table! {
    /// Shared DingTalk tokens (PostgreSQL only).
    shared_tokens (key) {
        key -> Text,
        value -> Text,
        expires_at -> BigInt,
        updated_at -> BigInt,
    }
}

/// Why a refresh under the lock ended without a token.
enum Failed {
    Db(diesel::result::Error),
    Fetch(UpstreamError),
}

impl From<diesel::result::Error> for Failed {
    fn from(err: diesel::result::Error) -> Self {
        Self::Db(err)
    }
}

fn unavailable(err: StoreError) -> UpstreamError {
    UpstreamError::Unavailable(format!("the shared token book: {err}"))
}

async fn load(conn: &mut super::Conn, key: &str) -> QueryResult<Option<SharedToken>> {
    let row: Option<(String, i64)> = shared_tokens::table
        .find(key)
        .select((shared_tokens::value, shared_tokens::expires_at))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(value, expires_at_ms)| SharedToken { value: SecretString::from(value), expires_at_ms }))
}

#[async_trait::async_trait]
impl TokenBook for PgStore {
    async fn read(&self, key: &str) -> Result<Option<SharedToken>, StoreError> {
        let mut conn = self.conn().await?;
        load(&mut conn, key).await.map_err(|e| db_error("read a shared token", e))
    }

    async fn refresh<'a>(
        &'a self,
        key: &'a str,
        usable: &'a (dyn for<'t> Fn(&'t SharedToken) -> bool + Send + Sync),
        fetch: std::pin::Pin<Box<dyn Future<Output = FetchResult> + Send + 'a>>,
    ) -> FetchResult {
        let mut conn = self.writer().await.map_err(unavailable)?;
        let outcome = conn
            .transaction::<_, Failed, _>(async |conn| {
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind::<Text, _>(format!("dingbridge token {key}"))
                    .execute(conn)
                    .await?;
                if let Some(stored) = load(conn, key).await?.filter(|t| usable(t)) {
                    return Ok(stored);
                }
                let fresh = fetch.await.map_err(Failed::Fetch)?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp().saturating_mul(1000);
                diesel::insert_into(shared_tokens::table)
                    .values((
                        shared_tokens::key.eq(key),
                        shared_tokens::value.eq(fresh.value.expose_secret()),
                        shared_tokens::expires_at.eq(fresh.expires_at_ms),
                        shared_tokens::updated_at.eq(now),
                    ))
                    .on_conflict(shared_tokens::key)
                    .do_update()
                    .set((
                        shared_tokens::value.eq(fresh.value.expose_secret()),
                        shared_tokens::expires_at.eq(fresh.expires_at_ms),
                        shared_tokens::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                Ok(fresh)
            })
            .await;
        match outcome {
            Ok(token) => Ok(token),
            Err(Failed::Fetch(err)) => Err(err),
            Err(Failed::Db(err)) => Err(unavailable(db_error("refresh a shared token", err))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::outbound::postgres::testing::TestDatabase;

    const HOUR_MS: i64 = 3_600_000;

    fn now_ms() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000
    }

    #[tokio::test(flavor = "multi_thread")]
    #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
    async fn instances_refreshing_at_once_fetch_one_token_and_a_refused_one_is_replaced() {
        let db = TestDatabase::create().await.expect("PostgreSQL");
        let stores: Vec<Arc<PgStore>> = vec![
            Arc::new(PgStore::connect(db.url(), 4).await.unwrap()),
            Arc::new(PgStore::connect(db.url(), 4).await.unwrap()),
        ];
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut racers = Vec::new();
        for i in 0..8 {
            let (store, fetches) = (stores[i % 2].clone(), fetches.clone());
            racers.push(tokio::spawn(async move {
                let fetch = Box::pin(async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst);
                    // A slow token endpoint: the others wait on the lock meanwhile.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(SharedToken {
                        value: SecretString::from(format!("token-{n}")),
                        expires_at_ms: now_ms() + 2 * HOUR_MS,
                    })
                });
                let token = store.refresh("corp:suite:dingcorp", &|t| t.expires_at_ms > now_ms(), fetch).await.unwrap();
                token.value.expose_secret().to_owned()
            }));
        }
        let mut values = Vec::new();
        for racer in racers {
            values.push(racer.await.unwrap());
        }
        assert_eq!(AtomicUsize::load(&fetches, Ordering::SeqCst), 1, "one fetch for eight callers on two instances");
        assert!(values.iter().all(|v| v == "token-0"), "{values:?}");
        assert_eq!(
            stores[1].read("corp:suite:dingcorp").await.unwrap().map(|t| t.value.expose_secret().to_owned()).as_deref(),
            Some("token-0")
        );

        // DingTalk refused token-0: the refresher skips it and stores the next.
        let fetch = Box::pin(async {
            Ok(SharedToken { value: SecretString::from("token-1"), expires_at_ms: now_ms() + 2 * HOUR_MS })
        });
        let next =
            stores[0].refresh("corp:suite:dingcorp", &|t| t.value.expose_secret() != "token-0", fetch).await.unwrap();
        assert_eq!(next.value.expose_secret(), "token-1");
        // A failed fetch stores nothing and releases the lock.
        let failing = Box::pin(async { Err(UpstreamError::Unavailable("down".into())) });
        assert!(stores[1].refresh("app:x", &|_| false, failing).await.is_err());
        assert!(stores[1].read("app:x").await.unwrap().is_none());
        db.drop_database().await.unwrap();
    }
}
