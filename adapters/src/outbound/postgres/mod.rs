//! The stores on PostgreSQL: diesel-async (tokio-postgres) + bb8, embedded migrations.
//!
//! [`PgStore`] implements every store port of `application::ports` on one
//! PostgreSQL database, so any number of stateless instances can share it
//! (docs/design.md "Several instances"). It shares with the SQLite adapter
//! the diesel schema, the row structs and the port implementations (the
//! `impl_store_ports!` macro of `outbound::sql::stores`): the tables have
//! the same names, columns and constraint names on both backends (timestamps
//! are BIGINT epoch ms, ids TEXT, lists JSON in TEXT). What is PostgreSQL's
//! own lives here: the pool, the migrations (`migrations/postgres`) and the
//! mapping of PostgreSQL's errors.
//!
//! No libpq: connections are tokio-postgres ones (no TLS), so the URL is a
//! `postgres://user:password@host:port/database?options` URL as
//! tokio-postgres parses it.
//!
//! With the `testing` feature (the `tests` crate), `testing::TestDatabase` gives tests a fresh database of their own.

mod claims;
mod governor_lanes;
mod hot_writes;
pub mod leader;
pub mod notify;
pub mod ops;
mod stores;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod token_book;

crate::outbound::sql::ops::impl_outbox_stats!(PgStore);

#[cfg(test)]
mod oidc_tests;
#[cfg(test)]
mod outage_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use application::ports::StoreError;
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The migrations under `adapters/migrations/postgres`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a caller waits for a pooled connection before `Unavailable`: short, so that while
/// PostgreSQL refuses connections every request fails fast with a clear 503 (and `/readyz` says
/// so) instead of outlasting its caller's timeout. The pool keeps reconnecting by itself, so it
/// recovers as soon as PostgreSQL is back. With 16 connections a healthy pool hands one out in
/// well under a millisecond, so only an overloaded or unreachable database meets this limit.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long opening the migration connection at start-up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The key of the session-level advisory lock held while migrating, so that
/// instances starting together over one database migrate one at a time
/// (the others then find nothing pending). The bytes spell `dingbrdg`.
const MIGRATION_LOCK: i64 = 0x6469_6e67_6272_6467;

/// An async connection to PostgreSQL.
type Conn = AsyncPgConnection;

/// Every store port on one PostgreSQL database, through a bb8 pool.
///
/// Cheap to clone: clones share the pool (and the feed signal).
///
/// It is also the contact feed's [`FeedSignal`](application::ports::FeedSignal): every committed
/// `EventStore::append` through it wakes the feed's long-polling readers in this process.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<Conn>,
    feed: crate::outbound::feed::FeedWatch,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PgStore")
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl PgStore {
    /// Applies pending migrations to the database at `url` and builds a pool
    /// of at most `max_connections` connections (at least 1). Pooled
    /// connections are checked with a `SELECT 1` when taken from the pool, so
    /// a restart of PostgreSQL costs no failed call.
    ///
    /// Errors: `Unavailable` when PostgreSQL cannot be reached (or refuses the
    /// login), `Other` when a migration fails.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        run_migrations(url).await?;
        let manager = AsyncDieselConnectionManager::<Conn>::new(url);
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .build(manager)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open the PostgreSQL pool: {e}")))?;
        tracing::debug!(url = %redact(url), max_connections, "PostgreSQL store ready");
        Ok(Self { pool, feed: crate::outbound::feed::FeedWatch::new() })
    }

    /// The feed signal this store raises on its appends (for [`notify::listen_feed`], which
    /// raises it for every other instance's).
    pub fn feed_watch(&self) -> crate::outbound::feed::FeedWatch {
        self.feed.clone()
    }

    /// Checks that the database answers (`SELECT 1` on a pooled connection),
    /// for readiness probes. `Unavailable` when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL does not answer: {e}")))
    }

    /// A pooled connection; `Unavailable` when none is free in time or
    /// PostgreSQL cannot be reached.
    async fn conn(&self) -> Result<PooledConnection<'_, Conn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A pooled connection for a write: PostgreSQL takes concurrent writers, so any connection.
    async fn writer(&self) -> Result<PooledConnection<'_, Conn>, StoreError> {
        self.conn().await
    }
}

