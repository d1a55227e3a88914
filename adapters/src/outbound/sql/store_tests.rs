//! The contracts of the remaining store ports (login attempts, intents and results, sessions, users,
//! bindings, messages, relayed messages, and the rows they refuse to misread), written once over any
//! store and run on SQLite (`sqlite::tests`) and PostgreSQL (`postgres::tests`). Each function expects
//! an empty store. The corrupt-row tests also take `sql`, the backend's way of running one raw SQL
//! statement on the store's database behind its back.

use application::ports::{
    BindingStore, EventStore, ListUsers, LoginAttemptStore, LoginIntentStore, LoginOutcome, LoginResultStore,
    MessageRecord, MessageStore, QuotaStore, RelayMessageStore, RelayWaiting, SessionStore, StoreError, SuiteStore,
    UserRepository, WaitReason,
};
use domain::{DeliveryId, LoginFailure, MessageState, Recipients, UserId};

use super::event_tests::write_event_data;
use super::fixtures::*;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

// --- login attempts ----------------------------------------------------------

pub(crate) async fn attempts_are_single_use<S: LoginAttemptStore>(store: S) -> TestResult {
    let a = attempt("hash-a", "/inbox?x=1", 10_000);
    LoginAttemptStore::insert(&store, &a).await?;
    assert_eq!(LoginAttemptStore::take(&store, "hash-a", ts(9_999)).await?, Some(a));
    assert_eq!(LoginAttemptStore::take(&store, "hash-a", ts(9_999)).await?, None);
    assert_eq!(LoginAttemptStore::take(&store, "unknown", ts(0)).await?, None);
    Ok(())
}

pub(crate) async fn a_duplicate_attempt_is_a_conflict<S: LoginAttemptStore>(store: S) -> TestResult {
    LoginAttemptStore::insert(&store, &attempt("dup", "/", 10)).await?;
    let err = LoginAttemptStore::insert(&store, &attempt("dup", "/", 10)).await.err();
    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("login_attempts_pkey")), "{err:?}");
    Ok(())
}

pub(crate) async fn an_expired_attempt_is_not_returned_and_is_removed<S: LoginAttemptStore>(store: S) -> TestResult {
    LoginAttemptStore::insert(&store, &attempt("old", "/", 5_000)).await?;
    // expires_at == now counts as expired.
    assert_eq!(LoginAttemptStore::take(&store, "old", ts(5_000)).await?, None);
    // The row is gone: not even an earlier clock finds it.
    assert_eq!(LoginAttemptStore::take(&store, "old", ts(0)).await?, None);
    Ok(())
}

pub(crate) async fn purge_removes_only_expired_attempts<S: LoginAttemptStore>(store: S) -> TestResult {
    for (hash, expires) in [("a", 100), ("b", 200), ("c", 300)] {
        LoginAttemptStore::insert(&store, &attempt(hash, "/", expires)).await?;
    }
    assert_eq!(LoginAttemptStore::purge_expired(&store, ts(200)).await?, 2);
    assert!(LoginAttemptStore::take(&store, "c", ts(0)).await?.is_some());
    Ok(())
}

