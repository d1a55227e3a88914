//! Tests of [`PgStore`], each on a fresh database of the local PostgreSQL
//! server ([`TestDatabase`], dropped at the end of the test). Without a
//! server reachable at build time they are built as ignored (`--cfg
//! pg_unavailable`, set by `adapters/build.rs` outside CI); a test that runs
//! without a reachable server fails.

use application::ports::{BindingStore, FeedCursorStore, ListUsers, LoginAttemptStore, StoreError, UserRepository};
use diesel_async::RunQueryDsl;

use super::testing::TestDatabase;
use super::{PgStore, migrate};
use crate::outbound::sql::event_tests as events;
use crate::outbound::sql::outbox_tests as outbox;
use crate::outbound::sql::store_tests as shared;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A fresh database and a store on it; `Err` (the test fails) without a reachable server.
pub(super) async fn fresh() -> Result<(TestDatabase, PgStore), Box<dyn std::error::Error + Send + Sync>> {
    let db = TestDatabase::create().await?;
    let store = PgStore::connect(db.url(), 4).await?;
    Ok((db, store))
}

use crate::outbound::sql::fixtures::*;

/// Runs one raw SQL statement on `store`'s database (the `sql` of the corrupt-row tests).
pub(super) async fn sql(store: &PgStore, query: &str) -> TestResult {
    diesel::sql_query(query).execute(&mut store.conn().await?).await?;
    Ok(())
}

// --- URLs and connecting ---------------------------------------------------

// --- connecting, migrations, the harness -------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn reconnecting_keeps_data_and_migrations_are_idempotent() -> TestResult {
    let (db, store) = fresh().await?;
    LoginAttemptStore::insert(&store, &attempt("h1", "/x", 10_000)).await?;
    drop(store);

    // `migrate` and a second `connect` apply nothing new.
    migrate(db.url()).await?;
    let again = PgStore::connect(db.url(), 2).await?;
    let taken = LoginAttemptStore::take(&again, "h1", ts(1)).await?;
    assert_eq!(taken, Some(attempt("h1", "/x", 10_000)));

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let applied: Count = diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut again.conn().await?)
        .await?;
    // init, bindings, outbox, events, feed_cursors, oidc, quota, reconcile_rounds, relay_sender,
    // recipient_ledger, claims, governor_lanes, shared_tokens, providers, delivery_ids
    assert_eq!(applied.n, 15);
    drop(again);
    db.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn concurrent_connects_migrate_once() -> TestResult {
    let db = TestDatabase::create().await?;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { PgStore::connect(&url, 1).await })
        })
        .collect();
    for task in tasks {
        task.await??.ping().await?;
    }
    db.drop_database().await?;
    Ok(())
}

