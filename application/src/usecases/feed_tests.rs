#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the contact-event feed use cases with strict mockall expectations: every port
//! call a branch makes is expected `.times(n)` with its arguments checked, and a port a branch
//! must not touch has no expectation (a call would panic).

use std::sync::Arc;
use std::time::Duration;

use domain::{CorpId, DeptId, MemberProfile, OpenId, Timestamp, UnionId, User};
use mockall::Sequence;

use super::cloud::CloudError;
use super::feed::{ApplyContactEvents, CONTACT_FEED, FeedError, FeedProgress, FeedQuery, ReadContactFeed};
use super::test_support::*;
use crate::ports::{
    ContactEvent, ContactFeedPage, DirectoryChange, FeedEntry, GatewayError, MemberKey, MockClock, MockCloudGateway,
    MockEventStore, MockFeedCursorStore, MockFeedSignal, MockRandomSource, MockSessionStore, MockUserRepository,
    RelayClient, StoreError,
};

const CORP: &str = "dingcorpa";

fn corp() -> CorpId {
    CorpId::parse(CORP).unwrap()
}

fn client() -> RelayClient {
    RelayClient {
        id: "local-a".into(),
        corp_ids: vec![corp(), CorpId::parse("dingcorpb").unwrap()],
        complete_url_origins: vec![],
    }
}

fn event(change: DirectoryChange, userids: &[&str]) -> ContactEvent {
    ContactEvent {
        corp_id: corp(),
        event_id: format!("ev-{change:?}-{}", userids.join("-")),
        change,
        userids: userids.iter().map(|u| uid(u)).collect(),
        dept_ids: vec![],
        received_at: Timestamp::from_millis(NOW_MS - 1_000),
    }
}

fn entry(cursor: i64, change: DirectoryChange, userids: &[&str]) -> FeedEntry {
    FeedEntry { cursor, event: event(change, userids) }
}

fn profile(userid: &str, name: &str, active: bool) -> MemberProfile {
    MemberProfile {
        provider: domain::ProviderKey::from_static("idp-a"),
        corp_id: corp(),
        union_id: UnionId::parse(&format!("union-{userid}")).unwrap(),
        userid: uid(userid),
        open_id: None,
        name: name.into(),
        avatar_url: None,
        title: None,
        org_email: None,
        email: None,
        mobile: None,
        dept_ids: vec![DeptId::new(1).unwrap()],
        active,
    }
}

fn user(id: &str, userid: &str, active: bool) -> User {
    let mut profile = profile(userid, "Old Name", active);
    profile.open_id = Some(OpenId::parse(&format!("open-{userid}")).unwrap());
    User { id: id.into(), profile, created_at: Timestamp::from_millis(1), updated_at: Timestamp::from_millis(1) }
}

fn stored(id: &str, profile: &MemberProfile) -> User {
    User {
        id: id.into(),
        profile: profile.clone(),
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(NOW_MS),
    }
}

// ---------------------------------------------------------------------------
// FeedQuery
// ---------------------------------------------------------------------------

#[test]
fn feed_query_accepts_the_ranges_and_names_the_field_otherwise() {
    let q = FeedQuery::new(0, 30, 500).unwrap();
    assert_eq!((q.after(), q.wait(), q.limit()), (0, Duration::from_secs(30), 500));
    let q = FeedQuery::new(42, 0, 1).unwrap();
    assert_eq!((q.after(), q.wait(), q.limit()), (42, Duration::ZERO, 1));
    for (after, wait, limit, field) in
        [(-1, 0, 100, "after"), (0, -1, 100, "wait"), (0, 31, 100, "wait"), (0, 0, 0, "limit"), (0, 0, 501, "limit")]
    {
        let err = FeedQuery::new(after, wait, limit).unwrap_err();
        assert_eq!((err.field.as_str(), err.code), (field, "invalid"), "{after} {wait} {limit}");
        assert!(err.message.starts_with(field), "{}", err.message);
    }
}

// ---------------------------------------------------------------------------
// ReadContactFeed (cloud)
// ---------------------------------------------------------------------------

fn reader(events: MockEventStore, signal: MockFeedSignal) -> ReadContactFeed {
    ReadContactFeed::new(Arc::new(events), Arc::new(signal))
}

