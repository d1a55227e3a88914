//! `UserRepository`, `BindingStore` for a store, shared by SQLite and PostgreSQL (applied by
//! [`super::stores::impl_store_ports!`]; the rules for concurrency are in [`super::stores`]).

/// Implements `UserRepository`, `BindingStore` for `$store` (see [`super::stores::impl_store_ports!`] for
/// what `$store`, `$conn` and `$db_error` must be).
macro_rules! impl_member_stores {
    ($store:ty, $conn:ty, $db_error:path) => {
        const _: () = {
            $crate::outbound::sql::stores::store_preamble!($conn, $db_error);

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
        };
    };
}

pub(crate) use impl_member_stores;
