//! Group commit for SQLite's hot writes: many callers' writes in one transaction, one hand-off.
//!
//! Every write of [`SqliteStore`](super::SqliteStore) goes through its one writer connection.
//! Through diesel-async each statement of a write is a hand-off to tokio's blocking pool and back
//! (`BEGIN`, each `INSERT`, `COMMIT`), and the connection is held for all of them, so on two cores
//! the writer — not SQLite — bounded the relay accept at ~2,500/s with a p99 of 20–55 ms.
//!
//! A [`GroupWriter`] runs the writes that sit on request paths (the relay accept, the callback's
//! nonce and its contact events) differently. Callers queue a synchronous diesel closure
//! ([`GroupWriter::write`]); one task takes every queued closure (at most [`MAX_GROUP`]), checks
//! out the writer connection — so it takes its turn with every other write, in the pool's order —
//! and runs them all in **one** blocking hand-off: `BEGIN IMMEDIATE`, each closure inside its own
//! savepoint (a closure that fails is rolled back alone and gets its own error), `COMMIT`, then an
//! `fdatasync` of the WAL when one of them asks for it ([`Durable::Now`]; the connection runs
//! `synchronous = NORMAL`, so the commit alone does not sync: [`super::wal_sync`]). Only then is
//! each caller answered, with the outcome: nobody hears "done" for a write that is not committed,
//! nor for a [`Durable::Now`] write not on disk, and the HTTP layer's flush before the
//! acknowledgement finds nothing left to sync for them. A [`Durable::ByFlush`] write is counted for
//! that flush like any other write.
//!
//! While one group runs, the next one gathers, so the groups grow with the load and the cost per
//! write falls as it rises; with one caller a group is one closure and costs what a direct write did.

use std::panic::AssertUnwindSafe;

use application::ports::StoreError;
use diesel::{Connection, QueryResult, SqliteConnection};
use diesel_async::pooled_connection::bb8::Pool;
use tokio::sync::{mpsc, oneshot};

use super::wal_sync::WalSync;
use super::{Conn, db_error, pool_error};

/// When a group-committed write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Before its caller is answered: the group syncs the WAL right after its commit. For the
    /// write a request acknowledges (the relay accept, a contact event).
    Now,
    /// By the next [`WalSync::flush`] (which the HTTP layer runs before acknowledging) or the
    /// next group's sync, whichever comes first; the caller is answered after the commit. For a
    /// write that is never acknowledged by itself (a callback's nonce: its push is acknowledged
    /// after the event, whose sync covers it, or after the flush).
    ByFlush,
}

/// The most writes one transaction takes (the rest wait for the next group): bounds how long a
/// group holds the writer, so other writes still get their turn under load.
pub const MAX_GROUP: usize = 256;

/// One queued write: [`Write::run`] runs it on the connection inside its savepoint (`false`
/// rolls the savepoint back); [`Write::answer`] tells its caller how the group ended, after the
/// commit — also when it never ran (no connection) or panicked.
trait Write: Send {
    fn durable(&self) -> Durable;
    fn run(&mut self, conn: &mut SqliteConnection) -> bool;
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A caller's closure, its outcome once run, and where the answer goes.
struct Pending<T, F> {
    context: &'static str,
    durable: Durable,
    write: Option<F>,
    outcome: Option<QueryResult<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
{
    fn durable(&self) -> Durable {
        self.durable
    }

    fn run(&mut self, conn: &mut SqliteConnection) -> bool {
        let Some(write) = self.write.take() else { return false };
        let outcome = write(conn);
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let result = match self.outcome {
            Some(Err(err)) => Err(db_error(self.context, err)),
            Some(Ok(value)) => committed.map(|()| value),
            // Never ran (no connection: `committed` says why) or panicked while running.
            None => Err(committed.err().unwrap_or_else(|| {
                StoreError::Other(format!("{}: the write panicked and was rolled back", self.context))
            })),
        };
        let _ = self.reply.send(result);
    }
}

type Job = Box<dyn Write>;

/// The queue of one database's group-committed writes (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct GroupWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter").finish_non_exhaustive()
    }
}