pub(crate) async fn of_20_concurrent_takes_exactly_one_succeeds<S>(store: S) -> TestResult
where
    S: LoginAttemptStore + Clone + 'static,
{
    LoginAttemptStore::insert(&store, &attempt("race", "/", 10_000)).await?;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { LoginAttemptStore::take(&store, "race", ts(1)).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if task.await??.is_some() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    Ok(())
}

pub(crate) async fn an_unsafe_stored_return_to_is_a_corrupt_row<S: LoginAttemptStore>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult {
    LoginAttemptStore::insert(&store, &attempt("h", "/ok", 10)).await?;
    sql(&store, "UPDATE login_attempts SET return_to = '//evil.example/'").await?;
    let err = LoginAttemptStore::take(&store, "h", ts(1)).await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in login_attempts")), "{err:?}");
    Ok(())
}

// --- login intents and results ----------------------------------------------

pub(crate) async fn intents_are_single_use_and_expire<S: LoginIntentStore>(store: S) -> TestResult {
    LoginIntentStore::insert(&store, &intent("i1", 10_000)).await?;
    assert!(matches!(LoginIntentStore::insert(&store, &intent("i1", 10_000)).await, Err(StoreError::Conflict(_))));
    assert_eq!(LoginIntentStore::take(&store, "i1", ts(1)).await?, Some(intent("i1", 10_000)));
    assert_eq!(LoginIntentStore::take(&store, "i1", ts(1)).await?, None);

    LoginIntentStore::insert(&store, &intent("i2", 100)).await?;
    LoginIntentStore::insert(&store, &intent("i3", 1_000)).await?;
    assert_eq!(LoginIntentStore::take(&store, "i2", ts(100)).await?, None);
    assert_eq!(LoginIntentStore::take(&store, "i2", ts(0)).await?, None);
    assert_eq!(LoginIntentStore::purge_expired(&store, ts(1_000)).await?, 1);
    Ok(())
}

pub(crate) async fn results_are_taken_only_by_their_client<S: LoginResultStore>(store: S) -> TestResult {
    let ok: LoginOutcome = Ok(profile("dingcorp", "union-1", "manager4220", "张三"));
    LoginResultStore::insert(&store, "r1", "client-a", &ok, ts(10_000)).await?;
    assert!(matches!(
        LoginResultStore::insert(&store, "r1", "client-a", &ok, ts(10_000)).await,
        Err(StoreError::Conflict(_))
    ));

    // Another client: not returned, not removed.
    assert_eq!(LoginResultStore::take(&store, "r1", "client-b", ts(1)).await?, None);
    assert_eq!(LoginResultStore::take(&store, "r1", "client-a", ts(1)).await?, Some(ok));
    assert_eq!(LoginResultStore::take(&store, "r1", "client-a", ts(1)).await?, None);

    let failed: LoginOutcome = Err(LoginFailure::ConsentDenied { error: "access_denied".into() });
    LoginResultStore::insert(&store, "r2", "client-a", &failed, ts(10_000)).await?;
    assert_eq!(LoginResultStore::take(&store, "r2", "client-a", ts(1)).await?, Some(failed));
    Ok(())
}

pub(crate) async fn expired_results_are_removed_and_purged<S: LoginResultStore>(store: S) -> TestResult {
    let outcome: LoginOutcome = Err(LoginFailure::NotMember);
    LoginResultStore::insert(&store, "r1", "client-a", &outcome, ts(100)).await?;
    LoginResultStore::insert(&store, "r2", "client-a", &outcome, ts(100)).await?;
    LoginResultStore::insert(&store, "r3", "client-a", &outcome, ts(900)).await?;
    assert_eq!(LoginResultStore::take(&store, "r1", "client-a", ts(100)).await?, None);
    assert_eq!(LoginResultStore::take(&store, "r1", "client-a", ts(0)).await?, None);
    assert_eq!(LoginResultStore::purge_expired(&store, ts(500)).await?, 1);
    assert_eq!(LoginResultStore::take(&store, "r3", "client-a", ts(0)).await?, Some(outcome));
    Ok(())
}

// --- sessions ----------------------------------------------------------------

pub(crate) async fn sessions_are_found_until_they_expire_and_can_be_deleted<S: UserRepository + SessionStore>(
    store: S,
) -> TestResult {
    store.upsert(&profile("dingcorp", "union-1", "u1", "A"), "user-1", ts(1)).await?;
    store.upsert(&profile("dingcorp", "union-2", "u2", "B"), "user-2", ts(1)).await?;

    SessionStore::insert(&store, &session("s1", "user-1", 1_000)).await?;
    SessionStore::insert(&store, &session("s2", "user-1", 1_000)).await?;
    SessionStore::insert(&store, &session("s3", "user-2", 1_000)).await?;
    assert!(matches!(SessionStore::insert(&store, &session("s1", "user-2", 5)).await, Err(StoreError::Conflict(_))));
    // The user must exist (foreign key).
    assert!(matches!(SessionStore::insert(&store, &session("s9", "nobody", 5)).await, Err(StoreError::Other(_))));

    assert_eq!(SessionStore::find(&store, "s1", ts(999)).await?, Some(session("s1", "user-1", 1_000)));
    assert_eq!(SessionStore::find(&store, "s1", ts(1_000)).await?, None);
    assert_eq!(SessionStore::find(&store, "nope", ts(0)).await?, None);

    assert!(SessionStore::delete(&store, "s1").await?);
    assert!(!SessionStore::delete(&store, "s1").await?);
    assert_eq!(SessionStore::find(&store, "s1", ts(0)).await?, None);

    assert_eq!(store.delete_for_user("user-1").await?, 1);
    assert_eq!(store.delete_for_user("user-1").await?, 0);
    assert_eq!(SessionStore::find(&store, "s2", ts(0)).await?, None);
    assert!(SessionStore::find(&store, "s3", ts(0)).await?.is_some());
    Ok(())
}

// --- users -------------------------------------------------------------------

pub(crate) async fn upsert_creates_then_updates_keeping_id_and_created_at<S: UserRepository>(store: S) -> TestResult {
    let first = profile("dingcorp", "union-1", "manager4220", "张三");
    let created = store.upsert(&first, "user-1", ts(100)).await?;
    assert_eq!(created.id, "user-1");
    assert_eq!(created.profile, first);
    assert_eq!((created.created_at, created.updated_at), (ts(100), ts(100)));

    let mut second = first.clone();
    second.name = "张三丰".into();
    second.title = None;
    second.open_id = None;
    second.dept_ids = vec![dept(7)];
    second.active = false;
    let updated = store.upsert(&second, "user-2", ts(200)).await?;
    assert_eq!(updated.id, "user-1");
    assert_eq!(updated.created_at, ts(100));
    assert_eq!(updated.updated_at, ts(200));
    assert_eq!(updated.profile, second);
    assert_eq!(UserRepository::find(&store, "user-1").await?, Some(updated));
    assert_eq!(UserRepository::find(&store, "user-2").await?, None);
    Ok(())
}

pub(crate) async fn users_are_found_by_userid_within_their_corp<S: UserRepository>(store: S) -> TestResult {
    let user = store.upsert(&profile("dingcorp", "union-1", "manager4220", "A"), "user-1", ts(1)).await?;
    store.upsert(&profile("dingother", "union-1", "manager4220", "A elsewhere"), "user-2", ts(1)).await?;
    assert_eq!(store.find_by_userid(&corp("dingcorp"), &uid("manager4220")).await?, Some(user));
    let other = store.find_by_userid(&corp("dingother"), &uid("manager4220")).await?;
    assert_eq!(other.map(|u| u.id), Some("user-2".to_owned()));
    assert_eq!(store.find_by_userid(&corp("dingcorp"), &uid("nobody")).await?, None);
    assert_eq!(store.find_by_userid(&corp("dingnone"), &uid("manager4220")).await?, None);
    Ok(())
}

pub(crate) async fn list_pages_in_creation_order_and_filters_by_corp<S: UserRepository>(store: S) -> TestResult {
    // Created out of id order; two share a created_at (then ordered by id).
    let specs = [("u-c", "dingcorp", 3), ("u-a", "dingcorp", 1), ("u-x", "dingother", 2), ("u-b", "dingcorp", 3)];
    for (id, corp_id, at) in specs {
        store.upsert(&profile(corp_id, &format!("union-{id}"), &format!("uid-{id}"), id), id, ts(at)).await?;
    }
    let ids = |users: Vec<domain::User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let all = UserRepository::list(&store, &ListUsers { corp_id: None, limit: 10, offset: 0 }).await?;
    assert_eq!(ids(all), ["u-a", "u-x", "u-b", "u-c"]);
    let page = UserRepository::list(&store, &ListUsers { corp_id: None, limit: 2, offset: 1 }).await?;
    assert_eq!(ids(page), ["u-x", "u-b"]);
    let corp_page =
        UserRepository::list(&store, &ListUsers { corp_id: Some(corp("dingcorp")), limit: 2, offset: 1 }).await?;
    assert_eq!(ids(corp_page), ["u-b", "u-c"]);
    let beyond =
        UserRepository::list(&store, &ListUsers { corp_id: Some(corp("dingcorp")), limit: 5, offset: 3 }).await?;
    assert!(beyond.is_empty());
    Ok(())
}

pub(crate) async fn a_userid_taken_by_another_union_id_is_a_conflict<S: UserRepository>(store: S) -> TestResult {
    store.upsert(&profile("dingcorp", "union-1", "manager4220", "A"), "user-1", ts(1)).await?;
    // A new person with the same (corp, userid).
    let err = store.upsert(&profile("dingcorp", "union-2", "manager4220", "B"), "user-2", ts(2)).await.err();
    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("users_corp_userid_key")), "{err:?}");
    // An existing person moved onto someone else's userid.
    store.upsert(&profile("dingcorp", "union-3", "other", "C"), "user-3", ts(3)).await?;
    let err = store.upsert(&profile("dingcorp", "union-3", "manager4220", "C"), "user-4", ts(4)).await.err();
    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("users_corp_userid_key")), "{err:?}");
    // A reused new id is a conflict on the primary key.
    let err = store.upsert(&profile("dingcorp", "union-5", "five", "E"), "user-1", ts(5)).await.err();
    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("users_pkey")), "{err:?}");
    Ok(())
}

