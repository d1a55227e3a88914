//! A throwaway PostgreSQL database per test, for this crate's tests and other
//! crates' ones.
//!
//! ```no_run
//! # async fn test() -> Result<(), String> {
//! let db = adapters::outbound::postgres::testing::TestDatabase::create().await?;
//! let store = adapters::outbound::postgres::PgStore::connect(db.url(), 4).await;
//! // ...
//! db.drop_database().await.ok();
//! # Ok(())
//! # }
//! ```
//!
//! The server is `postgres://postgres@127.0.0.1:5432/postgres` unless
//! `DINGBRIDGE_TEST_PG_ADMIN_URL` names another (its user must be allowed to
//! create databases).
//!
//! A test never passes without the server: when it cannot be reached at build
//! time (and `CI` is not `true`), `adapters/build.rs` and `tests/build.rs` set
//! `--cfg pg_unavailable` and the tests that need it are marked
//! `#[cfg_attr(pg_unavailable, ignore = "…")]`, so `cargo test` lists them as
//! ignored; a test that runs anyway (under `CI=true`, with `--include-ignored`,
//! or with the server gone since the build) fails in [`TestDatabase::create`].

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::redact;

/// The environment variable with the admin URL of the test server.
pub const ADMIN_URL_VAR: &str = "DINGBRIDGE_TEST_PG_ADMIN_URL";

/// The admin URL used when [`ADMIN_URL_VAR`] is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long connecting to the test server may take before it counts as unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A uniquely named database (`dingbridge_test_<16 hex digits>`), dropped by
/// [`TestDatabase::drop_database`] or, failing that, when the value is dropped
/// (also when the test panics).
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a fresh database on the test server.
    ///
    /// `Err` when the server cannot be reached (saying why, and, outside CI,
    /// how to have these tests ignored instead), or when it answers but the
    /// database cannot be created.
    pub async fn create() -> Result<Self, String> {
        let admin_url = std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let mut conn = connect(&admin_url).await.map_err(|e| {
            let shown = redact(&admin_url);
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                format!("PostgreSQL is not reachable at {shown}: {e} (CI=true: tests that need it fail)")
            } else {
                format!(
                    "PostgreSQL is not reachable at {shown}: {e}. Its tests are built as ignored only when it is \
                     unreachable at build time, and it was not (or --include-ignored was given): start it (or \
                     set {ADMIN_URL_VAR}), or `touch adapters/build.rs tests/build.rs` so the next build \
                     probes again and ignores them"
                )
            }
        })?;
        let name = format!("dingbridge_test_{:016x}", rand::random::<u64>());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("cannot create the test database {name} at {}: {e}", redact(&admin_url)))?;
        let url = with_database(&admin_url, &name)?;
        Ok(Self { admin_url, name, url, dropped: false })
    }

    /// The URL of the database (with the admin URL's user and options).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, closing the connections still open to it
    /// (`DROP DATABASE … WITH (FORCE)`).
    pub async fn drop_database(mut self) -> Result<(), String> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for TestDatabase {
    /// Drops the database if [`TestDatabase::drop_database`] was not called,
    /// on a thread of its own (a runtime cannot block on itself).
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(drop_database(&admin_url, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("{e}"),
            Err(_) => eprintln!("dropping the test database {} panicked", self.name),
        }
    }
}

/// A connection to the test server, or why not.
async fn connect(url: &str) -> Result<AsyncPgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = connect(admin_url).await.map_err(|e| format!("cannot drop the test database {name}: {e}"))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(|e| format!("cannot drop the test database {name}: {e}"))
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{ADMIN_URL_VAR} must be a postgres:// URL, not {:?}", redact(url)))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

#[cfg(test)]
mod tests {
    use super::with_database;
    use crate::outbound::postgres::redact;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").ok().as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/x")
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x").ok().as_deref(),
            Some("postgresql://u:p@h/x?sslmode=disable")
        );
        assert_eq!(with_database("postgres://h", "x").ok().as_deref(), Some("postgres://h/x"));
        assert_eq!(with_database("postgres://h?a=b", "x").ok().as_deref(), Some("postgres://h/x?a=b"));
        assert!(with_database("host=h", "x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?sslmode=disable&password=x"),
            "postgres://h/db?sslmode=disable&password=***"
        );
        assert_eq!(redact("host=h password=x"), "host=h password=***");
    }
}
