//! One leader per cluster for a background job, by a PostgreSQL session advisory lock.
//!
//! Several instances on one database each start a [`Leader`] for a job (the local feed poller,
//! the cloud's delivery reconciliation). Each holds a dedicated connection (not a pooled one) and
//! tries `pg_try_advisory_lock(key)` on it every [`CHECK_EVERY`]; the one that gets the lock
//! leads and checks its connection at the same pace. PostgreSQL releases a session lock when the
//! session ends, so a leader that dies (SIGKILL, a lost network, `pg_terminate_backend`) gives
//! the lead up as soon as PostgreSQL sees its connection close, and another instance takes it
//! within [`CHECK_EVERY`]. A leader whose check fails stops leading at once (its job stops) and
//! reconnects; two leaders can overlap for at most one check interval, when a leader's
//! connection is cut while the process runs on — the jobs led this way are idempotent for that
//! reason (a contact event applied twice changes nothing the second time).

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Bool, Integer};
use diesel_async::RunQueryDsl;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Conn, establish, redact};

/// How often a follower tries the lock and a leader checks its connection.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The advisory lock of the local feed poller ("dbfeedpo").
pub const FEED_POLLER: i64 = 0x6462_6665_6564_706f;
/// The advisory lock of the cloud's delivery reconciliation ("dbrecncl").
pub const RECONCILE: i64 = 0x6462_7265_636e_636c;

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(diesel::QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// Whether this instance leads one job (see the module docs). Dropping every clone stops the
/// task and closes its connection (giving the lead up).
#[derive(Debug, Clone)]
pub struct Leader {
    leading: watch::Receiver<bool>,
    backend: watch::Receiver<Option<i32>>,
    _task: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Leader {
    /// Starts contending for the lock `key` on the database at `url`; `job` names it in the log.
    pub fn start(url: &str, key: i64, job: &'static str) -> Self {
        let (lead_tx, leading) = watch::channel(false);
        let (pid_tx, backend) = watch::channel(None);
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let mut conn = match establish(&url).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        warn!(job, error = %err, "leader election cannot connect; retrying");
                        tokio::time::sleep(CHECK_EVERY).await;
                        continue;
                    }
                };
                if let Ok(b) =
                    diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Backend>(&mut conn).await
                {
                    pid_tx.send_replace(Some(b.pid));
                }
                if let Err(err) = contend(&mut conn, key, job, &lead_tx).await {
                    if lead_tx.send_replace(false) {
                        warn!(job, error = %err, database = %redact(&url), "lost the lead: the connection holding it failed");
                    } else {
                        warn!(job, error = %err, "leader election connection failed; reconnecting");
                    }
                }
                pid_tx.send_replace(None);
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
        Self { leading, backend, _task: Arc::new(AbortOnDrop(task.abort_handle())) }
    }

    /// Whether this instance leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this instance leads (at once if it does).
    pub async fn until_leading(&self) {
        let mut leading = self.leading.clone();
        let _ = leading.wait_for(|l| *l).await;
    }

    /// Waits until this instance stops leading (at once if it does not lead).
    pub async fn until_not_leading(&self) {
        let mut leading = self.leading.clone();
        let _ = leading.wait_for(|l| !*l).await;
    }

    /// The PostgreSQL backend pid of the connection contending for the lock (for tests that cut
    /// it with `pg_terminate_backend`); `None` while reconnecting.
    pub fn backend_pid(&self) -> Option<i32> {
        *self.backend.borrow()
    }
}

/// Tries the lock until it is taken, then checks the connection; returns the error that ended it.
async fn contend(conn: &mut Conn, key: i64, job: &'static str, lead: &watch::Sender<bool>) -> Result<(), String> {
    loop {
        if *lead.borrow() {
            diesel::sql_query("SELECT 1").execute(conn).await.map_err(|e| e.to_string())?;
        } else {
            let got = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<BigInt, _>(key)
                .get_result::<Locked>(conn)
                .await
                .map_err(|e| e.to_string())?;
            if got.locked {
                info!(job, "this instance now leads the job");
                lead.send_replace(true);
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Instant;

    use diesel_async::AsyncConnection;

    use super::*;
    use crate::outbound::postgres::testing::TestDatabase;

    /// Waits (polling, with a deadline) until exactly one of `leaders` leads; returns its index.
    async fn one_leader(leaders: &[&Leader], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leading: Vec<usize> = (0..leaders.len()).filter(|i| leaders[*i].is_leader()).collect();
            if leading.len() == 1 {
                return leading[0];
            }
            assert!(leading.len() <= 1, "two leaders at once");
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
    async fn one_instance_leads_and_another_takes_over_within_seconds_when_its_connection_is_cut() {
        let db = TestDatabase::create().await.expect("PostgreSQL");
        let a = Leader::start(db.url(), 42, "test");
        let b = Leader::start(db.url(), 42, "test");
        let other = Leader::start(db.url(), 43, "another job");
        let first = one_leader(&[&a, &b], Duration::from_secs(10)).await;
        other.until_leading().await;
        let (leader, follower) = if first == 0 { (&a, &b) } else { (&b, &a) };
        // Cut the leader's connection alone, as a dead process or a lost network would.
        let pid = leader.backend_pid().expect("the leader is connected");
        let mut admin = Conn::establish(db.url()).await.unwrap();
        diesel::sql_query("SELECT pg_terminate_backend($1)").bind::<Integer, _>(pid).execute(&mut admin).await.unwrap();
        let took_over = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), follower.until_leading()).await.expect("taken over");
        assert!(took_over.elapsed() <= 2 * CHECK_EVERY + Duration::from_secs(1), "{:?}", took_over.elapsed());
        tokio::time::timeout(Duration::from_secs(10), leader.until_not_leading()).await.expect("the old leader stops");
        // The old leader reconnects and follows: one leader still.
        assert_eq!(one_leader(&[follower, leader], Duration::from_secs(1)).await, 0);
        drop((a, b, other));
        db.drop_database().await.unwrap();
    }
}