pub(crate) async fn a_user_row_with_corrupt_json_is_an_error_not_a_panic<S: UserRepository>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult {
    store.upsert(&profile("dingcorp", "union-1", "manager4220", "A"), "user-1", ts(1)).await?;
    sql(&store, "UPDATE users SET dept_ids = '[1, \"x\"'").await?;
    let err = UserRepository::find(&store, "user-1").await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in users (user-1)")), "{err:?}");
    let listed = UserRepository::list(&store, &ListUsers { corp_id: None, limit: 10, offset: 0 }).await;
    assert!(matches!(listed, Err(StoreError::Other(_))));
    Ok(())
}

// --- bindings ----------------------------------------------------------------

pub(crate) async fn bindings_are_put_replaced_and_found<S: UserRepository + BindingStore>(store: S) -> TestResult {
    for (n, at) in [(1, 1), (2, 1), (3, 1)] {
        store
            .upsert(&profile("dingcorp", &format!("union-{n}"), &format!("u{n}"), "A"), &format!("user-{n}"), ts(at))
            .await?;
    }
    assert_eq!(BindingStore::get(&store, "user-1").await?, None);

    let first = binding("user-1", None, "E001", 10);
    store.put(&first).await?;
    assert_eq!(BindingStore::get(&store, "user-1").await?, Some(first.clone()));
    assert_eq!(store.find_by_external_id(None, "E001").await?, Some(first));
    // Another tenant's E001 is another account.
    assert_eq!(store.find_by_external_id(Some("t1".into()), "E001").await?, None);

    // Replacing moves the user to the new id; the old one is free again.
    let replaced = binding("user-1", Some("t1"), "E001", 20);
    store.put(&replaced).await?;
    assert_eq!(BindingStore::get(&store, "user-1").await?, Some(replaced.clone()));
    assert_eq!(store.find_by_external_id(None, "E001").await?, None);
    assert_eq!(store.find_by_external_id(Some("t1".into()), "E001").await?, Some(replaced.clone()));
    // Putting the same binding again is fine (only updated_at changes).
    store.put(&binding("user-1", Some("t1"), "E001", 30)).await?;
    assert_eq!(BindingStore::get(&store, "user-1").await?.map(|b| b.updated_at), Some(ts(30)));

    // The same external id in another tenant, or without one, can go to others.
    store.put(&binding("user-2", Some("t2"), "E001", 40)).await?;
    store.put(&binding("user-3", None, "E001", 40)).await?;
    assert_eq!(store.find_by_external_id(None, "E001").await?.map(|b| b.user_id), Some("user-3".to_owned()));
    assert_eq!(
        store.find_by_external_id(Some("t2".into()), "E001").await?.map(|b| b.user_id),
        Some("user-2".to_owned())
    );
    Ok(())
}