/// Applies pending migrations to the database at `url`. For the CLI's
/// `dingbridge migrate`; [`PgStore::connect`] does this too.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    run_migrations(url).await
}

/// Opens one connection (within [`CONNECT_TIMEOUT`]); `Unavailable` if it fails.
async fn establish(url: &str) -> Result<Conn, StoreError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        StoreError::Unavailable(format!("cannot connect to PostgreSQL at {}: {e}", redact(url)))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(unreachable(&e)),
        Err(_) => Err(unreachable(&"timed out")),
    }
}

/// Applies pending migrations on a dedicated connection, under the advisory
/// lock [`MIGRATION_LOCK`].
///
/// diesel's migration harness is synchronous: it runs in `spawn_blocking` on
/// an `AsyncConnectionWrapper`, which drives the async connection with the
/// runtime's handle. This works on any tokio runtime, unlike
/// `AsyncMigrationHarness`, whose `block_in_place` panics on a current-thread
/// runtime (docs/stack-notes.md F4).
async fn run_migrations(url: &str) -> Result<(), StoreError> {
    let conn = establish(url).await?;
    let database = redact(url);
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<Conn>::from(conn);
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .map_err(|e| db_error("lock for migrations", e))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| StoreError::Other(format!("PostgreSQL migrations failed on {database}: {e}")));
        // Closing the connection would release the lock too; unlock anyway.
        let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        let applied = applied?;
        unlocked.map_err(|e| db_error("unlock after migrations", e))?;
        for version in &applied {
            tracing::info!(%version, %database, "applied PostgreSQL migration");
        }
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Other(format!("the PostgreSQL migration task failed: {e}")))?
}

/// `url` without its password (in the user info or a `password=` option),
/// for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let hide = |option: &'_ str| -> String {
        if option.starts_with("password=") { "password=***".to_owned() } else { option.to_owned() }
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        // A `key=value key=value` connection string.
        return url.split(' ').map(hide).collect::<Vec<_>>().join(" ");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let options: Vec<String> = query.split('&').map(hide).collect();
            format!("{path}?{}", options.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A pool checkout failure: always `Unavailable`.
fn pool_error(err: RunError) -> StoreError {
    StoreError::Unavailable(format!("no PostgreSQL connection: {err}"))
}

/// Messages of PostgreSQL errors that mean the server is going away or not
/// there yet (SQLSTATE 57P01–57P03, 53300); diesel does not pass the SQLSTATE on.
const UNAVAILABLE_MESSAGES: &[&str] =
    &["terminating connection", "the database system is", "too many clients", "remaining connection slots"];

/// Maps a diesel error: a unique violation → `Conflict` naming the
/// constraint (PostgreSQL reports it); a lost connection or a server shutting
/// down → `Unavailable`; anything else (a foreign key violation included) →
/// `Other`. `context` says what was being done.
fn db_error(context: &str, err: DieselError) -> StoreError {
    match &err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let name = info.constraint_name().unwrap_or("unique constraint");
            StoreError::Conflict(format!("{name} ({context}: {})", info.message()))
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => StoreError::Unavailable(format!("{context}: {}", info.message())),
        DieselError::DatabaseError(_, info) if UNAVAILABLE_MESSAGES.iter().any(|m| info.message().contains(m)) => {
            StoreError::Unavailable(format!("{context}: {}", info.message()))
        }
        _ => StoreError::Other(format!("{context}: {err}")),
    }
}

/// PostgreSQL commits are durable when they return (`synchronous_commit = on`, its default).
#[async_trait::async_trait]
impl application::ports::Durability for PgStore {
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
