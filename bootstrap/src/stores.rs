//! The stores each role needs (one SQLite or PostgreSQL store implements them all), opening them,
//! what several instances share through them, and the `/readyz` database check.

use std::sync::Arc;

use adapters::inbound::http::{Probes, ReadinessCheck};
use adapters::outbound::postgres::PgStore;
use adapters::outbound::sqlite::SqliteStore;
use anyhow::Context;
use application::ports::{
    BindingStore, Durability, EventStore, FeedCursorStore, FeedSignal, GrantStore, LoginAttemptStore, LoginIntentStore,
    LoginResultStore, MessageStore, QuotaStore, RecipientLedgerStore, RelayMessageStore, SessionStore, SigningKeyStore,
    SuiteStore, UserRepository,
};

use crate::config::Config;

/// Storage of the cloud role (the store is also the contact feed's signal).
pub(crate) trait CloudStores:
    LoginIntentStore
    + LoginResultStore
    + RelayMessageStore
    + SuiteStore
    + EventStore
    + FeedSignal
    + QuotaStore
    + RecipientLedgerStore
    + Durability
    + ClusterShared
    + 'static
{
}
impl<
    T: LoginIntentStore
        + LoginResultStore
        + RelayMessageStore
        + SuiteStore
        + EventStore
        + FeedSignal
        + QuotaStore
        + RecipientLedgerStore
        + Durability
        + ClusterShared
        + 'static,
> CloudStores for T
{
}

/// What several cloud instances share through their store: the call governor's slots and the
/// DingTalk tokens (PostgreSQL keeps one pace and one token per app/corp for all of them). SQLite
/// serves one instance, whose own lanes and token caches do.
pub(crate) trait ClusterShared {
    fn slot_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::governor::SlotBook>>;
    fn token_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::dingtalk::TokenBook>>;
}

impl ClusterShared for SqliteStore {
    fn slot_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::governor::SlotBook>> {
        None
    }
    fn token_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::dingtalk::TokenBook>> {
        None
    }
}

impl ClusterShared for PgStore {
    fn slot_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::governor::SlotBook>> {
        Some(self)
    }
    fn token_book(self: Arc<Self>) -> Option<Arc<dyn adapters::outbound::dingtalk::TokenBook>> {
        Some(self)
    }
}

/// Storage of the local role.
pub(crate) trait LocalStores:
    LoginAttemptStore
    + SessionStore
    + UserRepository
    + BindingStore
    + MessageStore
    + FeedCursorStore
    + GrantStore
    + SigningKeyStore
    + 'static
{
}
impl<
    T: LoginAttemptStore
        + SessionStore
        + UserRepository
        + BindingStore
        + MessageStore
        + FeedCursorStore
        + GrantStore
        + SigningKeyStore
        + 'static,
> LocalStores for T
{
}

/// A database that can answer a trivial query (for `/readyz`).
#[async_trait::async_trait]
pub(crate) trait Ping: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), application::ports::StoreError>;
}

#[async_trait::async_trait]
impl Ping for SqliteStore {
    async fn ping(&self) -> Result<(), application::ports::StoreError> {
        SqliteStore::ping(self).await
    }
}

#[async_trait::async_trait]
impl Ping for PgStore {
    async fn ping(&self) -> Result<(), application::ports::StoreError> {
        PgStore::ping(self).await
    }
}

/// `/readyz` checks: the database answers.
pub(crate) fn database_probes(store: Arc<dyn Ping>) -> Arc<Probes> {
    let check: ReadinessCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
    });
    Arc::new(Probes { checks: vec![("database", check)] })
}

/// The SQLite store at `database.url` (migrated).
pub(crate) async fn open_sqlite(config: &Config) -> anyhow::Result<Arc<SqliteStore>> {
    Ok(Arc::new(
        SqliteStore::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| format!("could not open the database {}", config.database.url))?,
    ))
}

/// The PostgreSQL store at `database.url` (migrated).
pub(crate) async fn open_postgres(config: &Config) -> anyhow::Result<Arc<PgStore>> {
    Ok(Arc::new(
        PgStore::connect(&config.database.url, config.database.max_connections)
            .await
            .context("could not open the PostgreSQL database (database.url)")?,
    ))
}

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Takes the SQLite database for this serving process alone (a second instance is refused).
pub(crate) fn lock_sqlite(config: &Config) -> anyhow::Result<adapters::outbound::sqlite::InstanceLock> {
    adapters::outbound::sqlite::InstanceLock::acquire(&config.database.url)
        .map_err(|e| anyhow::anyhow!("database.url: {e}"))
}