pub(crate) async fn a_binding_taken_by_another_user_is_a_conflict<S: UserRepository + BindingStore>(
    store: S,
) -> TestResult {
    for n in 1..=2 {
        store
            .upsert(&profile("dingcorp", &format!("union-{n}"), &format!("u{n}"), "A"), &format!("user-{n}"), ts(1))
            .await?;
    }
    store.put(&binding("user-1", Some("t1"), "E001", 10)).await?;
    store.put(&binding("user-2", None, "E002", 10)).await?;

    for taken in [binding("user-2", Some("t1"), "E001", 20), binding("user-1", None, "E002", 20)] {
        let err = store.put(&taken).await.err();
        assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("bindings_tenant_external_key")), "{err:?}");
    }
    // Nothing changed.
    assert_eq!(BindingStore::get(&store, "user-1").await?, Some(binding("user-1", Some("t1"), "E001", 10)));
    assert_eq!(BindingStore::get(&store, "user-2").await?, Some(binding("user-2", None, "E002", 10)));
    Ok(())
}

pub(crate) async fn a_binding_of_an_unknown_user_is_an_error<S: BindingStore>(store: S) -> TestResult {
    let err = store.put(&binding("nobody", None, "E001", 10)).await.err();
    assert!(matches!(&err, Some(StoreError::Other(_))), "{err:?}");
    assert_eq!(store.find_by_external_id(None, "E001").await?, None);
    Ok(())
}

// --- messages ----------------------------------------------------------------

pub(crate) async fn messages_round_trip_and_update<S: MessageStore>(store: S) -> TestResult {
    let to_some = message("m1", Recipients::new(vec![uid("a"), uid("b")], vec![dept(3)])?);
    let to_all = message("m2", Recipients::everyone());
    MessageStore::insert(&store, &to_some).await?;
    MessageStore::insert(&store, &to_all).await?;
    let err = MessageStore::insert(&store, &to_some).await.err();
    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("messages_pkey")), "{err:?}");
    assert_eq!(MessageStore::get(&store, "m1").await?, Some(to_some.clone()));
    assert_eq!(MessageStore::get(&store, "m2").await?, Some(to_all));
    assert_eq!(MessageStore::get(&store, "m3").await?, None);

    store.update("m1", MessageState::Sent, &[task(11), task(12)], None, ts(2_000)).await?;
    let sent = MessageStore::get(&store, "m1").await?;
    let expected = MessageRecord {
        state: MessageState::Sent,
        delivery_ids: vec![task(11), task(12)],
        updated_at: ts(2_000),
        relayed_at: Some(ts(2_000)),
        sent_at: Some(ts(2_000)),
        ..to_some.clone()
    };
    assert_eq!(sent, Some(expected.clone()));

    store.update("m1", MessageState::Failed, &[task(11)], Some("40035: bad agent".into()), ts(3_000)).await?;
    let failed = MessageStore::get(&store, "m1").await?;
    assert_eq!(
        failed.as_ref().map(|m| (m.state, m.error.as_deref())),
        Some((MessageState::Failed, Some("40035: bad agent")))
    );
    assert_eq!(
        failed.map(|m| (m.delivery_ids, m.created_at, m.updated_at)),
        Some((vec![task(11)], ts(1_000), ts(3_000)))
    );

    let unknown = store.update("nope", MessageState::Sent, &[], None, ts(1)).await;
    assert!(matches!(unknown, Err(StoreError::Other(_))));
    Ok(())
}

pub(crate) async fn a_message_row_with_corrupt_json_is_an_error_not_a_panic<S: MessageStore>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult {
    MessageStore::insert(&store, &message("m1", Recipients::everyone())).await?;
    MessageStore::insert(&store, &message("m2", Recipients::everyone())).await?;
    MessageStore::insert(&store, &message("m3", Recipients::everyone())).await?;
    sql(&store, "UPDATE messages SET body = 'not json' WHERE id = 'm1'").await?;
    sql(&store, "UPDATE messages SET body = '{\"msgtype\":\"nope\"}' WHERE id = 'm2'").await?;
    sql(&store, "UPDATE messages SET state = 'lost' WHERE id = 'm3'").await?;
    for id in ["m1", "m2", "m3"] {
        let err = MessageStore::get(&store, id).await.err();
        assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in messages")), "{err:?}");
    }
    Ok(())
}

// --- event and suite rows ----------------------------------------------------

pub(crate) async fn corrupt_event_rows_are_errors_not_panics<S: SuiteStore + EventStore>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult {
    write_event_data(&store).await?;
    sql(&store, "UPDATE contact_events SET userids = '[\"a b\"]'").await?;
    sql(&store, "UPDATE corp_authorizations SET agent_id = 0").await?;

    let err = EventStore::read_after(&store, &[corp("dinga")], 0, 10).await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in contact_events")), "{err:?}");
    let err = SuiteStore::authorization(&store, "suite-a", &corp("dinga")).await.err();
    assert!(
        matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in corp_authorizations")),
        "{err:?}"
    );
    let err = SuiteStore::authorizations(&store, "suite-a").await.err();
    assert!(matches!(&err, Some(StoreError::Other(_))), "{err:?}");
    Ok(())
}

// --- relayed messages --------------------------------------------------------