impl GroupWriter {
    /// Starts the group task on the current tokio runtime; it takes the `writer` pool's
    /// connection for each group and stops when every `GroupWriter` clone is dropped.
    pub(super) fn start(writer: Pool<Conn>, wal: WalSync) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, wal, queue));
        Self { jobs }
    }

    /// Runs `write` on the writer connection in the next group and returns its value once the
    /// group has committed and, with [`Durable::Now`], synced. `context` names the write in errors
    /// ("insert relay message").
    ///
    /// `write` runs inside a savepoint of the group's transaction: it may run several statements
    /// and nest `Connection::transaction` (another savepoint); returning `Err` rolls back what it
    /// wrote and nothing else. It must not commit or roll back the group itself.
    ///
    /// Errors: the closure's own error mapped like every store error (`Conflict` for a unique
    /// violation, `Unavailable` for a busy database, else `Other`); `Unavailable` when the writer
    /// connection could not be had or the commit failed (then nothing of the group was written);
    /// `Other` when the closure panicked or the group task is gone.
    pub async fn write<T, F>(&self, context: &'static str, durable: Durable, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(Pending { context, durable, write: Some(write), outcome: None, reply });
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Other("the SQLite group writer has stopped".into())
}

/// The group task: waits for a write, takes it and every write queued behind it (up to
/// [`MAX_GROUP`]), runs them as one transaction on the writer connection, answers them; repeats.
async fn run(writer: Pool<Conn>, wal: WalSync, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let jobs = std::mem::replace(&mut group, Vec::with_capacity(MAX_GROUP));
        let count = jobs.len();
        let mut conn = match writer.get().await {
            Ok(conn) => conn,
            Err(err) => {
                let err = pool_error(err);
                tracing::error!(error = %err, writes = count, "no SQLite writer connection for a group of writes");
                // The jobs never ran: each caller hears why.
                for job in jobs {
                    job.answer(Err(err.clone()));
                }
                continue;
            }
        };
        // If the blocking task dies (a panic outside a job), the jobs are dropped with it and
        // their callers get `Other` ("stopped"), never a false success.
        let wal = wal.clone();
        let outcome = conn.spawn_blocking(move |conn| Ok(run_group(conn, &wal, jobs))).await;
        drop(conn);
        match outcome {
            Ok((jobs, committed)) => {
                if let Err(err) = &committed {
                    tracing::error!(error = %err, writes = count, "a group of SQLite writes did not commit");
                }
                for job in jobs {
                    job.answer(committed.clone());
                }
            }
            Err(err) => tracing::error!(error = %err, writes = count, "a group of SQLite writes failed"),
        }
    }
}

