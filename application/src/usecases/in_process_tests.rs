#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the in-process [`CloudGateway`]: each method runs the cloud
//! use case as the configured relay client, and every [`CloudError`] arm maps
//! to the right [`GatewayError`].

use std::sync::Arc;

use domain::{
    BatchRecord, CorpId, DeliveryId, DeliveryReport, LoginFailure, LoginState, MemberDetails, MemberProfile,
    MessageState, Recipients, UnionId,
};

use super::cloud::{CloudError, CreateLoginIntent, FetchMember, RelayRecall, RelaySend, RelayStatus, TakeLoginResult};
use super::feed::ReadContactFeed;
use super::in_process::{CloudUseCases, InProcessGateway};
use super::test_support::*;
use crate::ports::{
    CloudGateway, ContactEvent, FeedEntry, GatewayError, IdentityError, LoginOutcome, MemberKey, MessengerError,
    MockClock, MockEventStore, MockFeedSignal, MockIdentityProvider, MockLoginIntentStore, MockLoginResultStore,
    MockMessenger, MockRandomSource, MockRelayMessageStore, Providers, RelayClient, RelayMessageRecord, RelayReceipt,
    RelaySendRequest, StoreError, UpstreamError,
};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const DEV_CLIENT: &str = "dev";
const COMPLETE_URL: &str = "http://localhost:8080/auth/idp-a/complete";
const CALLBACK_URL: &str = "http://localhost:8080/auth/idp-a/callback";
const AUTHORIZE_URL: &str = "https://idp-a.example/oauth2/auth?x=1";
const KEY: &str = "msg-0001";

fn provider() -> domain::ProviderKey {
    domain::ProviderKey::from_static("idp-a")
}

fn corp_a() -> CorpId {
    CorpId::parse("dingcorpa").unwrap()
}

fn corp_other() -> CorpId {
    CorpId::parse("dingother").unwrap()
}

fn task(n: i64) -> DeliveryId {
    DeliveryId::parse(&n.to_string()).unwrap()
}

fn client() -> RelayClient {
    RelayClient {
        id: DEV_CLIENT.to_owned(),
        corp_ids: vec![corp_a()],
        complete_url_origins: vec!["http://localhost:8080".to_owned()],
    }
}

fn state() -> LoginState {
    LoginState::from_random_bytes(&[9; 32])
}

fn details() -> MemberDetails {
    MemberDetails {
        userid: uid("manager4220"),
        union_id: UnionId::parse("union-1").unwrap(),
        name: "张三".to_owned(),
        avatar_url: None,
        title: None,
        org_email: None,
        email: None,
        mobile: None,
        dept_ids: vec![],
        active: true,
    }
}

fn recipients() -> Recipients {
    Recipients::new(vec![uid("alice"), uid("bob")], vec![]).unwrap()
}

fn request() -> RelaySendRequest {
    RelaySendRequest { key: KEY.to_owned(), corp_id: corp_a(), recipients: recipients(), body: text("hello") }
}

fn record(state: MessageState, delivery_ids: &[i64]) -> RelayMessageRecord {
    RelayMessageRecord {
        client_id: DEV_CLIENT.to_owned(),
        key: KEY.to_owned(),
        corp_id: corp_a(),
        body: text("hello"),
        batches: recipients()
            .batches()
            .into_iter()
            .enumerate()
            .map(|(i, batch)| BatchRecord {
                delivery_id: delivery_ids.get(i).map(|id| task(*id)),
                ..BatchRecord::new(batch)
            })
            .collect(),
        state,
        created_at: now(),
        updated_at: now(),
        attempts: 0,
        waiting: None,
    }
}

/// The mocks behind every cloud use case; a test sets expectations on the ports it exercises.
#[derive(Default)]
struct CloudMocks {
    intents: MockLoginIntentStore,
    results: MockLoginResultStore,
    idp: MockIdentityProvider,
    messages: MockRelayMessageStore,
    messenger: MockMessenger,
    events: MockEventStore,
    signal: MockFeedSignal,
}