fn reading(events: &mut MockEventStore, seq: &mut Sequence, after: i64, found: Vec<FeedEntry>) {
    events
        .expect_read_after()
        .withf(move |corps, a, limit| corps == client().corp_ids && *a == after && *limit == 100)
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _| Ok(found.clone()));
}

#[tokio::test]
async fn available_events_are_returned_at_once_without_waiting() {
    let (mut events, mut signal, mut seq) = (MockEventStore::new(), MockFeedSignal::new(), Sequence::new());
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(3_u64);
    reading(
        &mut events,
        &mut seq,
        7,
        vec![entry(8, DirectoryChange::MemberJoined, &["a"]), entry(11, DirectoryChange::MemberLeft, &["b"])],
    );
    let page = reader(events, signal).execute(&client(), &FeedQuery::new(7, 30, 100).unwrap()).await.unwrap();
    assert_eq!(page.entries.iter().map(|e| e.cursor).collect::<Vec<_>>(), [8, 11]);
    assert_eq!(page.next, 11);
}

#[tokio::test]
async fn an_empty_feed_waits_for_the_signal_and_reads_again() {
    let (mut events, mut signal, mut seq) = (MockEventStore::new(), MockFeedSignal::new(), Sequence::new());
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(3_u64);
    reading(&mut events, &mut seq, 7, vec![]);
    signal
        .expect_wait_past()
        .withf(|seen, left| *seen == 3 && *left <= Duration::from_secs(20) && *left > Duration::from_secs(19))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| true);
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(4_u64);
    reading(&mut events, &mut seq, 7, vec![entry(8, DirectoryChange::MemberJoined, &["a"])]);
    let page = reader(events, signal).execute(&client(), &FeedQuery::new(7, 20, 100).unwrap()).await.unwrap();
    assert_eq!(page, ContactFeedPage { entries: vec![entry(8, DirectoryChange::MemberJoined, &["a"])], next: 8 });
}

#[tokio::test]
async fn a_wake_up_for_another_clients_corp_waits_again_for_the_rest_of_the_time() {
    let (mut events, mut signal, mut seq) = (MockEventStore::new(), MockFeedSignal::new(), Sequence::new());
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(3_u64);
    reading(&mut events, &mut seq, 7, vec![]);
    signal.expect_wait_past().withf(|seen, _| *seen == 3).times(1).in_sequence(&mut seq).returning(|_, _| true);
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(4_u64);
    reading(&mut events, &mut seq, 7, vec![]);
    signal
        .expect_wait_past()
        .withf(|seen, left| *seen == 4 && *left <= Duration::from_secs(5))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| false);
    let page = reader(events, signal).execute(&client(), &FeedQuery::new(7, 5, 100).unwrap()).await.unwrap();
    assert_eq!(page, ContactFeedPage { entries: vec![], next: 7 });
}

#[tokio::test]
async fn a_zero_wait_reads_once_and_never_waits() {
    let (mut events, mut signal, mut seq) = (MockEventStore::new(), MockFeedSignal::new(), Sequence::new());
    signal.expect_version().times(1).in_sequence(&mut seq).return_const(0_u64);
    reading(&mut events, &mut seq, 0, vec![]);
    let page = reader(events, signal).execute(&client(), &FeedQuery::new(0, 0, 100).unwrap()).await.unwrap();
    assert_eq!(page, ContactFeedPage { entries: vec![], next: 0 });
}

#[tokio::test]
async fn a_feed_storage_failure_is_a_store_error() {
    let (mut events, mut signal) = (MockEventStore::new(), MockFeedSignal::new());
    signal.expect_version().times(1).return_const(0_u64);
    events.expect_read_after().times(1).returning(|_, _, _| Err(StoreError::Unavailable("down".into())));
    let err = reader(events, signal).execute(&client(), &FeedQuery::new(0, 30, 100).unwrap()).await.err();
    assert!(matches!(err, Some(CloudError::Store(StoreError::Unavailable(_)))), "{err:?}");
}

// ---------------------------------------------------------------------------
// ApplyContactEvents (local)
// ---------------------------------------------------------------------------

