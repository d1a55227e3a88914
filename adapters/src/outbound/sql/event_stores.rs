//! `SuiteStore`, `EventStore`, `FeedSignal`, `FeedCursorStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `SuiteStore`, `EventStore`, `FeedSignal`, `FeedCursorStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_event_stores {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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

pub(crate) use impl_event_stores;