pub(crate) async fn relay_insert_or_get_is_idempotent<S: RelayMessageStore>(store: S) -> TestResult {
    let users: Vec<UserId> = (0..150).map(|i| uid(&format!("user{i:03}"))).collect();
    let record = relay_record("client-a", "msg-1", &Recipients::new(users, vec![dept(5)])?);
    assert_eq!(record.batches.len(), 2);

    let (stored, created) = store.insert_or_get(&record).await?;
    assert!(created);
    assert_eq!(stored, record);

    let mut again = relay_record("client-a", "msg-1", &Recipients::everyone());
    again.created_at = ts(9_999);
    let (existing, created) = store.insert_or_get(&again).await?;
    assert!(!created);
    assert_eq!(existing, record);

    // The same key of another client is another message.
    let (_, created) = store.insert_or_get(&relay_record("client-b", "msg-1", &Recipients::everyone())).await?;
    assert!(created);
    assert_eq!(RelayMessageStore::get(&store, "client-a", "msg-1").await?, Some(record));
    assert_eq!(RelayMessageStore::get(&store, "client-c", "msg-1").await?.map(|r| r.key), None);
    Ok(())
}

pub(crate) async fn relay_list_in_state_filters_by_state_and_age_least_recently_updated_first<S: RelayMessageStore>(
    store: S,
) -> TestResult {
    for (key, created, updated, state) in [
        ("old", 100, 100, MessageState::Sent),
        ("a", 2_000, 5_000, MessageState::Sent),
        ("b", 3_000, 4_000, MessageState::Sent),
        ("c", 3_000, 3_000, MessageState::Completed),
    ] {
        let mut record = relay_record("client-a", key, &Recipients::everyone());
        record.created_at = ts(created);
        store.insert_or_get(&record).await?;
        store.set_state("client-a", key, state, ts(updated)).await?;
    }
    let listed = store.list_in_state(MessageState::Sent, ts(1_000), 2, 10).await?;
    assert_eq!(listed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["b", "a"]);
    assert_eq!(listed[0].batches.len(), 1, "batches are loaded");
    assert_eq!(store.list_in_state(MessageState::Sent, ts(1_000), 2, 1).await?.len(), 1);
    // Each round counts; a message out of budget is no longer listed.
    store.record_reconcile_round("client-a", "b", MessageState::Sent, ts(6_000)).await?;
    let listed = store.list_in_state(MessageState::Sent, ts(1_000), 2, 10).await?;
    assert_eq!(listed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["a", "b"], "b was touched");
    store.record_reconcile_round("client-a", "b", MessageState::Sent, ts(7_000)).await?;
    let listed = store.list_in_state(MessageState::Sent, ts(1_000), 2, 10).await?;
    assert_eq!(listed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["a"], "b spent its 2 rounds");
    store.record_reconcile_round("client-a", "a", MessageState::Completed, ts(8_000)).await?;
    assert!(store.list_in_state(MessageState::Sent, ts(1_000), 2, 10).await?.is_empty());
    assert_eq!(store.get("client-a", "a").await?.map(|r| r.state), Some(MessageState::Completed));
    assert!(store.record_reconcile_round("client-a", "nope", MessageState::Sent, ts(9_000)).await.is_err());
    Ok(())
}

pub(crate) async fn relay_due_messages_wait_until_their_retry_and_are_released_for_their_reason<
    S: RelayMessageStore,
>(
    store: S,
) -> TestResult {
    for (key, created) in [("q1", 1_000), ("q2", 2_000), ("t", 3_000), ("new", 4_000), ("sent", 500)] {
        let mut record = relay_record("client-a", key, &Recipients::everyone());
        record.created_at = ts(created);
        store.insert_or_get(&record).await?;
    }
    store.set_state("client-a", "sent", MessageState::Sent, ts(5_000)).await?;
    let keys = |claimed: Vec<application::ports::ClaimedRelay>| -> Vec<String> {
        claimed.into_iter().map(|c| c.record.key).collect()
    };
    // A claim that ends at `now`: the next claim at a later time may take the message again.
    let due = |now: i64, limit: u32| store.claim_due("test", ts(now), ts(now), limit);
    // Never attempted: due at once, oldest first; a sent message never is; a claimed one is
    // skipped while its claim lasts.
    assert_eq!(keys(due(5_000, 2).await?), ["q1", "q2"]);
    assert_eq!(keys(due(5_000, 10).await?), ["t", "new"]);
    let waiting = |reason: WaitReason, retry_at: i64| RelayWaiting {
        reason,
        detail: format!("held: {}", reason.as_str()),
        retry_at: ts(retry_at),
    };
    store.record_waiting("client-a", "q1", &waiting(WaitReason::WaitingQuota, 60_000), ts(5_000)).await?;
    store.record_waiting("client-a", "q2", &waiting(WaitReason::WaitingQuota, 60_000), ts(5_000)).await?;
    store.record_waiting("client-a", "t", &waiting(WaitReason::Throttled, 7_000), ts(5_000)).await?;
    store.record_waiting("client-a", "t", &waiting(WaitReason::Throttled, 9_000), ts(7_000)).await?;
    assert_eq!(keys(due(8_000, 10).await?), ["new"]);
    assert_eq!(keys(due(9_000, 10).await?), ["t", "new"]);
    // The record carries its attempts and why it waits.
    let t = store.get("client-a", "t").await?.ok_or("t is gone")?;
    assert_eq!((t.attempts, t.waiting), (2, Some(waiting(WaitReason::Throttled, 9_000))));
    // An operator's resume makes the quota's messages of that corp due now, and nothing else.
    assert_eq!(store.release_waiting(&corp("dingother"), WaitReason::WaitingQuota, ts(9_500)).await?, 0);
    assert_eq!(store.release_waiting(&corp("dingcorp"), WaitReason::WaitingQuota, ts(9_500)).await?, 2);
    assert_eq!(keys(due(9_500, 10).await?), ["q1", "q2", "t", "new"]);
    assert!(store.record_waiting("client-a", "nope", &waiting(WaitReason::Throttled, 1), ts(1)).await.is_err());
    // Skipped recipients (docs/dingtalk-api.md §D.6) are kept on their batch.
    let skipped =
        vec![(uid("alice"), domain::SkipReason::DuplicateContent), (uid("bob"), domain::SkipReason::DailyLimit)];
    store.record_skipped("client-a", "new", 0, &skipped, ts(9_600)).await?;
    let new = store.get("client-a", "new").await?.ok_or("new is gone")?;
    assert_eq!(new.batches[0].skipped, skipped);
    assert!(store.record_skipped("client-a", "new", 7, &skipped, ts(9_600)).await.is_err(), "no batch 7");
    Ok(())
}

