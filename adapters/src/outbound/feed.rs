//! [`FeedWatch`]: the in-process [`FeedSignal`] that wakes long-polling feed readers
//! (`GET /relay/v1/events`) the moment a contact event is appended.
//!
//! It is a `tokio::sync::watch` channel holding an append counter: an append bumps the counter
//! (`send_modify`, never blocks, wakes every receiver at once); a reader subscribes, and waits
//! until the counter differs from the value it read *before* reading the feed, so an append
//! between its read and its wait is not lost. No timers tick while nobody appends: a waiting
//! reader costs one parked task until its own timeout.
//!
//! [`SqliteStore`](super::sqlite::SqliteStore) and [`PgStore`](super::postgres::PgStore) each own
//! one and bump it after every committed append, so every append through the store wakes the
//! readers of that process. Appends made by *another* process on a shared PostgreSQL database are
//! not signalled here: readers see them on their next read, at the latest when their wait ends.

use std::sync::Arc;
use std::time::Duration;

use application::ports::FeedSignal;
use async_trait::async_trait;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    /// Appends so far (wrapping).
    version: u64,
    /// Set at shutdown: every wait ends at once.
    closed: bool,
}

/// An append counter readers can wait on. Cheap to clone: clones share the channel.
#[derive(Debug, Clone)]
pub struct FeedWatch {
    tx: Arc<watch::Sender<State>>,
}

impl Default for FeedWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl FeedWatch {
    /// A fresh counter at 0, open.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(State { version: 0, closed: false });
        Self { tx: Arc::new(tx) }
    }

    /// Records an append and wakes every waiting reader (never blocks).
    pub fn notify(&self) {
        self.tx.send_modify(|state| state.version = state.version.wrapping_add(1));
    }
}

#[async_trait]
impl FeedSignal for FeedWatch {
    fn version(&self) -> u64 {
        self.tx.borrow().version
    }

    async fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        let changed = tokio::time::timeout(timeout, rx.wait_for(|s| s.closed || s.version != seen)).await;
        match changed {
            Ok(Ok(state)) => !state.closed,
            // The sender lives as long as `self`; a timeout means nothing was appended.
            Ok(Err(_)) | Err(_) => false,
        }
    }

    fn close(&self) {
        self.tx.send_modify(|state| state.closed = true);
    }
}

/// The tests run on tokio's paused clock (`start_paused`): time advances only when every task is
/// idle, straight to the next timer. A wait that ends without time having passed was woken, not
/// timed out, whatever the machine's load, and a timeout takes no real time.
#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_append_wakes_a_waiting_reader_at_once() {
        let watch = FeedWatch::new();
        let seen = watch.version();
        let waiter = {
            let watch = watch.clone();
            tokio::spawn(async move { watch.wait_past(seen, Duration::from_secs(10)).await })
        };
        // The clock moves only once the waiter is parked in its wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        let notified = Instant::now();
        watch.notify();
        assert!(waiter.await.unwrap_or(false), "woken, not timed out");
        assert_eq!(notified.elapsed(), Duration::ZERO, "woken without waiting for any timer");
        assert_eq!(watch.version(), seen + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_append_between_reading_the_version_and_waiting_is_not_lost() {
        let watch = FeedWatch::new();
        let seen = watch.version();
        watch.notify();
        let started = Instant::now();
        assert!(watch.wait_past(seen, Duration::from_secs(10)).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_append_the_wait_times_out() {
        let watch = FeedWatch::new();
        let started = Instant::now();
        assert!(!watch.wait_past(watch.version(), Duration::from_millis(120)).await);
        assert_eq!(started.elapsed(), Duration::from_millis(120), "it waited its whole timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn closing_ends_current_and_later_waits() {
        let watch = FeedWatch::new();
        let seen = watch.version();
        let waiter = {
            let watch = watch.clone();
            tokio::spawn(async move { watch.wait_past(seen, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let closed = Instant::now();
        watch.close();
        assert!(!waiter.await.unwrap_or(true));
        assert_eq!(closed.elapsed(), Duration::ZERO, "ended by the close, not by its timeout");
        let started = Instant::now();
        assert!(!watch.wait_past(seen, Duration::from_secs(10)).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