/// One group as one `BEGIN IMMEDIATE … COMMIT`, each job in its own savepoint. Returns the
/// jobs (to be answered) and the commit's outcome (an error means nothing of the group was written).
fn run_group(conn: &mut SqliteConnection, wal: &WalSync, mut jobs: Vec<Job>) -> (Vec<Job>, Result<(), StoreError>) {
    let committed = conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
        for job in &mut jobs {
            // A job's error (or panic) rolls back its savepoint only; the group goes on.
            let _ = conn.transaction::<_, diesel::result::Error, _>(|conn| {
                match std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(diesel::result::Error::RollbackTransaction),
                    Err(_) => {
                        tracing::error!("a group-committed SQLite write panicked; its savepoint is rolled back");
                        Err(diesel::result::Error::RollbackTransaction)
                    }
                }
            });
        }
        Ok(())
    });
    let committed = committed
        .map_err(|e| match db_error("commit a group of writes", e) {
            StoreError::Other(message) => StoreError::Unavailable(message),
            other => other,
        })
        // On disk before anyone hears of it (the commit itself does not fsync: NORMAL) when a
        // write of the group asks for it; else counted for the next flush. A failed sync is
        // answered `Unavailable`: the caller retries, and every hot write is idempotent.
        .and_then(|()| {
            if jobs.iter().any(|job| job.durable() == Durable::Now) {
                wal.sync_blocking().map_err(|e| StoreError::Unavailable(format!("cannot sync the SQLite WAL: {e}")))
            } else {
                wal.note_write();
                Ok(())
            }
        });
    (jobs, committed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use application::ports::StoreError;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    use super::Durable;
    use crate::outbound::sql::schema::callback_nonces;
    use crate::outbound::sqlite::tests::TempDb;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn insert(conn: &mut SqliteConnection, nonce: &str) -> QueryResult<usize> {
        diesel::insert_into(callback_nonces::table)
            .values((
                callback_nonces::owner.eq("group"),
                callback_nonces::nonce.eq(nonce),
                callback_nonces::keep_until.eq(1_i64),
            ))
            .execute(conn)
    }

    async fn stored(store: &crate::outbound::sqlite::SqliteStore) -> i64 {
        store
            .group
            .write("count", Durable::ByFlush, |conn| {
                diesel::sql_query("SELECT COUNT(*) AS n FROM callback_nonces WHERE owner = 'group'")
                    .get_result::<Count>(conn)
            })
            .await
            .map(|c| c.n)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn concurrent_writes_share_groups_and_a_failing_or_panicking_one_is_rolled_back_alone() {
        let db = TempDb::new("group-commit");
        let store = Arc::new(db.open().await.unwrap_or_else(|e| panic!("{e}")));
        // 300 writes at once (more than one group): every fourth repeats a key taken by an
        // earlier write of the same run (a unique violation), one panics after inserting.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300_usize {
            let store = store.clone();
            tasks.spawn(async move {
                let outcome = store
                    .group
                    .write("insert nonce", Durable::Now, move |conn| {
                        insert(conn, &format!("n{i}"))?;
                        if i % 4 == 3 {
                            insert(conn, &format!("n{}", i - 1))?; // taken: this write fails whole
                        }
                        if i == 149 {
                            panic!("a bug in a write");
                        }
                        Ok(i)
                    })
                    .await;
                (i, outcome)
            });
        }
        let (mut ok, mut conflicts, mut panicked) = (0, 0, 0);
        while let Some(joined) = tasks.join_next().await {
            let (i, outcome) = joined.unwrap_or_else(|e| panic!("{e}"));
            match outcome {
                Ok(value) => {
                    assert_eq!(value, i, "each caller gets its own write's value");
                    ok += 1;
                }
                Err(StoreError::Conflict(message)) => {
                    assert_eq!(i % 4, 3, "only the duplicating writes conflict: {message}");
                    assert!(message.contains("insert nonce"), "{message}");
                    conflicts += 1;
                }
                Err(StoreError::Other(message)) => {
                    assert_eq!(i, 149, "{message}");
                    assert!(message.contains("panicked"), "{message}");
                    panicked += 1;
                }
                Err(other) => panic!("write {i}: {other}"),
            }
        }
        assert_eq!((ok, conflicts, panicked), (224, 75, 1));
        // What failed left nothing behind (not even its first insert); the rest is committed.
        assert_eq!(stored(&store).await, 224);
    }

    #[tokio::test]
    async fn a_write_is_answered_only_after_its_group_committed() {
        let db = TempDb::new("group-commit-visible");
        let store = db.open().await.unwrap_or_else(|e| panic!("{e}"));
        store
            .group
            .write("insert nonce", Durable::ByFlush, |conn| insert(conn, "seen"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A reader connection (not the writer) sees it as soon as the caller is answered.
        let mut reader = store.conn().await.unwrap_or_else(|e| panic!("{e}"));
        let count: Count = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT COUNT(*) AS n FROM callback_nonces WHERE nonce = 'seen'"),
            &mut reader,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count.n, 1);
    }

    #[tokio::test]
    async fn a_durable_now_write_is_synced_before_its_answer_and_a_by_flush_write_waits_for_the_flush() {
        let db = TempDb::new("group-commit-durable");
        let store = db.open().await.unwrap_or_else(|e| panic!("{e}"));
        let wal = &store.wal;
        store
            .group
            .write("insert nonce", Durable::ByFlush, |conn| insert(conn, "a"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (written, synced) = wal.counts();
        assert!(written > synced, "a by-flush write is counted for the next flush ({written} > {synced})");
        store
            .group
            .write("insert nonce", Durable::Now, |conn| insert(conn, "b"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (written, synced) = wal.counts();
        assert_eq!(written, synced, "the durable write's sync covered both");
    }
}