/// The mocks behind [`ApplyContactEvents`]; a test sets expectations on the ports it exercises.
#[derive(Default)]
struct Local {
    gateway: MockCloudGateway,
    users: MockUserRepository,
    sessions: MockSessionStore,
    cursors: MockFeedCursorStore,
}

impl Local {
    fn build(self) -> ApplyContactEvents {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::from_millis(NOW_MS));
        let mut random = MockRandomSource::new();
        random.expect_new_id().returning(|| "new-id".to_owned());
        ApplyContactEvents::new(
            Arc::new(self.gateway),
            Arc::new(self.users),
            Arc::new(self.sessions),
            Arc::new(self.cursors),
            Arc::new(random),
            Arc::new(clock),
        )
    }

    /// The stored cursor is read once.
    fn stored_cursor(mut self, cursor: Option<i64>) -> Self {
        self.cursors.expect_cursor().withf(|name| name == CONTACT_FEED).times(1).returning(move |_| Ok(cursor));
        self
    }

    /// The cloud answers one page for `(after, 25)`.
    fn page(mut self, after: i64, page: Result<ContactFeedPage, GatewayError>) -> Self {
        self.gateway
            .expect_contact_events()
            .withf(move |a, wait| *a == after && *wait == 25)
            .times(1)
            .returning(move |_, _| page.clone());
        self
    }

    /// `save_cursor(cursor)` once, in `seq`.
    fn saves(mut self, seq: &mut Sequence, cursor: i64) -> Self {
        self.cursors
            .expect_save_cursor()
            .withf(move |name, c, now| name == CONTACT_FEED && *c == cursor && now.as_millis() == NOW_MS)
            .times(1)
            .in_sequence(seq)
            .returning(|_, _, _| Ok(()));
        self
    }

    fn finds(mut self, userid: &'static str, found: Option<User>) -> Self {
        self.users
            .expect_find_by_userid()
            .withf(move |c, u| *c == corp() && u.as_str() == userid)
            .times(1)
            .returning(move |_, _| Ok(found.clone()));
        self
    }

    fn member(mut self, userid: &'static str, answer: Result<MemberProfile, GatewayError>) -> Self {
        self.gateway
            .expect_get_member()
            .withf(move |c, key| *c == corp() && *key == MemberKey::UserId(uid(userid)))
            .times(1)
            .returning(move |_, _| answer.clone());
        self
    }

    /// `upsert` once with a profile satisfying `check`, storing it under `id`.
    fn upserts(mut self, id: &'static str, check: impl Fn(&MemberProfile) -> bool + Send + 'static) -> Self {
        self.users
            .expect_upsert()
            .withf(move |p, new_id, now| check(p) && new_id == "new-id" && now.as_millis() == NOW_MS)
            .times(1)
            .returning(move |p, _, _| Ok(stored(id, p)));
        self
    }

    fn revokes(mut self, id: &'static str, count: u64) -> Self {
        self.sessions.expect_delete_for_user().withf(move |u| u == id).times(1).returning(move |_| Ok(count));
        self
    }
}

fn page(after: i64, entries: Vec<FeedEntry>) -> Result<ContactFeedPage, GatewayError> {
    Ok(ContactFeedPage::new(after, entries))
}

#[tokio::test]
async fn the_first_round_starts_at_cursor_zero_and_an_empty_page_stores_nothing() {
    let apply = Local::default().stored_cursor(None).page(0, page(0, vec![])).build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 0, cursor: 0 });
}

#[tokio::test]
async fn a_modified_member_is_refreshed_keeping_their_open_id_and_the_cursor_stored() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(41))
        .page(41, page(41, vec![entry(42, DirectoryChange::MemberChanged, &["alice"])]))
        .finds("alice", Some(user("u-1", "alice", true)))
        .member("alice", Ok(profile("alice", "Alice New", true)))
        .upserts("u-1", |p| {
            p.name == "Alice New" && p.active && p.open_id.as_ref().map(OpenId::as_str) == Some("open-alice")
        })
        .saves(&mut seq, 42)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 1, cursor: 42 });
}