pub(crate) async fn relay_batches_and_state_are_recorded<S: RelayMessageStore>(store: S) -> TestResult {
    let users: Vec<UserId> = (0..250).map(|i| uid(&format!("user{i:03}"))).collect();
    let record = relay_record("client-a", "msg-1", &Recipients::new(users, vec![])?);
    store.insert_or_get(&record).await?;

    store.record_batch("client-a", "msg-1", 0, Some(task(501)), None, ts(2_000)).await?;
    store.record_batch("client-a", "msg-1", 2, None, Some("90018: throttled".into()), ts(3_000)).await?;
    store.set_state("client-a", "msg-1", MessageState::Failed, ts(4_000)).await?;

    let got = RelayMessageStore::get(&store, "client-a", "msg-1").await?.ok_or("missing")?;
    let outcomes: Vec<_> = got.batches.iter().map(|b| (b.delivery_id.clone(), b.error.as_deref())).collect();
    assert_eq!(outcomes, [(Some(task(501)), None), (None, None), (None, Some("90018: throttled"))]);
    assert_eq!(
        got.batches.iter().map(|b| b.batch.clone()).collect::<Vec<_>>(),
        record.batches.iter().map(|b| b.batch.clone()).collect::<Vec<_>>()
    );
    assert_eq!((got.state, got.created_at, got.updated_at), (MessageState::Failed, ts(1_000), ts(4_000)));

    // A batch can be recorded again (a retry that succeeded).
    store.record_batch("client-a", "msg-1", 2, Some(task(503)), None, ts(5_000)).await?;
    let got = RelayMessageStore::get(&store, "client-a", "msg-1").await?.ok_or("missing")?;
    assert_eq!(got.batches.get(2).map(|b| (b.delivery_id.clone(), b.error.clone())), Some((Some(task(503)), None)));
    assert_eq!(got.updated_at, ts(5_000));

    let unknown = store.record_batch("client-a", "msg-1", 3, Some(task(1)), None, ts(1)).await;
    assert!(matches!(unknown, Err(StoreError::Other(_))));
    let unknown = store.set_state("client-a", "nope", MessageState::Sent, ts(1)).await;
    assert!(matches!(unknown, Err(StoreError::Other(_))));
    Ok(())
}

pub(crate) async fn a_relay_batch_with_corrupt_json_is_an_error_not_a_panic<S: RelayMessageStore>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult {
    store.insert_or_get(&relay_record("client-a", "msg-1", &Recipients::new(vec![uid("a")], vec![])?)).await?;
    sql(&store, "UPDATE relay_batches SET user_ids = '{'").await?;
    let err = RelayMessageStore::get(&store, "client-a", "msg-1").await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in relay_batches")), "{err:?}");
    // insert_or_get of the existing key reads it back, and fails the same way.
    let again = store.insert_or_get(&relay_record("client-a", "msg-1", &Recipients::everyone())).await;
    assert!(matches!(again, Err(StoreError::Other(_))));
    Ok(())
}

// --- concurrency -------------------------------------------------------------

pub(crate) async fn concurrent_relay_inserts_of_one_key_create_it_once<S>(store: S) -> TestResult
where
    S: RelayMessageStore + Clone + 'static,
{
    let users: Vec<UserId> = (0..120).map(|i| uid(&format!("user{i:03}"))).collect();
    let record = relay_record("client-a", "msg-1", &Recipients::new(users, vec![])?);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, record) = (store.clone(), record.clone());
            tokio::spawn(async move { store.insert_or_get(&record).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (stored, was_created) = task.await??;
        assert_eq!(stored, record);
        created += usize::from(was_created);
    }
    assert_eq!(created, 1);
    Ok(())
}

pub(crate) async fn concurrent_upserts_of_one_person_keep_one_user<S>(store: S) -> TestResult
where
    S: UserRepository + Clone + 'static,
{
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let person = profile("dingcorp", "union-1", "manager4220", &format!("name {i}"));
                store.upsert(&person, &format!("user-{i}"), ts(i)).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await??.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let all = UserRepository::list(&store, &ListUsers { corp_id: None, limit: 100, offset: 0 }).await?;
    assert_eq!(all.len(), 1);
    Ok(())
}

