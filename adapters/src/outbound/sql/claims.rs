//! The claim queries ([`ClaimQueue`]) of both backends, written once: the SQLite store holds its
//! single writer connection from the claim's read to its write, so no other write comes between
//! them; several PostgreSQL instances lock the rows they pick (`FOR UPDATE SKIP LOCKED`, passed in
//! as `$lock`) and update them in the same transaction, so a row another instance is claiming is
//! skipped rather than waited for (or claimed twice): two claimers never block each other and
//! never share a row.

/// Implements [`ClaimQueue`](super::stores::ClaimQueue) for `$store` (with `writer()` and a
/// `db_error` in `$module`), appending `$lock` (e.g. `.for_update().skip_locked()`) to each
/// claim's select.
macro_rules! impl_claim_queue {
    ($store:ty, $module:path, [$($lock:tt)*]) => {
        const _: () = {
            use application::ports::StoreError;
            use diesel::prelude::*;
            use diesel_async::{AsyncConnection, RunQueryDsl};
            use $module as backend;

            use $crate::outbound::sql::rows::MessageRow;
            use $crate::outbound::sql::schema::{messages, relay_messages};
            use $crate::outbound::sql::stores::ClaimQueue;

            /// Outbox states the dispatcher works on.
            const PENDING: [&str; 2] = ["accepted", "relayed"];

            #[async_trait::async_trait]
            impl ClaimQueue for $store {
                async fn claim_relay_keys(
                    &self,
                    claim: &str,
                    now_ms: i64,
                    lease_until_ms: i64,
                    limit: u32,
                ) -> Result<Vec<(String, String)>, StoreError> {
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        let keys: Vec<(String, String)> = relay_messages::table
                            .filter(relay_messages::state.eq("accepted"))
                            .filter(relay_messages::retry_at.is_null().or(relay_messages::retry_at.le(now_ms)))
                            .filter(
                                relay_messages::claimed_until.is_null().or(relay_messages::claimed_until.lt(now_ms)),
                            )
                            // Oldest first: the same on both databases (they sort NULLs differently).
                            .order(relay_messages::created_at.asc())
                            .limit(i64::from(limit))
                            .select((relay_messages::client_id, relay_messages::key))
                            $($lock)*
                            .load(conn)
                            .await?;
                        for (client_id, key) in &keys {
                            diesel::update(relay_messages::table.find((client_id, key)))
                                .set((
                                    relay_messages::claim.eq(claim),
                                    relay_messages::claimed_until.eq(lease_until_ms),
                                ))
                                .execute(conn)
                                .await?;
                        }
                        Ok(keys)
                    })
                    .await
                    .map_err(|e| backend::db_error("claim due relay messages", e))
                }

                async fn claim_outbox_rows(
                    &self,
                    now_ms: i64,
                    lease_until_ms: i64,
                    limit: u32,
                ) -> Result<Vec<MessageRow>, StoreError> {
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        let ids: Vec<String> = messages::table
                            .select(messages::id)
                            .filter(messages::state.eq_any(PENDING))
                            .filter(messages::next_attempt_at.le(now_ms))
                            .order((messages::next_attempt_at.asc(), messages::created_at.asc()))
                            .limit(i64::from(limit))
                            $($lock)*
                            .load(conn)
                            .await?;
                        if ids.is_empty() {
                            return Ok(Vec::new());
                        }
                        diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
                            .set((
                                messages::next_attempt_at.eq(lease_until_ms),
                                messages::attempts.eq(messages::attempts + 1),
                            ))
                            .returning(MessageRow::as_returning())
                            .get_results(conn)
                            .await
                    })
                    .await
                    .map_err(|e| backend::db_error("claim due messages", e))
                }
            }
        };
    };
}

pub(crate) use impl_claim_queue;
