//! The call governor's [`SlotBook`] on PostgreSQL: several cloud instances reserve the slots of
//! one lane per (app, API) in `governor_lanes`, so together they keep the pace of one
//! (adapters/src/outbound/governor.rs). Each reservation is one single-row upsert on the
//! database's clock (`clock_timestamp()`, microseconds), so the instances' clocks do not matter.

use std::time::Duration;

use application::ports::StoreError;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::{PgStore, db_error};
use crate::outbound::governor::{Reservation, SlotBook};

/// The database's clock in microseconds since the epoch.
const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

#[derive(diesel::QueryableByName)]
struct Slot {
    #[diesel(sql_type = BigInt)]
    wait_us: i64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[async_trait::async_trait]
impl SlotBook for PgStore {
    async fn reserve(
        &self,
        app: &str,
        api: &str,
        interval: Duration,
        max_wait: Duration,
    ) -> Result<Reservation, StoreError> {
        // The new row's `next_at_us` is now + interval, so `EXCLUDED.next_at_us - interval` is
        // this statement's now: the slot is GREATEST(next, now), taken only within max_wait.
        let reserve = format!(
            "INSERT INTO governor_lanes AS l (app, api, next_at_us) VALUES ($1, $2, {NOW_US} + $3) \
             ON CONFLICT (app, api) DO UPDATE SET next_at_us = GREATEST(l.next_at_us + $3, EXCLUDED.next_at_us) \
             WHERE l.next_at_us - (EXCLUDED.next_at_us - $3) <= $4 \
             RETURNING next_at_us - $3 - {NOW_US} AS wait_us"
        );
        let mut conn = self.writer().await?;
        let slot: Option<Slot> = diesel::sql_query(reserve)
            .bind::<Text, _>(app)
            .bind::<Text, _>(api)
            .bind::<BigInt, _>(micros(interval))
            .bind::<BigInt, _>(micros(max_wait))
            .get_result(&mut conn)
            .await
            .map(Some)
            .or_else(|e| if e == diesel::result::Error::NotFound { Ok(None) } else { Err(e) })
            .map_err(|e| db_error("reserve a governor slot", e))?;
        if let Some(slot) = slot {
            return Ok(Reservation::After(duration(slot.wait_us)));
        }
        let next: Slot = diesel::sql_query(format!(
            "SELECT next_at_us - {NOW_US} AS wait_us FROM governor_lanes WHERE app = $1 AND api = $2"
        ))
        .bind::<Text, _>(app)
        .bind::<Text, _>(api)
        .get_result(&mut conn)
        .await
        .map_err(|e| db_error("read a governor lane", e))?;
        Ok(Reservation::Busy(duration(next.wait_us)))
    }

    async fn pause(&self, app: &str, api: &str, pause: Duration) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        diesel::sql_query(format!(
            "INSERT INTO governor_lanes AS l (app, api, next_at_us) VALUES ($1, $2, {NOW_US} + $3) \
             ON CONFLICT (app, api) DO UPDATE SET next_at_us = GREATEST(l.next_at_us, EXCLUDED.next_at_us)"
        ))
        .bind::<Text, _>(app)
        .bind::<Text, _>(api)
        .bind::<BigInt, _>(micros(pause))
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(|e| db_error("pause a governor lane", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::outbound::governor::{Governor, GovernorConfig};
    use crate::outbound::postgres::testing::TestDatabase;

    const API: &str = "/topapi/message/corpconversation/asyncsend_v2";

    #[test]
    #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
    fn slots_of_one_lane_are_one_interval_apart_and_a_full_lane_is_busy() {
        // Plain thread + runtime: the test measures real time against the database's clock.
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = TestDatabase::create().await.expect("PostgreSQL");
            let store = PgStore::connect(db.url(), 4).await.unwrap();
            let interval = Duration::from_millis(100);
            let max_wait = Duration::from_millis(350);
            let mut waits = Vec::new();
            for _ in 0..4 {
                match store.reserve("app", API, interval, max_wait).await.unwrap() {
                    Reservation::After(wait) => waits.push(wait),
                    Reservation::Busy(d) => panic!("busy after {} calls ({d:?})", waits.len()),
                }
            }
            // 0, 100, 200, 300 ms (less the few ms the calls themselves took).
            for (i, wait) in waits.iter().enumerate() {
                let expected = interval * u32::try_from(i).unwrap();
                assert!(expected.saturating_sub(*wait) < Duration::from_millis(50), "slot {i}: {wait:?}");
            }
            // The fifth slot is 400 ms away: more than max_wait, so nothing is reserved.
            let Reservation::Busy(retry_after) = store.reserve("app", API, interval, max_wait).await.unwrap() else {
                panic!("a fifth call within 350 ms must be busy");
            };
            assert!(retry_after > max_wait && retry_after <= Duration::from_millis(400), "{retry_after:?}");
            // Another lane is not affected; a pause moves a lane's next slot.
            assert_eq!(store.reserve("other-app", API, interval, max_wait).await.unwrap(), Reservation::After(Duration::ZERO));
            store.pause("other-app", API, Duration::from_secs(2)).await.unwrap();
            assert!(matches!(store.reserve("other-app", API, interval, max_wait).await.unwrap(), Reservation::Busy(d) if d > Duration::from_millis(1500)));
            db.drop_database().await.unwrap();
        });
    }

    #[test]
    #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
    fn two_governors_sharing_the_book_keep_the_pace_of_one() {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = TestDatabase::create().await.expect("PostgreSQL");
            let config =
                GovernorConfig { rate_per_second: 20.0, max_wait: Duration::from_secs(5), ..GovernorConfig::default() };
            let book: Arc<PgStore> = Arc::new(PgStore::connect(db.url(), 8).await.unwrap());
            let a = Arc::new(Governor::new(config.clone()).with_shared(book.clone()));
            let b = Arc::new(Governor::new(config).with_shared(book));
            let start = Instant::now();
            let mut calls = Vec::new();
            for i in 0..40 {
                let governor = if i % 2 == 0 { a.clone() } else { b.clone() };
                calls.push(tokio::spawn(async move {
                    governor.admit("app", API).await.unwrap();
                    start.elapsed()
                }));
            }
            let mut left = Vec::new();
            for call in calls {
                left.push(call.await.unwrap());
            }
            left.sort();
            // 40 calls at 20/s across both: the last leaves no sooner than 1.95 s after the first
            // (39 intervals of 50 ms), and no 1-second window holds more than 21.
            assert!(left[39] >= Duration::from_millis(1_900), "{left:?}");
            let busiest = left
                .iter()
                .map(|t| left.iter().filter(|u| **u >= *t && **u < *t + Duration::from_secs(1)).count())
                .max()
                .unwrap();
            assert!(busiest <= 21, "busiest second held {busiest}: {left:?}");
            db.drop_database().await.unwrap();
        });
    }
}
