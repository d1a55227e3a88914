//! The OpenID Provider store ports ([`GrantStore`](application::ports::GrantStore) and
//! [`SigningKeyStore`](application::ports::SigningKeyStore)), written once with diesel's query DSL
//! and implemented for [`SqliteStore`] here and for the PostgreSQL adapter's `PgStore` by the same
//! [`impl_oidc_stores!`] macro, on the `oidc_*` tables of [`super::schema`] with the row structs of
//! [`super::oidc_rows`]. The concurrency rules are those of [`super::stores`]:
//!
//! - single-use steps are one conditional `UPDATE … WHERE used_at IS NULL … RETURNING`: of
//!   concurrent redemptions (rotations) of one code (token) exactly one updates the row, since
//!   SQLite serialises writers and PostgreSQL makes the others wait for the first and then
//!   re-check the condition on the row it committed (read committed);
//! - every method is one transaction, and a transaction's first statement is a write, so SQLite
//!   takes the write lock there (waiting up to `busy_timeout`) and never upgrades a read snapshot;
//!   the reads that follow (what a failed `UPDATE` found instead) see what the competing
//!   transaction committed, on both backends.
//!
//! Times are epoch milliseconds (`Timestamp::as_millis`) throughout.

/// How long a revoked grant (with its used refresh tokens) is kept before `purge_expired` deletes
/// it: one day in milliseconds, so that a replayed refresh token of it is still recognised
/// (`Reused`) for that long. (Codes go as soon as they expire: a code replayed later is `Invalid`.)
pub(crate) const REVOKED_GRANT_RETENTION_MS: i64 = 86_400_000;

