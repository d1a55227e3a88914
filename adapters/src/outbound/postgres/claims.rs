//! PostgreSQL's [`ClaimQueue`]: several instances claim from one queue at once. Each claim
//! locks the rows it picks (`FOR UPDATE SKIP LOCKED`) and updates them in the same
//! transaction, so a row another instance is claiming is skipped rather than waited for (or
//! claimed twice): two dispatchers never block each other and never share a message.

use application::ports::StoreError;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{PgStore, db_error};
use crate::outbound::sqlite::rows::MessageRow;
use crate::outbound::sqlite::schema::{messages, relay_messages};
use crate::outbound::sqlite::stores::ClaimQueue;

/// Outbox states the dispatcher works on.
const PENDING: [&str; 2] = ["accepted", "relayed"];

#[async_trait::async_trait]
impl ClaimQueue for PgStore {
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
                .order(relay_messages::created_at.asc())
                .limit(i64::from(limit))
                .select((relay_messages::client_id, relay_messages::key))
                .for_update()
                .skip_locked()
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
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let ids: Vec<String> = messages::table
                .select(messages::id)
                .filter(messages::state.eq_any(PENDING))
                .filter(messages::next_attempt_at.le(now_ms))
                .order((messages::next_attempt_at.asc(), messages::created_at.asc()))
                .limit(i64::from(limit))
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
                .set((messages::next_attempt_at.eq(lease_until_ms), messages::attempts.eq(messages::attempts + 1)))
                .returning(MessageRow::as_returning())
                .get_results(conn)
                .await
        })
        .await
        .map_err(|e| db_error("claim due messages", e))
    }
}