pub(crate) async fn concurrent_puts_of_one_binding_all_succeed<S>(store: S) -> TestResult
where
    S: UserRepository + BindingStore + Clone + 'static,
{
    store.upsert(&profile("dingcorp", "union-1", "u1", "A"), "user-1", ts(1)).await?;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&binding("user-1", Some("t1"), "E001", i)).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let stored = BindingStore::get(&store, "user-1").await?;
    assert_eq!(stored.map(|b| (b.tenant_id, b.external_id)), Some((Some("t1".into()), "E001".into())));
    Ok(())
}

// --- quota accounting --------------------------------------------------------

pub(crate) async fn metered_calls_add_up_per_corp_and_month_and_the_mark_sticks<
    S: QuotaStore + Clone + Send + 'static,
>(
    store: S,
) -> TestResult {
    assert_eq!(store.quota_usage("dingcorp", "2026-12").await?, None);
    assert_eq!(store.add_metered_calls("dingcorp", "2026-12", 1, ts(1_000)).await?, 1);
    assert_eq!(store.add_metered_calls("dingcorp", "2026-12", 2, ts(2_000)).await?, 3);
    assert_eq!(store.add_metered_calls("dingcorp", "2027-01", 1, ts(3_000)).await?, 1, "a new month starts at 0");
    assert_eq!(store.add_metered_calls("dingother", "2026-12", 5, ts(3_000)).await?, 5, "another corp counts alone");
    // Concurrent adds lose nothing.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add_metered_calls("dingcorp", "2026-12", 1, ts(4_000)).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    store.set_exhausted("dingcorp", "2026-12", true, ts(5_000)).await?;
    let usage = store.quota_usage("dingcorp", "2026-12").await?.ok_or("no row")?;
    assert_eq!((usage.metered_calls, usage.exhausted, usage.updated_at), (23, true, ts(5_000)));
    assert_eq!(store.add_metered_calls("dingcorp", "2026-12", 1, ts(6_000)).await?, 24, "counting keeps the mark");
    assert!(store.quota_usage("dingcorp", "2026-12").await?.ok_or("no row")?.exhausted);
    store.set_exhausted("dingcorp", "2026-12", false, ts(7_000)).await?;
    store.set_exhausted("dingnew", "2026-12", true, ts(7_000)).await?;
    let month = store.quota_month("2026-12").await?;
    let summary: Vec<_> = month.iter().map(|u| (u.tenant.as_str(), u.metered_calls, u.exhausted)).collect();
    assert_eq!(summary, [("dingcorp", 24, false), ("dingnew", 0, true), ("dingother", 5, false)]);
    Ok(())
}

pub(crate) async fn relay_claims_are_exclusive_fenced_and_report_uncertain_batches<S: RelayMessageStore>(
    store: S,
) -> TestResult {
    let many: Vec<UserId> = (0..150).map(|i| uid(&format!("u{i}"))).collect();
    for key in ["a", "b", "c"] {
        store.insert_or_get(&relay_record("client-a", key, &Recipients::new(many.clone(), vec![])?)).await?;
    }
    // Two claimers at once share nothing; the lease keeps the messages from a third.
    let (one, two) = tokio::join!(
        store.claim_due("one:0", ts(1_000), ts(61_000), 2),
        store.claim_due("two:0", ts(1_000), ts(61_000), 2)
    );
    let (one, two) = (one?, two?);
    let mut all: Vec<&str> = one.iter().chain(&two).map(|c| c.record.key.as_str()).collect();
    all.sort_unstable();
    assert_eq!(all, ["a", "b", "c"], "each message claimed once: {one:?} {two:?}");
    assert!(store.claim_due("three:0", ts(2_000), ts(62_000), 10).await?.is_empty());
    let a = one.iter().chain(&two).find(|c| c.record.key == "a").ok_or("a not claimed")?;
    assert!(a.uncertain.is_empty(), "nothing started yet");
    // Only the claim's holder may start a batch; starting one extends the lease.
    assert!(!store.start_batch("client-a", "a", 0, "three:0", ts(3_000), ts(63_000)).await?);
    assert!(store.start_batch("client-a", "a", 0, &a.claim, ts(3_000), ts(90_000)).await?);
    store.record_batch("client-a", "a", 0, Some(task(7)), None, ts(3_100)).await?;
    assert!(store.start_batch("client-a", "a", 1, &a.claim, ts(3_200), ts(90_000)).await?);
    // The holder dies with batch 1's call in flight. Its lease ends at 90 s (extended), not 61 s.
    assert!(store.claim_due("four:0", ts(70_000), ts(130_000), 10).await?.iter().all(|c| c.record.key != "a"));
    let taken = store.claim_due("four:1", ts(90_001), ts(150_000), 10).await?;
    let a = taken.iter().find(|c| c.record.key == "a").ok_or("a not taken over")?;
    assert_eq!(a.uncertain, vec![(1, ts(3_200))], "batch 0 has its task id; batch 1's outcome is unknown");
    // The old holder's claim no longer counts.
    assert!(!store.start_batch("client-a", "a", 1, "one:0", ts(90_002), ts(150_000)).await?);
    // Held for an operator: it stays uncertain (and claimable again only when due).
    let held = RelayWaiting { reason: WaitReason::Uncertain, detail: "held".into(), retry_at: ts(200_000) };
    store.record_waiting("client-a", "a", &held, ts(90_003)).await?;
    assert!(store.claim_due("five:0", ts(100_000), ts(160_000), 10).await?.iter().all(|c| c.record.key != "a"));
    let again = store.claim_due("five:1", ts(200_000), ts(260_000), 10).await?;
    assert_eq!(again.iter().find(|c| c.record.key == "a").map(|c| c.uncertain.clone()), Some(vec![(1, ts(3_200))]));
    store.record_waiting("client-a", "a", &held, ts(200_001)).await?;
    // The operator resends: due now, nothing uncertain left; a message not held is not released.
    assert!(!store.release_one("client-a", "b", WaitReason::Uncertain, ts(200_002)).await?);
    assert!(store.release_one("client-a", "a", WaitReason::Uncertain, ts(200_002)).await?);
    let resent = store.claim_due("six:0", ts(200_003), ts(260_000), 10).await?;
    let a = resent.iter().find(|c| c.record.key == "a").ok_or("a not due after release")?;
    assert!(a.uncertain.is_empty());
    // A transient end of an attempt forgets the started batches (their outcome was seen).
    assert!(store.start_batch("client-a", "a", 1, &a.claim, ts(200_004), ts(260_000)).await?);
    let throttled = RelayWaiting { reason: WaitReason::Throttled, detail: "slow".into(), retry_at: ts(200_005) };
    store.record_waiting("client-a", "a", &throttled, ts(200_004)).await?;
    let after = store.claim_due("seven:0", ts(200_006), ts(260_000), 10).await?;
    assert_eq!(after.iter().find(|c| c.record.key == "a").map(|c| c.uncertain.len()), Some(0));
    // A finished message releases its claim and is never due again.
    store.set_state("client-a", "a", MessageState::Sent, ts(200_007)).await?;
    assert!(store.claim_due("eight:0", ts(300_000), ts(360_000), 10).await?.iter().all(|c| c.record.key != "a"));
    Ok(())
}

