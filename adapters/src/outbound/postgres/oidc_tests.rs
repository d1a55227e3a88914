//! The OpenID Provider store contracts (`sql::oidc_store_tests`) on [`PgStore`], each on a
//! fresh database of the local PostgreSQL server (built as ignored without one, as in
//! `postgres::tests`).

use diesel::connection::SimpleConnection;
use diesel_async::AsyncConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::MigrationHarness;

use super::testing::TestDatabase;
use super::tests::{fresh, sql};
use super::{Conn, MIGRATIONS, PgStore};
use crate::outbound::sql::oidc_store_tests as oidc;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One `#[tokio::test]` per contract, on a fresh database.
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        #[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
        async fn $name() -> TestResult {
            let (_db, store) = fresh().await?;
            oidc::$name(store).await
        }
    )*};
}

on_postgres!(
    codes_are_redeemed_once_and_a_replay_names_the_grant,
    a_duplicate_code_is_a_conflict_and_an_unknown_user_an_error,
    of_8_concurrent_redemptions_exactly_one_redeems,
    a_grant_is_stored_with_its_first_token_in_one_transaction,
    refresh_tokens_rotate_and_a_reuse_revokes_the_grant,
    expired_tokens_and_inactive_grants_do_not_rotate,
    of_8_concurrent_rotations_one_rotates_and_the_rest_are_reuse,
    revocations_touch_only_unrevoked_grants,
    membership_checks_only_move_forward,
    purge_deletes_expired_codes_and_ended_grants_with_their_tokens,
    a_new_signing_key_retires_the_keys_of_its_algorithm_only,
);

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn corrupt_oidc_rows_are_errors_not_panics() -> TestResult {
    let (_db, store) = fresh().await?;
    oidc::corrupt_oidc_rows_are_errors_not_panics(store, sql).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn pre_oidc_rows_survive_the_migration() -> TestResult {
    let db = TestDatabase::create().await?;
    // A database as the previous release left it: every migration but `oidc`, with rows. The
    // harness is synchronous: run it in `spawn_blocking`, as `run_migrations` does.
    let conn = Conn::establish(db.url()).await?;
    tokio::task::spawn_blocking(move || -> TestResult {
        let mut conn = AsyncConnectionWrapper::<Conn>::from(conn);
        let migrations = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)?;
        let (oidc, earlier): (Vec<_>, Vec<_>) =
            migrations.into_iter().partition(|m| m.name().to_string().ends_with("_oidc"));
        assert_eq!(oidc.len(), 1);
        // Creates the migrations table (a fresh database has none applied).
        assert!(conn.applied_migrations()?.is_empty());
        for migration in &earlier {
            conn.run_migration(migration.as_ref())?;
        }
        conn.batch_execute(oidc::PRE_OIDC_ROWS)?;
        Ok(())
    })
    .await??;

    let store = PgStore::connect(db.url(), 2).await?;
    oidc::pre_oidc_rows_survive_the_migration(store).await?;
    db.drop_database().await?;
    Ok(())
}
