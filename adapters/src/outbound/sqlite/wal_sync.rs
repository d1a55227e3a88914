//! Group commit for SQLite: many commits, one `fdatasync`.
//!
//! Connections run WAL with `synchronous = NORMAL`: a commit writes its frames to the `-wal` file
//! (into the OS page cache) and returns without an fsync, so it survives a crash of the process
//! but not yet a crash of the machine. Before anything is **acknowledged** to a caller, the
//! acknowledging code calls [`WalSync::flush`]: it waits for an `fdatasync` of the `-wal` file that
//! *started after* the call, so every commit made before it is on disk. Concurrent callers share
//! one fdatasync: under load one sync covers every commit of the last fraction of a millisecond,
//! which is what `synchronous = FULL` (one fsync per commit, on the single writer) could not do.
//!
//! Linux `fdatasync` on any descriptor of a file flushes that file's dirty pages, so the syncer
//! opens the `-wal` file itself for each sync (the file is re-created when the last connection
//! closes; opening it anew each time never syncs a stale inode).
//!
//! The group-committed writes ([`super::group_commit`]) sync the WAL themselves, in the same
//! blocking hand-off as their commit (`WalSync::sync_blocking`), before their callers hear of
//! them. So that their requests do not wait for a second sync, the syncer counts the other
//! writes: every checkout of the writer connection bumps a counter when it is returned
//! (`WalSync::note_write`, after its commit), and each sync records the count it started after.
//! A flush when every counted write is covered by a finished sync has nothing to wait for.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use application::ports::StoreError;
use tokio::sync::{Notify, watch};

/// The shared state: sync generations. Generation `g` is the `g`-th fdatasync started (from 1).
#[derive(Debug, Default)]
struct Generations {
    /// The generation the next sync to start will carry.
    next: u64,
    /// The highest generation a caller waits for.
    wanted: u64,
    /// The last sync failed: its error (cleared by the next success).
    failed: Option<String>,
}

/// The group-commit syncer of one SQLite database (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct WalSync {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    wal: PathBuf,
    generations: Mutex<Generations>,
    /// The last completed generation.
    done: watch::Sender<u64>,
    wake: Notify,
    /// Writer checkouts returned so far (each after its commit, if any).
    writes: AtomicU64,
    /// The highest `writes` count a finished sync started after: those writes are on disk.
    covered: AtomicU64,
}

impl WalSync {
    /// The syncer of the database file at `database` (its WAL is `<database>-wal`), with its
    /// background task spawned on the current tokio runtime.
    pub fn start(database: &str) -> Self {
        let (done, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            wal: PathBuf::from(format!("{database}-wal")),
            generations: Mutex::new(Generations { next: 1, ..Generations::default() }),
            done,
            wake: Notify::new(),
            writes: AtomicU64::new(0),
            covered: AtomicU64::new(0),
        });
        tokio::spawn(run(inner.clone()));
        Self { inner }
    }

    /// Waits until every commit made before this call is on disk (an fdatasync of the WAL that
    /// started after the call has finished). Errors: `Unavailable` when that sync failed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        // Every write counted so far is covered by a finished sync (or there was none): done.
        if self.inner.covered.load(Ordering::SeqCst) >= self.inner.writes.load(Ordering::SeqCst) {
            return Ok(());
        }
        let target = {
            let mut generations = self.inner.generations.lock().map_err(|_| poisoned())?;
            generations.wanted = generations.wanted.max(generations.next);
            generations.next
        };
        let mut done = self.inner.done.subscribe();
        self.inner.wake.notify_one();
        done.wait_for(|finished| *finished >= target)
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite WAL syncer has stopped".into()))?;
        let generations = self.inner.generations.lock().map_err(|_| poisoned())?;
        match &generations.failed {
            Some(error) => Err(StoreError::Unavailable(format!("cannot sync the SQLite WAL: {error}"))),
            None => Ok(()),
        }
    }
}

impl WalSync {
    /// Counts a write not synced yet: called when a checkout of the writer connection is
    /// returned (after whatever it committed), and by a group of writes none of which asked
    /// to be synced.
    pub(crate) fn note_write(&self) {
        self.inner.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// (writes counted, writes covered by a finished sync), for tests.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.inner.writes.load(Ordering::SeqCst), self.inner.covered.load(Ordering::SeqCst))
    }

    /// Syncs the WAL now, on the calling (blocking) thread: for the group writer, right after
    /// its commit. Counts as a finished sync for [`WalSync::flush`]. Errors: the sync's error.
    pub(crate) fn sync_blocking(&self) -> Result<(), String> {
        let covers = self.inner.writes.load(Ordering::SeqCst);
        sync_file(&self.inner.wal)?;
        self.inner.covered.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

fn poisoned() -> StoreError {
    StoreError::Other("the SQLite WAL syncer's state is poisoned".into())
}

/// The syncer: while someone waits for a generation not started yet, start it (one fdatasync),
/// publish it, repeat; otherwise sleep until woken. Lives as long as the runtime (one per store).
async fn run(strong: Arc<Inner>) {
    loop {
        let generation = {
            let Ok(mut generations) = strong.generations.lock() else { return };
            if generations.wanted < generations.next {
                None
            } else {
                let generation = generations.next;
                generations.next += 1;
                Some(generation)
            }
        };
        let Some(generation) = generation else {
            strong.wake.notified().await;
            continue;
        };
        let wal = strong.wal.clone();
        let covers = strong.writes.load(Ordering::SeqCst);
        let outcome = tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .unwrap_or_else(|e| Err(format!("the sync task failed: {e}")));
        if outcome.is_ok() {
            strong.covered.fetch_max(covers, Ordering::SeqCst);
        }
        if let Ok(mut generations) = strong.generations.lock() {
            generations.failed = outcome.err();
        }
        strong.done.send_replace(generation);
    }
}

/// `fdatasync` of `path`; a missing file (no write yet) has nothing to sync.
fn sync_file(path: &std::path::Path) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data().map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_flush_waits_for_a_sync_that_started_after_it_and_many_flushes_share_syncs() {
        let dir = std::env::temp_dir().join(format!("dingbridge-walsync-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let db = dir.join("x.db");
        let sync = WalSync::start(&db.display().to_string());
        // No WAL yet: nothing to sync, and the flush still completes.
        tokio::time::timeout(Duration::from_secs(5), sync.flush())
            .await
            .unwrap_or_else(|_| panic!("flush hangs"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("x.db-wal"), b"frames").unwrap_or_else(|e| panic!("{e}"));
        // No write counted since the last sync: a flush has nothing to wait for.
        let before = *sync.inner.done.borrow();
        sync.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*sync.inner.done.borrow(), before, "nothing written, nothing synced");
        sync.note_write();
        let flushes: Vec<_> = (0..200)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.flush().await })
            })
            .collect();
        for flush in flushes {
            flush.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
        }
        let syncs = *sync.inner.done.borrow();
        assert!(syncs >= 1, "the flushes after a write waited for a sync");
        assert!(syncs < 200, "200 concurrent flushes shared syncs ({syncs} syncs)");
        // Covered now: the next flush returns at once; a new write needs a new sync.
        sync.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*sync.inner.done.borrow(), syncs);
        sync.note_write();
        sync.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*sync.inner.done.borrow(), syncs + 1);
        // A sync on the group writer's thread covers the writes counted before it.
        sync.note_write();
        sync.sync_blocking().unwrap_or_else(|e| panic!("{e}"));
        sync.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*sync.inner.done.borrow(), syncs + 1, "covered by the blocking sync");
        let _ = std::fs::remove_dir_all(dir);
    }
}
