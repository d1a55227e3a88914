//! `MessageStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `MessageStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_outbox_stores {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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
        };
    };
}

pub(crate) use impl_outbox_stores;
