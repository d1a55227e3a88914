//! The stores on SQLite: diesel-async `SyncConnectionWrapper` + bb8, embedded migrations.
//!
//! [`SqliteStore`] implements every store port of `application::ports` on one SQLite file. The
//! tables, rows and port implementations are shared with PostgreSQL (`outbound::sql`, applied to
//! this store at the end of this file); this module holds what is SQLite's own: the URL, the file,
//! the PRAGMAs, the pool, the migrations, the group commit of its hot writes and the mapping of
//! SQLite's errors.

pub mod group_commit;
mod hot_writes;
pub mod wal_sync;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use application::ports::StoreError;
use diesel::connection::SimpleConnection;
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

/// The migrations under `adapters/migrations/sqlite`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Set on every connection: write-ahead log (readers never block the writer), wait up to 5 s for
/// a lock instead of failing, enforce foreign keys, and `synchronous = NORMAL`: a commit is written
/// to the WAL but not fsynced, so it survives a crash of the process but not yet one of the
/// machine (<https://www.sqlite.org/pragma.html#pragma_synchronous>). Nothing is acknowledged in
/// that state: before answering a request that wrote, the HTTP layer waits for
/// [`SqliteStore::flush`] — a group `fdatasync` of the WAL ([`wal_sync`]) shared by every commit
/// since the last one — so an acknowledged relay accept, event callback or outbox `202` is on disk
/// even if the power fails right after. `busy_timeout` goes first so the switch to WAL waits for
/// other connections too.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                       PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Set on the reader connections besides [`PRAGMAS`]: a page cache of 1 MiB each instead of
/// SQLite's default 2 MiB (`-N` is KiB: <https://www.sqlite.org/pragma.html#pragma_cache_size>),
/// so the caches of a full pool stay within `max_connections` MiB (16 MiB by default) plus the
/// writer's 2 MiB. Reads that miss it are served from the OS page cache.
const READER_PRAGMAS: &str = "PRAGMA cache_size = -1024;";

/// How long a caller waits for a pooled connection before `Unavailable`.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// An async connection to SQLite (each query runs on tokio's blocking pool).
type Conn = SyncConnectionWrapper<SqliteConnection>;

/// Every store port on one SQLite database, through two bb8 pools: readers
/// (`max_connections`) and **one writer**.
///
/// SQLite allows one writer at a time. With every connection free to write, concurrent
/// writers collide on the database lock and SQLite's busy handler retries them with sleeps of
/// up to 100 ms, which made the relay's and the event callback's tails hundreds of
/// milliseconds long under load. Every write of these stores goes through the single writer
/// connection instead: writers wait in the pool's queue, in arrival order, for a commit that
/// takes a fraction of a millisecond (no fsync: see `PRAGMAS` and [`SqliteStore::flush`]);
/// readers never wait for it (WAL). The writes on request paths (the relay accept, the event
/// callback's nonce and contact events) are group-committed ([`group_commit`]): many callers'
/// writes in one transaction and one hand-off to the blocking pool.
///
/// Cheap to clone: clones share the pools (and the feed signal).
///
/// It is also the contact feed's [`FeedSignal`](application::ports::FeedSignal): every committed
/// `EventStore::append` through it wakes the feed's long-polling readers in this process.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Conn>,
    writer: Pool<Conn>,
    group: group_commit::GroupWriter,
    wal: wal_sync::WalSync,
    feed: crate::outbound::feed::FeedWatch,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("SqliteStore")
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if missing) the database at `url`,
    /// applies pending migrations, and builds a pool of at most
    /// `max_connections` connections (at least 1).
    ///
    /// `url` is `sqlite://path/to/file.db` (`sqlite:///abs/file.db` for an
    /// absolute path), `sqlite:path` or a plain path; a `?query` suffix is
    /// ignored. In-memory databases are refused: each pooled connection would
    /// see its own empty database.
    ///
    /// Errors: `Unavailable` when the file cannot be created or opened,
    /// `Other` for a bad URL or a failed migration.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let path = prepare_database(url)?;
        run_migrations(path.clone()).await?;

        let pool = open_pool(&path, max_connections.max(1), READER_PRAGMAS).await?;
        let writer = open_pool(&path, 1, "").await?;
        let wal = wal_sync::WalSync::start(&path);
        let group = group_commit::GroupWriter::start(writer.clone(), wal.clone());
        tracing::debug!(url, max_connections, "SQLite store ready");
        Ok(Self { pool, writer, group, wal, feed: crate::outbound::feed::FeedWatch::new() })
    }

    /// Checks that the database answers (`SELECT 1` on a pooled connection),
    /// for readiness probes. `Unavailable` when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut conn)
            .await
            .map(drop)
            .map_err(|e| StoreError::Unavailable(format!("SQLite does not answer: {e}")))
    }

    /// A pooled connection; `Unavailable` when none is free in time or the
    /// database cannot be opened.
    async fn conn(&self) -> Result<PooledConnection<'_, Conn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Waits until every commit made before the call is on disk (a group fdatasync of the WAL:
    /// [`wal_sync`]). Errors: `Unavailable` when the sync failed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.wal.flush().await
    }

    /// The writer connection (every write goes through it, in arrival order); `Unavailable`
    /// when it is not free within [`CHECKOUT_TIMEOUT`]. Returning it counts a write for
    /// [`SqliteStore::flush`] (see [`wal_sync`]).
    async fn writer(&self) -> Result<WriterConn<'_>, StoreError> {
        let conn = self.writer.get().await.map_err(pool_error)?;
        Ok(WriterConn { conn, wal: &self.wal })
    }
}

