//! The contracts of [`SuiteStore`] and [`EventStore`] (suite tickets, corp authorizations,
//! replay protection, the contact-event feed), of the store's [`FeedSignal`] and of the local
//! [`FeedCursorStore`], written once over any store and run on SQLite (`sqlite::tests`) and
//! PostgreSQL (`postgres::tests`). Each function expects an empty store.

use std::time::Duration;

use application::ports::{
    ContactEvent, CorpAuthorization, EventStore, FeedCursorStore, FeedEntry, FeedSignal, SuiteStore, SuiteTicket,
};
use domain::{AgentId, CorpId, DeptId, Timestamp, UserId};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn corp(raw: &str) -> CorpId {
    CorpId::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

fn agent(raw: i64) -> AgentId {
    AgentId::new(raw).unwrap_or_else(|e| panic!("{e}"))
}

fn authorization(suite_key: &str, corp_id: &str, agent_id: Option<i64>, active: bool, at: i64) -> CorpAuthorization {
    CorpAuthorization {
        suite_key: suite_key.to_owned(),
        corp_id: corp(corp_id),
        agent_id: agent_id.map(agent),
        permanent_code: Some(format!("code-{corp_id}")),
        active,
        updated_at: ts(at),
    }
}

/// A contact event `event_id` of `corp_id` with two members and two departments.
pub(crate) fn event(corp_id: &str, event_id: &str) -> ContactEvent {
    ContactEvent {
        corp_id: corp(corp_id),
        event_id: event_id.to_owned(),
        change: application::ports::DirectoryChange::MemberChanged,
        userids: vec![
            UserId::parse("alice").unwrap_or_else(|e| panic!("{e}")),
            UserId::parse("bob").unwrap_or_else(|e| panic!("{e}")),
        ],
        dept_ids: vec![
            DeptId::new(1).unwrap_or_else(|e| panic!("{e}")),
            DeptId::new(42).unwrap_or_else(|e| panic!("{e}")),
        ],
        received_at: ts(1_000),
    }
}

fn event_ids(entries: &[FeedEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.event.event_id.as_str()).collect()
}

async fn append_new<S: EventStore>(
    store: &S,
    event: &ContactEvent,
) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    store.append(event).await?.ok_or_else(|| format!("event {} was not appended", event.event_id).into())
}

pub(crate) async fn a_new_ticket_replaces_the_old<S: SuiteStore>(store: S) -> TestResult {
    assert_eq!(store.ticket("suite-a").await?, None);

    store.put_ticket("suite-a", "ticket-1", ts(1_000)).await?;
    store.put_ticket("suite-b", "ticket-b", ts(1_500)).await?;
    store.put_ticket("suite-a", "ticket-2", ts(2_000)).await?;

    let expected = SuiteTicket { suite_key: "suite-a".into(), ticket: "ticket-2".into(), updated_at: ts(2_000) };
    assert_eq!(store.ticket("suite-a").await?, Some(expected));
    assert_eq!(store.ticket("suite-b").await?.map(|t| t.ticket), Some("ticket-b".to_owned()));
    assert_eq!(store.ticket("SUITE-A").await?, None, "suite keys are case-sensitive");
    Ok(())
}

