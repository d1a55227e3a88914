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
        const _: () = {
            use application::ports::{
                Binding, BindingStore, ClaimedRelay, ContactEvent, CorpAuthorization, EventStore, FeedCursorStore,
                FeedEntry, FeedSignal, ListMessages, ListUsers, LoginAttemptStore, LoginIntent, LoginIntentStore,
                LoginOutcome, LoginResultStore, MessageRecord, MessageStore, QuotaStore, QuotaUsage,
                RelayMessageRecord, RelayMessageStore, RelayWaiting, Session, SessionStore, StoreError, SuiteStore,
                SuiteTicket, UserRepository,
            };
            use async_trait::async_trait;
            use diesel::prelude::*;
            use diesel::result::Error as DieselError;
            use diesel_async::{AsyncConnection, RunQueryDsl};
            use domain::{CorpId, DeliveryId, LoginAttempt, MemberProfile, MessageState, Timestamp, User, UserId};

            use $crate::outbound::sql::rows::{
                BindingRow, CallbackNonceRow, ContactEventRow, CorpAuthorizationRow, LoginAttemptRow, LoginIntentRow,
                LoginResultRow, MessageRow, NewContactEventRow, RelayBatchRow, RelayMessageRow, SessionRow,
                SuiteTicketRow, UserRow, batch_idx, tenant_column, to_json,
            };
            use $crate::outbound::sql::schema::{
                bindings, callback_nonces, contact_events, corp_authorizations, feed_cursors, login_attempts,
                login_intents, login_results, messages, quota_usage, relay_batches, relay_messages, sessions,
                suite_tickets, users,
            };
            use $crate::outbound::sql::stores::{ClaimQueue, HotWrites, UPSERT_ATTEMPTS, coalesce};

            type Conn = $conn;

            fn db_error(context: &str, err: DieselError) -> StoreError {
                $db_error(context, err)
            }

            /// Row counts as the ports report them.
            fn count(rows: usize) -> u64 {
                u64::try_from(rows).unwrap_or(u64::MAX)
            }

            #[async_trait]
            impl LoginAttemptStore for $store {
                async fn insert(&self, attempt: &LoginAttempt) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::insert_into(login_attempts::table)
                        .values(LoginAttemptRow::from_domain(attempt))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert login attempt", e))?;
                    Ok(())
                }

                async fn take(&self, state_hash: &str, now: Timestamp) -> Result<Option<LoginAttempt>, StoreError> {
                    let mut conn = self.writer().await?;
                    let row = diesel::delete(login_attempts::table.find(state_hash))
                        .returning(LoginAttemptRow::as_returning())
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("take login attempt", e))?;
                    row.filter(|r| r.expires_at > now.as_millis()).map(LoginAttemptRow::into_domain).transpose()
                }

                async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(login_attempts::table.filter(login_attempts::expires_at.le(now.as_millis())))
                        .execute(&mut conn)
                        .await
                        .map(count)
                        .map_err(|e| db_error("purge login attempts", e))
                }
            }

            #[async_trait]
            impl LoginIntentStore for $store {
                async fn insert(&self, intent: &LoginIntent) -> Result<(), StoreError> {
                    let row = LoginIntentRow::from_domain(intent)?;
                    let mut conn = self.writer().await?;
                    diesel::insert_into(login_intents::table)
                        .values(row)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert login intent", e))?;
                    Ok(())
                }

                async fn take(&self, state_hash: &str, now: Timestamp) -> Result<Option<LoginIntent>, StoreError> {
                    let mut conn = self.writer().await?;
                    let row = diesel::delete(login_intents::table.find(state_hash))
                        .returning(LoginIntentRow::as_returning())
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("take login intent", e))?;
                    row.filter(|r| r.expires_at > now.as_millis()).map(LoginIntentRow::into_domain).transpose()
                }

                async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(login_intents::table.filter(login_intents::expires_at.le(now.as_millis())))
                        .execute(&mut conn)
                        .await
                        .map(count)
                        .map_err(|e| db_error("purge login intents", e))
                }
            }

            #[async_trait]
            impl LoginResultStore for $store {
                async fn insert(
                    &self,
                    state_hash: &str,
                    client_id: &str,
                    outcome: &LoginOutcome,
                    expires_at: Timestamp,
                ) -> Result<(), StoreError> {
                    let row = LoginResultRow::from_domain(state_hash, client_id, outcome, expires_at)?;
                    let mut conn = self.writer().await?;
                    diesel::insert_into(login_results::table)
                        .values(row)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert login result", e))?;
                    Ok(())
                }

                async fn take(
                    &self,
                    state_hash: &str,
                    client_id: &str,
                    now: Timestamp,
                ) -> Result<Option<LoginOutcome>, StoreError> {
                    let mut conn = self.writer().await?;
                    let row = diesel::delete(
                        login_results::table.find(state_hash).filter(login_results::client_id.eq(client_id)),
                    )
                    .returning(LoginResultRow::as_returning())
                    .get_result(&mut conn)
                    .await
                    .optional()
                    .map_err(|e| db_error("take login result", e))?;
                    row.filter(|r| r.expires_at > now.as_millis()).map(LoginResultRow::into_domain).transpose()
                }

                async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(login_results::table.filter(login_results::expires_at.le(now.as_millis())))
                        .execute(&mut conn)
                        .await
                        .map(count)
                        .map_err(|e| db_error("purge login results", e))
                }
            }

            #[async_trait]
            impl SessionStore for $store {
                async fn insert(&self, session: &Session) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::insert_into(sessions::table)
                        .values(SessionRow::from_domain(session))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert session", e))?;
                    Ok(())
                }

                async fn find(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = sessions::table
                        .find(token_hash)
                        .filter(sessions::expires_at.gt(now.as_millis()))
                        .select(SessionRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find session", e))?;
                    Ok(row.map(SessionRow::into_domain))
                }

                async fn delete(&self, token_hash: &str) -> Result<bool, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(sessions::table.find(token_hash))
                        .execute(&mut conn)
                        .await
                        .map(|n| n > 0)
                        .map_err(|e| db_error("delete session", e))
                }

                async fn delete_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                        .execute(&mut conn)
                        .await
                        .map(count)
                        .map_err(|e| db_error("delete sessions of user", e))
                }
            }

            #[async_trait]
            impl UserRepository for $store {
                async fn upsert(
                    &self,
                    profile: &MemberProfile,
                    new_id: &str,
                    now: Timestamp,
                ) -> Result<User, StoreError> {
                    let row = UserRow::new_user(profile, new_id, now)?;
                    let changes = row.changes();
                    let mut conn = self.writer().await?;
                    let mut attempt = 1;
                    let stored = loop {
                        let inserted = diesel::insert_into(users::table)
                            .values(&row)
                            .on_conflict_do_nothing()
                            .returning(UserRow::as_returning())
                            .get_result(&mut conn)
                            .await
                            .optional()
                            .map_err(|e| db_error("upsert user", e))?;
                        if let Some(inserted) = inserted {
                            break inserted;
                        }
                        let updated = diesel::update(
                            users::table
                                .filter(users::corp_id.eq(&row.corp_id))
                                .filter(users::union_id.eq(&row.union_id)),
                        )
                        .set(&changes)
                        .returning(UserRow::as_returning())
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("upsert user", e))?;
                        if let Some(updated) = updated {
                            break updated;
                        }
                        if attempt >= UPSERT_ATTEMPTS {
                            // The row in the way holds another key (the userid is someone
                            // else's): a plain insert reports which constraint.
                            break diesel::insert_into(users::table)
                                .values(&row)
                                .returning(UserRow::as_returning())
                                .get_result(&mut conn)
                                .await
                                .map_err(|e| db_error("upsert user", e))?;
                        }
                        attempt += 1;
                    };
                    stored.into_domain()
                }

                async fn find(&self, id: &str) -> Result<Option<User>, StoreError> {
                    let mut conn = self.conn().await?;
                    users::table
                        .find(id)
                        .select(UserRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find user", e))?
                        .map(UserRow::into_domain)
                        .transpose()
                }

                async fn find_by_userid(&self, corp_id: &CorpId, userid: &UserId) -> Result<Option<User>, StoreError> {
                    let mut conn = self.conn().await?;
                    users::table
                        .filter(users::corp_id.eq(corp_id.as_str()))
                        .filter(users::userid.eq(userid.as_str()))
                        .select(UserRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find user by userid", e))?
                        .map(UserRow::into_domain)
                        .transpose()
                }

                async fn list(&self, query: &ListUsers) -> Result<Vec<User>, StoreError> {
                    let mut select = users::table
                        .select(UserRow::as_select())
                        .order_by((users::created_at.asc(), users::id.asc()))
                        .limit(i64::from(query.limit))
                        .offset(i64::from(query.offset))
                        .into_boxed();
                    if let Some(corp_id) = &query.corp_id {
                        select = select.filter(users::corp_id.eq(corp_id.as_str().to_owned()));
                    }
                    let mut conn = self.conn().await?;
                    let rows = select.load(&mut conn).await.map_err(|e| db_error("list users", e))?;
                    rows.into_iter().map(UserRow::into_domain).collect()
                }
            }

            #[async_trait]
            impl MessageStore for $store {
                async fn insert(&self, record: &MessageRecord) -> Result<(), StoreError> {
                    let row = MessageRow::from_domain(record)?;
                    let mut conn = self.writer().await?;
                    diesel::insert_into(messages::table)
                        .values(row)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert message", e))?;
                    Ok(())
                }

                async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
                    let mut conn = self.conn().await?;
                    messages::table
                        .find(id)
                        .select(MessageRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get message", e))?
                        .map(MessageRow::into_domain)
                        .transpose()
                }

                async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<MessageRecord>, StoreError> {
                    let mut conn = self.conn().await?;
                    messages::table
                        .filter(messages::idempotency_key.eq(key))
                        .select(MessageRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find message by idempotency key", e))?
                        .map(MessageRow::into_domain)
                        .transpose()
                }

                async fn update(
                    &self,
                    id: &str,
                    state: MessageState,
                    delivery_ids: &[DeliveryId],
                    error: Option<String>,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let delivery_ids = to_json(delivery_ids, "delivery ids")?;
                    let at = Some(now.as_millis());
                    let relayed = matches!(
                        state,
                        MessageState::Relayed | MessageState::Sent | MessageState::Completed | MessageState::Recalled
                    );
                    let sent = matches!(state, MessageState::Sent | MessageState::Completed | MessageState::Recalled);
                    let finished =
                        matches!(state, MessageState::Completed | MessageState::Failed | MessageState::Recalled);
                    let mut conn = self.writer().await?;
                    let updated = diesel::update(messages::table.find(id))
                        .set((
                            messages::state.eq(state.as_str()),
                            messages::delivery_ids.eq(delivery_ids),
                            messages::error.eq(error),
                            messages::updated_at.eq(now.as_millis()),
                            messages::relayed_at.eq(coalesce(messages::relayed_at, if relayed { at } else { None })),
                            messages::sent_at.eq(coalesce(messages::sent_at, if sent { at } else { None })),
                            messages::finished_at.eq(coalesce(messages::finished_at, if finished { at } else { None })),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("update message", e))?;
                    if updated == 0 {
                        return Err(StoreError::Other(format!("update message: no message with id {id:?}")));
                    }
                    Ok(())
                }

                async fn claim_due(
                    &self,
                    now: Timestamp,
                    lease_until: Timestamp,
                    limit: u32,
                ) -> Result<Vec<MessageRecord>, StoreError> {
                    let rows =
                        ClaimQueue::claim_outbox_rows(self, now.as_millis(), lease_until.as_millis(), limit).await?;
                    let mut records = rows.into_iter().map(MessageRow::into_domain).collect::<Result<Vec<_>, _>>()?;
                    records.sort_by_key(|r| (r.next_attempt_at, r.created_at));
                    Ok(records)
                }

                async fn reschedule(
                    &self,
                    id: &str,
                    next_attempt_at: Timestamp,
                    error: Option<String>,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(messages::table.find(id))
                        .set((messages::next_attempt_at.eq(next_attempt_at.as_millis()), messages::error.eq(error)))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("reschedule message", e))?;
                    Ok(())
                }

                async fn list(&self, query: &ListMessages) -> Result<Vec<MessageRecord>, StoreError> {
                    let mut select = messages::table
                        .select(MessageRow::as_select())
                        .order((messages::created_at.desc(), messages::id.desc()))
                        .limit(i64::from(query.limit))
                        .offset(i64::from(query.offset))
                        .into_boxed();
                    if let Some(state) = query.state {
                        select = select.filter(messages::state.eq(state.as_str()));
                    }
                    if let Some(since) = query.since {
                        select = select.filter(messages::created_at.ge(since.as_millis()));
                    }
                    let mut conn = self.conn().await?;
                    let rows = select.load(&mut conn).await.map_err(|e| db_error("list messages", e))?;
                    rows.into_iter().map(MessageRow::into_domain).collect()
                }
            }

            /// Loads a relayed message and its batches (in `idx` order), on `conn`.
            async fn load_relay(
                conn: &mut Conn,
                client_id: &str,
                key: &str,
            ) -> QueryResult<Option<(RelayMessageRow, Vec<RelayBatchRow>)>> {
                let Some(message) = relay_messages::table
                    .find((client_id, key))
                    .select(RelayMessageRow::as_select())
                    .first(conn)
                    .await
                    .optional()?
                else {
                    return Ok(None);
                };
                let batches = relay_batches::table
                    .filter(relay_batches::client_id.eq(client_id))
                    .filter(relay_batches::key.eq(key))
                    .order_by(relay_batches::idx.asc())
                    .select(RelayBatchRow::as_select())
                    .load(conn)
                    .await?;
                Ok(Some((message, batches)))
            }

            /// Loads the relayed messages of `keys` (client id, key), in that order, skipping any
            /// deleted meanwhile.
            async fn load_relays(
                conn: &mut Conn,
                keys: Vec<(String, String)>,
            ) -> Result<Vec<RelayMessageRecord>, StoreError> {
                let mut records = Vec::with_capacity(keys.len());
                for (client_id, key) in keys {
                    let found =
                        load_relay(conn, &client_id, &key).await.map_err(|e| db_error("load relay message", e))?;
                    if let Some((message, batches)) = found {
                        records.push(message.into_domain(batches)?);
                    }
                }
                Ok(records)
            }

            #[async_trait]
            impl RelayMessageStore for $store {
                async fn insert_or_get(
                    &self,
                    record: &RelayMessageRecord,
                ) -> Result<(RelayMessageRecord, bool), StoreError> {
                    let (client_id, key) = (record.client_id.as_str(), record.key.as_str());
                    // The key was taken by a committed message (the insert waited for it), which
                    // can only be deleted by the purge, long after: read it back. A message
                    // purged in between is inserted again, at most twice.
                    for _ in 0..2 {
                        let (message, batches) = RelayMessageRow::from_domain(record)?;
                        if HotWrites::insert_relay(self, message, batches).await? {
                            return Ok((record.clone(), true));
                        }
                        if let Some(existing) = RelayMessageStore::get(self, client_id, key).await? {
                            return Ok((existing, false));
                        }
                    }
                    Err(StoreError::Other(format!(
                        "insert relay message: the key {key:?} of client {client_id:?} was taken and deleted twice"
                    )))
                }

                async fn get(&self, client_id: &str, key: &str) -> Result<Option<RelayMessageRecord>, StoreError> {
                    let mut conn = self.conn().await?;
                    let found = conn
                        .transaction::<_, diesel::result::Error, _>(async |conn| load_relay(conn, client_id, key).await)
                        .await
                        .map_err(|e| db_error("get relay message", e))?;
                    found.map(|(message, batches)| message.into_domain(batches)).transpose()
                }

                async fn list_in_state(
                    &self,
                    state: MessageState,
                    created_after: Timestamp,
                    max_rounds: u32,
                    limit: u32,
                ) -> Result<Vec<RelayMessageRecord>, StoreError> {
                    let mut conn = self.conn().await?;
                    let keys: Vec<(String, String)> = relay_messages::table
                        .filter(relay_messages::state.eq(state.as_str()))
                        .filter(relay_messages::created_at.ge(created_after.as_millis()))
                        .filter(relay_messages::reconcile_rounds.lt(i64::from(max_rounds)))
                        .order(relay_messages::updated_at.asc())
                        .limit(i64::from(limit))
                        .select((relay_messages::client_id, relay_messages::key))
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("list relay messages", e))?;
                    load_relays(&mut conn, keys).await
                }

                async fn record_batch(
                    &self,
                    client_id: &str,
                    key: &str,
                    index: usize,
                    delivery_id: Option<DeliveryId>,
                    error: Option<String>,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let idx = batch_idx(index)?;
                    let mut conn = self.writer().await?;
                    let update = diesel::update(relay_batches::table.find((client_id, key, idx))).set((
                        relay_batches::delivery_id.eq(delivery_id.as_ref().map(DeliveryId::as_str)),
                        relay_batches::error.eq(error),
                    ));
                    update_batch(&mut conn, client_id, key, index, update, now, "record relay batch").await
                }

                async fn record_skipped(
                    &self,
                    client_id: &str,
                    key: &str,
                    index: usize,
                    skipped: &[(UserId, domain::SkipReason)],
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let idx = batch_idx(index)?;
                    let skipped = $crate::outbound::sql::rows::skipped_json(skipped)?;
                    let mut conn = self.writer().await?;
                    let update = diesel::update(relay_batches::table.find((client_id, key, idx)))
                        .set(relay_batches::skipped.eq(&skipped));
                    update_batch(&mut conn, client_id, key, index, update, now, "record skipped recipients").await
                }

                async fn set_state(
                    &self,
                    client_id: &str,
                    key: &str,
                    state: MessageState,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    update_relay_state(&mut conn, client_id, key, state, now, 0, "set relay message state").await
                }

                async fn record_reconcile_round(
                    &self,
                    client_id: &str,
                    key: &str,
                    state: MessageState,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    update_relay_state(&mut conn, client_id, key, state, now, 1, "record a reconciliation round").await
                }

                async fn claim_due(
                    &self,
                    claim: &str,
                    now: Timestamp,
                    lease_until: Timestamp,
                    limit: u32,
                ) -> Result<Vec<ClaimedRelay>, StoreError> {
                    let keys =
                        ClaimQueue::claim_relay_keys(self, claim, now.as_millis(), lease_until.as_millis(), limit)
                            .await?;
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut conn = self.conn().await?;
                    let mut claimed = Vec::with_capacity(keys.len());
                    for record in load_relays(&mut conn, keys).await? {
                        // Started under an earlier claim and never answered: uncertain.
                        let uncertain: Vec<(i32, Option<i64>)> = relay_batches::table
                            .filter(relay_batches::client_id.eq(&record.client_id))
                            .filter(relay_batches::key.eq(&record.key))
                            .filter(relay_batches::started_at.is_not_null())
                            .filter(relay_batches::delivery_id.is_null())
                            .filter(relay_batches::error.is_null())
                            .order_by(relay_batches::idx.asc())
                            .select((relay_batches::idx, relay_batches::started_at))
                            .load(&mut conn)
                            .await
                            .map_err(|e| db_error("find uncertain relay batches", e))?;
                        let uncertain = uncertain
                            .into_iter()
                            .filter_map(|(idx, at)| Some((usize::try_from(idx).ok()?, Timestamp::from_millis(at?))))
                            .collect();
                        claimed.push(ClaimedRelay { record, claim: claim.to_owned(), uncertain });
                    }
                    Ok(claimed)
                }

                async fn start_batch(
                    &self,
                    client_id: &str,
                    key: &str,
                    index: usize,
                    claim: &str,
                    now: Timestamp,
                    lease_until: Timestamp,
                ) -> Result<bool, StoreError> {
                    let idx = batch_idx(index)?;
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        let held = diesel::update(
                            relay_messages::table
                                .find((client_id, key))
                                .filter(relay_messages::claim.eq(claim))
                                .filter(relay_messages::state.eq(MessageState::Accepted.as_str())),
                        )
                        .set(relay_messages::claimed_until.eq(lease_until.as_millis()))
                        .execute(conn)
                        .await?;
                        if held == 0 {
                            return Ok(false);
                        }
                        diesel::update(relay_batches::table.find((client_id, key, idx)))
                            .set(relay_batches::started_at.eq(now.as_millis()))
                            .execute(conn)
                            .await?;
                        Ok(true)
                    })
                    .await
                    .map_err(|e| db_error("start a relay batch", e))
                }

                async fn release_one(
                    &self,
                    client_id: &str,
                    key: &str,
                    reason: application::ports::WaitReason,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        let released = diesel::update(
                            relay_messages::table
                                .find((client_id, key))
                                .filter(relay_messages::state.eq(MessageState::Accepted.as_str()))
                                .filter(relay_messages::waiting.eq(reason.as_str())),
                        )
                        .set((
                            relay_messages::retry_at.eq(now.as_millis()),
                            relay_messages::claim.eq(None::<String>),
                            relay_messages::claimed_until.eq(None::<i64>),
                            relay_messages::updated_at.eq(now.as_millis()),
                        ))
                        .execute(conn)
                        .await?;
                        if released == 1 {
                            diesel::update(
                                relay_batches::table
                                    .filter(relay_batches::client_id.eq(client_id))
                                    .filter(relay_batches::key.eq(key)),
                            )
                            .set(relay_batches::started_at.eq(None::<i64>))
                            .execute(conn)
                            .await?;
                        }
                        Ok(released == 1)
                    })
                    .await
                    .map_err(|e| db_error("release a held relay message", e))
                }

                async fn record_waiting(
                    &self,
                    client_id: &str,
                    key: &str,
                    waiting: &RelayWaiting,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    let updated = conn
                        .transaction::<_, diesel::result::Error, _>(async |conn| {
                            let updated = diesel::update(relay_messages::table.find((client_id, key)))
                                .set((
                                    relay_messages::attempts.eq(relay_messages::attempts + 1),
                                    relay_messages::waiting.eq(waiting.reason.as_str()),
                                    relay_messages::waiting_detail.eq(&waiting.detail),
                                    relay_messages::retry_at.eq(waiting.retry_at.as_millis()),
                                    relay_messages::updated_at.eq(now.as_millis()),
                                    relay_messages::claim.eq(None::<String>),
                                    relay_messages::claimed_until.eq(None::<i64>),
                                ))
                                .execute(conn)
                                .await?;
                            // The attempt saw how its calls ended (not sent), unless it held the
                            // message because it could not know.
                            if updated == 1 && waiting.reason != application::ports::WaitReason::Uncertain {
                                diesel::update(
                                    relay_batches::table
                                        .filter(relay_batches::client_id.eq(client_id))
                                        .filter(relay_batches::key.eq(key))
                                        .filter(relay_batches::started_at.is_not_null()),
                                )
                                .set(relay_batches::started_at.eq(None::<i64>))
                                .execute(conn)
                                .await?;
                            }
                            Ok(updated)
                        })
                        .await
                        .map_err(|e| db_error("record a waiting relay message", e))?;
                    if updated == 0 {
                        return Err(StoreError::Other(format!(
                            "record a waiting relay message: no message {client_id}/{key}"
                        )));
                    }
                    Ok(())
                }

                async fn release_waiting(
                    &self,
                    corp_id: &CorpId,
                    reason: application::ports::WaitReason,
                    now: Timestamp,
                ) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(
                        relay_messages::table
                            .filter(relay_messages::state.eq(MessageState::Accepted.as_str()))
                            .filter(relay_messages::corp_id.eq(corp_id.as_str()))
                            .filter(relay_messages::waiting.eq(reason.as_str())),
                    )
                    .set(relay_messages::retry_at.eq(now.as_millis()))
                    .execute(&mut conn)
                    .await
                    .map(count)
                    .map_err(|e| db_error("release waiting relay messages", e))
                }
            }

            /// Runs `update` (of batch `index` of message `client_id`/`key`) and, when it found the
            /// batch, sets the message's `updated_at`, in one transaction; `context` names the
            /// operation in errors. A batch that does not exist is an error.
            async fn update_batch<U>(
                conn: &mut Conn,
                client_id: &str,
                key: &str,
                index: usize,
                update: U,
                now: Timestamp,
                context: &str,
            ) -> Result<(), StoreError>
            where
                U: diesel_async::methods::ExecuteDsl<Conn> + Send,
            {
                let updated = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| {
                        let updated = update.execute(conn).await?;
                        if updated == 1 {
                            diesel::update(relay_messages::table.find((client_id, key)))
                                .set(relay_messages::updated_at.eq(now.as_millis()))
                                .execute(conn)
                                .await?;
                        }
                        Ok(updated)
                    })
                    .await
                    .map_err(|e| db_error(context, e))?;
                if updated == 0 {
                    return Err(StoreError::Other(format!("{context}: no batch {index} of message {client_id}/{key}")));
                }
                Ok(())
            }

            /// Sets a relayed message's state and `updated_at` and adds `rounds` to its
            /// reconciliation rounds, in one statement; `context` names the operation in errors.
            /// A message that does not exist is an error.
            async fn update_relay_state(
                conn: &mut Conn,
                client_id: &str,
                key: &str,
                state: MessageState,
                now: Timestamp,
                rounds: i64,
                context: &str,
            ) -> Result<(), StoreError> {
                let updated = diesel::update(relay_messages::table.find((client_id, key)))
                    .set((
                        relay_messages::state.eq(state.as_str()),
                        relay_messages::updated_at.eq(now.as_millis()),
                        relay_messages::reconcile_rounds.eq(relay_messages::reconcile_rounds + rounds),
                        relay_messages::claim.eq(None::<String>),
                        relay_messages::claimed_until.eq(None::<i64>),
                    ))
                    .execute(conn)
                    .await
                    .map_err(|e| db_error(context, e))?;
                if updated == 0 {
                    return Err(StoreError::Other(format!("{context}: no message {client_id}/{key}")));
                }
                Ok(())
            }

            #[async_trait]
            impl BindingStore for $store {
                async fn put(&self, binding: &Binding) -> Result<(), StoreError> {
                    let row = BindingRow::from_domain(binding);
                    let mut conn = self.writer().await?;
                    for attempt in 1..=UPSERT_ATTEMPTS {
                        let inserted = diesel::insert_into(bindings::table)
                            .values(&row)
                            .on_conflict_do_nothing()
                            .execute(&mut conn)
                            .await
                            .map_err(|e| db_error("put binding", e))?;
                        if inserted > 0 {
                            return Ok(());
                        }
                        let updated = diesel::update(bindings::table.find(&row.user_id))
                            .set((
                                bindings::external_id.eq(&row.external_id),
                                bindings::tenant_id.eq(&row.tenant_id),
                                bindings::updated_at.eq(row.updated_at),
                            ))
                            .execute(&mut conn)
                            .await
                            .map_err(|e| db_error("put binding", e))?;
                        if updated > 0 {
                            return Ok(());
                        }
                        if attempt == UPSERT_ATTEMPTS {
                            // The row in the way holds the external id for another user: a
                            // plain insert reports which constraint.
                            diesel::insert_into(bindings::table)
                                .values(&row)
                                .execute(&mut conn)
                                .await
                                .map_err(|e| db_error("put binding", e))?;
                        }
                    }
                    Ok(())
                }

                async fn get(&self, user_id: &str) -> Result<Option<Binding>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = bindings::table
                        .find(user_id)
                        .select(BindingRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get binding", e))?;
                    Ok(row.map(BindingRow::into_domain))
                }

                async fn find_by_external_id(
                    &self,
                    tenant_id: Option<String>,
                    external_id: &str,
                ) -> Result<Option<Binding>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = bindings::table
                        .filter(bindings::tenant_id.eq(tenant_column(tenant_id.as_deref())))
                        .filter(bindings::external_id.eq(external_id))
                        .select(BindingRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find binding by external id", e))?;
                    Ok(row.map(BindingRow::into_domain))
                }
            }

            #[async_trait]
            impl SuiteStore for $store {
                async fn put_ticket(&self, suite_key: &str, ticket: &str, now: Timestamp) -> Result<(), StoreError> {
                    let row = SuiteTicketRow {
                        suite_key: suite_key.to_owned(),
                        ticket: ticket.to_owned(),
                        updated_at: now.as_millis(),
                    };
                    let mut conn = self.writer().await?;
                    diesel::insert_into(suite_tickets::table)
                        .values(&row)
                        .on_conflict(suite_tickets::suite_key)
                        .do_update()
                        .set((suite_tickets::ticket.eq(&row.ticket), suite_tickets::updated_at.eq(row.updated_at)))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("put suite ticket", e))?;
                    Ok(())
                }

                async fn ticket(&self, suite_key: &str) -> Result<Option<SuiteTicket>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row = suite_tickets::table
                        .find(suite_key)
                        .select(SuiteTicketRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get suite ticket", e))?;
                    Ok(row.map(SuiteTicketRow::into_domain))
                }

                async fn put_authorization(&self, authorization: &CorpAuthorization) -> Result<(), StoreError> {
                    let row = CorpAuthorizationRow::from_domain(authorization);
                    let mut conn = self.writer().await?;
                    // The primary key is the table's only unique constraint, so `ON CONFLICT … DO
                    // UPDATE` settles concurrent puts on both backends (no retry needed).
                    diesel::insert_into(corp_authorizations::table)
                        .values(&row)
                        .on_conflict((corp_authorizations::suite_key, corp_authorizations::corp_id))
                        .do_update()
                        .set((
                            corp_authorizations::agent_id.eq(row.agent_id),
                            corp_authorizations::permanent_code.eq(&row.permanent_code),
                            corp_authorizations::active.eq(row.active),
                            corp_authorizations::updated_at.eq(row.updated_at),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("put corp authorization", e))?;
                    Ok(())
                }

                async fn authorization(
                    &self,
                    suite_key: &str,
                    corp_id: &CorpId,
                ) -> Result<Option<CorpAuthorization>, StoreError> {
                    let mut conn = self.conn().await?;
                    corp_authorizations::table
                        .find((suite_key, corp_id.as_str()))
                        .select(CorpAuthorizationRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get corp authorization", e))?
                        .map(CorpAuthorizationRow::into_domain)
                        .transpose()
                }

                async fn authorizations(&self, suite_key: &str) -> Result<Vec<CorpAuthorization>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows = corp_authorizations::table
                        .filter(corp_authorizations::suite_key.eq(suite_key))
                        .order_by(corp_authorizations::corp_id.asc())
                        .select(CorpAuthorizationRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("list corp authorizations", e))?;
                    rows.into_iter().map(CorpAuthorizationRow::into_domain).collect()
                }
            }

            #[async_trait]
            impl EventStore for $store {
                async fn remember_nonce(
                    &self,
                    owner: &str,
                    nonce: &str,
                    now: Timestamp,
                    keep_until: Timestamp,
                ) -> Result<bool, StoreError> {
                    let row = CallbackNonceRow {
                        owner: owner.to_owned(),
                        nonce: nonce.to_owned(),
                        keep_until: keep_until.as_millis(),
                    };
                    HotWrites::remember_nonce_row(self, row, now.as_millis()).await
                }

                async fn purge_expired_nonces(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    // The keys of at most `limit` expired nonces, oldest first (by the keep_until
                    // index), then a delete of exactly those keys: bounded work per call on both
                    // backends, however many nonces share one `keep_until`.
                    let keys: Vec<(String, String)> = callback_nonces::table
                        .filter(callback_nonces::keep_until.lt(now.as_millis()))
                        .order(callback_nonces::keep_until.asc())
                        .select((callback_nonces::owner, callback_nonces::nonce))
                        .limit(i64::from(limit.max(1)))
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("find expired nonces", e))?;
                    let mut by_owner: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
                    for (owner, nonce) in &keys {
                        by_owner.entry(owner.as_str()).or_default().push(nonce.as_str());
                    }
                    let mut deleted = 0;
                    for (owner, nonces) in by_owner {
                        deleted += diesel::delete(
                            callback_nonces::table
                                .filter(callback_nonces::owner.eq(owner))
                                .filter(callback_nonces::nonce.eq_any(nonces))
                                .filter(callback_nonces::keep_until.lt(now.as_millis())),
                        )
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("purge expired nonces", e))?;
                    }
                    Ok(count(deleted))
                }

                async fn forget_nonce(&self, owner: &str, nonce: &str) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(callback_nonces::table.find((owner, nonce)))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("forget nonce", e))?;
                    Ok(())
                }

                async fn append(&self, event: &ContactEvent) -> Result<Option<i64>, StoreError> {
                    let row = NewContactEventRow::from_domain(event)?;
                    let appended = HotWrites::insert_contact_event(self, row).await?;
                    // Committed: wake the feed's long-polling readers.
                    if appended.is_some() {
                        self.feed.notify();
                    }
                    Ok(appended)
                }

                async fn remember_and_append(
                    &self,
                    owner: &str,
                    nonce: &str,
                    now: Timestamp,
                    keep_until: Timestamp,
                    events: &[ContactEvent],
                ) -> Result<Option<Vec<Option<i64>>>, StoreError> {
                    let nonce = CallbackNonceRow {
                        owner: owner.to_owned(),
                        nonce: nonce.to_owned(),
                        keep_until: keep_until.as_millis(),
                    };
                    let rows = events.iter().map(NewContactEventRow::from_domain).collect::<Result<Vec<_>, _>>()?;
                    let cursors = HotWrites::remember_and_insert(self, nonce, now.as_millis(), rows).await?;
                    // Committed: wake the feed's long-polling readers.
                    if cursors.as_ref().is_some_and(|c| c.iter().any(Option::is_some)) {
                        self.feed.notify();
                    }
                    Ok(cursors)
                }

                async fn read_after(
                    &self,
                    corp_ids: &[CorpId],
                    after: i64,
                    limit: u32,
                ) -> Result<Vec<FeedEntry>, StoreError> {
                    if corp_ids.is_empty() || limit == 0 {
                        return Ok(Vec::new());
                    }
                    let corps: Vec<&str> = corp_ids.iter().map(CorpId::as_str).collect();
                    let mut conn = self.conn().await?;
                    let rows = contact_events::table
                        .filter(contact_events::corp_id.eq_any(&corps))
                        .filter(contact_events::seq.gt(after))
                        .order_by(contact_events::seq.asc())
                        .limit(i64::from(limit))
                        .select(ContactEventRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("read contact events", e))?;
                    rows.into_iter().map(ContactEventRow::into_domain).collect()
                }
            }

            /// The store's own feed signal, bumped by every committed append above.
            #[async_trait]
            impl FeedSignal for $store {
                fn version(&self) -> u64 {
                    self.feed.version()
                }

                async fn wait_past(&self, seen: u64, timeout: std::time::Duration) -> bool {
                    self.feed.wait_past(seen, timeout).await
                }

                fn close(&self) {
                    self.feed.close();
                }
            }

            #[async_trait]
            impl QuotaStore for $store {
                async fn add_metered_calls(
                    &self,
                    tenant: &str,
                    month: &str,
                    calls: u64,
                    now: Timestamp,
                ) -> Result<u64, StoreError> {
                    use diesel::upsert::excluded;
                    let calls = i64::try_from(calls).unwrap_or(i64::MAX);
                    let mut conn = self.writer().await?;
                    let total: i64 = diesel::insert_into(quota_usage::table)
                        .values((
                            quota_usage::tenant.eq(tenant),
                            quota_usage::month.eq(month),
                            quota_usage::metered_calls.eq(calls),
                            quota_usage::exhausted.eq(false),
                            quota_usage::updated_at.eq(now.as_millis()),
                        ))
                        .on_conflict((quota_usage::tenant, quota_usage::month))
                        .do_update()
                        .set((
                            quota_usage::metered_calls
                                .eq(quota_usage::metered_calls + excluded(quota_usage::metered_calls)),
                            quota_usage::updated_at.eq(excluded(quota_usage::updated_at)),
                        ))
                        .returning(quota_usage::metered_calls)
                        .get_result(&mut conn)
                        .await
                        .map_err(|e| db_error("count metered calls", e))?;
                    Ok(u64::try_from(total).unwrap_or(0))
                }

                async fn set_exhausted(
                    &self,
                    tenant: &str,
                    month: &str,
                    exhausted: bool,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    use diesel::upsert::excluded;
                    let mut conn = self.writer().await?;
                    diesel::insert_into(quota_usage::table)
                        .values((
                            quota_usage::tenant.eq(tenant),
                            quota_usage::month.eq(month),
                            quota_usage::metered_calls.eq(0_i64),
                            quota_usage::exhausted.eq(exhausted),
                            quota_usage::updated_at.eq(now.as_millis()),
                        ))
                        .on_conflict((quota_usage::tenant, quota_usage::month))
                        .do_update()
                        .set((
                            quota_usage::exhausted.eq(excluded(quota_usage::exhausted)),
                            quota_usage::updated_at.eq(excluded(quota_usage::updated_at)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map(drop)
                        .map_err(|e| db_error("mark the quota exhausted", e))
                }

                async fn quota_usage(&self, tenant: &str, month: &str) -> Result<Option<QuotaUsage>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row: Option<(String, String, i64, bool, i64)> = quota_usage::table
                        .find((tenant, month))
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("read the quota", e))?;
                    Ok(row.map(quota_row))
                }

                async fn quota_month(&self, month: &str) -> Result<Vec<QuotaUsage>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows: Vec<(String, String, i64, bool, i64)> = quota_usage::table
                        .filter(quota_usage::month.eq(month))
                        .order_by(quota_usage::tenant.asc())
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("read the quotas", e))?;
                    Ok(rows.into_iter().map(quota_row).collect())
                }
            }

            /// A `quota_usage` row as the port's type.
            fn quota_row(
                (tenant, month, calls, exhausted, updated_at): (String, String, i64, bool, i64),
            ) -> QuotaUsage {
                QuotaUsage {
                    tenant,
                    month,
                    metered_calls: u64::try_from(calls).unwrap_or(0),
                    exhausted,
                    updated_at: Timestamp::from_millis(updated_at),
                }
            }

            #[async_trait]
            impl FeedCursorStore for $store {
                async fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
                    let mut conn = self.conn().await?;
                    feed_cursors::table
                        .find(name)
                        .select(feed_cursors::cursor)
                        .first::<i64>(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get feed cursor", e))
                }

                async fn save_cursor(&self, name: &str, cursor: i64, now: Timestamp) -> Result<(), StoreError> {
                    use diesel::upsert::excluded;
                    let mut conn = self.writer().await?;
                    // Only ever forward: a smaller cursor (a slower second poller) changes nothing.
                    let upsert = diesel::insert_into(feed_cursors::table)
                        .values((
                            feed_cursors::name.eq(name),
                            feed_cursors::cursor.eq(cursor),
                            feed_cursors::updated_at.eq(now.as_millis()),
                        ))
                        .on_conflict(feed_cursors::name)
                        .do_update()
                        .set((
                            feed_cursors::cursor.eq(excluded(feed_cursors::cursor)),
                            feed_cursors::updated_at.eq(excluded(feed_cursors::updated_at)),
                        ));
                    // `ON CONFLICT … DO UPDATE … WHERE` (both backends).
                    diesel::query_dsl::methods::FilterDsl::filter(
                        upsert,
                        feed_cursors::cursor.lt(excluded(feed_cursors::cursor)),
                    )
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db_error("save feed cursor", e))?;
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use impl_store_ports;
