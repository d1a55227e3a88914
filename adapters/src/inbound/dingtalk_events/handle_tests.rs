#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of [`HandleEvents`] with strict mockall expectations: every branch's port calls
//! are expected `.times(1)` with their arguments checked; ports a branch must not touch have no
//! expectation.

use std::sync::Arc;

use domain::{AgentId, CorpId, DeptId, Timestamp, UserId};

use super::handle::{ContactChange, DingTalkEvent, EventsError, EventsSummary, HandleEvents, SecretText};
use application::ports::{ContactEvent, CorpAuthorization, MockClock, MockEventStore, MockSuiteStore, StoreError};

const NOW_MS: i64 = 1_750_000_000_000;
const WINDOW_SECS: i64 = 600;
const OWNER: &str = "suitekey1";
const NONCE: &str = "suitekey1:abcd1234";

fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MS)
}

fn corp(raw: &str) -> CorpId {
    CorpId::parse(raw).unwrap()
}

fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    Arc::new(clock)
}

/// An event store that accepts the nonce once (checking the keep-until of 2 × window).
fn fresh_nonce() -> MockEventStore {
    let mut events = MockEventStore::new();
    events
        .expect_remember_nonce()
        .withf(|owner, nonce, at, keep| {
            owner == OWNER && nonce == NONCE && *at == now() && *keep == now().plus_secs(2 * WINDOW_SECS)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    events
}

fn handler(suites: MockSuiteStore, events: MockEventStore) -> HandleEvents {
    HandleEvents::new(Arc::new(suites), Arc::new(events), clock(), WINDOW_SECS)
}

fn contact(event_id: Option<&str>) -> ContactChange {
    ContactChange {
        corp_id: corp("dingcorpa"),
        event_type: "user_leave_org".into(),
        event_id: event_id.map(str::to_owned),
        userids: vec![UserId::parse("u1").unwrap(), UserId::parse("u2").unwrap()],
        dept_ids: vec![DeptId::new(7).unwrap()],
        occurred_at: Some("1685501863357".into()),
    }
}

#[tokio::test]
async fn a_replayed_nonce_is_refused_and_nothing_is_stored() {
    let mut events = MockEventStore::new();
    events.expect_remember_nonce().times(1).returning(|_, _, _, _| Ok(false));
    let suites = MockSuiteStore::new();
    let out = handler(suites, events)
        .execute(
            OWNER,
            NONCE,
            vec![DingTalkEvent::SuiteTicket { suite_key: OWNER.into(), ticket: SecretText::new("t") }],
        )
        .await;
    assert!(matches!(out, Err(EventsError::Replayed)));
}

#[tokio::test]
async fn a_failing_nonce_store_is_a_store_error() {
    let mut events = MockEventStore::new();
    events.expect_remember_nonce().times(1).returning(|_, _, _, _| Err(StoreError::Unavailable("down".into())));
    let out = handler(MockSuiteStore::new(), events).execute(OWNER, NONCE, vec![]).await;
    assert!(matches!(out, Err(EventsError::Store(StoreError::Unavailable(_)))));
}

#[tokio::test]
async fn url_checks_change_and_unknown_events_store_nothing() {
    let out = handler(MockSuiteStore::new(), fresh_nonce())
        .execute(
            OWNER,
            NONCE,
            vec![
                DingTalkEvent::CheckUrl { event_type: "check_url".into() },
                DingTalkEvent::ChangeAuth { suite_key: OWNER.into(), corp_id: corp("dingcorpa") },
                DingTalkEvent::Unknown { event_type: "bpms_task_change".into() },
            ],
        )
        .await
        .unwrap();
    assert_eq!(out, EventsSummary { applied: 0, duplicates: 0, ignored: 3 });
}

#[tokio::test]
async fn a_suite_ticket_is_put() {
    let mut suites = MockSuiteStore::new();
    suites
        .expect_put_ticket()
        .withf(|key, ticket, at| key == OWNER && ticket == "ticket-2" && *at == now())
        .times(1)
        .returning(|_, _, _| Ok(()));
    let out = handler(suites, fresh_nonce())
        .execute(
            OWNER,
            NONCE,
            vec![DingTalkEvent::SuiteTicket { suite_key: OWNER.into(), ticket: SecretText::new("ticket-2") }],
        )
        .await
        .unwrap();
    assert_eq!(out.applied, 1);
}

#[tokio::test]
async fn a_failing_ticket_store_is_a_store_error() {
    let mut suites = MockSuiteStore::new();
    suites.expect_put_ticket().times(1).returning(|_, _, _| Err(StoreError::Other("disk".into())));
    let mut events = fresh_nonce();
    // The failed push's nonce is forgotten, so DingTalk's retry with the same nonce is accepted.
    events
        .expect_forget_nonce()
        .withf(|owner, nonce| owner == OWNER && nonce == NONCE)
        .times(1)
        .returning(|_, _| Ok(()));
    let out = handler(suites, events)
        .execute(
            OWNER,
            NONCE,
            vec![DingTalkEvent::SuiteTicket { suite_key: OWNER.into(), ticket: SecretText::new("t") }],
        )
        .await;
    assert!(matches!(out, Err(EventsError::Store(StoreError::Other(_)))));
}

#[tokio::test]
async fn tmp_auth_code_activates_without_agent_id() {
    let mut suites = MockSuiteStore::new();
    suites
        .expect_authorization()
        .withf(|k, c| k == OWNER && *c == corp("dingcorpa"))
        .times(1)
        .returning(|_, _| Ok(None));
    suites
        .expect_put_authorization()
        .withf(|a| {
            *a == CorpAuthorization {
                suite_key: OWNER.into(),
                corp_id: corp("dingcorpa"),
                agent_id: None,
                permanent_code: None,
                active: true,
                updated_at: now(),
            }
        })
        .times(1)
        .returning(|_| Ok(()));
    let out = handler(suites, fresh_nonce())
        .execute(OWNER, NONCE, vec![DingTalkEvent::TmpAuthCode { suite_key: OWNER.into(), corp_id: corp("dingcorpa") }])
        .await
        .unwrap();
    assert_eq!(out.applied, 1);
}

#[tokio::test]
async fn tmp_auth_code_keeps_an_earlier_agent_id_and_code() {
    let mut suites = MockSuiteStore::new();
    suites.expect_authorization().times(1).returning(|_, _| {
        Ok(Some(CorpAuthorization {
            suite_key: OWNER.into(),
            corp_id: corp("dingcorpa"),
            agent_id: Some(AgentId::new(9).unwrap()),
            permanent_code: Some("perm".into()),
            active: false,
            updated_at: Timestamp::from_millis(1),
        }))
    });
    suites
        .expect_put_authorization()
        .withf(|a| {
            a.active && a.agent_id == Some(AgentId::new(9).unwrap()) && a.permanent_code.as_deref() == Some("perm")
        })
        .times(1)
        .returning(|_| Ok(()));
    handler(suites, fresh_nonce())
        .execute(OWNER, NONCE, vec![DingTalkEvent::TmpAuthCode { suite_key: OWNER.into(), corp_id: corp("dingcorpa") }])
        .await
        .unwrap();
}

#[tokio::test]
async fn org_suite_auth_stores_agent_id_and_permanent_code() {
    let mut suites = MockSuiteStore::new();
    suites
        .expect_put_authorization()
        .withf(|a| {
            a.corp_id == corp("dingcorpb")
                && a.agent_id == Some(AgentId::new(42).unwrap())
                && a.permanent_code.as_deref() == Some("perm")
                && a.active
        })
        .times(1)
        .returning(|_| Ok(()));
    let out = handler(suites, fresh_nonce())
        .execute(
            OWNER,
            NONCE,
            vec![DingTalkEvent::OrgSuiteAuth {
                suite_key: OWNER.into(),
                corp_id: corp("dingcorpb"),
                agent_id: Some(AgentId::new(42).unwrap()),
                permanent_code: Some(SecretText::new("perm")),
            }],
        )
        .await
        .unwrap();
    assert_eq!(out.applied, 1);
}

#[tokio::test]
async fn relieve_keeps_the_agent_id_and_deactivates() {
    let mut suites = MockSuiteStore::new();
    suites.expect_authorization().withf(|k, c| k == OWNER && *c == corp("dingcorpa")).times(1).returning(|_, _| {
        Ok(Some(CorpAuthorization {
            suite_key: OWNER.into(),
            corp_id: corp("dingcorpa"),
            agent_id: Some(AgentId::new(9).unwrap()),
            permanent_code: Some("perm".into()),
            active: true,
            updated_at: Timestamp::from_millis(1),
        }))
    });
    suites
        .expect_put_authorization()
        .withf(|a| !a.active && a.agent_id == Some(AgentId::new(9).unwrap()) && a.updated_at == now())
        .times(1)
        .returning(|_| Ok(()));
    handler(suites, fresh_nonce())
        .execute(OWNER, NONCE, vec![DingTalkEvent::Relieve { suite_key: OWNER.into(), corp_id: corp("dingcorpa") }])
        .await
        .unwrap();
}

#[tokio::test]
async fn relieve_of_an_unknown_corp_records_it_inactive() {
    let mut suites = MockSuiteStore::new();
    suites.expect_authorization().times(1).returning(|_, _| Ok(None));
    suites
        .expect_put_authorization()
        .withf(|a| !a.active && a.agent_id.is_none() && a.corp_id == corp("dingcorpz"))
        .times(1)
        .returning(|_| Ok(()));
    handler(suites, fresh_nonce())
        .execute(OWNER, NONCE, vec![DingTalkEvent::Relieve { suite_key: OWNER.into(), corp_id: corp("dingcorpz") }])
        .await
        .unwrap();
}

/// An event store expecting one push of contact events with the fresh nonce, checked by
/// `check`, answering `cursors`.
fn contact_push(
    check: impl Fn(&[ContactEvent]) -> bool + Send + 'static,
    cursors: Result<Option<Vec<Option<i64>>>, StoreError>,
) -> MockEventStore {
    let mut events = MockEventStore::new();
    events
        .expect_remember_and_append()
        .withf(move |owner, nonce, at, keep, events| {
            owner == OWNER
                && nonce == NONCE
                && *at == now()
                && *keep == now().plus_secs(2 * WINDOW_SECS)
                && check(events)
        })
        .times(1)
        .returning(move |_, _, _, _, _| cursors.clone());
    events
}

#[tokio::test]
async fn a_contact_event_is_appended_with_dingtalks_event_id_in_one_write_with_the_nonce() {
    let events = contact_push(
        |events| {
            let [e] = events else { return false };
            e.event_id == "ev-1"
                && e.corp_id == corp("dingcorpa")
                && e.change == application::ports::DirectoryChange::MemberLeft
                && e.userids.len() == 2
                && e.dept_ids == vec![DeptId::new(7).unwrap()]
                && e.received_at == now()
        },
        Ok(Some(vec![Some(5)])),
    );
    let out = handler(MockSuiteStore::new(), events)
        .execute(OWNER, NONCE, vec![DingTalkEvent::Contact(contact(Some("ev-1")))])
        .await
        .unwrap();
    assert_eq!(out, EventsSummary { applied: 1, duplicates: 0, ignored: 0 });
}

#[tokio::test]
async fn a_duplicate_contact_event_is_counted_not_an_error() {
    let events = contact_push(|events| events.len() == 2, Ok(Some(vec![None, Some(9)])));
    let out = handler(MockSuiteStore::new(), events)
        .execute(
            OWNER,
            NONCE,
            vec![DingTalkEvent::Contact(contact(Some("ev-1"))), DingTalkEvent::Contact(contact(Some("ev-2")))],
        )
        .await
        .unwrap();
    assert_eq!(out, EventsSummary { applied: 1, duplicates: 1, ignored: 0 });
}

#[tokio::test]
async fn a_replayed_contact_push_is_refused() {
    let events = contact_push(|events| events.len() == 1, Ok(None));
    let out = handler(MockSuiteStore::new(), events)
        .execute(OWNER, NONCE, vec![DingTalkEvent::Contact(contact(Some("ev-1")))])
        .await;
    assert!(matches!(out, Err(EventsError::Replayed)));
}

#[tokio::test]
async fn a_contact_event_without_id_gets_a_stable_digest() {
    let expected = contact(None).dedup_key();
    assert!(expected.starts_with("sha256:"));
    assert_eq!(expected, contact(None).dedup_key());
    let mut other = contact(None);
    other.occurred_at = Some("1".into());
    assert_ne!(expected, other.dedup_key());
    let events =
        contact_push(move |events| events.len() == 1 && events[0].event_id == expected, Ok(Some(vec![Some(1)])));
    handler(MockSuiteStore::new(), events)
        .execute(OWNER, NONCE, vec![DingTalkEvent::Contact(contact(None))])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_contact_push_is_a_store_error_with_nothing_to_undo() {
    // The nonce and the events are one write: nothing was stored, so no forget_nonce call.
    let events = contact_push(|_| true, Err(StoreError::Unavailable("pool".into())));
    let out = handler(MockSuiteStore::new(), events)
        .execute(OWNER, NONCE, vec![DingTalkEvent::Contact(contact(Some("x")))])
        .await;
    assert!(matches!(out, Err(EventsError::Store(_))));
}

/// A suite ticket and the contact event `event_id` in one push.
fn mixed_push(event_id: &str) -> Vec<DingTalkEvent> {
    vec![
        DingTalkEvent::SuiteTicket { suite_key: OWNER.into(), ticket: SecretText::new("t") },
        DingTalkEvent::Contact(contact(Some(event_id))),
    ]
}

#[tokio::test]
async fn a_push_mixing_contact_and_suite_events_applies_each_after_the_nonce() {
    let mut events = fresh_nonce();
    events.expect_append().withf(|e| e.event_id == "ev-1").times(1).returning(|_| Ok(Some(3)));
    events.expect_remember_and_append().never();
    let mut suites = MockSuiteStore::new();
    suites.expect_put_ticket().times(1).returning(|_, _, _| Ok(()));
    let out = handler(suites, events).execute(OWNER, NONCE, mixed_push("ev-1")).await.unwrap();
    assert_eq!(out, EventsSummary { applied: 2, duplicates: 0, ignored: 0 });
}

#[tokio::test]
async fn a_failing_append_in_a_mixed_push_forgets_the_nonce() {
    let mut events = fresh_nonce();
    events.expect_append().times(1).returning(|_| Err(StoreError::Unavailable("pool".into())));
    events.expect_forget_nonce().times(1).returning(|_, _| Err(StoreError::Unavailable("pool".into())));
    let mut suites = MockSuiteStore::new();
    suites.expect_put_ticket().times(1).returning(|_, _, _| Ok(()));
    let out = handler(suites, events).execute(OWNER, NONCE, mixed_push("x")).await;
    assert!(matches!(out, Err(EventsError::Store(_))));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let event = DingTalkEvent::SuiteTicket { suite_key: "s".into(), ticket: SecretText::new("very-secret") };
    assert!(!format!("{event:?}").contains("very-secret"));
}