// --- providers side by side: an existing database upgrades in place -----------

/// Rows as the release before providers wrote them: a user, their session, a login intent.
pub(crate) const PRE_PROVIDER_ROWS: &str = "\
    INSERT INTO users (id, corp_id, union_id, userid, name, dept_ids, active, created_at, updated_at) \
        VALUES ('user-old', 'dingcorp', 'union-old', 'old1', 'Old', '[1]', TRUE, 10, 20); \
    INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('s-old', 'user-old', 1, 1000000); \
    INSERT INTO login_intents (state_hash, client_id, complete_url, corp_ids, expires_at) \
        VALUES ('h-old', 'client-a', 'https://local.example/auth/dingtalk/complete', '[\"dingcorp\"]', 1000000); \
    INSERT INTO messages (id, corp_id, body, user_ids, dept_ids, to_all, state, task_ids, created_at, updated_at) \
        VALUES ('msg-old', 'dingcorp', '{\"msgtype\":\"text\",\"text\":{\"content\":\"old\"}}', '[\"old1\"]', '[]', \
                FALSE, 'sent', '[256271667526]', 10, 20); \
    INSERT INTO relay_messages (client_id, \"key\", corp_id, body, state, created_at, updated_at) \
        VALUES ('client-a', 'msg-old', 'dingcorp', '{\"msgtype\":\"text\",\"text\":{\"content\":\"old\"}}', 'sent', 10, 20); \
    INSERT INTO relay_batches (client_id, \"key\", idx, user_ids, dept_ids, to_all, task_id) \
        VALUES ('client-a', 'msg-old', 0, '[\"old1\"]', '[]', FALSE, 256271667526);";

/// After the `providers` migration over [`PRE_PROVIDER_ROWS`]: the user and the intent are
/// DingTalk's (the only provider before), the session still finds its user, the intent (from
/// before PKCE) has no verifier, a Feishu member lands beside the DingTalk one, and the DingTalk
/// task ids stored as numbers (local outbox JSON, cloud batch column) read as delivery ids.
pub(crate) async fn pre_provider_rows_are_dingtalks_after_the_upgrade<S>(store: S) -> TestResult
where
    S: UserRepository + SessionStore + LoginIntentStore + MessageStore + RelayMessageStore,
{
    let task = DeliveryId::parse("256271667526")?;
    let local = MessageStore::get(&store, "msg-old").await?.ok_or("msg-old is gone")?;
    assert_eq!(local.delivery_ids, vec![task.clone()]);
    let relayed = RelayMessageStore::get(&store, "client-a", "msg-old").await?.ok_or("the relay record is gone")?;
    assert_eq!(relayed.batches.first().and_then(|b| b.delivery_id.clone()), Some(task));
    let user = UserRepository::find(&store, "user-old").await?.ok_or("user-old is gone")?;
    assert_eq!(user.profile.provider.as_str(), "dingtalk");
    assert_eq!((user.profile.name.as_str(), user.created_at, user.updated_at), ("Old", ts(10), ts(20)));
    assert_eq!(SessionStore::find(&store, "s-old", ts(5)).await?.map(|s| s.user_id), Some("user-old".to_owned()));
    let intent = LoginIntentStore::take(&store, "h-old", ts(5)).await?.ok_or("the intent is gone")?;
    assert_eq!((intent.provider.as_str(), intent.code_verifier), ("dingtalk", None));
    let mut feishu = profile("736588c9260f175d", "on_1", "fs_1", "李雷");
    feishu.provider = crate::outbound::feishu::provider_key();
    let stored = UserRepository::upsert(&store, &feishu, "user-new", ts(30)).await?;
    assert_eq!(UserRepository::find(&store, &stored.id).await?.map(|u| u.profile.provider), Some(feishu.provider));
    Ok(())
}