pub(crate) async fn authorizations_are_upserted_replaced_and_listed<S: SuiteStore>(store: S) -> TestResult {
    assert_eq!(store.authorization("suite-a", &corp("dingb")).await?, None);
    assert_eq!(store.authorizations("suite-a").await?, vec![]);

    let b = authorization("suite-a", "dingb", Some(300_001), true, 1_000);
    let a = authorization("suite-a", "dinga", None, true, 1_100);
    let other_suite = authorization("suite-z", "dingb", Some(7), true, 1_200);
    for auth in [&b, &a, &other_suite] {
        store.put_authorization(auth).await?;
    }
    assert_eq!(store.authorization("suite-a", &corp("dingb")).await?, Some(b.clone()));
    assert_eq!(store.authorization("suite-z", &corp("dingb")).await?, Some(other_suite.clone()));

    // Every field is replaced, a `None` included; the corp is relieved but still returned.
    let relieved =
        CorpAuthorization { agent_id: None, permanent_code: None, active: false, updated_at: ts(5_000), ..b.clone() };
    store.put_authorization(&relieved).await?;
    assert_eq!(store.authorization("suite-a", &corp("dingb")).await?, Some(relieved.clone()));

    // Re-authorized with a new agent and code.
    let again = CorpAuthorization {
        agent_id: Some(agent(300_002)),
        permanent_code: Some("code-2".into()),
        active: true,
        updated_at: ts(6_000),
        ..b.clone()
    };
    let c = authorization("suite-a", "dingc", Some(9), false, 1_300);
    store.put_authorization(&c).await?;
    store.put_authorization(&relieved).await?;
    assert_eq!(store.authorizations("suite-a").await?, vec![a.clone(), relieved, c.clone()], "ordered by corp id");
    store.put_authorization(&again).await?;
    assert_eq!(store.authorizations("suite-a").await?, vec![a, again, c]);
    assert_eq!(store.authorizations("suite-z").await?, vec![other_suite]);
    assert_eq!(store.authorizations("suite-none").await?, vec![]);
    Ok(())
}

/// Expired nonces go in batches of about `limit`, oldest first; remembered ones stay, and the
/// callback path never deletes other nonces (its cost does not grow with expired rows).
pub(crate) async fn expired_nonces_are_purged_in_bounded_batches<S: EventStore>(store: S) -> TestResult {
    for i in 0..25 {
        assert!(store.remember_nonce("app-1", &format!("old{i}"), ts(1_000), ts(2_000 + i)).await?);
    }
    assert!(store.remember_nonce("app-1", "live", ts(1_000), ts(9_000)).await?);
    // A callback at 5 000 renews only its own nonce; the 25 expired ones are still there to purge.
    assert!(store.remember_nonce("app-1", "fresh", ts(5_000), ts(9_000)).await?);
    assert_eq!(store.purge_expired_nonces(ts(5_000), 10).await?, 10, "the 10 oldest");
    assert_eq!(store.purge_expired_nonces(ts(5_000), 10).await?, 10);
    assert_eq!(store.purge_expired_nonces(ts(5_000), 10).await?, 5, "fewer than the limit: done");
    assert_eq!(store.purge_expired_nonces(ts(5_000), 10).await?, 0);
    assert!(!store.remember_nonce("app-1", "live", ts(5_000), ts(9_000)).await?, "a remembered nonce survives");
    assert!(!store.remember_nonce("app-1", "fresh", ts(5_000), ts(9_000)).await?);
    // Many nonces expiring in the same millisecond (a burst of pushes), of two owners: still at
    // most `limit` per call.
    for i in 0..30 {
        let owner = if i % 2 == 0 { "app-1" } else { "app-2" };
        assert!(store.remember_nonce(owner, &format!("tie{i}"), ts(9_000), ts(9_500)).await?);
    }
    // 32 expired now: "live" and "fresh" (kept until 9 000) first, then the 30 of the tie.
    assert_eq!(store.purge_expired_nonces(ts(9_600), 12).await?, 12, "bounded despite the tie");
    assert_eq!(store.purge_expired_nonces(ts(9_600), 12).await?, 12, "still bounded inside the tie");
    assert_eq!(store.purge_expired_nonces(ts(9_600), 12).await?, 8, "the rest of the tie");
    assert_eq!(store.purge_expired_nonces(ts(9_600), 12).await?, 0);
    Ok(())
}

pub(crate) async fn a_nonce_is_new_once_until_it_expires<S: EventStore>(store: S) -> TestResult {
    assert!(store.remember_nonce("app-1", "n1", ts(1_000), ts(2_000)).await?, "first time");
    assert!(!store.remember_nonce("app-1", "n1", ts(1_500), ts(2_500)).await?, "a replay");
    assert!(!store.remember_nonce("app-1", "n1", ts(2_000), ts(3_000)).await?, "still remembered at keep_until");
    // The same nonce of another owner is another nonce.
    assert!(store.remember_nonce("app-2", "n1", ts(1_500), ts(2_500)).await?);
    assert!(store.remember_nonce("app-1", "n2", ts(1_500), ts(2_500)).await?);

    // Past keep_until the nonce is forgotten, so it counts as new again and is then remembered anew.
    assert!(store.remember_nonce("app-1", "n1", ts(2_001), ts(4_000)).await?, "expired, forgotten");
    assert!(!store.remember_nonce("app-1", "n1", ts(3_999), ts(5_000)).await?, "remembered again");
    // app-2/n1 and app-1/n2 (kept until 2 500) have expired too: new again.
    assert!(store.remember_nonce("app-2", "n1", ts(3_000), ts(4_000)).await?);
    assert!(store.remember_nonce("app-1", "n2", ts(3_000), ts(4_000)).await?);

    // A forgotten nonce (its push failed) is new again; forgetting an unknown one is fine.
    store.forget_nonce("app-1", "n2").await?;
    assert!(store.remember_nonce("app-1", "n2", ts(3_100), ts(4_000)).await?, "forgotten on purpose");
    store.forget_nonce("app-9", "never-seen").await?;
    Ok(())
}

