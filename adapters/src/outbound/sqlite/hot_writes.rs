//! SQLite's [`HotWrites`]: the writes on request paths, group-committed ([`super::group_commit`]).
//!
//! Each is one closure of plain (synchronous) diesel run inside the group's transaction, in its
//! own savepoint; the caller is answered after the group's commit. The relay accept and the
//! contact event are synced before their callers hear of them; a callback's nonce is not (it is
//! never acknowledged by itself: the event's sync, or the HTTP layer's flush, covers it).

use application::ports::StoreError;
use diesel::prelude::*;

use super::SqliteStore;
use super::group_commit::Durable;
use crate::outbound::sql::rows::{CallbackNonceRow, NewContactEventRow, RelayBatchRow, RelayMessageRow};
use crate::outbound::sql::schema::{callback_nonces, contact_events, relay_batches, relay_messages};
use crate::outbound::sql::stores::HotWrites;

#[async_trait::async_trait]
impl HotWrites for SqliteStore {
    async fn insert_relay(&self, message: RelayMessageRow, batches: Vec<RelayBatchRow>) -> Result<bool, StoreError> {
        self.group
            .write("insert relay message", Durable::Now, move |conn| {
                let inserted = diesel::insert_into(relay_messages::table)
                    .values(&message)
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                if inserted == 1 {
                    // One statement per batch (at most 51 per message), in the same savepoint.
                    for batch in &batches {
                        diesel::insert_into(relay_batches::table).values(batch).execute(conn)?;
                    }
                }
                Ok(inserted == 1)
            })
            .await
    }

    async fn remember_nonce_row(&self, row: CallbackNonceRow, now_ms: i64) -> Result<bool, StoreError> {
        self.group.write("remember nonce", Durable::ByFlush, move |conn| remember_nonce(conn, &row, now_ms)).await
    }

    async fn insert_contact_event(&self, row: NewContactEventRow) -> Result<Option<i64>, StoreError> {
        self.group.write("append contact event", Durable::Now, move |conn| insert_contact_event(conn, &row)).await
    }

    async fn remember_and_insert(
        &self,
        nonce: CallbackNonceRow,
        now_ms: i64,
        rows: Vec<NewContactEventRow>,
    ) -> Result<Option<Vec<Option<i64>>>, StoreError> {
        self.group
            .write("remember nonce and append contact events", Durable::Now, move |conn| {
                // One savepoint: a failing insert takes the nonce back with it.
                if !remember_nonce(conn, &nonce, now_ms)? {
                    return Ok(None);
                }
                rows.iter().map(|row| insert_contact_event(conn, row)).collect::<QueryResult<Vec<_>>>().map(Some)
            })
            .await
    }
}

/// Inserts `row`, or renews an expired copy of its nonce; `false` for a replay (nothing changed).
fn remember_nonce(conn: &mut SqliteConnection, row: &CallbackNonceRow, now_ms: i64) -> QueryResult<bool> {
    // One statement on one key: a new nonce is inserted; an expired copy of it is renewed
    // (`DO UPDATE … WHERE keep_until < now`); a remembered one is left alone and counts 0 rows — a
    // replay. SQLite serialises writers, so of concurrent calls for one nonce exactly one counts.
    let upsert = diesel::insert_into(callback_nonces::table)
        .values(row)
        .on_conflict((callback_nonces::owner, callback_nonces::nonce))
        .do_update()
        .set(callback_nonces::keep_until.eq(row.keep_until));
    // `ON CONFLICT … DO UPDATE … WHERE` (diesel's upsert `FilterDsl`, named because
    // `QueryDsl::filter` is in scope too).
    let changed =
        diesel::query_dsl::methods::FilterDsl::filter(upsert, callback_nonces::keep_until.lt(now_ms)).execute(conn)?;
    Ok(changed == 1)
}

/// Appends `row` unless its `(corp_id, event_id)` is in the feed; its `seq`, `None` for a
/// duplicate. One writer: appends commit in `seq` order (`AUTOINCREMENT`), so cursors become
/// visible in order without a lock.
fn insert_contact_event(conn: &mut SqliteConnection, row: &NewContactEventRow) -> QueryResult<Option<i64>> {
    diesel::insert_into(contact_events::table)
        .values(row)
        .on_conflict((contact_events::corp_id, contact_events::event_id))
        .do_nothing()
        .returning(contact_events::seq)
        .get_result::<i64>(conn)
        .optional()
}
