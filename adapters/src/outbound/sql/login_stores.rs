//! `LoginAttemptStore`, `LoginIntentStore`, `LoginResultStore`, `SessionStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `LoginAttemptStore`, `LoginIntentStore`, `LoginResultStore`, `SessionStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_login_stores {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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
        };
    };
}

pub(crate) use impl_login_stores;