#[tokio::test]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn connect_works_on_a_current_thread_runtime_too() -> TestResult {
    let db = TestDatabase::create().await?;
    let store = PgStore::connect(db.url(), 1).await?;
    LoginAttemptStore::insert(&store, &attempt("h1", "/", 10)).await?;
    assert!(LoginAttemptStore::take(&store, "h1", ts(1)).await?.is_some());
    drop(store);
    db.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn ping_answers_and_an_unreachable_server_is_unavailable() -> TestResult {
    let (_db, store) = fresh().await?;
    store.ping().await?;
    // Nothing listens on port 1.
    let err = PgStore::connect("postgres://postgres:secret@127.0.0.1:1/x", 1).await.err();
    assert!(
        matches!(&err, Some(StoreError::Unavailable(m)) if m.contains("127.0.0.1:1") && !m.contains("secret")),
        "{err:?}"
    );
    let err = migrate("postgres://postgres@127.0.0.1:1/x").await.err();
    assert!(matches!(&err, Some(StoreError::Unavailable(_))), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn test_databases_are_distinct_and_dropped() -> TestResult {
    let (a, b) = (TestDatabase::create().await?, TestDatabase::create().await?);
    assert_ne!(a.url(), b.url());
    assert!(a.name().starts_with("dingbridge_test_"));
    let admin =
        std::env::var(super::testing::ADMIN_URL_VAR).unwrap_or_else(|_| super::testing::DEFAULT_ADMIN_URL.to_owned());
    let exists = async |name: String| -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        use diesel_async::AsyncConnection;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel_async::AsyncPgConnection::establish(&admin).await?;
        let found: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await?;
        Ok(found.n == 1)
    };
    let (name_a, name_b) = (a.name().to_owned(), b.name().to_owned());
    assert!(exists(name_a.clone()).await?);
    // Dropped explicitly, even with a connection still open to it…
    let store = PgStore::connect(a.url(), 1).await?;
    store.ping().await?;
    a.drop_database().await?;
    assert!(!exists(name_a).await?);
    // …or when the value goes away.
    drop(b);
    assert!(!exists(name_b).await?);
    Ok(())
}

// --- login attempts ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn attempts_are_single_use() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::attempts_are_single_use(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_duplicate_attempt_is_a_conflict() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_duplicate_attempt_is_a_conflict(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn an_expired_attempt_is_not_returned_and_is_removed() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::an_expired_attempt_is_not_returned_and_is_removed(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn purge_removes_only_expired_attempts() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::purge_removes_only_expired_attempts(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn of_20_concurrent_takes_exactly_one_succeeds() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::of_20_concurrent_takes_exactly_one_succeeds(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn an_unsafe_stored_return_to_is_a_corrupt_row() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::an_unsafe_stored_return_to_is_a_corrupt_row(store, sql).await
}

// --- login intents and results ----------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn intents_are_single_use_and_expire() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::intents_are_single_use_and_expire(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn results_are_taken_only_by_their_client() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::results_are_taken_only_by_their_client(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn expired_results_are_removed_and_purged() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::expired_results_are_removed_and_purged(store).await
}

// --- sessions ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn sessions_are_found_until_they_expire_and_can_be_deleted() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::sessions_are_found_until_they_expire_and_can_be_deleted(store).await
}

// --- users -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn upsert_creates_then_updates_keeping_id_and_created_at() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::upsert_creates_then_updates_keeping_id_and_created_at(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn users_are_found_by_userid_within_their_corp() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::users_are_found_by_userid_within_their_corp(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn list_pages_in_creation_order_and_filters_by_corp() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::list_pages_in_creation_order_and_filters_by_corp(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_userid_taken_by_another_union_id_is_a_conflict() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_userid_taken_by_another_union_id_is_a_conflict(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_user_row_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_user_row_with_corrupt_json_is_an_error_not_a_panic(store, sql).await
}

// --- bindings ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn bindings_are_put_replaced_and_found() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::bindings_are_put_replaced_and_found(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_binding_taken_by_another_user_is_a_conflict() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_binding_taken_by_another_user_is_a_conflict(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_binding_of_an_unknown_user_is_an_error() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_binding_of_an_unknown_user_is_an_error(store).await
}

// --- messages ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn messages_round_trip_and_update() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::messages_round_trip_and_update(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_message_row_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_message_row_with_corrupt_json_is_an_error_not_a_panic(store, sql).await
}

// --- the outbox (shared contract: `sql::outbox_tests`) -----------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_find_by_idempotency_key() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::find_by_idempotency_key(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_a_duplicate_idempotency_key_is_a_conflict() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::a_duplicate_idempotency_key_is_a_conflict(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_update_stamps_sent_and_finished_once() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::update_stamps_sent_and_finished_once(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_update_stamps_relayed_once() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::update_stamps_relayed_once(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_relayed_messages_can_be_read_back() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::relayed_messages_can_be_read_back(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_claim_due_claims_only_due_pending_messages() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::claim_due_claims_only_due_pending_messages(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_claim_due_respects_the_limit_oldest_first() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::claim_due_respects_the_limit_oldest_first(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_claim_due_prefers_the_earliest_due() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::claim_due_prefers_the_earliest_due(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_concurrent_claims_claim_each_message_exactly_once() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::concurrent_claims_claim_each_message_exactly_once(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_reschedule_sets_the_next_attempt_and_the_error() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::reschedule_sets_the_next_attempt_and_the_error(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn outbox_list_pages_newest_first_and_filters() -> TestResult {
    let (_db, store) = fresh().await?;
    outbox::list_pages_newest_first_and_filters(store).await
}