#[tokio::test]
async fn an_added_member_unknown_locally_is_created_so_the_directory_stays_complete() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(1))
        .page(1, page(1, vec![entry(2, DirectoryChange::MemberJoined, &["newbie"])]))
        .finds("newbie", None)
        .member("newbie", Ok(profile("newbie", "New Member", true)))
        .upserts("u-new", |p| p.userid.as_str() == "newbie" && p.open_id.is_none())
        .saves(&mut seq, 2)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 1, cursor: 2 });
}

#[tokio::test]
async fn every_member_of_an_event_is_refreshed_and_active_org_refreshes_too() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(1))
        .page(1, page(1, vec![entry(2, DirectoryChange::MemberActivated, &["a1", "a2"])]))
        .finds("a1", None)
        .finds("a2", None)
        .member("a1", Ok(profile("a1", "A1", true)))
        .member("a2", Ok(profile("a2", "A2", true)))
        .upserts("u-a1", |p| p.userid.as_str() == "a1")
        .upserts("u-a2", |p| p.userid.as_str() == "a2")
        .saves(&mut seq, 2)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap().applied, 1);
}

#[tokio::test]
async fn a_member_who_left_is_marked_inactive_and_their_sessions_revoked() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(9))
        .page(9, page(9, vec![entry(10, DirectoryChange::MemberLeft, &["alice"])]))
        .finds("alice", Some(user("u-1", "alice", true)))
        .upserts("u-1", |p| !p.active && p.name == "Old Name" && p.userid.as_str() == "alice")
        .revokes("u-1", 2)
        .saves(&mut seq, 10)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 1, cursor: 10 });
}

#[tokio::test]
async fn a_leave_of_an_inactive_member_only_revokes_sessions_and_of_an_unknown_one_is_skipped() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(9))
        .page(
            9,
            page(
                9,
                vec![
                    entry(10, DirectoryChange::MemberLeft, &["gone"]),
                    entry(12, DirectoryChange::MemberLeft, &["stranger"]),
                ],
            ),
        )
        .finds("gone", Some(user("u-2", "gone", false)))
        .revokes("u-2", 0)
        .saves(&mut seq, 10)
        .finds("stranger", None)
        .saves(&mut seq, 12)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 2, cursor: 12 });
}

#[tokio::test]
async fn a_refresh_answering_not_member_deactivates_a_known_member_and_skips_an_unknown_one() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(0))
        .page(0, page(0, vec![entry(1, DirectoryChange::MemberChanged, &["alice", "ghost"])]))
        .finds("alice", Some(user("u-1", "alice", true)))
        .member("alice", Err(GatewayError::NotMember))
        .upserts("u-1", |p| !p.active)
        .revokes("u-1", 1)
        .finds("ghost", None)
        .member("ghost", Err(GatewayError::NotMember))
        .saves(&mut seq, 1)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 1, cursor: 1 });
}

#[tokio::test]
async fn department_and_unknown_events_are_acknowledged_without_touching_users() {
    let mut seq = Sequence::new();
    let mut dept = entry(3, DirectoryChange::DepartmentCreated, &[]);
    dept.event.dept_ids = vec![DeptId::new(12).unwrap()];
    let apply = Local::default()
        .stored_cursor(Some(2))
        .page(
            2,
            page(
                2,
                vec![
                    dept,
                    entry(4, DirectoryChange::DepartmentRemoved, &[]),
                    entry(5, DirectoryChange::Other("label_user_change".into()), &["x"]),
                ],
            ),
        )
        .saves(&mut seq, 3)
        .saves(&mut seq, 4)
        .saves(&mut seq, 5)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 3, cursor: 5 });
}

#[tokio::test]
async fn a_transient_refresh_failure_stops_the_round_before_the_failed_event() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(0))
        .page(
            0,
            page(
                0,
                vec![
                    entry(1, DirectoryChange::MemberLeft, &["alice"]),
                    entry(2, DirectoryChange::MemberChanged, &["bob"]),
                    entry(3, DirectoryChange::MemberLeft, &["carol"]),
                ],
            ),
        )
        .finds("alice", Some(user("u-1", "alice", true)))
        .upserts("u-1", |p| !p.active)
        .revokes("u-1", 1)
        .saves(&mut seq, 1)
        .finds("bob", None)
        .member("bob", Err(GatewayError::Unavailable("the provider is down".into())))
        .build();
    let err = apply.run_once(25).await.err();
    assert!(matches!(&err, Some(FeedError::Unavailable(m)) if m == "the provider is down"), "{err:?}");
}