impl CloudMocks {
    fn gateway(self) -> InProcessGateway {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        let clock = Arc::new(clock);
        let mut random = MockRandomSource::new();
        random.expect_bytes32().return_const([9u8; 32]);
        let providers = Providers::single(provider(), Arc::new(self.idp));
        let messages = Arc::new(self.messages);
        let messenger = Arc::new(self.messenger);
        let cloud = CloudUseCases {
            create_intent: CreateLoginIntent::new(
                Arc::new(self.intents),
                providers.clone(),
                clock.clone(),
                Arc::new(random),
                "http://localhost:8080".to_owned(),
            ),
            take_result: TakeLoginResult::new(Arc::new(self.results), clock.clone()),
            send: Arc::new(RelaySend::new(messages.clone(), messenger.clone(), clock.clone())),
            status: RelayStatus::new(messages.clone(), messenger.clone(), clock.clone()),
            recall: RelayRecall::new(messages, messenger, clock),
            fetch_member: FetchMember::new(providers),
            read_feed: ReadContactFeed::new(Arc::new(self.events), Arc::new(self.signal)),
        };
        InProcessGateway::new(client(), cloud)
    }

    /// `messages.get` expected once for the dev client and `KEY`.
    fn getting(mut self, found: Result<Option<RelayMessageRecord>, StoreError>) -> Self {
        self.messages
            .expect_get()
            .withf(|c, k| c == DEV_CLIENT && k == KEY)
            .times(1)
            .returning(move |_, _| found.clone());
        self
    }
}

// ---------------------------------------------------------------------------
// Delegation, with the configured relay client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn start_login_registers_an_intent_for_the_configured_client() -> Result<(), GatewayError> {
    let mut mocks = CloudMocks::default();
    let hash = state().hash();
    mocks
        .intents
        .expect_insert()
        .withf(move |i| {
            i.state_hash == hash
                && i.client_id == DEV_CLIENT
                && i.corp_ids == [corp_a()]
                && i.complete_url == COMPLETE_URL
                && i.expires_at == now().plus_secs(600)
        })
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .idp
        .expect_authorize_url()
        .withf(|s, uri, _challenge| *s == state() && uri == CALLBACK_URL)
        .times(1)
        .return_const(AUTHORIZE_URL.to_owned());

    let url = mocks.gateway().start_login(&provider(), &state(), COMPLETE_URL).await?;

    assert_eq!(url, AUTHORIZE_URL);
    Ok(())
}

#[tokio::test]
async fn take_login_result_takes_the_configured_clients_result() -> Result<(), GatewayError> {
    let mut mocks = CloudMocks::default();
    let hash = state().hash();
    let outcome: LoginOutcome = Err(LoginFailure::ConsentDenied { error: "access_denied".to_owned() });
    let answer = outcome.clone();
    mocks
        .results
        .expect_take()
        .withf(move |h, c, at| h == hash && c == DEV_CLIENT && *at == now())
        .times(1)
        .returning(move |_, _, _| Ok(Some(answer.clone())));

    let taken = mocks.gateway().take_login_result(&state()).await?;

    assert_eq!(taken, outcome);
    Ok(())
}

#[tokio::test]
async fn send_message_relays_as_the_configured_client() -> Result<(), GatewayError> {
    let mut mocks = CloudMocks::default();
    let existing = record(MessageState::Sent, &[11]);
    mocks
        .messages
        .expect_insert_or_get()
        .withf(|r| r.client_id == DEV_CLIENT && r.key == KEY && r.corp_id == corp_a())
        .times(1)
        .returning(move |_| Ok((existing.clone(), false)));
    mocks.messenger.expect_send().never();

    let receipt = mocks.gateway().send_message(&request()).await?;

    assert_eq!(
        receipt,
        RelayReceipt {
            key: KEY.to_owned(),
            state: MessageState::Sent,
            delivery_ids: vec![task(11)],
            errors: vec![],
            waiting: None
        }
    );
    Ok(())
}

#[tokio::test]
async fn message_status_reads_the_configured_clients_record() -> Result<(), GatewayError> {
    let mocks = CloudMocks::default().getting(Ok(Some(record(MessageState::Accepted, &[]))));

    let (receipt, report) = mocks.gateway().message_status(KEY).await?;

    assert_eq!(receipt.state, MessageState::Accepted);
    assert!(receipt.delivery_ids.is_empty());
    assert_eq!(report, DeliveryReport::merge(&[]));
    Ok(())
}

