//! `RelayMessageStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `RelayMessageStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_relay_stores {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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
        };
    };
}

pub(crate) use impl_relay_stores;
