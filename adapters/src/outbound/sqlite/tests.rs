//! Tests of [`SqliteStore`], each on a fresh temporary database file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use application::ports::{FeedCursorStore, LoginAttemptStore, StoreError};
use diesel_async::RunQueryDsl;

use super::{SqliteStore, database_path, migrate};
use crate::outbound::sql::event_tests as events;
use crate::outbound::sql::outbox_tests as outbox;
use crate::outbound::sql::store_tests as shared;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A database file under the temp dir, deleted (with its WAL files) on drop.
pub(crate) struct TempDb {
    pub(crate) path: PathBuf,
}

impl TempDb {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let unique =
            format!("dingbridge-sqlite-{name}-{}-{}-{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self { path: std::env::temp_dir().join(unique).join("store.db") }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub(crate) async fn open(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::connect(&self.url(), 4).await
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

use crate::outbound::sql::fixtures::*;

/// Runs one raw SQL statement on `store`'s database (the `sql` of the corrupt-row tests).
pub(crate) async fn sql(store: &SqliteStore, query: &str) -> TestResult {
    diesel::sql_query(query).execute(&mut store.conn().await?).await?;
    Ok(())
}

// --- URLs and connecting ---------------------------------------------------

#[test]
fn urls_name_a_file() {
    assert_eq!(database_path("sqlite://data/db.sqlite").ok().as_deref(), Some("data/db.sqlite"));
    assert_eq!(database_path("sqlite:///var/lib/x.db").ok().as_deref(), Some("/var/lib/x.db"));
    assert_eq!(database_path("sqlite:x.db").ok().as_deref(), Some("x.db"));
    assert_eq!(database_path("sqlite://x.db?mode=rwc").ok().as_deref(), Some("x.db"));
    assert_eq!(database_path("./plain.db").ok().as_deref(), Some("./plain.db"));
    for bad in ["", "sqlite://", "sqlite::memory:", ":memory:", "file:x.db?mode=memory"] {
        assert!(matches!(database_path(bad), Err(StoreError::Other(_))), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_creates_the_directory_and_file_and_reconnecting_keeps_data() -> TestResult {
    let db = TempDb::new("reconnect");
    assert!(!db.path.exists());
    let store = db.open().await?;
    assert!(db.path.exists());
    LoginAttemptStore::insert(&store, &attempt("h1", "/x", 10_000)).await?;
    drop(store);

    // Migrations are idempotent: `migrate` and a second `connect` apply nothing new.
    migrate(&db.url()).await?;
    let again = SqliteStore::connect(&format!("sqlite:{}", db.path.display()), 2).await?;
    let taken = LoginAttemptStore::take(&again, "h1", ts(1)).await?;
    assert_eq!(taken, Some(attempt("h1", "/x", 10_000)));
    Ok(())
}

#[tokio::test]
async fn connect_works_on_a_current_thread_runtime_too() -> TestResult {
    let db = TempDb::new("current-thread");
    let store = SqliteStore::connect(&db.path.display().to_string(), 1).await?;
    LoginAttemptStore::insert(&store, &attempt("h1", "/", 10)).await?;
    assert!(LoginAttemptStore::take(&store, "h1", ts(1)).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn in_memory_urls_are_refused() {
    assert!(matches!(SqliteStore::connect("sqlite::memory:", 1).await, Err(StoreError::Other(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn pragmas_are_set_on_pooled_connections() -> TestResult {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Keys {
        #[diesel(sql_type = BigInt)]
        foreign_keys: i64,
    }
    let db = TempDb::new("pragmas");
    let store = db.open().await?;
    let mut conn = store.conn().await?;
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode").get_result(&mut conn).await?;
    let keys: Keys = diesel::sql_query("PRAGMA foreign_keys").get_result(&mut conn).await?;
    assert_eq!(mode.journal_mode, "wal");
    assert_eq!(keys.foreign_keys, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_answers() -> TestResult {
    let db = TempDb::new("ping");
    let store = db.open().await?;
    store.ping().await?;
    Ok(())
}

// --- login attempts ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn attempts_are_single_use() -> TestResult {
    let db = TempDb::new("attempt-single-use");
    shared::attempts_are_single_use(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_attempt_is_a_conflict() -> TestResult {
    let db = TempDb::new("attempt-conflict");
    shared::a_duplicate_attempt_is_a_conflict(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_attempt_is_not_returned_and_is_removed() -> TestResult {
    let db = TempDb::new("attempt-expired");
    shared::an_expired_attempt_is_not_returned_and_is_removed(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_removes_only_expired_attempts() -> TestResult {
    let db = TempDb::new("attempt-purge");
    shared::purge_removes_only_expired_attempts(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn of_20_concurrent_takes_exactly_one_succeeds() -> TestResult {
    let db = TempDb::new("attempt-race");
    shared::of_20_concurrent_takes_exactly_one_succeeds(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsafe_stored_return_to_is_a_corrupt_row() -> TestResult {
    let db = TempDb::new("attempt-corrupt");
    shared::an_unsafe_stored_return_to_is_a_corrupt_row(db.open().await?, sql).await
}

// --- login intents and results ----------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn intents_are_single_use_and_expire() -> TestResult {
    let db = TempDb::new("intents");
    shared::intents_are_single_use_and_expire(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn results_are_taken_only_by_their_client() -> TestResult {
    let db = TempDb::new("results");
    shared::results_are_taken_only_by_their_client(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_results_are_removed_and_purged() -> TestResult {
    let db = TempDb::new("results-expired");
    shared::expired_results_are_removed_and_purged(db.open().await?).await
}

// --- sessions ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_found_until_they_expire_and_can_be_deleted() -> TestResult {
    let db = TempDb::new("sessions");
    shared::sessions_are_found_until_they_expire_and_can_be_deleted(db.open().await?).await
}

// --- users -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn upsert_creates_then_updates_keeping_id_and_created_at() -> TestResult {
    let db = TempDb::new("users-upsert");
    shared::upsert_creates_then_updates_keeping_id_and_created_at(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_found_by_userid_within_their_corp() -> TestResult {
    let db = TempDb::new("users-find");
    shared::users_are_found_by_userid_within_their_corp(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_in_creation_order_and_filters_by_corp() -> TestResult {
    let db = TempDb::new("users-list");
    shared::list_pages_in_creation_order_and_filters_by_corp(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_userid_taken_by_another_union_id_is_a_conflict() -> TestResult {
    let db = TempDb::new("users-conflict");
    shared::a_userid_taken_by_another_union_id_is_a_conflict(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_row_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let db = TempDb::new("users-corrupt");
    shared::a_user_row_with_corrupt_json_is_an_error_not_a_panic(db.open().await?, sql).await
}

// --- bindings ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bindings_are_put_replaced_and_found() -> TestResult {
    let db = TempDb::new("bindings");
    shared::bindings_are_put_replaced_and_found(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binding_taken_by_another_user_is_a_conflict() -> TestResult {
    let db = TempDb::new("bindings-conflict");
    shared::a_binding_taken_by_another_user_is_a_conflict(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binding_of_an_unknown_user_is_an_error() -> TestResult {
    let db = TempDb::new("bindings-unknown");
    shared::a_binding_of_an_unknown_user_is_an_error(db.open().await?).await
}

// --- messages ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn messages_round_trip_and_update() -> TestResult {
    let db = TempDb::new("messages");
    shared::messages_round_trip_and_update(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_row_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let db = TempDb::new("messages-corrupt");
    shared::a_message_row_with_corrupt_json_is_an_error_not_a_panic(db.open().await?, sql).await
}

// --- the outbox (shared contract: `sql::outbox_tests`) -----------------------

#[tokio::test(flavor = "multi_thread")]
async fn outbox_find_by_idempotency_key() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::find_by_idempotency_key(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_a_duplicate_idempotency_key_is_a_conflict() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::a_duplicate_idempotency_key_is_a_conflict(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_update_stamps_sent_and_finished_once() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::update_stamps_sent_and_finished_once(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_update_stamps_relayed_once() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::update_stamps_relayed_once(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_relayed_messages_can_be_read_back() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::relayed_messages_can_be_read_back(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_claim_due_claims_only_due_pending_messages() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::claim_due_claims_only_due_pending_messages(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_claim_due_respects_the_limit_oldest_first() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::claim_due_respects_the_limit_oldest_first(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_claim_due_prefers_the_earliest_due() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::claim_due_prefers_the_earliest_due(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_concurrent_claims_claim_each_message_exactly_once() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::concurrent_claims_claim_each_message_exactly_once(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_reschedule_sets_the_next_attempt_and_the_error() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::reschedule_sets_the_next_attempt_and_the_error(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_list_pages_newest_first_and_filters() -> TestResult {
    let db = TempDb::new("outbox");
    outbox::list_pages_newest_first_and_filters(db.open().await?).await
}

// --- event callbacks (shared contract: `sql::event_tests`) -------------------

#[tokio::test(flavor = "multi_thread")]
async fn suite_a_new_ticket_replaces_the_old() -> TestResult {
    let db = TempDb::new("events");
    events::a_new_ticket_replaces_the_old(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn suite_authorizations_are_upserted_replaced_and_listed() -> TestResult {
    let db = TempDb::new("events");
    events::authorizations_are_upserted_replaced_and_listed(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_expired_nonces_are_purged_in_bounded_batches() -> TestResult {
    let db = TempDb::new("events");
    events::expired_nonces_are_purged_in_bounded_batches(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_a_nonce_is_new_once_until_it_expires() -> TestResult {
    let db = TempDb::new("events");
    events::a_nonce_is_new_once_until_it_expires(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_a_contact_push_remembers_its_nonce_and_appends_in_one_write() -> TestResult {
    let db = TempDb::new("events");
    events::a_contact_push_remembers_its_nonce_and_appends_in_one_write(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_10_concurrent_same_nonces_exactly_one_is_new() -> TestResult {
    let db = TempDb::new("events");
    events::of_10_concurrent_same_nonces_exactly_one_is_new(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_append_assigns_increasing_cursors_once_per_corp_event() -> TestResult {
    let db = TempDb::new("events");
    events::append_assigns_increasing_cursors_once_per_corp_event(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_read_after_filters_by_corp_and_cursor_in_order() -> TestResult {
    let db = TempDb::new("events");
    events::read_after_filters_by_corp_and_cursor_in_order(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_a_reader_following_concurrent_appends_misses_nothing() -> TestResult {
    let db = TempDb::new("events");
    events::a_reader_following_concurrent_appends_misses_nothing(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_an_append_wakes_a_waiting_reader_and_a_duplicate_does_not() -> TestResult {
    let db = TempDb::new("events");
    events::an_append_wakes_a_waiting_reader_and_a_duplicate_does_not(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn feed_cursors_start_empty_and_only_move_forward() -> TestResult {
    let db = TempDb::new("cursors");
    events::feed_cursors_start_empty_and_only_move_forward(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn feed_cursors_survive_reopening() -> TestResult {
    let db = TempDb::new("cursors-reopen");
    let store = db.open().await?;
    FeedCursorStore::save_cursor(&store, "contact_events", 42, ts(1_000)).await?;
    drop(store);
    migrate(&db.url()).await?;
    assert_eq!(FeedCursorStore::cursor(&db.open().await?, "contact_events").await?, Some(42));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn events_survive_reopening_and_migrations_are_idempotent() -> TestResult {
    let db = TempDb::new("events-reopen");
    let store = db.open().await?;
    events::write_event_data(&store).await?;
    drop(store);
    migrate(&db.url()).await?;
    let again = db.open().await?;
    events::event_data_is_still_there(&again).await
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_event_rows_are_errors_not_panics() -> TestResult {
    let db = TempDb::new("events-corrupt");
    shared::corrupt_event_rows_are_errors_not_panics(db.open().await?, sql).await
}

// --- relayed messages --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn relay_insert_or_get_is_idempotent() -> TestResult {
    let db = TempDb::new("relay-idempotent");
    shared::relay_insert_or_get_is_idempotent(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_batches_and_state_are_recorded() -> TestResult {
    let db = TempDb::new("relay-batches");
    shared::relay_batches_and_state_are_recorded(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_batch_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let db = TempDb::new("relay-corrupt");
    shared::a_relay_batch_with_corrupt_json_is_an_error_not_a_panic(db.open().await?, sql).await
}

// --- concurrency -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_relay_inserts_of_one_key_create_it_once() -> TestResult {
    let db = TempDb::new("relay-race");
    shared::concurrent_relay_inserts_of_one_key_create_it_once(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_upserts_of_one_person_keep_one_user() -> TestResult {
    let db = TempDb::new("users-race");
    shared::concurrent_upserts_of_one_person_keep_one_user(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_puts_of_one_binding_all_succeed() -> TestResult {
    let db = TempDb::new("bindings-race");
    shared::concurrent_puts_of_one_binding_all_succeed(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_due_messages_wait_until_their_retry_and_are_released_for_their_reason() -> TestResult {
    let db = TempDb::new("relay-due");
    shared::relay_due_messages_wait_until_their_retry_and_are_released_for_their_reason(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_claims_are_exclusive_fenced_and_report_uncertain_batches() -> TestResult {
    let db = TempDb::new("relay-claims");
    shared::relay_claims_are_exclusive_fenced_and_report_uncertain_batches(db.open().await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_list_in_state_filters_by_state_and_age_least_recently_updated_first() -> TestResult {
    let db = TempDb::new("relay-list-in-state");
    shared::relay_list_in_state_filters_by_state_and_age_least_recently_updated_first(db.open().await?).await
}

// --- quota accounting ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn metered_calls_add_up_per_corp_and_month_and_the_mark_sticks() -> TestResult {
    let db = TempDb::new("quota");
    shared::metered_calls_add_up_per_corp_and_month_and_the_mark_sticks(db.open().await?).await
}

// --- providers side by side: an existing database upgrades in place -----------

/// A database as the release before providers left it (every migration before `providers`) with the
/// rows of [`shared::PRE_PROVIDER_ROWS`], then opened (the upgrade runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_providers_upgrades_in_place_and_its_rows_are_dingtalks() -> TestResult {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    let db = TempDb::new("pre-providers");
    std::fs::create_dir_all(db.path.parent().ok_or("no directory")?)?;
    let mut conn = SqliteConnection::establish(&db.path.display().to_string())?;
    let migrations = diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&super::MIGRATIONS)?;
    // Names start with their date, so the ones before `providers` sort before it.
    let (later, earlier): (Vec<_>, Vec<_>) =
        migrations.into_iter().partition(|m| m.name().to_string().as_str() >= "2026-12-08-000000_providers");
    assert!(later.iter().any(|m| m.name().to_string().ends_with("_providers")));
    // Creates the migrations table (a fresh database has none applied).
    assert!(conn.applied_migrations()?.is_empty());
    for migration in &earlier {
        conn.run_migration(migration.as_ref())?;
    }
    conn.batch_execute(shared::PRE_PROVIDER_ROWS)?;
    drop(conn);
    shared::pre_provider_rows_are_dingtalks_after_the_upgrade(db.open().await?).await
}
