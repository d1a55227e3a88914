//! Operations on PostgreSQL for `dingbridge doctor`: whether the database answers and which
//! migrations it still lacks, without applying any.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::MigrationHarness;

use super::{Conn, MIGRATIONS, establish, redact};
use application::ports::StoreError;

/// The versions of the embedded migrations (`adapters/migrations/postgres`) not yet applied to
/// the database at `url`, oldest first; empty when it is current. Opens one connection and
/// changes nothing. Errors: `Unavailable` when PostgreSQL cannot be reached, `Other` when the
/// migration table cannot be read.
pub async fn pending_migrations(url: &str) -> Result<Vec<String>, StoreError> {
    let conn = establish(url).await?;
    let database = redact(url);
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<Conn>::from(conn);
        conn.pending_migrations(MIGRATIONS)
            .map(|pending| pending.iter().map(|m| m.name().version().to_string()).collect())
            .map_err(|e| StoreError::Other(format!("reading the migrations of {database}: {e}")))
    })
    .await
    .map_err(|e| StoreError::Other(format!("the migration check failed: {e}")))?
}