#[tokio::test]
async fn recall_message_recalls_the_configured_clients_message() -> Result<(), GatewayError> {
    let mut mocks = CloudMocks::default().getting(Ok(Some(record(MessageState::Sent, &[11]))));
    mocks.messenger.expect_recall().withf(|c, t| *c == corp_a() && *t == task(11)).times(1).returning(|_, _| Ok(()));
    mocks
        .messages
        .expect_set_state()
        .withf(|c, k, s, at| c == DEV_CLIENT && k == KEY && *s == MessageState::Recalled && *at == now())
        .times(1)
        .returning(|_, _, _, _| Ok(()));

    let receipt = mocks.gateway().recall_message(KEY).await?;

    assert_eq!(receipt.state, MessageState::Recalled);
    Ok(())
}

#[tokio::test]
async fn get_member_fetches_within_the_configured_clients_corps() -> Result<(), GatewayError> {
    let mut mocks = CloudMocks::default();
    mocks
        .idp
        .expect_get_member()
        .withf(|c, u| *c == corp_a() && *u == uid("manager4220"))
        .times(1)
        .returning(|_, _| Ok(details()));

    let profile = mocks.gateway().get_member(&corp_a(), &MemberKey::UserId(uid("manager4220"))).await?;

    assert_eq!(profile, MemberProfile::from_details(provider(), corp_a(), details(), None));
    Ok(())
}

// ---------------------------------------------------------------------------
// CloudError → GatewayError, one test per arm
// ---------------------------------------------------------------------------

#[test]
fn invalid_state_maps_to_not_found() {
    // No gateway method reaches InvalidState (that comes from the callback), so the conversion is checked directly.
    assert_eq!(GatewayError::from(CloudError::InvalidState), GatewayError::NotFound);
}

#[tokio::test]
async fn not_found_maps_to_not_found() {
    let mut mocks = CloudMocks::default();
    mocks.results.expect_take().times(1).returning(|_, _, _| Ok(None));

    let err = mocks.gateway().take_login_result(&state()).await.unwrap_err();

    assert_eq!(err, GatewayError::NotFound);
}

#[tokio::test]
async fn forbidden_maps_to_forbidden_with_its_message() {
    let mut mocks = CloudMocks::default();
    mocks.intents.expect_insert().never();
    mocks.idp.expect_authorize_url().never();

    let err =
        mocks.gateway().start_login(&provider(), &state(), "https://elsewhere.example/complete").await.unwrap_err();

    assert!(
        matches!(err, GatewayError::Forbidden(ref m) if m.contains("elsewhere.example") && m.contains(DEV_CLIENT)),
        "{err:?}"
    );
}

#[tokio::test]
async fn forbidden_corp_maps_to_forbidden() {
    let mut mocks = CloudMocks::default();
    mocks.idp.expect_get_member().never();

    let err = mocks.gateway().get_member(&corp_other(), &MemberKey::UserId(uid("manager4220"))).await.unwrap_err();

    assert!(matches!(err, GatewayError::Forbidden(ref m) if m.contains("dingother")), "{err:?}");
}

#[tokio::test]
async fn key_reused_maps_to_invalid() {
    let mut mocks = CloudMocks::default();
    let mut existing = record(MessageState::Accepted, &[]);
    existing.body = text("a different message");
    mocks.messages.expect_insert_or_get().times(1).returning(move |_| Ok((existing.clone(), false)));
    mocks.messenger.expect_send().never();

    let err = mocks.gateway().send_message(&request()).await.unwrap_err();

    assert_eq!(err, GatewayError::Invalid(CloudError::KeyReused.to_string()));
}

#[tokio::test]
async fn not_member_maps_to_not_member() {
    let mut mocks = CloudMocks::default();
    mocks.idp.expect_get_member().times(1).returning(|_, _| Err(IdentityError::NotMember));

    let err = mocks.gateway().get_member(&corp_a(), &MemberKey::UserId(uid("gone"))).await.unwrap_err();

    assert_eq!(err, GatewayError::NotMember);
}

