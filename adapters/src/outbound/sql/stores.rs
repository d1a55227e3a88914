//! The store ports, written once with diesel's query DSL only and
//! implemented for [`SqliteStore`] here and for the PostgreSQL adapter's
//! `PgStore` by the same [`impl_store_ports!`] macro (a generic impl over both
//! connection types would need huge where-clauses; docs/stack-notes.md F5).
//!
//! Concurrency: single-use `take`s are one `DELETE … RETURNING` statement, so
//! of concurrent takes of one key exactly one gets the row (on both backends).
//! Multi-statement transactions write first, so SQLite takes the write lock at
//! their first statement (waiting up to `busy_timeout`) and never has to
//! upgrade a read snapshot, which would fail with "database is locked" instead
//! of waiting. On PostgreSQL (read committed) a conflicting `INSERT … ON
//! CONFLICT` waits for the other transaction and each later statement sees
//! what it committed.
//!
//! Upserts on tables with two unique constraints (`users`: `(corp_id,
//! union_id)` and `(corp_id, userid)`; `bindings`: `user_id` and `(tenant_id,
//! external_id)`) are `INSERT … ON CONFLICT DO NOTHING` (every unique
//! constraint an arbiter), then an `UPDATE` of the row with the key. On
//! PostgreSQL, `ON CONFLICT (a) DO UPDATE` would make concurrent inserts of one
//! new key wait on each other's transaction inside the *other* constraint's
//! index while holding a speculative insertion, which deadlocks ("waits for
//! ShareLock on speculative token … blocked by …"); with every constraint an
//! arbiter a conflict is settled before anything is inserted. When neither
//! statement touches a row (the row in the way holds another key, or was
//! deleted meanwhile) the pair is tried again, at most [`UPSERT_ATTEMPTS`]
//! times, the last as a plain `INSERT` that reports the constraint.

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable epoch-ms values (both backends).
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, y: diesel::sql_types::Nullable<diesel::sql_types::BigInt>) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

/// How often an upsert tries its insert-or-update pair before it reports the conflict.
pub(crate) const UPSERT_ATTEMPTS: usize = 3;

/// The three writes on request paths, which each backend runs its own way: SQLite
/// group-commits them ([`super::group_commit`]), PostgreSQL runs each on a pooled connection.
/// Everything around them (building rows, reading back, waking the feed) is in
/// [`impl_store_ports!`], shared.
#[async_trait::async_trait]
pub(crate) trait HotWrites {
    /// Inserts a relayed message and its batches in one transaction unless the
    /// `(client_id, key)` is taken. Returns whether it inserted (`false`: the key exists and
    /// nothing was written).
    async fn insert_relay(
        &self,
        message: super::rows::RelayMessageRow,
        batches: Vec<super::rows::RelayBatchRow>,
    ) -> Result<bool, application::ports::StoreError>;

    /// Remembers a callback nonce: inserts it, or renews an expired copy of it (`keep_until` <
    /// `now_ms`, epoch ms). Returns `false` for a nonce remembered and not expired (a replay),
    /// in which case nothing changed. Of concurrent calls for one nonce exactly one gets `true`.
    async fn remember_nonce_row(
        &self,
        row: super::rows::CallbackNonceRow,
        now_ms: i64,
    ) -> Result<bool, application::ports::StoreError>;

    /// Appends a contact event unless its `(corp_id, event_id)` is in the feed; returns its `seq`
    /// (`None` for a duplicate). Cursors become visible in `seq` order: a reader that has seen
    /// `n` never later finds a committed event below `n`.
    async fn insert_contact_event(
        &self,
        row: super::rows::NewContactEventRow,
    ) -> Result<Option<i64>, application::ports::StoreError>;

    /// [`HotWrites::remember_nonce_row`] and then, unless it is a replay (`None`, nothing
    /// written), [`HotWrites::insert_contact_event`] for each row in order, in one transaction.
    async fn remember_and_insert(
        &self,
        nonce: super::rows::CallbackNonceRow,
        now_ms: i64,
        rows: Vec<super::rows::NewContactEventRow>,
    ) -> Result<Option<Vec<Option<i64>>>, application::ports::StoreError>;
}