/// A push of contact events is one write with its nonce: a replay writes nothing, a duplicate
/// event is `None` beside the new ones, and the feed has each once, in order.
pub(crate) async fn a_contact_push_remembers_its_nonce_and_appends_in_one_write<S>(store: S) -> TestResult
where
    S: EventStore + FeedSignal,
{
    let corps = [corp("dingcorpa")];
    let version = store.version();
    let first = store
        .remember_and_append("app-1", "p1", ts(1_000), ts(2_000), &[event("dingcorpa", "e1"), event("dingcorpa", "e2")])
        .await?
        .ok_or("a new nonce is no replay")?;
    let [Some(c1), Some(c2)] = first[..] else { return Err(format!("two new events: {first:?}").into()) };
    assert!(c1 < c2, "cursors in push order");
    assert!(store.version() > version, "the feed's readers are woken");
    // The same nonce again: a replay, nothing written (e3 is not in the feed).
    let replay = store.remember_and_append("app-1", "p1", ts(1_500), ts(2_500), &[event("dingcorpa", "e3")]).await?;
    assert_eq!(replay, None);
    // Another nonce carrying a known event and a new one.
    let second = store
        .remember_and_append("app-1", "p2", ts(1_500), ts(2_500), &[event("dingcorpa", "e2"), event("dingcorpa", "e3")])
        .await?
        .ok_or("p2 is new")?;
    assert!(matches!(second[..], [None, Some(c3)] if c3 > c2), "{second:?}");
    let feed = store.read_after(&corps, 0, 10).await?;
    assert_eq!(event_ids(&feed), ["e1", "e2", "e3"]);
    // The nonces are remembered like any other.
    assert!(!store.remember_nonce("app-1", "p2", ts(1_600), ts(2_600)).await?);
    Ok(())
}

/// 10 callbacks with the same nonce at once: exactly one is new.
pub(crate) async fn of_10_concurrent_same_nonces_exactly_one_is_new<S>(store: S) -> TestResult
where
    S: EventStore + Clone + 'static,
{
    for round in 0..5 {
        let nonce = format!("nonce-{round}");
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (store, nonce) = (store.clone(), nonce.clone());
                tokio::spawn(async move { store.remember_nonce("suite-a", &nonce, ts(1_000), ts(60_000)).await })
            })
            .collect();
        let mut new = 0;
        for task in tasks {
            if task.await?? {
                new += 1;
            }
        }
        assert_eq!(new, 1, "round {round}");
    }
    Ok(())
}

pub(crate) async fn append_assigns_increasing_cursors_once_per_corp_event<S: EventStore>(store: S) -> TestResult {
    let mut last = 0;
    let mut cursors = Vec::new();
    for (corp_id, event_id) in [("dinga", "e1"), ("dingb", "e1"), ("dinga", "e2"), ("dingb", "e3"), ("dinga", "e3")] {
        let cursor = append_new(&store, &event(corp_id, event_id)).await?;
        assert!(cursor > last, "{cursor} after {last}");
        last = cursor;
        cursors.push(cursor);
    }

    // A duplicate (corp, event id) is not appended, whatever its content.
    assert_eq!(store.append(&event("dinga", "e1")).await?, None);
    let changed = ContactEvent {
        change: application::ports::DirectoryChange::MemberLeft,
        received_at: ts(9_000),
        ..event("dingb", "e3")
    };
    assert_eq!(store.append(&changed).await?, None);

    // … and takes no position: the next event still comes after every earlier one.
    let next = append_new(&store, &event("dingc", "e1")).await?;
    assert!(next > last);

    let all = store.read_after(&[corp("dinga"), corp("dingb"), corp("dingc")], 0, 100).await?;
    assert_eq!(all.len(), 6);
    assert_eq!(all.iter().map(|e| e.cursor).collect::<Vec<_>>(), [cursors, vec![next]].concat());
    assert_eq!(all[1], FeedEntry { cursor: all[1].cursor, event: event("dingb", "e1") }, "round trip");
    assert_eq!(all[3].event, event("dingb", "e3"), "the duplicate did not replace the stored event");
    Ok(())
}