#[tokio::test]
async fn unavailable_maps_to_unavailable_with_its_message() {
    let mut mocks = CloudMocks::default().getting(Ok(Some(record(MessageState::Sent, &[11]))));
    let upstream = UpstreamError::Unavailable("timeout".to_owned());
    let answer = upstream.clone();
    mocks
        .messenger
        .expect_progress()
        .withf(|c, t| *c == corp_a() && *t == task(11))
        .times(1)
        .returning(move |_, _| Err(MessengerError::Upstream(answer.clone())));
    mocks.messenger.expect_result().never();

    let err = mocks.gateway().message_status(KEY).await.unwrap_err();

    assert_eq!(err, GatewayError::Unavailable(upstream.to_string()));
}

#[tokio::test]
async fn rejected_maps_to_rejected_with_its_message() {
    let mut mocks = CloudMocks::default().getting(Ok(Some(record(MessageState::Accepted, &[]))));
    mocks.messenger.expect_recall().never();

    let err = mocks.gateway().recall_message(KEY).await.unwrap_err();

    assert!(matches!(err, GatewayError::Rejected(ref m) if m.contains("not been sent")), "{err:?}");
}

#[tokio::test]
async fn store_error_maps_to_unavailable() {
    let store = StoreError::Unavailable("db down".to_owned());
    let mocks = CloudMocks::default().getting(Err(store.clone()));

    let err = mocks.gateway().message_status(KEY).await.unwrap_err();

    assert_eq!(err, GatewayError::Unavailable(store.to_string()));
}

#[test]
fn every_store_error_maps_to_unavailable() {
    for store in [
        StoreError::Conflict("pk".to_owned()),
        StoreError::Unavailable("down".to_owned()),
        StoreError::Other("bad row".to_owned()),
    ] {
        let message = store.to_string();
        assert_eq!(GatewayError::from(CloudError::Store(store)), GatewayError::Unavailable(message));
    }
}

// ---------------------------------------------------------------------------
// The contact-event feed
// ---------------------------------------------------------------------------

fn feed_entry(cursor: i64) -> FeedEntry {
    FeedEntry {
        cursor,
        event: ContactEvent {
            corp_id: corp_a(),
            event_id: format!("ev-{cursor}"),
            change: crate::ports::DirectoryChange::MemberChanged,
            userids: vec![uid("alice")],
            dept_ids: vec![],
            received_at: now(),
        },
    }
}

#[tokio::test]
async fn contact_events_reads_the_feed_of_the_dev_clients_corps() {
    let mut mocks = CloudMocks::default();
    mocks.signal.expect_version().times(1).return_const(7_u64);
    mocks
        .events
        .expect_read_after()
        .withf(|corps, after, limit| corps == [corp_a()] && *after == 4 && *limit == 100)
        .times(1)
        .returning(|_, _, _| Ok(vec![feed_entry(5), feed_entry(9)]));
    let page = mocks.gateway().contact_events(4, 25).await.unwrap();
    assert_eq!(page.entries.iter().map(|e| e.cursor).collect::<Vec<_>>(), [5, 9]);
    assert_eq!(page.next, 9);
}

#[tokio::test]
async fn contact_events_with_an_out_of_range_wait_is_invalid_and_reads_nothing() {
    let err = CloudMocks::default().gateway().contact_events(0, 31).await.err();
    assert!(matches!(&err, Some(GatewayError::Invalid(m)) if m.contains("wait")), "{err:?}");
    let err = CloudMocks::default().gateway().contact_events(-1, 0).await.err();
    assert!(matches!(&err, Some(GatewayError::Invalid(m)) if m.contains("after")), "{err:?}");
}

#[tokio::test]
async fn contact_events_storage_failure_is_unavailable() {
    let mut mocks = CloudMocks::default();
    mocks.signal.expect_version().times(1).return_const(0_u64);
    mocks.events.expect_read_after().times(1).returning(|_, _, _| Err(StoreError::Unavailable("down".into())));
    let err = mocks.gateway().contact_events(0, 0).await.err();
    assert!(matches!(err, Some(GatewayError::Unavailable(_))), "{err:?}");
}