// --- relayed messages --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn relay_insert_or_get_is_idempotent() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::relay_insert_or_get_is_idempotent(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn relay_due_messages_wait_until_their_retry_and_are_released_for_their_reason() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::relay_due_messages_wait_until_their_retry_and_are_released_for_their_reason(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn relay_claims_are_exclusive_fenced_and_report_uncertain_batches() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::relay_claims_are_exclusive_fenced_and_report_uncertain_batches(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn relay_list_in_state_filters_by_state_and_age_least_recently_updated_first() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::relay_list_in_state_filters_by_state_and_age_least_recently_updated_first(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn relay_batches_and_state_are_recorded() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::relay_batches_and_state_are_recorded(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_relay_batch_with_corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::a_relay_batch_with_corrupt_json_is_an_error_not_a_panic(store, sql).await
}

// --- concurrency -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn concurrent_relay_inserts_of_one_key_create_it_once() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::concurrent_relay_inserts_of_one_key_create_it_once(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn concurrent_upserts_of_one_person_keep_one_user() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::concurrent_upserts_of_one_person_keep_one_user(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn concurrent_puts_of_one_binding_all_succeed() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::concurrent_puts_of_one_binding_all_succeed(store).await
}

/// Concurrent `INSERT … ON CONFLICT (key) DO UPDATE`s of one new key can trip
/// the table's other unique constraint (see `sql::stores`); the upserts'
/// retry must hide that. Without it, about 2% of these upserts failed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn upserts_released_together_never_conflict() -> TestResult {
    let db = TestDatabase::create().await?;
    let store = PgStore::connect(db.url(), 16).await?;
    for round in 0..40 {
        store
            .upsert(
                &profile("dingcorp", &format!("union-b{round}"), &format!("b{round}"), "B"),
                &format!("b{round}"),
                ts(1),
            )
            .await?;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let person = profile("dingcorp", &format!("union-{round}"), &format!("u{round}"), "A");
                    store.ping().await?;
                    barrier.wait().await;
                    store.upsert(&person, &format!("user-{round}-{i}"), ts(1)).await?;
                    store.put(&binding(&format!("b{round}"), None, &format!("E{round}"), i)).await
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
    }
    let all = UserRepository::list(&store, &ListUsers { corp_id: None, limit: 500, offset: 0 }).await?;
    assert_eq!(all.len(), 80);
    drop(store);
    db.drop_database().await?;
    Ok(())
}