pub(crate) async fn read_after_filters_by_corp_and_cursor_in_order<S: EventStore>(store: S) -> TestResult {
    let mut cursor_of = std::collections::HashMap::new();
    for i in 0..10 {
        let corp_id = ["dinga", "dingb", "dingc"][i % 3];
        let id = format!("e{i}");
        let cursor = append_new(&store, &event(corp_id, &id)).await?;
        cursor_of.insert(id, cursor);
    }
    let cursor = |id: &str| cursor_of.get(id).copied().unwrap_or_else(|| panic!("no {id}"));

    // Corp filter, in cursor order.
    let a = store.read_after(&[corp("dinga")], 0, 100).await?;
    assert_eq!(event_ids(&a), ["e0", "e3", "e6", "e9"]);
    assert!(a.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let ac = store.read_after(&[corp("dingc"), corp("dinga")], 0, 100).await?;
    assert_eq!(event_ids(&ac), ["e0", "e2", "e3", "e5", "e6", "e8", "e9"]);
    assert_eq!(store.read_after(&[corp("dingz")], 0, 100).await?, vec![]);
    assert_eq!(store.read_after(&[], 0, 100).await?, vec![], "no corps, no events");

    // Cursor filter: strictly after.
    let after = store.read_after(&[corp("dinga"), corp("dingc")], cursor("e3"), 100).await?;
    assert_eq!(event_ids(&after), ["e5", "e6", "e8", "e9"]);
    assert_eq!(store.read_after(&[corp("dinga")], cursor("e9"), 100).await?, vec![]);

    // Limit: the first `limit` after the cursor; paging through yields everything once.
    let page = store.read_after(&[corp("dinga"), corp("dingb"), corp("dingc")], cursor("e1"), 3).await?;
    assert_eq!(event_ids(&page), ["e2", "e3", "e4"]);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(&[corp("dingb"), corp("dinga")], after, 2).await?;
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = last.cursor;
        paged.extend(page.into_iter().map(|e| e.event.event_id));
    }
    assert_eq!(paged, ["e0", "e1", "e3", "e4", "e6", "e7", "e9"]);
    assert_eq!(store.read_after(&[corp("dinga")], 0, 0).await?, vec![], "limit 0");
    Ok(())
}

/// 8 writers append 25 events each while a reader follows the feed with its cursor: the reader
/// sees every event exactly once, in cursor order (a cursor never passes an event that is
/// committed later with a smaller cursor).
pub(crate) async fn a_reader_following_concurrent_appends_misses_nothing<S>(store: S) -> TestResult
where
    S: EventStore + Clone + 'static,
{
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let corp_id = if i % 2 == 0 { "dinga" } else { "dingb" };
                    store.append(&event(corp_id, &format!("w{w}-e{i}"))).await?;
                }
                Ok::<_, application::ports::StoreError>(())
            })
        })
        .collect();
    let corps = [corp("dinga"), corp("dingb")];
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        // Read until the writers are done and the reader has caught up.
        let done = writers.iter().all(tokio::task::JoinHandle::is_finished);
        let page = store.read_after(&corps, after, 7).await?;
        if page.is_empty() && done {
            break;
        }
        for entry in page {
            assert!(entry.cursor > after);
            after = entry.cursor;
            seen.push(entry.event.event_id);
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await??;
    }
    let all = store.read_after(&corps, 0, 1_000).await?;
    assert_eq!(all.len(), WRITERS * EACH);
    assert_eq!(seen.len(), WRITERS * EACH, "events the reader saw (it must miss none)");
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), WRITERS * EACH, "no event is seen twice");
    Ok(())
}

