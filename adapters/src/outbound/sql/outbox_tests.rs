//! The outbox contract of [`MessageStore`] (idempotency keys, state stamps, claiming, rescheduling,
//! listing), written once over any store and run on SQLite (`sqlite::tests`) and PostgreSQL
//! (`postgres::tests`). Each function expects an empty store.

use std::collections::HashSet;

use application::ports::{ListMessages, MessageRecord, MessageStore, StoreError};
use domain::{CorpId, DeliveryId, MessageBody, MessageState, Recipients, Timestamp, UserId};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn task(raw: i64) -> DeliveryId {
    DeliveryId::parse(&raw.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// A message `id` created at `created`, due at `due`, in `state`.
pub(crate) fn message_at(id: &str, state: MessageState, created: i64, due: i64) -> MessageRecord {
    MessageRecord {
        id: id.to_owned(),
        corp_id: CorpId::parse("dingcorp").unwrap_or_else(|e| panic!("{e}")),
        body: MessageBody::text(&format!("hello {id}")).unwrap_or_else(|e| panic!("{e}")),
        recipients: Recipients::new(vec![UserId::parse("alice").unwrap_or_else(|e| panic!("{e}"))], vec![])
            .unwrap_or_else(|e| panic!("{e}")),
        state,
        delivery_ids: vec![],
        error: None,
        idempotency_key: None,
        attempts: 0,
        next_attempt_at: ts(due),
        relayed_at: None,
        sent_at: None,
        finished_at: None,
        created_at: ts(created),
        updated_at: ts(created),
    }
}

fn keyed(id: &str, key: &str) -> MessageRecord {
    MessageRecord { idempotency_key: Some(key.to_owned()), ..message_at(id, MessageState::Accepted, 1_000, 1_000) }
}

async fn get<S: MessageStore>(store: &S, id: &str) -> Result<MessageRecord, StoreError> {
    store.get(id).await?.ok_or_else(|| StoreError::Other(format!("message {id} is missing")))
}

fn ids(records: &[MessageRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

pub(crate) async fn find_by_idempotency_key<S: MessageStore>(store: S) -> TestResult {
    let first = keyed("m1", "order-1");
    store.insert(&first).await?;
    store.insert(&keyed("m2", "order-2")).await?;
    // Any number of messages may have no key.
    store.insert(&message_at("m3", MessageState::Accepted, 1_000, 1_000)).await?;
    store.insert(&message_at("m4", MessageState::Accepted, 1_000, 1_000)).await?;

    assert_eq!(store.find_by_idempotency_key("order-1").await?, Some(first));
    assert_eq!(store.find_by_idempotency_key("order-2").await?.map(|m| m.id), Some("m2".to_owned()));
    assert_eq!(store.find_by_idempotency_key("order-3").await?, None);
    assert_eq!(store.find_by_idempotency_key("ORDER-1").await?, None, "keys are case-sensitive");
    assert_eq!(store.find_by_idempotency_key("").await?, None);
    Ok(())
}

pub(crate) async fn a_duplicate_idempotency_key_is_a_conflict<S: MessageStore>(store: S) -> TestResult {
    store.insert(&keyed("m1", "order-1")).await?;

    let err = store.insert(&keyed("m2", "order-1")).await.err();

    assert!(matches!(&err, Some(StoreError::Conflict(m)) if m.contains("messages_idempotency_key_key")), "{err:?}");
    assert_eq!(store.get("m2").await?, None, "nothing of the second message is stored");
    assert_eq!(store.find_by_idempotency_key("order-1").await?.map(|m| m.id), Some("m1".to_owned()));
    Ok(())
}

pub(crate) async fn update_stamps_sent_and_finished_once<S: MessageStore>(store: S) -> TestResult {
    for id in ["m-sent", "m-failed", "m-recalled"] {
        store.insert(&message_at(id, MessageState::Accepted, 1_000, 1_000)).await?;
    }

    // accepted → sent → completed → recalled
    store.update("m-sent", MessageState::Sent, &[task(11)], None, ts(3_000)).await?;
    let sent = get(&store, "m-sent").await?;
    assert_eq!((sent.state, sent.updated_at), (MessageState::Sent, ts(3_000)));
    assert_eq!(sent.sent_at, Some(ts(3_000)));
    assert_eq!(sent.relayed_at, Some(ts(3_000)), "sent implies the cloud acknowledged it");
    assert_eq!(sent.finished_at, None);
    store.update("m-sent", MessageState::Sent, &[task(11)], None, ts(3_500)).await?;
    assert_eq!(get(&store, "m-sent").await?.sent_at, Some(ts(3_000)), "kept on a repeat");
    store.update("m-sent", MessageState::Completed, &[task(11)], None, ts(4_000)).await?;
    let completed = get(&store, "m-sent").await?;
    assert_eq!(
        (completed.relayed_at, completed.sent_at, completed.finished_at),
        (Some(ts(3_000)), Some(ts(3_000)), Some(ts(4_000)))
    );
    store.update("m-sent", MessageState::Recalled, &[task(11)], None, ts(5_000)).await?;
    let recalled = get(&store, "m-sent").await?;
    assert_eq!(recalled.state, MessageState::Recalled);
    assert_eq!(recalled.finished_at, Some(ts(4_000)), "finished_at is stamped once");
    assert_eq!(recalled.updated_at, ts(5_000));

    // accepted → failed: finished, never sent.
    store.update("m-failed", MessageState::Failed, &[], Some("40035: bad".into()), ts(2_000)).await?;
    let failed = get(&store, "m-failed").await?;
    assert_eq!(
        (failed.sent_at, failed.finished_at, failed.error.as_deref()),
        (None, Some(ts(2_000)), Some("40035: bad"))
    );

    // accepted → sent → recalled: finished when recalled.
    store.update("m-recalled", MessageState::Sent, &[task(12)], None, ts(2_000)).await?;
    store.update("m-recalled", MessageState::Recalled, &[task(12)], None, ts(6_000)).await?;
    let recalled = get(&store, "m-recalled").await?;
    assert_eq!((recalled.sent_at, recalled.finished_at), (Some(ts(2_000)), Some(ts(6_000))));
    // The scheduling fields are not touched by update.
    assert_eq!((recalled.attempts, recalled.next_attempt_at), (0, ts(1_000)));
    Ok(())
}

/// Goes through `relayed`: stamped the first time, kept afterwards.
pub(crate) async fn update_stamps_relayed_once<S: MessageStore>(store: S) -> TestResult {
    store.insert(&message_at("m1", MessageState::Accepted, 1_000, 1_000)).await?;

    store.update("m1", MessageState::Relayed, &[task(11)], None, ts(2_000)).await?;
    let relayed = get(&store, "m1").await?;
    assert_eq!(relayed.state, MessageState::Relayed);
    assert_eq!((relayed.relayed_at, relayed.sent_at, relayed.finished_at), (Some(ts(2_000)), None, None));
    store.update("m1", MessageState::Relayed, &[task(11)], None, ts(2_500)).await?;
    assert_eq!(get(&store, "m1").await?.relayed_at, Some(ts(2_000)));
    store.update("m1", MessageState::Sent, &[task(11), task(12)], None, ts(3_000)).await?;
    let sent = get(&store, "m1").await?;
    assert_eq!((sent.relayed_at, sent.sent_at), (Some(ts(2_000)), Some(ts(3_000))));
    Ok(())
}

/// A `relayed` message can be stored, read, listed and claimed.
pub(crate) async fn relayed_messages_can_be_read_back<S: MessageStore>(store: S) -> TestResult {
    let relayed = MessageRecord {
        delivery_ids: vec![task(11)],
        relayed_at: Some(ts(1_500)),
        ..message_at("m1", MessageState::Relayed, 1_000, 2_000)
    };
    store.insert(&relayed).await?;

    assert_eq!(store.get("m1").await?, Some(relayed.clone()));
    let listed =
        store.list(&ListMessages { state: Some(MessageState::Relayed), since: None, limit: 10, offset: 0 }).await?;
    assert_eq!(ids(&listed), ["m1"]);
    let claimed = store.claim_due(ts(2_000), ts(62_000), 10).await?;
    assert_eq!(ids(&claimed), ["m1"]);
    Ok(())
}

pub(crate) async fn claim_due_claims_only_due_pending_messages<S: MessageStore>(store: S) -> TestResult {
    store.insert(&message_at("old", MessageState::Accepted, 1_000, 1_000)).await?;
    store.insert(&message_at("mid", MessageState::Accepted, 2_000, 2_000)).await?;
    store.insert(&message_at("due-now", MessageState::Accepted, 3_000, 5_000)).await?;
    store.insert(&message_at("future", MessageState::Accepted, 4_000, 9_000)).await?;
    for (id, state) in [
        ("sent", MessageState::Sent),
        ("completed", MessageState::Completed),
        ("failed", MessageState::Failed),
        ("recalled", MessageState::Recalled),
    ] {
        store.insert(&message_at(id, state, 500, 0)).await?;
    }

    let claimed = store.claim_due(ts(5_000), ts(65_000), 10).await?;

    assert_eq!(ids(&claimed), ["old", "mid", "due-now"], "due (<= now) and pending, oldest first");
    for record in &claimed {
        assert_eq!(record.next_attempt_at, ts(65_000), "{}", record.id);
        assert_eq!(record.attempts, 1, "{}", record.id);
        assert_eq!(record.state, MessageState::Accepted, "{}", record.id);
        assert_eq!(get(&store, &record.id).await?, *record, "returned as stored");
    }
    let untouched = get(&store, "future").await?;
    assert_eq!((untouched.attempts, untouched.next_attempt_at), (0, ts(9_000)));
    let sent = get(&store, "sent").await?;
    assert_eq!((sent.attempts, sent.next_attempt_at), (0, ts(0)));

    // Leased: not claimed again before the lease ends (only "future" has become due).
    let later = store.claim_due(ts(64_999), ts(124_999), 10).await?;
    assert_eq!(ids(&later), ["future"]);
    assert_eq!(later[0].attempts, 1);

    // The lease ended: claimed again, attempts counted again.
    let again = store.claim_due(ts(65_000), ts(125_000), 10).await?;
    assert_eq!(ids(&again), ["old", "mid", "due-now"]);
    let attempts: Vec<u32> = again.iter().map(|r| r.attempts).collect();
    assert_eq!(attempts, [2, 2, 2]);
    Ok(())
}

pub(crate) async fn claim_due_respects_the_limit_oldest_first<S: MessageStore>(store: S) -> TestResult {
    for i in 0..5_i64 {
        let id = format!("m{i}");
        store.insert(&message_at(&id, MessageState::Accepted, 1_000 + i, 1_000 + i)).await?;
    }

    let first = store.claim_due(ts(2_000), ts(60_000), 2).await?;
    let second = store.claim_due(ts(2_000), ts(60_000), 2).await?;
    let third = store.claim_due(ts(2_000), ts(60_000), 2).await?;
    let fourth = store.claim_due(ts(2_000), ts(60_000), 2).await?;

    assert_eq!(ids(&first), ["m0", "m1"]);
    assert_eq!(ids(&second), ["m2", "m3"]);
    assert_eq!(ids(&third), ["m4"]);
    assert!(fourth.is_empty());
    Ok(())
}

pub(crate) async fn claim_due_prefers_the_earliest_due<S: MessageStore>(store: S) -> TestResult {
    // Created later but due earlier (rescheduled with a shorter backoff).
    store.insert(&message_at("late-due", MessageState::Accepted, 1_000, 3_000)).await?;
    store.insert(&message_at("early-due", MessageState::Accepted, 2_000, 1_500)).await?;

    let claimed = store.claim_due(ts(5_000), ts(65_000), 1).await?;

    assert_eq!(ids(&claimed), ["early-due"]);
    Ok(())
}

/// 10 dispatchers claim concurrently, round after round, until nothing is due: each of the 50
/// messages is claimed exactly once in total.
pub(crate) async fn concurrent_claims_claim_each_message_exactly_once<S>(store: S) -> TestResult
where
    S: MessageStore + Clone + 'static,
{
    let all: HashSet<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    for (i, id) in all.iter().enumerate() {
        let at = 1_000 + i64::try_from(i)?;
        store.insert(&message_at(id, MessageState::Accepted, at, at)).await?;
    }
    let mut seen: Vec<String> = Vec::new();
    for _round in 0..20 {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim_due(ts(5_000), ts(65_000), 10).await })
            })
            .collect();
        let mut claimed_this_round = 0;
        for task in tasks {
            let claimed = task.await??;
            claimed_this_round += claimed.len();
            for record in claimed {
                assert_eq!(record.attempts, 1, "{} claimed twice", record.id);
                seen.push(record.id);
            }
        }
        if claimed_this_round == 0 {
            break;
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a message was claimed more than once: {seen:?}");
    assert_eq!(unique, all);
    Ok(())
}

pub(crate) async fn reschedule_sets_the_next_attempt_and_the_error<S: MessageStore>(store: S) -> TestResult {
    store.insert(&message_at("m1", MessageState::Accepted, 1_000, 1_000)).await?;
    assert_eq!(ids(&store.claim_due(ts(1_000), ts(61_000), 10).await?), ["m1"]);

    store.reschedule("m1", ts(1_500), Some("connect refused".into())).await?;

    let rescheduled = get(&store, "m1").await?;
    assert_eq!(rescheduled.next_attempt_at, ts(1_500));
    assert_eq!(rescheduled.error.as_deref(), Some("connect refused"));
    assert_eq!(
        (rescheduled.state, rescheduled.attempts, rescheduled.updated_at),
        (MessageState::Accepted, 1, ts(1_000)),
        "state, attempts and updated_at are not touched"
    );
    assert!(store.claim_due(ts(1_499), ts(61_499), 10).await?.is_empty());
    let again = store.claim_due(ts(1_500), ts(61_500), 10).await?;
    assert_eq!(again.iter().map(|r| (r.id.as_str(), r.attempts)).collect::<Vec<_>>(), [("m1", 2)]);

    store.reschedule("m1", ts(2_000), None).await?;
    assert_eq!(get(&store, "m1").await?.error, None, "None clears the error");
    Ok(())
}

pub(crate) async fn list_pages_newest_first_and_filters<S: MessageStore>(store: S) -> TestResult {
    let states = [
        MessageState::Accepted,
        MessageState::Sent,
        MessageState::Failed,
        MessageState::Sent,
        MessageState::Completed,
        MessageState::Sent,
    ];
    for (i, state) in states.into_iter().enumerate() {
        let at = 1_000 * (i64::try_from(i)? + 1);
        store.insert(&message_at(&format!("m{i}"), state, at, at)).await?;
    }
    // Two messages created in the same millisecond: the larger id first.
    store.insert(&message_at("m6a", MessageState::Accepted, 7_000, 7_000)).await?;
    store.insert(&message_at("m6b", MessageState::Accepted, 7_000, 7_000)).await?;
    let query = |state, since, limit, offset| ListMessages { state, since, limit, offset };

    let all = store.list(&query(None, None, 100, 0)).await?;
    assert_eq!(ids(&all), ["m6b", "m6a", "m5", "m4", "m3", "m2", "m1", "m0"]);
    assert_eq!(all[2], get(&store, "m5").await?);

    let sent = store.list(&query(Some(MessageState::Sent), None, 100, 0)).await?;
    assert_eq!(ids(&sent), ["m5", "m3", "m1"]);

    let since = store.list(&query(None, Some(ts(4_000)), 100, 0)).await?;
    assert_eq!(ids(&since), ["m6b", "m6a", "m5", "m4", "m3"], "since is inclusive");

    let both = store.list(&query(Some(MessageState::Sent), Some(ts(2_500)), 100, 0)).await?;
    assert_eq!(ids(&both), ["m5", "m3"]);

    let page1 = store.list(&query(None, None, 3, 0)).await?;
    let page2 = store.list(&query(None, None, 3, 3)).await?;
    let page3 = store.list(&query(None, None, 3, 6)).await?;
    let page4 = store.list(&query(None, None, 3, 9)).await?;
    assert_eq!(ids(&page1), ["m6b", "m6a", "m5"]);
    assert_eq!(ids(&page2), ["m4", "m3", "m2"]);
    assert_eq!(ids(&page3), ["m1", "m0"]);
    assert!(page4.is_empty());

    let none = store.list(&query(Some(MessageState::Recalled), None, 100, 0)).await?;
    assert!(none.is_empty());
    Ok(())
}