// --- event callbacks (shared contract: `sql::event_tests`) -------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn suite_a_new_ticket_replaces_the_old() -> TestResult {
    let (_db, store) = fresh().await?;
    events::a_new_ticket_replaces_the_old(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn suite_authorizations_are_upserted_replaced_and_listed() -> TestResult {
    let (_db, store) = fresh().await?;
    events::authorizations_are_upserted_replaced_and_listed(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_expired_nonces_are_purged_in_bounded_batches() -> TestResult {
    let (_db, store) = fresh().await?;
    events::expired_nonces_are_purged_in_bounded_batches(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_a_nonce_is_new_once_until_it_expires() -> TestResult {
    let (_db, store) = fresh().await?;
    events::a_nonce_is_new_once_until_it_expires(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_a_contact_push_remembers_its_nonce_and_appends_in_one_write() -> TestResult {
    let (_db, store) = fresh().await?;
    events::a_contact_push_remembers_its_nonce_and_appends_in_one_write(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_of_10_concurrent_same_nonces_exactly_one_is_new() -> TestResult {
    let (_db, store) = fresh().await?;
    events::of_10_concurrent_same_nonces_exactly_one_is_new(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_append_assigns_increasing_cursors_once_per_corp_event() -> TestResult {
    let (_db, store) = fresh().await?;
    events::append_assigns_increasing_cursors_once_per_corp_event(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_read_after_filters_by_corp_and_cursor_in_order() -> TestResult {
    let (_db, store) = fresh().await?;
    events::read_after_filters_by_corp_and_cursor_in_order(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_a_reader_following_concurrent_appends_misses_nothing() -> TestResult {
    let (_db, store) = fresh().await?;
    events::a_reader_following_concurrent_appends_misses_nothing(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_an_append_wakes_a_waiting_reader_and_a_duplicate_does_not() -> TestResult {
    let (_db, store) = fresh().await?;
    events::an_append_wakes_a_waiting_reader_and_a_duplicate_does_not(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn feed_cursors_start_empty_and_only_move_forward() -> TestResult {
    let (_db, store) = fresh().await?;
    events::feed_cursors_start_empty_and_only_move_forward(store).await
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn feed_cursors_survive_reopening() -> TestResult {
    let (db, store) = fresh().await?;
    FeedCursorStore::save_cursor(&store, "contact_events", 42, ts(1_000)).await?;
    drop(store);
    migrate(db.url()).await?;
    let again = PgStore::connect(db.url(), 2).await?;
    assert_eq!(FeedCursorStore::cursor(&again, "contact_events").await?, Some(42));
    drop(again);
    db.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn events_survive_reopening_and_migrations_are_idempotent() -> TestResult {
    let (db, store) = fresh().await?;
    events::write_event_data(&store).await?;
    drop(store);
    migrate(db.url()).await?;
    let again = PgStore::connect(db.url(), 2).await?;
    events::event_data_is_still_there(&again).await?;
    drop(again);
    db.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn corrupt_event_rows_are_errors_not_panics() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::corrupt_event_rows_are_errors_not_panics(store, sql).await
}

// --- quota accounting ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn metered_calls_add_up_per_corp_and_month_and_the_mark_sticks() -> TestResult {
    let (_db, store) = fresh().await?;
    shared::metered_calls_add_up_per_corp_and_month_and_the_mark_sticks(store).await
}

// --- providers side by side: an existing database upgrades in place -----------

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_database_from_before_providers_upgrades_in_place_and_its_rows_are_dingtalks() -> TestResult {
    let db = TestDatabase::create().await?;
    // A database as the release before providers left it: every migration but `providers`.
    use diesel::connection::SimpleConnection;
    use diesel_async::AsyncConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::MigrationHarness;

    use super::{Conn, MIGRATIONS};

    let conn = Conn::establish(db.url()).await?;
    tokio::task::spawn_blocking(move || -> TestResult {
        let mut conn = AsyncConnectionWrapper::<Conn>::from(conn);
        let migrations = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)?;
        // Names start with their date, so the ones before `providers` sort before it.
        let (later, earlier): (Vec<_>, Vec<_>) =
            migrations.into_iter().partition(|m| m.name().to_string().as_str() >= "2026-12-08-000000_providers");
        assert!(later.iter().any(|m| m.name().to_string().ends_with("_providers")));
        assert!(conn.applied_migrations()?.is_empty());
        for migration in &earlier {
            conn.run_migration(migration.as_ref())?;
        }
        conn.batch_execute(shared::PRE_PROVIDER_ROWS)?;
        Ok(())
    })
    .await??;

    let store = PgStore::connect(db.url(), 2).await?;
    shared::pre_provider_rows_are_dingtalks_after_the_upgrade(store).await?;
    db.drop_database().await?;
    Ok(())
}