/// A checkout of the writer connection; when it is returned (after its commit) it counts a write
/// the next [`SqliteStore::flush`] must sync.
struct WriterConn<'a> {
    conn: PooledConnection<'a, Conn>,
    wal: &'a wal_sync::WalSync,
}

impl std::ops::Deref for WriterConn<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for WriterConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Drop for WriterConn<'_> {
    fn drop(&mut self) {
        self.wal.note_write();
    }
}

/// A pool of at most `size` connections to the database file at `path`, each set up with
/// [`PRAGMAS`] and then `extra`.
async fn open_pool(path: &str, size: u32, extra: &'static str) -> Result<Pool<Conn>, StoreError> {
    let mut config = ManagerConfig::<Conn>::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| establish(url.to_owned(), extra).boxed());
    let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path, config);
    Pool::builder()
        .max_size(size)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build(manager)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite pool: {e}")))
}

/// Applies pending migrations to the database at `url` (same URL forms as
/// [`SqliteStore::connect`]), creating the file if missing. For the CLI's
/// `dingbridge migrate`; [`SqliteStore::connect`] does this too.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    let path = prepare_database(url)?;
    run_migrations(path).await
}

/// Holds the SQLite database of a serving instance for this process alone.
///
/// A SQLite database serves **one** instance: its single writer, its group commit and its
/// in-process feed signal assume no other process writes it (several instances need PostgreSQL;
/// docs/design.md "Several instances"). A second `dingbridge serve` on the same file is refused at
/// start. The lock is an exclusive advisory lock (`flock`) on `<database>.lock` beside the file,
/// released by the OS when the process exits, however it exits. The one-shot CLI commands
/// (`quota`, `relay`, `migrate`) do not take it, so an operator can run them beside the service.
#[derive(Debug)]
pub struct InstanceLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock of the database at `url` (see [`SqliteStore::connect`] for the URL forms).
    ///
    /// Errors: `Conflict` naming the lock file when another process holds it; `Unavailable`
    /// when the lock file cannot be created; `Other` for a bad URL.
    pub fn acquire(url: &str) -> Result<Self, StoreError> {
        let path = PathBuf::from(format!("{}.lock", prepare_database(url)?));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open the lock file {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
                "another dingbridge instance is serving the SQLite database {url} (it holds {}); a SQLite \
                 database serves one instance: run one, or share a PostgreSQL database (database.url = \"postgres://…\")",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(StoreError::Unavailable(format!("cannot lock {}: {e}", path.display())))
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file path in `url` (see [`SqliteStore::connect`]).
fn database_path(url: &str) -> Result<String, StoreError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split_once('?').map_or(rest, |(path, _)| path).trim();
    if path.is_empty() {
        return Err(StoreError::Other(format!("the SQLite URL {url:?} names no file")));
    }
    if path == ":memory:" || path.starts_with("file:") {
        return Err(StoreError::Other(format!(
            "the SQLite URL {url:?} is not supported: use a file path (an in-memory database is not shared between pooled connections)"
        )));
    }
    Ok(path.to_owned())
}

/// Parses `url` and creates the file and its parent directory if missing.
fn prepare_database(url: &str) -> Result<String, StoreError> {
    let path = database_path(url)?;
    let file = PathBuf::from(&path);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create the directory {}: {e}", dir.display())))?;
    }
    create_file(&file)?;
    Ok(path)
}

fn create_file(file: &Path) -> Result<(), StoreError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite file {}: {e}", file.display())))
}

/// Opens one pooled connection and sets [`PRAGMAS`] and `extra` on it.
async fn establish(path: String, extra: &'static str) -> Result<Conn, ConnectionError> {
    let mut conn = Conn::establish(&path).await?;
    conn.batch_execute(PRAGMAS).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
    if !extra.is_empty() {
        conn.batch_execute(extra).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(conn)
}

/// Applies pending migrations on a dedicated synchronous connection in
/// `spawn_blocking`: this works on any tokio runtime, unlike
/// `AsyncMigrationHarness`, whose `block_in_place` panics on a current-thread
/// runtime (docs/stack-notes.md F4).
async fn run_migrations(path: String) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite database {path}: {e}")))?;
        conn.batch_execute(PRAGMAS).map_err(|e| db_error("set SQLite PRAGMAs", e))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Other(format!("SQLite migrations failed on {path}: {e}")))?;
        for version in &applied {
            tracing::info!(%version, database = %path, "applied SQLite migration");
        }
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Other(format!("the SQLite migration task failed: {e}")))?
}