/// Writes one of everything, for [`event_data_is_still_there`] after reopening the store.
pub(crate) async fn write_event_data<S: SuiteStore + EventStore>(store: &S) -> TestResult {
    store.put_ticket("suite-a", "ticket-1", ts(1_000)).await?;
    store.put_authorization(&authorization("suite-a", "dinga", Some(5), true, 1_000)).await?;
    assert!(store.remember_nonce("suite-a", "n1", ts(1_000), ts(10_000)).await?);
    append_new(store, &event("dinga", "e1")).await?;
    append_new(store, &event("dinga", "e2")).await?;
    Ok(())
}

/// Checks what [`write_event_data`] wrote, on a reopened store.
pub(crate) async fn event_data_is_still_there<S: SuiteStore + EventStore>(store: &S) -> TestResult {
    assert_eq!(store.ticket("suite-a").await?.map(|t| t.ticket), Some("ticket-1".to_owned()));
    assert_eq!(
        store.authorization("suite-a", &corp("dinga")).await?,
        Some(authorization("suite-a", "dinga", Some(5), true, 1_000))
    );
    assert!(!store.remember_nonce("suite-a", "n1", ts(2_000), ts(10_000)).await?, "the nonce is remembered");
    let feed = store.read_after(&[corp("dinga")], 0, 10).await?;
    assert_eq!(event_ids(&feed), ["e1", "e2"]);
    assert_eq!(store.append(&event("dinga", "e2")).await?, None);
    let next = append_new(store, &event("dinga", "e3")).await?;
    assert!(feed.iter().all(|e| e.cursor < next), "cursors keep increasing after reopening");
    Ok(())
}

/// A committed append bumps the store's signal before it returns and so wakes a reader waiting on
/// it; a duplicate append (nothing stored) does not. (That a bump wakes waiters at once, without a
/// timer, is [`FeedWatch`](crate::outbound::feed::FeedWatch)'s own test, on a paused clock; no
/// wall-clock bound here.)
pub(crate) async fn an_append_wakes_a_waiting_reader_and_a_duplicate_does_not<S>(store: S) -> TestResult
where
    S: EventStore + FeedSignal + Clone + 'static,
{
    let seen = store.version();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_past(seen, Duration::from_secs(20)).await })
    };
    // Gives the waiter time to park in its wait (the path under test); should it not have, its wait
    // still sees the bump at once, so the outcome never depends on this delay.
    tokio::time::sleep(Duration::from_millis(50)).await;
    append_new(&store, &event("dinga", "e1")).await?;
    assert_ne!(store.version(), seen, "the append bumped the signal before returning");
    assert!(waiter.await?, "the waiting reader was woken (not timed out)");

    let seen = store.version();
    assert_eq!(store.append(&event("dinga", "e1")).await?, None);
    assert_eq!(store.version(), seen, "a duplicate is not a new event");
    assert!(!store.wait_past(seen, Duration::from_millis(100)).await);
    Ok(())
}

/// A feed cursor is absent until saved, then only moves forward; feeds are independent.
pub(crate) async fn feed_cursors_start_empty_and_only_move_forward<S: FeedCursorStore>(store: S) -> TestResult {
    assert_eq!(store.cursor("contact_events").await?, None);
    store.save_cursor("contact_events", 5, ts(1_000)).await?;
    assert_eq!(store.cursor("contact_events").await?, Some(5));
    store.save_cursor("contact_events", 3, ts(2_000)).await?;
    assert_eq!(store.cursor("contact_events").await?, Some(5), "a smaller cursor never moves it back");
    store.save_cursor("contact_events", 5, ts(2_500)).await?;
    store.save_cursor("contact_events", 9, ts(3_000)).await?;
    assert_eq!(store.cursor("contact_events").await?, Some(9));
    assert_eq!(store.cursor("other_feed").await?, None);
    store.save_cursor("other_feed", 1, ts(3_000)).await?;
    assert_eq!(store.cursor("other_feed").await?, Some(1));
    assert_eq!(store.cursor("contact_events").await?, Some(9));
    Ok(())
}
