//! `QuotaStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `QuotaStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_quota_store {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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
        };
    };
}

pub(crate) use impl_quota_store;
