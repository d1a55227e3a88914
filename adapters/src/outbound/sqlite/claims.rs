//! SQLite's [`ClaimQueue`]: the single writer connection is held from the claim's read to its
//! write, so no other write (of this process; the database file is this process's alone) comes
//! between them and each row is claimed once.

use application::ports::StoreError;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::rows::MessageRow;
use super::schema::{messages, relay_messages};
use super::stores::ClaimQueue;
use super::{SqliteStore, db_error};

/// Outbox states the dispatcher works on.
const PENDING: [&str; 2] = ["accepted", "relayed"];

#[async_trait::async_trait]
impl ClaimQueue for SqliteStore {
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
                .filter(relay_messages::claimed_until.is_null().or(relay_messages::claimed_until.lt(now_ms)))
                // Oldest first: the same on both databases (they sort NULLs differently).
                .order(relay_messages::created_at.asc())
                .limit(i64::from(limit))
                .select((relay_messages::client_id, relay_messages::key))
                .load(conn)
                .await?;
            for (client_id, key) in &keys {
                diesel::update(relay_messages::table.find((client_id, key)))
                    .set((relay_messages::claim.eq(claim), relay_messages::claimed_until.eq(lease_until_ms)))
                    .execute(conn)
                    .await?;
            }
            Ok(keys)
        })
        .await
        .map_err(|e| db_error("claim due relay messages", e))
    }

    async fn claim_outbox_rows(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut conn = self.writer().await?;
        let ids: Vec<String> = messages::table
            .select(messages::id)
            .filter(messages::state.eq_any(PENDING))
            .filter(messages::next_attempt_at.le(now_ms))
            .order((messages::next_attempt_at.asc(), messages::created_at.asc()))
            .limit(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(|e| db_error("find due messages", e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(
            messages::table
                .filter(messages::id.eq_any(&ids))
                .filter(messages::state.eq_any(PENDING))
                .filter(messages::next_attempt_at.le(now_ms)),
        )
        .set((messages::next_attempt_at.eq(lease_until_ms), messages::attempts.eq(messages::attempts + 1)))
        .returning(MessageRow::as_returning())
        .get_results(&mut conn)
        .await
        .map_err(|e| db_error("claim due messages", e))
    }
}