#[tokio::test]
async fn a_permanent_refresh_failure_skips_the_member_and_moves_on() {
    let mut seq = Sequence::new();
    let apply = Local::default()
        .stored_cursor(Some(0))
        .page(0, page(0, vec![entry(1, DirectoryChange::MemberChanged, &["bob", "dave"])]))
        .finds("bob", None)
        .member("bob", Err(GatewayError::Rejected("60011 no permission".into())))
        .finds("dave", Some(user("u-4", "dave", true)))
        .member("dave", Ok(profile("dave", "Dave", true)))
        .upserts("u-4", |p| p.name == "Dave")
        .saves(&mut seq, 1)
        .build();
    assert_eq!(apply.run_once(25).await.unwrap(), FeedProgress { applied: 1, cursor: 1 });
}

#[tokio::test]
async fn a_conflicting_row_is_skipped_but_unavailable_storage_stops_the_round() {
    let mut seq = Sequence::new();
    let mut local = Local::default()
        .stored_cursor(Some(0))
        .page(
            0,
            page(
                0,
                vec![
                    entry(1, DirectoryChange::MemberChanged, &["bob"]),
                    entry(2, DirectoryChange::MemberChanged, &["eve"]),
                ],
            ),
        )
        .finds("bob", None)
        .member("bob", Ok(profile("bob", "Bob", true)))
        .saves(&mut seq, 1)
        .finds("eve", None)
        .member("eve", Ok(profile("eve", "Eve", true)));
    local
        .users
        .expect_upsert()
        .withf(|p, _, _| p.userid.as_str() == "bob")
        .times(1)
        .returning(|_, _, _| Err(StoreError::Conflict("users_corp_userid_key".into())));
    local
        .users
        .expect_upsert()
        .withf(|p, _, _| p.userid.as_str() == "eve")
        .times(1)
        .returning(|_, _, _| Err(StoreError::Unavailable("pool timed out".into())));
    let err = local.build().run_once(25).await.err();
    assert!(matches!(err, Some(FeedError::Store(StoreError::Unavailable(_)))), "{err:?}");
}

#[tokio::test]
async fn a_failed_cursor_write_stops_the_round() {
    let mut local = Local::default().stored_cursor(Some(0)).page(
        0,
        page(
            0,
            vec![entry(1, DirectoryChange::DepartmentChanged, &[]), entry(2, DirectoryChange::DepartmentChanged, &[])],
        ),
    );
    local.cursors.expect_save_cursor().times(1).returning(|_, _, _| Err(StoreError::Unavailable("down".into())));
    let err = local.build().run_once(25).await.err();
    assert!(matches!(err, Some(FeedError::Store(StoreError::Unavailable(_)))), "{err:?}");
}

#[tokio::test]
async fn feed_request_failures_store_nothing() {
    let apply =
        Local::default().stored_cursor(Some(5)).page(5, Err(GatewayError::Unavailable("refused".into()))).build();
    assert!(matches!(apply.run_once(25).await, Err(FeedError::Unavailable(_))));
    let apply =
        Local::default().stored_cursor(Some(5)).page(5, Err(GatewayError::Forbidden("bad secret".into()))).build();
    assert!(matches!(apply.run_once(25).await, Err(FeedError::Refused(m)) if m.contains("bad secret")));
    let mut local = Local::default();
    local.cursors.expect_cursor().times(1).returning(|_| Err(StoreError::Unavailable("down".into())));
    assert!(matches!(local.build().run_once(25).await, Err(FeedError::Store(_))));
}

#[tokio::test]
async fn entries_at_or_before_the_cursor_are_ignored() {
    let mut seq = Sequence::new();
    let apply = Local::default().saves(&mut seq, 8).build();
    let entries = vec![
        entry(5, DirectoryChange::MemberLeft, &["x"]),
        entry(8, DirectoryChange::DepartmentCreated, &[]),
        entry(8, DirectoryChange::MemberLeft, &["y"]),
    ];
    assert_eq!(apply.apply(7, entries).await.unwrap(), FeedProgress { applied: 1, cursor: 8 });
}