/// A pool checkout failure: always `Unavailable`.
fn pool_error(err: RunError) -> StoreError {
    StoreError::Unavailable(format!("no SQLite connection: {err}"))
}

/// The unique constraints of the schema, as SQLite reports their columns,
/// with the names PostgreSQL would give them (SQLite reports no names).
const CONSTRAINTS: &[(&str, &str)] = &[
    ("login_attempts.state_hash", "login_attempts_pkey"),
    ("login_intents.state_hash", "login_intents_pkey"),
    ("login_results.state_hash", "login_results_pkey"),
    ("users.id", "users_pkey"),
    ("users.corp_id, users.union_id", "users_corp_union_key"),
    ("users.corp_id, users.userid", "users_corp_userid_key"),
    ("sessions.token_hash", "sessions_pkey"),
    ("messages.id", "messages_pkey"),
    ("messages.idempotency_key", "messages_idempotency_key_key"),
    ("relay_messages.client_id, relay_messages.key", "relay_messages_pkey"),
    ("relay_batches.client_id, relay_batches.key, relay_batches.idx", "relay_batches_pkey"),
    ("bindings.user_id", "bindings_pkey"),
    ("bindings.tenant_id, bindings.external_id", "bindings_tenant_external_key"),
    ("suite_tickets.suite_key", "suite_tickets_pkey"),
    ("corp_authorizations.suite_key, corp_authorizations.corp_id", "corp_authorizations_pkey"),
    ("callback_nonces.owner, callback_nonces.nonce", "callback_nonces_pkey"),
    ("contact_events.seq", "contact_events_pkey"),
    ("contact_events.corp_id, contact_events.event_id", "contact_events_corp_event_key"),
    ("oidc_codes.code_hash", "oidc_codes_pkey"),
    ("oidc_grants.id", "oidc_grants_pkey"),
    ("oidc_refresh_tokens.token_hash", "oidc_refresh_tokens_pkey"),
    ("oidc_signing_keys.kid", "oidc_signing_keys_pkey"),
];

/// Maps a diesel error: a unique violation → `Conflict` naming the
/// constraint; a busy/locked database or a closed connection → `Unavailable`;
/// anything else → `Other`. `context` says what was being done.
fn db_error(context: &str, err: DieselError) -> StoreError {
    match &err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let message = info.message();
            let columns = message.strip_prefix("UNIQUE constraint failed: ").unwrap_or(message);
            let name = info
                .constraint_name()
                .or_else(|| CONSTRAINTS.iter().find(|(cols, _)| *cols == columns).map(|(_, name)| *name))
                .unwrap_or(columns);
            StoreError::Conflict(format!("{name} ({context}: {message})"))
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(format!("{context}: {}", info.message()))
        }
        DieselError::DatabaseError(_, info)
            if info.message().contains("database is locked") || info.message().contains("database is busy") =>
        {
            StoreError::Unavailable(format!("{context}: {}", info.message()))
        }
        _ => StoreError::Other(format!("{context}: {err}")),
    }
}

#[async_trait::async_trait]
impl application::ports::Durability for SqliteStore {
    async fn flush(&self) -> Result<(), StoreError> {
        self.wal.flush().await
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod instance_lock_tests {
    use super::InstanceLock;

    #[test]
    fn a_second_instance_on_one_database_is_refused_until_the_first_is_gone() {
        let dir = std::env::temp_dir().join(format!("dingbridge-lock-{}", std::process::id()));
        let url = format!("sqlite://{}/cloud.db", dir.display());
        let first = InstanceLock::acquire(&url).expect("the first instance takes the lock");
        assert!(first.path().ends_with("cloud.db.lock"));
        let second = InstanceLock::acquire(&url).expect_err("a second instance is refused");
        assert!(
            matches!(&second, application::ports::StoreError::Conflict(m) if m.contains("another dingbridge instance") && m.contains("cloud.db.lock")),
            "{second:?}"
        );
        drop(first);
        InstanceLock::acquire(&url).expect("free again once the first is gone");
        let _ = std::fs::remove_dir_all(dir);
    }
}

// The port implementations shared with PostgreSQL (`outbound::sql`), applied to this store.
crate::outbound::sql::stores::impl_store_ports!(
    SqliteStore,
    crate::outbound::sqlite::Conn,
    crate::outbound::sqlite::db_error
);
crate::outbound::sql::oidc_stores::impl_oidc_stores!(SqliteStore, crate::outbound::sqlite::db_error);
crate::outbound::sql::ledger_stores::impl_ledger_store!(SqliteStore, crate::outbound::sqlite::db_error);
crate::outbound::sql::claims::impl_claim_queue!(SqliteStore, crate::outbound::sqlite, []);
crate::outbound::sql::ops::impl_outbox_stats!(SqliteStore);
