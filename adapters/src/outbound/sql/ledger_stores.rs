//! The cloud's recipient ledger ([`application::ports::RecipientLedgerStore`]) on both backends:
//! what each person received per corp and day, so a send DingTalk would silently drop
//! (docs/dingtalk-api.md §D.6) is skipped and reported instead. Written with diesel's query DSL
//! only (`ON CONFLICT` upserts exist on both), as the [`impl_ledger_store!`] macro that
//! `outbound::postgres` applies to its `PgStore` too (like `stores::impl_store_ports!`).

/// Implements `RecipientLedgerStore` for `$store`, which must have `async fn conn(&self)` (reads)
/// and `async fn writer(&self)` (writes) yielding a pooled diesel-async connection, and
/// `$db_error` a `fn(&str, diesel::result::Error) -> StoreError`.
macro_rules! impl_ledger_store {
    ($store:ty, $db_error:path) => {
        const _: () = {
            use application::ports::{RecipientLedgerStore, StoreError};
            use async_trait::async_trait;
            use diesel::prelude::*;
            use diesel::result::Error as DieselError;
            use diesel_async::{AsyncConnection, RunQueryDsl};

            use $crate::outbound::sql::schema::{recipient_contents, recipient_days};

            fn db_error(context: &str, err: DieselError) -> StoreError {
                $db_error(context, err)
            }

            #[async_trait]
            impl RecipientLedgerStore for $store {
                async fn received_on(
                    &self,
                    tenant: &str,
                    day: &str,
                    userids: &[String],
                ) -> Result<Vec<(String, u64)>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows: Vec<(String, i64)> = recipient_days::table
                        .filter(recipient_days::tenant.eq(tenant))
                        .filter(recipient_days::day.eq(day))
                        .filter(recipient_days::userid.eq_any(userids))
                        .select((recipient_days::userid, recipient_days::received))
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("read what recipients received today", e))?;
                    Ok(rows.into_iter().map(|(userid, n)| (userid, u64::try_from(n).unwrap_or(0))).collect())
                }

                async fn received_content(
                    &self,
                    tenant: &str,
                    day: &str,
                    content: &str,
                    userids: &[String],
                ) -> Result<Vec<String>, StoreError> {
                    let mut conn = self.conn().await?;
                    recipient_contents::table
                        .filter(recipient_contents::tenant.eq(tenant))
                        .filter(recipient_contents::day.eq(day))
                        .filter(recipient_contents::content.eq(content))
                        .filter(recipient_contents::userid.eq_any(userids))
                        .select(recipient_contents::userid)
                        .load(&mut conn)
                        .await
                        .map_err(|e| db_error("read which recipients received a content today", e))
                }

                async fn record_received(
                    &self,
                    tenant: &str,
                    day: &str,
                    content: &str,
                    userids: &[String],
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer().await?;
                    conn.transaction::<_, DieselError, _>(async |conn| {
                        for userid in userids {
                            diesel::insert_into(recipient_days::table)
                                .values((
                                    recipient_days::tenant.eq(tenant),
                                    recipient_days::day.eq(day),
                                    recipient_days::userid.eq(userid),
                                    recipient_days::received.eq(1_i64),
                                ))
                                .on_conflict((recipient_days::tenant, recipient_days::day, recipient_days::userid))
                                .do_update()
                                .set(recipient_days::received.eq(recipient_days::received + 1_i64))
                                .execute(conn)
                                .await?;
                            diesel::insert_into(recipient_contents::table)
                                .values((
                                    recipient_contents::tenant.eq(tenant),
                                    recipient_contents::day.eq(day),
                                    recipient_contents::userid.eq(userid),
                                    recipient_contents::content.eq(content),
                                ))
                                .on_conflict_do_nothing()
                                .execute(conn)
                                .await?;
                        }
                        Ok(())
                    })
                    .await
                    .map_err(|e| db_error("count what recipients received", e))
                }

                async fn purge_days_before(&self, day: &str) -> Result<u64, StoreError> {
                    let mut conn = self.writer().await?;
                    let (days, contents) = conn
                        .transaction::<_, DieselError, _>(async |conn| {
                            let days = diesel::delete(recipient_days::table.filter(recipient_days::day.lt(day)))
                                .execute(conn)
                                .await?;
                            let contents =
                                diesel::delete(recipient_contents::table.filter(recipient_contents::day.lt(day)))
                                    .execute(conn)
                                    .await?;
                            Ok((days, contents))
                        })
                        .await
                        .map_err(|e| db_error("purge the recipient ledger", e))?;
                    Ok(u64::try_from(days + contents).unwrap_or(u64::MAX))
                }
            }
        };
    };
}

pub(crate) use impl_ledger_store;
