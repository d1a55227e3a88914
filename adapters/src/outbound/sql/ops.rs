//! Operations queries shared by both backends: what `/metrics` reads from the outbox at each
//! scrape (README "Operating dingbridge"). Written with diesel's query DSL only, as a macro that
//! `outbound::postgres` applies to its `PgStore` too (like `stores::impl_store_ports!`).

/// What the local outbox (`messages`) holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Messages not yet relayed to the cloud (state `accepted`).
    pub pending: u64,
    /// `created_at` (epoch ms) of the oldest of them; `None` when there is none.
    pub oldest_pending_ms: Option<i64>,
    /// Relay attempts made in all (the sum of `attempts`).
    pub attempts: u64,
    /// Messages that failed for good (state `failed`).
    pub failed: u64,
}

/// Implements `outbox_stats(&self) -> Result<OutboxStats, StoreError>` on `$store` (whose
/// `conn()` yields a pooled `$conn`).
macro_rules! impl_outbox_stats {
    ($store:ty) => {
        impl $store {
            /// Counts the outbox: pending messages and the oldest one's age, attempts, dead
            /// letters. Errors: `Unavailable` when the database does not answer.
            pub async fn outbox_stats(
                &self,
            ) -> Result<$crate::outbound::sql::ops::OutboxStats, application::ports::StoreError> {
                use diesel::dsl::{count_star, min, sum};
                use diesel::prelude::*;
                use diesel_async::RunQueryDsl;

                use $crate::outbound::sql::schema::messages;

                let unavailable = |e: diesel::result::Error| {
                    application::ports::StoreError::Unavailable(format!("outbox statistics: {e}"))
                };
                let mut conn = self.conn().await?;
                let (pending, oldest): (i64, Option<i64>) = messages::table
                    .filter(messages::state.eq("accepted"))
                    .select((count_star(), min(messages::created_at)))
                    .first(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let attempts: Option<i64> =
                    messages::table.select(sum(messages::attempts)).first(&mut conn).await.map_err(unavailable)?;
                let failed: i64 = messages::table
                    .filter(messages::state.eq("failed"))
                    .select(count_star())
                    .first(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok($crate::outbound::sql::ops::OutboxStats {
                    pending: count(pending),
                    oldest_pending_ms: oldest,
                    attempts: count(attempts.unwrap_or(0)),
                    failed: count(failed),
                })
            }
        }
    };
}

pub(crate) use impl_outbox_stats;
