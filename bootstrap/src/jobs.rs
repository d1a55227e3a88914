//! The background jobs a built [`crate::App`] runs: the outbox dispatch loops (local, dev), the
//! cloud's relay sender, the purge of expired rows, and which instance leads the single-instance
//! jobs on PostgreSQL. [`crate::serve`] starts and stops them.

use std::sync::Arc;
use std::time::Duration;

use adapters::outbound::dingtalk::recipients::china_day;
use application::ports::{
    Clock, DispatchTrigger, EventStore, GrantStore, LoginAttemptStore, LoginIntentStore, LoginResultStore,
    RecipientLedgerStore,
};
use application::usecases::cloud::DeliverRelayed;
use application::usecases::local::DispatchOutbox;
use tracing::{info, warn};

/// How often expired login attempts, intents and results are purged.
pub(crate) const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The leaders of the jobs one instance of a cluster runs at a time (docs/design.md "Several
/// instances"); every field `None` on SQLite (one instance).
#[derive(Default)]
pub(crate) struct Leaders {
    pub(crate) feed: Option<adapters::outbound::postgres::leader::Leader>,
    pub(crate) reconcile: Option<adapters::outbound::postgres::leader::Leader>,
}

/// How often the cloud asks DingTalk for the progress of sent messages.
pub(crate) const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// Messages checked per reconciliation run.
pub(crate) const RECONCILE_BATCH: u32 = 100;

/// Messages one dispatch loop claims at a time.
const DISPATCH_BATCH: u32 = 16;
/// How often an idle dispatch loop looks for due retries.
const DISPATCH_POLL: Duration = Duration::from_millis(250);

/// Wakes a dispatch loop when a message is accepted.
pub(crate) struct NotifyTrigger(pub(crate) Arc<tokio::sync::Notify>);

impl DispatchTrigger for NotifyTrigger {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// The outbox dispatch loops (local and dev modes).
pub(crate) struct Dispatcher {
    pub(crate) outbox: Arc<DispatchOutbox>,
    pub(crate) notify: Arc<tokio::sync::Notify>,
    pub(crate) workers: usize,
}

impl Dispatcher {
    pub(crate) fn spawn(self) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.workers)
            .map(|_| {
                let (outbox, notify) = (self.outbox.clone(), self.notify.clone());
                tokio::spawn(async move {
                    loop {
                        match outbox.run_once(DISPATCH_BATCH).await {
                            Ok(0) => {
                                tokio::select! {
                                    () = notify.notified() => {}
                                    () = tokio::time::sleep(DISPATCH_POLL) => {}
                                }
                            }
                            Ok(_) => {}
                            Err(err) => {
                                warn!(error = %err, "outbox dispatch failed; retrying in 1 s");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                })
            })
            .collect()
    }
}

/// Relayed messages one sender run takes at a time.
const SEND_BATCH: u32 = 64;
/// How often an idle sender looks for messages whose next attempt is due.
const SEND_POLL: Duration = Duration::from_millis(500);

/// The cloud's background sender (cloud and dev modes): every DingTalk call for relayed messages.
pub(crate) struct RelaySender {
    pub(crate) job: Arc<DeliverRelayed>,
    pub(crate) notify: Arc<tokio::sync::Notify>,
}

impl RelaySender {
    /// Runs until `stop` turns true; a run in progress finishes first, so a batch DingTalk
    /// accepted always has its `task_id` recorded before the process exits.
    pub(crate) fn spawn(self, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while !*stop.borrow() {
                match self.job.run_once(SEND_BATCH).await {
                    // A full batch: more may be due at once.
                    Ok(n) if n == SEND_BATCH as usize => continue,
                    Ok(_) => {}
                    Err(err) => warn!(error = %err, "the relay sender cannot list due messages; retrying"),
                }
                tokio::select! {
                    () = self.notify.notified() => {}
                    () = tokio::time::sleep(SEND_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    }
}

/// Deletes expired rows of each store, every `PURGE_EVERY`.
pub(crate) struct PurgeJob {
    pub(crate) stores: Vec<Arc<dyn Purge>>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Something with expired rows to delete.
#[async_trait::async_trait]
pub(crate) trait Purge: Send + Sync {
    async fn purge(&self, now: domain::Timestamp) -> Result<u64, application::ports::StoreError>;
    fn name(&self) -> &'static str;
}

/// A store with expired rows, named for the log.
macro_rules! purgeable {
    ($name:ident, $port:ident, $what:literal) => {
        pub(crate) struct $name(pub(crate) Arc<dyn $port>);

        #[async_trait::async_trait]
        impl Purge for $name {
            async fn purge(&self, now: domain::Timestamp) -> Result<u64, application::ports::StoreError> {
                self.0.purge_expired(now).await
            }
            fn name(&self) -> &'static str {
                $what
            }
        }
    };
}

purgeable!(Attempts, LoginAttemptStore, "login attempts");
purgeable!(Intents, LoginIntentStore, "login intents");
purgeable!(Results, LoginResultStore, "login results");
purgeable!(Grants, GrantStore, "OIDC codes and grants");

/// Expired callback nonces per purge batch: each batch is one short write, so a callback waits
/// for at most one batch, never for the whole backlog (docs/design.md "Events").
const NONCE_PURGE_BATCH: u32 = 1_000;

/// Expired callback nonces, deleted in batches of [`NONCE_PURGE_BATCH`] with a yield between
/// them (the callback itself no longer deletes anything but its own expired copy).
pub(crate) struct Nonces(pub(crate) Arc<dyn EventStore>);

#[async_trait::async_trait]
impl Purge for Nonces {
    async fn purge(&self, now: domain::Timestamp) -> Result<u64, application::ports::StoreError> {
        let mut total = 0;
        loop {
            let deleted = self.0.purge_expired_nonces(now, NONCE_PURGE_BATCH).await?;
            total += deleted;
            if deleted < u64::from(NONCE_PURGE_BATCH) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
    fn name(&self) -> &'static str {
        "callback nonces"
    }
}

/// The recipient ledger's rows of days before yesterday (China Standard Time).
pub(crate) struct Ledger(pub(crate) Arc<dyn RecipientLedgerStore>);

#[async_trait::async_trait]
impl Purge for Ledger {
    async fn purge(&self, now: domain::Timestamp) -> Result<u64, application::ports::StoreError> {
        self.0.purge_days_before(&china_day(now.plus_secs(-24 * 3600))).await
    }
    fn name(&self) -> &'static str {
        "recipient ledger days"
    }
}

impl PurgeJob {
    pub(crate) async fn run_once(&self) {
        let now = self.clock.now();
        for store in &self.stores {
            match store.purge(now).await {
                Ok(0) => {}
                Ok(n) => info!(what = store.name(), purged = n, "purged expired rows"),
                Err(err) => warn!(what = store.name(), error = %err, "purging expired rows failed"),
            }
        }
    }
}