/// Implements `GrantStore` and `SigningKeyStore` of `application::ports` for `$store`.
///
/// `$store` must have `async fn conn(&self) -> Result<impl DerefMut<Target = Conn>, StoreError>`
/// (reads) and `async fn writer(&self)` (the same type, for writes: SQLite's single writer)
/// (a pooled connection of a diesel-async backend) and `$db_error` must be a
/// `fn(&str, diesel::result::Error) -> StoreError` mapping unique violations to `Conflict` (as for
/// `impl_store_ports!`).
macro_rules! impl_oidc_stores {
    ($store:ty, $db_error:path) => {
        const _: () = {
            use application::ports::{
                AuthorizationCode, CodeRedemption, Grant, GrantStore, RefreshRotation, RefreshToken, SigningKey,
                SigningKeyStore, StoreError,
            };
            use async_trait::async_trait;
            use diesel::prelude::*;
            use diesel::result::Error as DieselError;
            use diesel_async::{AsyncConnection, RunQueryDsl};
            use domain::Timestamp;

            use $crate::outbound::sql::oidc_rows::{
                CodeRow, GrantRow, NewSigningKeyRow, RefreshTokenRow, SigningKeyRow,
            };
            use $crate::outbound::sql::oidc_stores::REVOKED_GRANT_RETENTION_MS;
            use $crate::outbound::sql::schema::{oidc_codes, oidc_grants, oidc_refresh_tokens, oidc_signing_keys};

            fn db_error(context: &str, err: DieselError) -> StoreError {
                $db_error(context, err)
            }

            /// Row counts as the ports report them.
            fn count(rows: usize) -> u64 {
                u64::try_from(rows).unwrap_or(u64::MAX)
            }

            /// What `redeem_code`'s transaction found, before the row is parsed.
            enum Redemption {
                Redeemed(Box<CodeRow>),
                Replayed(Option<String>),
                Invalid,
            }

            /// What `rotate_refresh_token`'s transaction did, before the grant row is parsed.
            enum Rotation {
                Rotated(GrantRow),
                Reused(String),
                Invalid,
            }

            #[async_trait]
            impl GrantStore for $store {
                async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
                    let row = CodeRow::from_domain(code)?;
                    let mut conn = self.writer().await?;
                    diesel::insert_into(oidc_codes::table)
                        .values(&row)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| db_error("insert authorization code", e))?;
                    Ok(())
                }

                async fn redeem_code(&self, code_hash: &str, now: Timestamp) -> Result<CodeRedemption, StoreError> {
                    let now = now.as_millis();
                    let mut conn = self.writer().await?;
                    let found = conn
                        .transaction::<_, DieselError, _>(async |conn| {
                            // The single-use step: one conditional UPDATE (see the module doc).
                            let redeemed = diesel::update(
                                oidc_codes::table
                                    .find(code_hash)
                                    .filter(oidc_codes::used_at.is_null())
                                    .filter(oidc_codes::expires_at.gt(now)),
                            )
                            .set(oidc_codes::used_at.eq(now))
                            .returning(CodeRow::as_returning())
                            .get_result(conn)
                            .await
                            .optional()?;
                            if let Some(row) = redeemed {
                                return Ok(Redemption::Redeemed(Box::new(row)));
                            }
                            // Not redeemable: used before (expired since or not), unknown, or expired.
                            let stored: Option<(Option<i64>, Option<String>)> = oidc_codes::table
                                .find(code_hash)
                                .select((oidc_codes::used_at, oidc_codes::grant_id))
                                .first(conn)
                                .await
                                .optional()?;
                            Ok(match stored {
                                Some((Some(_), grant_id)) => Redemption::Replayed(grant_id),
                                _ => Redemption::Invalid,
                            })
                        })
                        .await
                        .map_err(|e| db_error("redeem authorization code", e))?;
                    Ok(match found {
                        Redemption::Redeemed(row) => CodeRedemption::Redeemed(row.into_domain()?),
                        Redemption::Replayed(grant_id) => CodeRedemption::Replayed { grant_id },
                        Redemption::Invalid => CodeRedemption::Invalid,
                    })
                }

                async fn create_grant<'a>(
                    &self,
                    grant: &Grant,
                    refresh: Option<&'a RefreshToken>,
                    code_hash: Option<&'a str>,
                ) -> Result<(), StoreError> {
                    let grant_row = GrantRow::from_domain(grant)?;
                    // The first token belongs to this grant whatever its `grant_id` says.
                    let token_row = refresh.map(|token| RefreshTokenRow::new(token, &grant.id));
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, DieselError, _>(async |conn| {
                        diesel::insert_into(oidc_grants::table).values(&grant_row).execute(conn).await?;
                        if let Some(token_row) = &token_row {
                            diesel::insert_into(oidc_refresh_tokens::table).values(token_row).execute(conn).await?;
                        }
                        if let Some(code_hash) = code_hash {
                            // A code purged meanwhile (it expired) has nothing left to link.
                            diesel::update(oidc_codes::table.find(code_hash))
                                .set(oidc_codes::grant_id.eq(&grant_row.id))
                                .execute(conn)
                                .await?;
                        }
                        Ok(())
                    })
                    .await
                    .map_err(|e| db_error("create grant", e))
                }

                async fn rotate_refresh_token(
                    &self,
                    presented_hash: &str,
                    next: &RefreshToken,
                    now: Timestamp,
                ) -> Result<RefreshRotation, StoreError> {
                    let now = now.as_millis();
                    let mut conn = self.writer().await?;
                    let rotation = conn
                        .transaction::<_, DieselError, _>(async |conn| {
                            let active_grants = oidc_grants::table
                                .filter(oidc_grants::revoked_at.is_null())
                                .filter(oidc_grants::expires_at.gt(now))
                                .select(oidc_grants::id);
                            // The single-use step: one conditional UPDATE (see the module doc).
                            // On PostgreSQL a grant revoked by a transaction committing meanwhile
                            // may still pass the subquery; the token stored next then belongs to a
                            // revoked grant and is refused at its first use.
                            let rotated: Option<String> = diesel::update(
                                oidc_refresh_tokens::table
                                    .find(presented_hash)
                                    .filter(oidc_refresh_tokens::used_at.is_null())
                                    .filter(oidc_refresh_tokens::expires_at.gt(now))
                                    .filter(oidc_refresh_tokens::grant_id.eq_any(active_grants)),
                            )
                            .set(oidc_refresh_tokens::used_at.eq(now))
                            .returning(oidc_refresh_tokens::grant_id)
                            .get_result(conn)
                            .await
                            .optional()?;
                            if let Some(grant_id) = rotated {
                                diesel::insert_into(oidc_refresh_tokens::table)
                                    .values(RefreshTokenRow::new(next, &grant_id))
                                    .execute(conn)
                                    .await?;
                                let grant = oidc_grants::table
                                    .find(&grant_id)
                                    .select(GrantRow::as_select())
                                    .first(conn)
                                    .await?;
                                return Ok(Rotation::Rotated(grant));
                            }
                            let stored: Option<(String, Option<i64>)> = oidc_refresh_tokens::table
                                .find(presented_hash)
                                .select((oidc_refresh_tokens::grant_id, oidc_refresh_tokens::used_at))
                                .first(conn)
                                .await
                                .optional()?;
                            match stored {
                                // Used before: reuse. The revocation commits with this transaction.
                                Some((grant_id, Some(_))) => {
                                    diesel::update(
                                        oidc_grants::table.find(&grant_id).filter(oidc_grants::revoked_at.is_null()),
                                    )
                                    .set(oidc_grants::revoked_at.eq(now))
                                    .execute(conn)
                                    .await?;
                                    Ok(Rotation::Reused(grant_id))
                                }
                                // Unknown, expired, or of a revoked or expired grant: nothing changed.
                                _ => Ok(Rotation::Invalid),
                            }
                        })
                        .await
                        .map_err(|e| db_error("rotate refresh token", e))?;
                    Ok(match rotation {
                        Rotation::Rotated(grant) => RefreshRotation::Rotated(grant.into_domain()?),
                        Rotation::Reused(grant_id) => RefreshRotation::Reused { grant_id },
                        Rotation::Invalid => RefreshRotation::Invalid,
                    })
                }

                /// The grant comes back whatever its state (revoked or expired included): the
                /// caller decides with `Grant::is_active`.
                async fn find_refresh_token(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
                    let mut conn = self.conn().await?;
                    let found: Option<(RefreshTokenRow, GrantRow)> = oidc_refresh_tokens::table
                        .inner_join(oidc_grants::table)
                        .filter(oidc_refresh_tokens::token_hash.eq(token_hash))
                        .filter(oidc_refresh_tokens::used_at.is_null())
                        .filter(oidc_refresh_tokens::expires_at.gt(now.as_millis()))
                        .select((RefreshTokenRow::as_select(), GrantRow::as_select()))
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("find refresh token", e))?;
                    found.map(|(token, grant)| Ok((token.into_domain(), grant.into_domain()?))).transpose()
                }

                async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
                    let mut conn = self.conn().await?;
                    oidc_grants::table
                        .find(id)
                        .select(GrantRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| db_error("get grant", e))?
                        .map(GrantRow::into_domain)
                        .transpose()
                }

                /// `true` when the grant was unrevoked (an expired, unrevoked grant included).
                async fn revoke_grant(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(oidc_grants::table.find(id).filter(oidc_grants::revoked_at.is_null()))
                        .set(oidc_grants::revoked_at.eq(now.as_millis()))
                        .execute(&mut conn)
                        .await
                        .map(|n| n > 0)
                        .map_err(|e| db_error("revoke grant", e))
                }

                /// Counts the unrevoked grants it revoked (expired ones included).
                async fn revoke_grants_for_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(
                        oidc_grants::table
                            .filter(oidc_grants::user_id.eq(user_id))
                            .filter(oidc_grants::revoked_at.is_null()),
                    )
                    .set(oidc_grants::revoked_at.eq(now.as_millis()))
                    .execute(&mut conn)
                    .await
                    .map(count)
                    .map_err(|e| db_error("revoke grants of user", e))
                }

                /// Counts the unrevoked grants it revoked (expired ones included).
                async fn revoke_grants_for_session(
                    &self,
                    session_hash: &str,
                    now: Timestamp,
                ) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(
                        oidc_grants::table
                            .filter(oidc_grants::session_hash.eq(session_hash))
                            .filter(oidc_grants::revoked_at.is_null()),
                    )
                    .set(oidc_grants::revoked_at.eq(now.as_millis()))
                    .execute(&mut conn)
                    .await
                    .map(count)
                    .map_err(|e| db_error("revoke grants of session", e))
                }

                /// Only ever forward (a check recorded later with an earlier `now` changes
                /// nothing); an unknown (purged) grant is no error.
                async fn mark_membership_checked(&self, grant_id: &str, now: Timestamp) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::update(
                        oidc_grants::table
                            .find(grant_id)
                            .filter(oidc_grants::membership_checked_at.lt(now.as_millis())),
                    )
                    .set(oidc_grants::membership_checked_at.eq(now.as_millis()))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db_error("mark membership checked", e))?;
                    Ok(())
                }

                /// Counts every row deleted: codes, grants and the grants' refresh tokens (deleted
                /// explicitly, not left to the foreign key's cascade). A code that named a deleted
                /// grant keeps no link to it (`ON DELETE SET NULL`).
                async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
                    let now = now.as_millis();
                    let revoked_before = now.saturating_sub(REVOKED_GRANT_RETENTION_MS);
                    let ended = || {
                        oidc_grants::table
                            .filter(oidc_grants::expires_at.le(now).or(oidc_grants::revoked_at.le(revoked_before)))
                    };
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, DieselError, _>(async |conn| {
                        let codes = diesel::delete(oidc_codes::table.filter(oidc_codes::expires_at.le(now)))
                            .execute(conn)
                            .await?;
                        let tokens = diesel::delete(
                            oidc_refresh_tokens::table
                                .filter(oidc_refresh_tokens::grant_id.eq_any(ended().select(oidc_grants::id))),
                        )
                        .execute(conn)
                        .await?;
                        let grants = diesel::delete(ended()).execute(conn).await?;
                        Ok(count(codes).saturating_add(count(tokens)).saturating_add(count(grants)))
                    })
                    .await
                    .map_err(|e| db_error("purge grants", e))
                }
            }

            #[async_trait]
            impl SigningKeyStore for $store {
                /// Ordered by `created_at`, then `kid`. A stored algorithm name that
                /// `SigningAlgorithm::parse` does not know is a corrupt row (`Other`).
                async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows = oidc_signing_keys::table
                        .order_by((oidc_signing_keys::created_at.asc(), oidc_signing_keys::kid.asc()))
                        .select(SigningKeyRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("list signing keys", e))?;
                    rows.into_iter().map(SigningKeyRow::into_domain).collect()
                }

                async fn insert_signing_key(&self, key: &SigningKey, now: Timestamp) -> Result<(), StoreError> {
                    let row = NewSigningKeyRow::from_domain(key);
                    let mut conn = self.writer().await?;
                    // Retire first (the write that takes SQLite's lock); a duplicate kid rolls the
                    // retirement back with the failed insert.
                    conn.transaction::<_, DieselError, _>(async |conn| {
                        diesel::update(
                            oidc_signing_keys::table
                                .filter(oidc_signing_keys::algorithm.eq(row.algorithm))
                                .filter(oidc_signing_keys::retired_at.is_null()),
                        )
                        .set(oidc_signing_keys::retired_at.eq(now.as_millis()))
                        .execute(conn)
                        .await?;
                        diesel::insert_into(oidc_signing_keys::table).values(&row).execute(conn).await?;
                        Ok(())
                    })
                    .await
                    .map_err(|e| db_error("insert signing key", e))
                }

                async fn delete_retired_signing_keys(&self, retired_before: Timestamp) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    diesel::delete(
                        oidc_signing_keys::table
                            .filter(oidc_signing_keys::retired_at.is_not_null())
                            .filter(oidc_signing_keys::retired_at.le(retired_before.as_millis())),
                    )
                    .execute(&mut conn)
                    .await
                    .map(count)
                    .map_err(|e| db_error("delete retired signing keys", e))
                }
            }
        };
    };
}

pub(crate) use impl_oidc_stores;
