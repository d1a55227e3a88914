//! PostgreSQL's [`HotWrites`]: each on a pooled connection (PostgreSQL runs concurrent writers
//! itself; there is no single writer to group behind).

use application::ports::StoreError;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{Conn, PgStore, db_error};
use crate::outbound::sql::rows::{CallbackNonceRow, NewContactEventRow, RelayBatchRow, RelayMessageRow};
use crate::outbound::sql::schema::{callback_nonces, contact_events, relay_batches, relay_messages};
use crate::outbound::sql::stores::HotWrites;

/// Serialises feed appends so the order of `seq` is the order of commits. Concurrent inserts draw
/// `seq` values from the sequence in one order and may commit in another; a reader that has seen
/// cursor `n` asks for `seq > n` next, so an event committed later with a smaller `seq` would be
/// skipped for good. This transaction-scoped advisory lock, taken before the insert, prevents
/// that (readers are not blocked). The key is arbitrary but fixed (`0x64_62_66_65_65_64` =
/// "dbfeed"); advisory locks are scoped to the database.
const LOCK_FEED: &str = "SELECT pg_advisory_xact_lock(110373787493732)";

/// Tells every instance listening on the database that the feed grew: PostgreSQL delivers it at
/// the commit of the appending transaction (and never for one rolled back), to each session that
/// ran `LISTEN` on the channel ([`super::notify`]).
const NOTIFY_FEED: &str = "SELECT pg_notify('dingbridge_feed', '')";

#[async_trait::async_trait]
impl HotWrites for PgStore {
    async fn insert_relay(&self, message: RelayMessageRow, batches: Vec<RelayBatchRow>) -> Result<bool, StoreError> {
        let mut conn = self.writer().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            // A conflicting insert in flight makes this one wait for its commit, then count 0.
            let inserted = diesel::insert_into(relay_messages::table)
                .values(&message)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if inserted == 1 {
                diesel::insert_into(relay_batches::table).values(&batches).execute(conn).await?;
            }
            Ok(inserted == 1)
        })
        .await
        .map_err(|e| db_error("insert relay message", e))
    }

    async fn remember_nonce_row(&self, row: CallbackNonceRow, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.writer().await?;
        remember_nonce(&mut conn, &row, now_ms).await.map_err(|e| db_error("remember nonce", e))
    }

    async fn remember_and_insert(
        &self,
        nonce: CallbackNonceRow,
        now_ms: i64,
        rows: Vec<NewContactEventRow>,
    ) -> Result<Option<Vec<Option<i64>>>, StoreError> {
        let mut conn = self.writer().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            if !remember_nonce(conn, &nonce, now_ms).await? {
                return Ok(None);
            }
            diesel::sql_query(LOCK_FEED).execute(conn).await?;
            let mut cursors = Vec::with_capacity(rows.len());
            for row in &rows {
                cursors.push(insert_contact_event(conn, row).await?);
            }
            if cursors.iter().any(Option::is_some) {
                diesel::sql_query(NOTIFY_FEED).execute(conn).await?;
            }
            Ok(Some(cursors))
        })
        .await
        .map_err(|e| db_error("remember nonce and append contact events", e))
    }

    async fn insert_contact_event(&self, row: NewContactEventRow) -> Result<Option<i64>, StoreError> {
        let mut conn = self.writer().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::sql_query(LOCK_FEED).execute(conn).await?;
            let cursor = insert_contact_event(conn, &row).await?;
            if cursor.is_some() {
                diesel::sql_query(NOTIFY_FEED).execute(conn).await?;
            }
            Ok(cursor)
        })
        .await
        .map_err(|e| db_error("append contact event", e))
    }
}

/// Inserts `row`, or renews an expired copy of its nonce; `false` for a replay (nothing changed).
/// Of concurrent calls for one nonce PostgreSQL makes the others wait for the first and then
/// re-checks the WHERE on its committed row.
async fn remember_nonce(conn: &mut Conn, row: &CallbackNonceRow, now_ms: i64) -> QueryResult<bool> {
    let upsert = diesel::insert_into(callback_nonces::table)
        .values(row)
        .on_conflict((callback_nonces::owner, callback_nonces::nonce))
        .do_update()
        .set(callback_nonces::keep_until.eq(row.keep_until));
    let changed = diesel::query_dsl::methods::FilterDsl::filter(upsert, callback_nonces::keep_until.lt(now_ms))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

/// Appends `row` unless its `(corp_id, event_id)` is in the feed (the caller holds [`LOCK_FEED`]).
async fn insert_contact_event(conn: &mut Conn, row: &NewContactEventRow) -> QueryResult<Option<i64>> {
    diesel::insert_into(contact_events::table)
        .values(row)
        .on_conflict((contact_events::corp_id, contact_events::event_id))
        .do_nothing()
        .returning(contact_events::seq)
        .get_result::<i64>(conn)
        .await
        .optional()
}