/// The two claim queries, which differ by backend: several PostgreSQL instances skip the rows
/// another is claiming (`FOR UPDATE SKIP LOCKED`) instead of waiting for it; SQLite has one
/// writer, which the claim holds from its read to its write. Each claims at most `limit` rows
/// in one transaction and returns what it claimed.
#[async_trait::async_trait]
pub(crate) trait ClaimQueue {
    /// Claims up to `limit` `accepted` relayed messages that are due (`retry_at` NULL or
    /// `<= now_ms`) and not held by an unexpired claim (`claimed_until` NULL or `< now_ms`), the
    /// oldest first: sets `claim` and `claimed_until = lease_until_ms`. Returns their keys
    /// (client id, key) in that order.
    async fn claim_relay_keys(
        &self,
        claim: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, application::ports::StoreError>;

    /// Claims up to `limit` outbox messages (`accepted` or `relayed`) whose `next_attempt_at` is
    /// `<= now_ms`, the earliest due first: sets `next_attempt_at = lease_until_ms` and counts
    /// the attempt. Returns the claimed rows.
    async fn claim_outbox_rows(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<super::rows::MessageRow>, application::ports::StoreError>;
}

/// Implements every store port of `application::ports` for `$store`.
///
/// `$store` must have `async fn conn(&self) -> Result<impl DerefMut<Target =
/// $conn>, StoreError>` (a pooled connection) and `async fn writer(&self)` (the same, for
/// every write: SQLite's single writer) and a `feed: FeedWatch` field (the feed
/// signal its appends bump), and `$db_error` must be a
/// `fn(&str, diesel::result::Error) -> StoreError`. The schema and row structs
/// are [`super::schema`] and [`super::rows`].
macro_rules! impl_store_ports {
    ($store:ty, $conn:ty, $db_error:path) => {
        $crate::outbound::sql::login_stores::impl_login_stores!($store, $conn, $db_error);
        $crate::outbound::sql::member_stores::impl_member_stores!($store, $conn, $db_error);
        $crate::outbound::sql::outbox_stores::impl_outbox_stores!($store, $conn, $db_error);
        $crate::outbound::sql::relay_stores::impl_relay_stores!($store, $conn, $db_error);
        $crate::outbound::sql::event_stores::impl_event_stores!($store, $conn, $db_error);
        $crate::outbound::sql::quota_stores::impl_quota_store!($store, $conn, $db_error);
    };
}

pub(crate) use impl_store_ports;

/// The imports and helpers every store-port macro's block starts with: the ports, diesel, the
/// rows and tables, `Conn` (`$conn`), `db_error` (`$db_error`) and `count`.
macro_rules! store_preamble {
    ($conn:ty, $db_error:path) => {
        #[allow(unused_imports)]
        use application::ports::{
            Binding, BindingStore, ClaimedRelay, ContactEvent, CorpAuthorization, EventStore, FeedCursorStore,
            FeedEntry, FeedSignal, ListMessages, ListUsers, LoginAttemptStore, LoginIntent, LoginIntentStore,
            LoginOutcome, LoginResultStore, MessageRecord, MessageStore, QuotaStore, QuotaUsage, RelayMessageRecord,
            RelayMessageStore, RelayWaiting, Session, SessionStore, StoreError, SuiteStore, SuiteTicket,
            UserRepository,
        };
        #[allow(unused_imports)]
        use async_trait::async_trait;
        #[allow(unused_imports)]
        use diesel::prelude::*;
        #[allow(unused_imports)]
        use diesel::result::Error as DieselError;
        #[allow(unused_imports)]
        use diesel_async::{AsyncConnection, RunQueryDsl};
        #[allow(unused_imports)]
        use domain::{CorpId, DeliveryId, LoginAttempt, MemberProfile, MessageState, Timestamp, User, UserId};

        #[allow(unused_imports)]
        use $crate::outbound::sql::rows::{
            BindingRow, CallbackNonceRow, ContactEventRow, CorpAuthorizationRow, LoginAttemptRow, LoginIntentRow,
            LoginResultRow, MessageRow, NewContactEventRow, RelayBatchRow, RelayMessageRow, SessionRow, SuiteTicketRow,
            UserRow, batch_idx, tenant_column, to_json,
        };
        #[allow(unused_imports)]
        use $crate::outbound::sql::schema::{
            bindings, callback_nonces, contact_events, corp_authorizations, feed_cursors, login_attempts,
            login_intents, login_results, messages, quota_usage, relay_batches, relay_messages, sessions,
            suite_tickets, users,
        };
        #[allow(unused_imports)]
        use $crate::outbound::sql::stores::{ClaimQueue, HotWrites, UPSERT_ATTEMPTS, coalesce};

        #[allow(dead_code)]
        type Conn = $conn;

        #[allow(dead_code)]
        fn db_error(context: &str, err: DieselError) -> StoreError {
            $db_error(context, err)
        }

        /// Row counts as the ports report them.
        #[allow(dead_code)]
        fn count(rows: usize) -> u64 {
            u64::try_from(rows).unwrap_or(u64::MAX)
        }
    };
}

pub(crate) use store_preamble;
