//! Feed wake-ups across instances: `LISTEN dingbridge_feed` on a dedicated connection.
//!
//! A relay client's long-poll (`GET /relay/v1/events`) waits on its cloud instance's in-process
//! feed signal. The DingTalk callback that appends the event may land on another instance, whose
//! append transaction sends `NOTIFY dingbridge_feed` (delivered at its commit, see
//! `hot_writes.rs`). Every cloud instance on PostgreSQL runs [`listen_feed`]: each notification
//! wakes its waiting long-polls, which then read the feed from the database. The connection is
//! checked every [`CHECK_EVERY`]; when it fails (PostgreSQL restarted, `pg_terminate_backend`,
//! a lost network) it is opened again, and the feed signal is raised once after each (re)connect,
//! so a notification missed while disconnected costs nothing: the long-polls look at the database
//! again at once. (Without the listener a long-poll would still see the event, at the latest when
//! its `wait` ends.)

use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use super::{establish, redact};
use crate::outbound::feed::FeedWatch;

/// The channel appends notify.
pub const FEED_CHANNEL: &str = "dingbridge_feed";
/// How often the listening connection is checked, and the pause before reconnecting.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Listens for feed appends of every instance on the database at `url` and raises `feed` for each
/// (see the module docs). Runs until aborted.
pub async fn listen_feed(url: String, feed: FeedWatch) {
    loop {
        match establish(&url).await {
            Ok(mut conn) => {
                match diesel::sql_query(format!("LISTEN {FEED_CHANNEL}")).execute(&mut conn).await {
                    Ok(_) => {
                        debug!("listening for feed appends of every instance");
                        // Anything appended while this instance was not listening.
                        feed.notify();
                        let err = follow(&mut conn, &feed).await;
                        warn!(error = %err, database = %redact(&url), "the feed listener's connection failed; reconnecting");
                    }
                    Err(err) => warn!(error = %err, "LISTEN failed; reconnecting"),
                }
            }
            Err(err) => warn!(error = %err, "the feed listener cannot connect; retrying"),
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Raises `feed` for each notification until the connection fails; returns why.
async fn follow(conn: &mut super::Conn, feed: &FeedWatch) -> String {
    loop {
        {
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            let deadline = tokio::time::sleep(CHECK_EVERY);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    next = notifications.next() => match next {
                        Some(Ok(_)) => feed.notify(),
                        Some(Err(err)) => return err.to_string(),
                        None => return "the connection closed".to_owned(),
                    },
                    () = &mut deadline => break,
                }
            }
        }
        if let Err(err) = diesel::sql_query("SELECT 1").execute(conn).await {
            return err.to_string();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Instant;

    use application::ports::{ContactEvent, EventStore, FeedSignal};
    use diesel::sql_types::Integer;
    use diesel_async::AsyncConnection;

    use super::*;
    use crate::outbound::postgres::PgStore;
    use crate::outbound::postgres::testing::TestDatabase;

    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }

    fn event(id: &str) -> ContactEvent {
        crate::outbound::sql::event_tests::event("dingcorp", id)
    }

    /// Waits, with a deadline, until `signal` moves past `seen`; returns the new version.
    async fn woken(signal: &dyn FeedSignal, seen: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let version = signal.version();
            if version > seen {
                return version;
            }
            assert!(Instant::now() < deadline, "not woken within 3 s");
            signal.wait_past(seen, Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
    async fn an_append_on_one_instance_wakes_the_other_and_a_cut_listener_reconnects() {
        let db = TestDatabase::create().await.expect("PostgreSQL");
        let writer = PgStore::connect(db.url(), 2).await.unwrap();
        let reader = PgStore::connect(db.url(), 2).await.unwrap();
        let listener = tokio::spawn(listen_feed(db.url().to_owned(), reader.feed_watch()));
        let reader_signal: &dyn FeedSignal = &reader;
        // The listener raises the signal once it listens.
        let seen = woken(reader_signal, 0).await;

        writer.append(&event("e1")).await.unwrap();
        let seen = woken(reader_signal, seen).await;

        // Cut the listening connection alone: it reconnects, raises the signal, and wakes again.
        let mut admin = diesel_async::AsyncPgConnection::establish(db.url()).await.unwrap();
        let pids: Vec<Pid> = diesel::sql_query(format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN {FEED_CHANNEL}'"
        ))
        .load(&mut admin)
        .await
        .unwrap();
        assert_eq!(pids.len(), 1, "one listening session");
        diesel::sql_query("SELECT pg_terminate_backend($1)")
            .bind::<Integer, _>(pids[0].pid)
            .execute(&mut admin)
            .await
            .unwrap();
        let reconnected = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let version = reader_signal.version();
                if version > seen {
                    return version;
                }
                reader_signal.wait_past(seen, Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("the listener reconnects and raises the signal");
        writer.append(&event("e2")).await.unwrap();
        woken(reader_signal, reconnected).await;
        listener.abort();
        db.drop_database().await.unwrap();
    }
}
