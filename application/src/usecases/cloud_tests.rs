#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the cloud use cases, with strict mockall expectations: every
//! port call a branch makes is expected `.times(1)` with its arguments checked,
//! and a port a branch must not touch has no expectation (a call would panic).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::{
    Batch, BatchRecord, CorpId, DeliveryId, DeliveryReport, DeptId, Identity, LoginFailure, LoginState, MemberDetails,
    MemberProfile, MessageBody, MessageState, OpenId, PkceVerifier, ProviderKey, Recipients, SendProgress, SendResult,
    SkipReason, Timestamp, UnionId, UserId,
};
use mockall::Sequence;
use tokio::sync::Notify;

use super::cloud::{
    CallbackQuery, CloudError, CreateLoginIntent, DEFAULT_SEND_LEASE_MS, DeliverRelayed, FetchMember, HandleCallback,
    RECALL_WINDOW_MS, RelayRecall, RelaySend, RelayStatus, ResolveUncertain, TakeLoginResult, UNCERTAIN_RECHECK_SECS,
    UncertainPolicy, url_in_origins, with_state,
};
use super::test_support::*;
use crate::ports::{
    ClaimedRelay, IdentityError, LoginIntent, LoginOutcome, MemberKey, Messenger, MessengerError, MockDispatchTrigger,
    MockIdentityProvider, MockLoginIntentStore, MockLoginResultStore, MockMessenger, MockRandomSource,
    MockRecipientLimits, MockRelayMessageStore, ProviderEntry, Providers, RelayClient, RelayMessageRecord,
    RelayMessageStore, RelaySendRequest, RelayWaiting, StoreError, UpstreamError, WaitReason,
};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const CLIENT_ID: &str = "client-a";
const ORIGIN: &str = "https://app.example";
const COMPLETE_URL: &str = "https://app.example/auth/idp-a/complete";
const PUBLIC_URL: &str = "https://cloud.example";
const CALLBACK_URL: &str = "https://cloud.example/auth/idp-a/callback";
const AUTHORIZE_URL: &str = "https://idp-a.example/oauth2/auth?redirect_uri=x&state=y";
const KEY: &str = "msg-0001";
const CODE: &str = "f85c6abc";

/// The provider the tests sign in with (the core knows providers only by key).
fn provider() -> ProviderKey {
    ProviderKey::from_static("idp-a")
}

/// The PKCE verifier drawn from [`random`]'s bytes.
fn verifier() -> PkceVerifier {
    PkceVerifier::from_random_bytes(&[9; 32])
}

fn random() -> Arc<MockRandomSource> {
    let mut random = MockRandomSource::new();
    random.expect_bytes32().return_const([9u8; 32]);
    Arc::new(random)
}

/// One provider, [`provider`], serving every corp.
fn providers(idp: MockIdentityProvider) -> Providers {
    Providers::single(provider(), Arc::new(idp))
}

fn corp_c() -> CorpId {
    corp("dingcorpc")
}

fn union_id() -> UnionId {
    UnionId::parse("z21HjQliSzpw0Y").unwrap()
}

fn task(n: i64) -> DeliveryId {
    DeliveryId::parse(&n.to_string()).unwrap()
}

fn client() -> RelayClient {
    RelayClient {
        id: CLIENT_ID.to_owned(),
        corp_ids: vec![corp_a(), corp_b()],
        complete_url_origins: vec![ORIGIN.to_owned()],
    }
}

fn state() -> LoginState {
    LoginState::from_random_bytes(&[7; 32])
}

fn intent() -> LoginIntent {
    LoginIntent {
        state_hash: state().hash(),
        client_id: CLIENT_ID.to_owned(),
        provider: provider(),
        code_verifier: Some(verifier()),
        complete_url: COMPLETE_URL.to_owned(),
        corp_ids: vec![corp_a(), corp_b()],
        expires_at: now().plus_secs(600),
    }
}

fn identity(corp_id: Option<CorpId>) -> Identity {
    Identity {
        union_id: union_id(),
        open_id: Some(OpenId::parse("open-1").unwrap()),
        corp_id,
        nick: "zs".to_owned(),
        avatar_url: Some("https://a.example/x.png".to_owned()),
        email: Some("claimed@example.com".to_owned()),
        mobile: None,
    }
}

fn details() -> MemberDetails {
    MemberDetails {
        userid: uid("manager4220"),
        union_id: union_id(),
        name: "张三".to_owned(),
        avatar_url: None,
        title: Some("Manager".to_owned()),
        org_email: None,
        email: None,
        mobile: Some("15000009144".to_owned()),
        dept_ids: vec![DeptId::new(1).unwrap()],
        active: true,
    }
}

fn users(n: usize) -> Vec<UserId> {
    (0..n).map(|i| uid(&format!("user{i:04}"))).collect()
}

fn recipients(n: usize) -> Recipients {
    Recipients::new(users(n), vec![]).unwrap()
}

fn send_request(corp_id: CorpId, n: usize) -> RelaySendRequest {
    RelaySendRequest { key: KEY.to_owned(), corp_id, recipients: recipients(n), body: text("hello") }
}

/// The record `RelaySend` builds for `send_request(corp_a(), n)`.
fn fresh_record(n: usize) -> RelayMessageRecord {
    RelayMessageRecord {
        client_id: CLIENT_ID.to_owned(),
        key: KEY.to_owned(),
        corp_id: corp_a(),
        body: text("hello"),
        batches: recipients(n).batches().into_iter().map(BatchRecord::new).collect(),
        state: MessageState::Accepted,
        created_at: now(),
        updated_at: now(),
        attempts: 0,
        waiting: None,
    }
}

/// A stored record with `n` recipients whose batches carry `delivery_ids` (in order; `None` = not sent).
fn stored_record(n: usize, delivery_ids: &[Option<i64>], state: MessageState) -> RelayMessageRecord {
    let mut record = fresh_record(n);
    for (batch, id) in record.batches.iter_mut().zip(delivery_ids) {
        batch.delivery_id = id.map(task);
    }
    record.state = state;
    record
}

fn unavailable() -> UpstreamError {
    UpstreamError::Unavailable("timeout".to_owned())
}

fn rejected() -> UpstreamError {
    UpstreamError::Rejected { code: "40035".to_owned(), message: "bad request".to_owned() }
}

// ---------------------------------------------------------------------------
// url_in_origins / with_state
// ---------------------------------------------------------------------------

fn origins(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn url_equal_to_the_origin_is_inside() {
    assert!(url_in_origins("https://app.example", &origins(&[ORIGIN])));
}

#[test]
fn url_under_the_origin_with_a_path_is_inside() {
    assert!(url_in_origins(COMPLETE_URL, &origins(&[ORIGIN])));
    assert!(url_in_origins("https://app.example/", &origins(&[ORIGIN])));
}

#[test]
fn look_alike_prefix_is_outside() {
    assert!(!url_in_origins("https://app.example.evil", &origins(&[ORIGIN])));
    assert!(!url_in_origins("https://app.example.evil/complete", &origins(&[ORIGIN])));
    assert!(!url_in_origins("https://app.example@evil.example/", &origins(&[ORIGIN])));
    assert!(!url_in_origins("https://app.example:8443/x", &origins(&[ORIGIN])));
    assert!(!url_in_origins("http://app.example/x", &origins(&[ORIGIN])));
}

#[test]
fn origin_with_a_trailing_slash_still_matches() {
    let list = origins(&["https://app.example/"]);
    assert!(url_in_origins("https://app.example", &list));
    assert!(url_in_origins(COMPLETE_URL, &list));
    assert!(!url_in_origins("https://app.example.evil/", &list));
}

#[test]
fn any_of_several_origins_may_match_and_none_is_outside() {
    let list = origins(&["https://other.example", ORIGIN]);
    assert!(url_in_origins(COMPLETE_URL, &list));
    assert!(!url_in_origins(COMPLETE_URL, &[]));
}

#[test]
fn with_state_uses_a_question_mark_when_there_is_no_query() {
    let state = state();
    assert_eq!(with_state(COMPLETE_URL, &state), format!("{COMPLETE_URL}?state={}", state.expose()));
}

#[test]
fn with_state_uses_an_ampersand_after_an_existing_query() {
    let state = state();
    assert_eq!(
        with_state("https://app.example/done?x=1", &state),
        format!("https://app.example/done?x=1&state={}", state.expose())
    );
}

#[test]
fn with_state_keeps_the_state_out_of_the_fragment() {
    let state = state();
    assert_eq!(
        with_state("https://app.example/done#top", &state),
        format!("https://app.example/done?state={}#top", state.expose())
    );
}

// ---------------------------------------------------------------------------
// CreateLoginIntent
// ---------------------------------------------------------------------------

fn create_intent(intents: MockLoginIntentStore, idp: MockIdentityProvider) -> CreateLoginIntent {
    CreateLoginIntent::new(Arc::new(intents), providers(idp), clock(), random(), PUBLIC_URL.to_owned())
}

#[tokio::test]
async fn create_intent_stores_the_intent_and_returns_the_authorize_url() {
    let mut intents = MockLoginIntentStore::new();
    let expected = intent();
    intents.expect_insert().withf(move |i| *i == expected).times(1).returning(|_| Ok(()));
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url()
        .withf(|s, uri, challenge| *s == state() && uri == CALLBACK_URL && challenge == verifier().challenge_s256())
        .times(1)
        .return_const(AUTHORIZE_URL.to_owned());

    let url = create_intent(intents, idp).execute(&client(), &provider(), &state(), COMPLETE_URL).await.unwrap();

    assert_eq!(url, AUTHORIZE_URL);
}

#[tokio::test]
async fn create_intent_outside_the_origins_is_forbidden_and_stores_nothing() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_insert().never();
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().never();

    let err = create_intent(intents, idp)
        .execute(&client(), &provider(), &state(), "https://app.example.evil/complete")
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::Forbidden(ref msg) if msg.contains(CLIENT_ID)), "{err:?}");
}

#[tokio::test]
async fn create_intent_propagates_a_store_error() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_insert().times(1).returning(|_| Err(StoreError::Conflict("login_intents_pkey".to_owned())));
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().never();

    let err = create_intent(intents, idp).execute(&client(), &provider(), &state(), COMPLETE_URL).await.unwrap_err();

    assert!(matches!(err, CloudError::Store(StoreError::Conflict(_))), "{err:?}");
}

#[tokio::test]
async fn create_intent_for_a_provider_not_served_is_unknown_and_stores_nothing() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_insert().never();
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().never();

    let err = create_intent(intents, idp)
        .execute(&client(), &ProviderKey::from_static("idp-z"), &state(), COMPLETE_URL)
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::UnknownProvider(ref p) if p == "idp-z"), "{err:?}");
}

#[test]
fn a_tenant_belongs_to_the_provider_naming_it_else_to_the_one_without_a_list() {
    let b = ProviderKey::from_static("idp-b");
    let providers = providers(MockIdentityProvider::new()).with(ProviderEntry {
        key: b.clone(),
        idp: Arc::new(MockIdentityProvider::new()),
        tenants: vec![corp_b()],
    });
    assert_eq!(providers.for_tenant(&corp_b()).map(|e| e.key.clone()), Some(b.clone()));
    assert_eq!(providers.for_tenant(&corp_a()).map(|e| e.key.clone()), Some(provider()));
    assert!(providers.get(&b).is_some() && providers.get(&ProviderKey::from_static("idp-z")).is_none());
    assert_eq!(providers.keys().cloned().collect::<Vec<_>>(), vec![provider(), b]);
}

// ---------------------------------------------------------------------------
// HandleCallback
// ---------------------------------------------------------------------------

fn handle_callback(
    intents: MockLoginIntentStore,
    results: MockLoginResultStore,
    idp: MockIdentityProvider,
) -> HandleCallback {
    HandleCallback::new(Arc::new(intents), Arc::new(results), providers(idp), clock())
}

/// Intents whose `take` is expected once, for `state()` at `now()`, answering `found`.
fn intents_taking(found: Option<LoginIntent>) -> MockLoginIntentStore {
    let mut intents = MockLoginIntentStore::new();
    let hash = state().hash();
    intents
        .expect_take()
        .withf(move |h, at| h == hash && *at == now())
        .times(1)
        .returning(move |_, _| Ok(found.clone()));
    intents
}

/// Results expecting exactly one insert of `outcome` for `state()`, the intent's client, expiring now + 300 s.
fn results_storing(outcome: LoginOutcome) -> MockLoginResultStore {
    let mut results = MockLoginResultStore::new();
    let hash = state().hash();
    results
        .expect_insert()
        .withf(move |h, c, o, exp| h == hash && c == CLIENT_ID && *o == outcome && *exp == now().plus_secs(300))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    results
}

fn no_results() -> MockLoginResultStore {
    let mut results = MockLoginResultStore::new();
    results.expect_insert().never();
    results
}

fn query(code: Option<&str>, error: Option<&str>) -> CallbackQuery {
    CallbackQuery {
        state: Some(state().expose().to_owned()),
        code: code.map(str::to_owned),
        error: error.map(str::to_owned),
    }
}

fn redirect() -> String {
    format!("{COMPLETE_URL}?state={}", state().expose())
}

/// An identity provider whose `exchange_code` is expected once with `CODE`.
fn idp_exchanging(answer: Result<Identity, IdentityError>) -> MockIdentityProvider {
    let mut idp = MockIdentityProvider::new();
    idp.expect_exchange_code()
        .withf(|code, v| code.expose() == CODE && v.as_ref() == Some(&verifier()))
        .times(1)
        .returning(move |_, _| answer.clone());
    idp
}

async fn expect_failure_stored(
    idp: MockIdentityProvider,
    query: CallbackQuery,
    failure: LoginFailure,
) -> Result<(), CloudError> {
    let url = handle_callback(intents_taking(Some(intent())), results_storing(Err(failure)), idp)
        .execute(&provider(), &query)
        .await?;
    assert_eq!(url, redirect());
    Ok(())
}

#[tokio::test]
async fn a_callback_on_another_providers_path_is_invalid_and_stores_nothing() {
    // The intent was started with provider(); the redirect comes back on idp-b's path.
    let err = handle_callback(intents_taking(Some(intent())), no_results(), MockIdentityProvider::new())
        .execute(&ProviderKey::from_static("idp-b"), &query(Some(CODE), None))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::InvalidState), "{err:?}");
}

#[tokio::test]
async fn a_person_is_looked_up_only_in_the_tenants_of_the_login_provider() -> Result<(), CloudError> {
    // corp_b belongs to idp-b: a login with provider() tries corp_a only, even though the
    // relay client serves both, and never asks idp-b.
    let who = identity(None);
    let mut idp = idp_exchanging(Ok(who.clone()));
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_a() && *u == union_id())
        .times(1)
        .returning(|_, _| Err(IdentityError::NotMember));
    let mut other = MockIdentityProvider::new();
    other.expect_find_userid().never();
    let providers = providers(idp).with(ProviderEntry {
        key: ProviderKey::from_static("idp-b"),
        idp: Arc::new(other),
        tenants: vec![corp_b()],
    });
    let url = HandleCallback::new(
        Arc::new(intents_taking(Some(intent()))),
        Arc::new(results_storing(Err(LoginFailure::NotMember))),
        providers,
        clock(),
    )
    .execute(&provider(), &query(Some(CODE), None))
    .await?;

    assert_eq!(url, redirect());
    Ok(())
}

#[tokio::test]
async fn callback_without_state_is_invalid_and_touches_nothing() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_take().never();
    let query = CallbackQuery { state: None, code: Some(CODE.to_owned()), error: None };

    let err = handle_callback(intents, no_results(), MockIdentityProvider::new())
        .execute(&provider(), &query)
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::InvalidState), "{err:?}");
}

#[tokio::test]
async fn callback_with_a_malformed_state_is_invalid_and_touches_nothing() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_take().never();
    let query = CallbackQuery { state: Some("not-a-state".to_owned()), code: Some(CODE.to_owned()), error: None };

    let err = handle_callback(intents, no_results(), MockIdentityProvider::new())
        .execute(&provider(), &query)
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::InvalidState), "{err:?}");
}

#[tokio::test]
async fn callback_with_an_unknown_or_expired_state_is_invalid_and_stores_nothing() {
    let err = handle_callback(intents_taking(None), no_results(), MockIdentityProvider::new())
        .execute(&provider(), &query(Some(CODE), None))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::InvalidState), "{err:?}");
}

#[tokio::test]
async fn callback_propagates_an_intent_store_error() {
    let mut intents = MockLoginIntentStore::new();
    intents.expect_take().times(1).returning(|_, _| Err(StoreError::Unavailable("pool timed out".to_owned())));

    let err = handle_callback(intents, no_results(), MockIdentityProvider::new())
        .execute(&provider(), &query(Some(CODE), None))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::Store(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn callback_with_error_stores_consent_denied_and_redirects() -> Result<(), CloudError> {
    let failure = LoginFailure::ConsentDenied { error: "access_denied".to_owned() };
    // `error` wins even when a code is present; the provider is never called.
    expect_failure_stored(MockIdentityProvider::new(), query(Some(CODE), Some("access_denied")), failure).await
}

#[tokio::test]
async fn callback_error_is_truncated_to_200_characters() -> Result<(), CloudError> {
    let long = "钉".repeat(300);
    let failure = LoginFailure::ConsentDenied { error: "钉".repeat(200) };
    expect_failure_stored(MockIdentityProvider::new(), query(None, Some(&long)), failure).await
}

#[tokio::test]
async fn callback_without_code_stores_invalid_code() -> Result<(), CloudError> {
    expect_failure_stored(MockIdentityProvider::new(), query(None, None), LoginFailure::InvalidCode).await
}

#[tokio::test]
async fn callback_with_a_malformed_code_stores_invalid_code_without_exchanging() -> Result<(), CloudError> {
    expect_failure_stored(MockIdentityProvider::new(), query(Some("has space"), None), LoginFailure::InvalidCode).await
}

#[tokio::test]
async fn callback_with_a_refused_code_stores_invalid_code() -> Result<(), CloudError> {
    let idp = idp_exchanging(Err(IdentityError::InvalidCode));
    expect_failure_stored(idp, query(Some(CODE), None), LoginFailure::InvalidCode).await
}

#[tokio::test]
async fn callback_exchange_upstream_failure_stores_provider_unavailable() -> Result<(), CloudError> {
    let idp = idp_exchanging(Err(IdentityError::Upstream(unavailable())));
    expect_failure_stored(idp, query(Some(CODE), None), LoginFailure::ProviderUnavailable).await
}

#[tokio::test]
async fn callback_identity_of_a_corp_outside_the_intent_stores_not_member_without_lookup() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(Some(corp_c()))));
    idp.expect_find_userid().never();
    idp.expect_get_member().never();
    expect_failure_stored(idp, query(Some(CODE), None), LoginFailure::NotMember).await
}

#[tokio::test]
async fn callback_identity_with_a_corp_looks_up_that_corp_only() -> Result<(), CloudError> {
    let who = identity(Some(corp_b()));
    let mut idp = idp_exchanging(Ok(who.clone()));
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_b() && *u == union_id())
        .times(1)
        .returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member()
        .withf(|c, u| *c == corp_b() && *u == uid("manager4220"))
        .times(1)
        .returning(|_, _| Ok(details()));
    let profile = MemberProfile::from_details(provider(), corp_b(), details(), Some(&who));

    let url = handle_callback(intents_taking(Some(intent())), results_storing(Ok(profile)), idp)
        .execute(&provider(), &query(Some(CODE), None))
        .await?;

    assert_eq!(url, redirect());
    Ok(())
}

#[tokio::test]
async fn callback_identity_without_corp_tries_each_corp_until_a_member() -> Result<(), CloudError> {
    let who = identity(None);
    let mut seq = Sequence::new();
    let mut idp = MockIdentityProvider::new();
    let answer = who.clone();
    idp.expect_exchange_code()
        .withf(|code, v| code.expose() == CODE && v.as_ref() == Some(&verifier()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| Ok(answer.clone()));
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_a() && *u == union_id())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(IdentityError::NotMember));
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_b() && *u == union_id())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member()
        .withf(|c, u| *c == corp_b() && *u == uid("manager4220"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(details()));
    let profile = MemberProfile::from_details(provider(), corp_b(), details(), Some(&who));
    assert_eq!(profile.corp_id, corp_b());
    assert_eq!(profile.open_id, who.open_id);

    let url = handle_callback(intents_taking(Some(intent())), results_storing(Ok(profile)), idp)
        .execute(&provider(), &query(Some(CODE), None))
        .await?;

    assert_eq!(url, redirect());
    Ok(())
}

#[tokio::test]
async fn callback_skips_a_corp_the_provider_does_not_serve() -> Result<(), CloudError> {
    let who = identity(None);
    let mut idp = idp_exchanging(Ok(who.clone()));
    idp.expect_find_userid()
        .withf(|c, _| *c == corp_a())
        .times(1)
        .returning(|_, _| Err(IdentityError::CorpNotServed(corp_a())));
    idp.expect_find_userid().withf(|c, _| *c == corp_b()).times(1).returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member().withf(|c, _| *c == corp_b()).times(1).returning(|_, _| Ok(details()));
    let profile = MemberProfile::from_details(provider(), corp_b(), details(), Some(&who));

    expect_failure_or_profile(idp, Ok(profile)).await
}

async fn expect_failure_or_profile(idp: MockIdentityProvider, outcome: LoginOutcome) -> Result<(), CloudError> {
    let url = handle_callback(intents_taking(Some(intent())), results_storing(outcome), idp)
        .execute(&provider(), &query(Some(CODE), None))
        .await?;
    assert_eq!(url, redirect());
    Ok(())
}

#[tokio::test]
async fn callback_member_of_no_corp_stores_not_member() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(None)));
    idp.expect_find_userid().withf(|c, _| *c == corp_a()).times(1).returning(|_, _| Err(IdentityError::NotMember));
    idp.expect_find_userid().withf(|c, _| *c == corp_b()).times(1).returning(|_, _| Err(IdentityError::NotMember));
    idp.expect_get_member().never();

    expect_failure_or_profile(idp, Err(LoginFailure::NotMember)).await
}

#[tokio::test]
async fn callback_find_userid_upstream_failure_stores_provider_unavailable_and_stops() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(None)));
    // Only corp A is expected: trying corp B after a transient failure would panic.
    idp.expect_find_userid()
        .withf(|c, _| *c == corp_a())
        .times(1)
        .returning(|_, _| Err(IdentityError::Upstream(UpstreamError::Throttled("90018".to_owned()))));
    idp.expect_get_member().never();

    expect_failure_or_profile(idp, Err(LoginFailure::ProviderUnavailable)).await
}

#[tokio::test]
async fn callback_get_member_not_member_stores_not_member() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(Some(corp_a()))));
    idp.expect_find_userid().withf(|c, _| *c == corp_a()).times(1).returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member()
        .withf(|c, u| *c == corp_a() && *u == uid("manager4220"))
        .times(1)
        .returning(|_, _| Err(IdentityError::NotMember));

    expect_failure_or_profile(idp, Err(LoginFailure::NotMember)).await
}

#[tokio::test]
async fn callback_member_the_org_marks_inactive_stores_inactive_member() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(Some(corp_a()))));
    idp.expect_find_userid().times(1).returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member().times(1).returning(|_, _| Ok(MemberDetails { active: false, ..details() }));

    expect_failure_or_profile(idp, Err(LoginFailure::Inactive)).await
}

#[tokio::test]
async fn callback_get_member_upstream_failure_stores_provider_unavailable() -> Result<(), CloudError> {
    let mut idp = idp_exchanging(Ok(identity(Some(corp_a()))));
    idp.expect_find_userid().times(1).returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member().times(1).returning(|_, _| Err(IdentityError::Upstream(unavailable())));

    expect_failure_or_profile(idp, Err(LoginFailure::ProviderUnavailable)).await
}

#[tokio::test]
async fn callback_success_stores_the_profile_for_the_intents_client_and_redirects() -> Result<(), CloudError> {
    let who = identity(Some(corp_a()));
    let mut idp = idp_exchanging(Ok(who.clone()));
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_a() && *u == union_id())
        .times(1)
        .returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member()
        .withf(|c, u| *c == corp_a() && *u == uid("manager4220"))
        .times(1)
        .returning(|_, _| Ok(details()));
    let profile = MemberProfile::from_details(provider(), corp_a(), details(), Some(&who));
    assert_eq!(profile.email.as_deref(), Some("claimed@example.com"));

    expect_failure_or_profile(idp, Ok(profile)).await
}

#[tokio::test]
async fn callback_redirect_appends_with_an_ampersand_when_complete_url_has_a_query() -> Result<(), CloudError> {
    let mut stored = intent();
    stored.complete_url = format!("{COMPLETE_URL}?lang=en");

    let url = handle_callback(
        intents_taking(Some(stored)),
        results_storing(Err(LoginFailure::InvalidCode)),
        MockIdentityProvider::new(),
    )
    .execute(&provider(), &query(None, None))
    .await?;

    assert_eq!(url, format!("{COMPLETE_URL}?lang=en&state={}", state().expose()));
    Ok(())
}

#[tokio::test]
async fn callback_propagates_a_results_store_error() {
    let mut results = MockLoginResultStore::new();
    results.expect_insert().times(1).returning(|_, _, _, _| Err(StoreError::Conflict("login_results_pkey".to_owned())));

    let err = handle_callback(intents_taking(Some(intent())), results, MockIdentityProvider::new())
        .execute(&provider(), &query(None, Some("access_denied")))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::Store(StoreError::Conflict(_))), "{err:?}");
}

// ---------------------------------------------------------------------------
// TakeLoginResult
// ---------------------------------------------------------------------------

fn results_taking(found: Option<LoginOutcome>) -> MockLoginResultStore {
    let mut results = MockLoginResultStore::new();
    let hash = state().hash();
    results
        .expect_take()
        .withf(move |h, c, at| h == hash && c == CLIENT_ID && *at == now())
        .times(1)
        .returning(move |_, _, _| Ok(found.clone()));
    results
}

#[tokio::test]
async fn take_result_returns_the_clients_outcome() -> Result<(), CloudError> {
    let outcome: LoginOutcome = Ok(MemberProfile::from_details(provider(), corp_a(), details(), None));
    let taken = TakeLoginResult::new(Arc::new(results_taking(Some(outcome.clone()))), clock())
        .execute(&client(), &state())
        .await?;
    assert_eq!(taken, outcome);
    Ok(())
}

#[tokio::test]
async fn take_result_returns_a_stored_failure_as_is() -> Result<(), CloudError> {
    let outcome: LoginOutcome = Err(LoginFailure::NotMember);
    let taken = TakeLoginResult::new(Arc::new(results_taking(Some(outcome.clone()))), clock())
        .execute(&client(), &state())
        .await?;
    assert_eq!(taken, outcome);
    Ok(())
}

#[tokio::test]
async fn take_result_none_is_not_found() {
    let err =
        TakeLoginResult::new(Arc::new(results_taking(None)), clock()).execute(&client(), &state()).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound), "{err:?}");
}

#[tokio::test]
async fn take_result_propagates_a_store_error() {
    let mut results = MockLoginResultStore::new();
    results.expect_take().times(1).returning(|_, _, _| Err(StoreError::Other("row no longer parses".to_owned())));
    let err = TakeLoginResult::new(Arc::new(results), clock()).execute(&client(), &state()).await.unwrap_err();
    assert!(matches!(err, CloudError::Store(StoreError::Other(_))), "{err:?}");
}

// ---------------------------------------------------------------------------
// RelaySend
// ---------------------------------------------------------------------------

fn relay_send(messages: MockRelayMessageStore, messenger: MockMessenger) -> RelaySend {
    RelaySend::new(Arc::new(messages), Arc::new(messenger), clock())
}

/// `insert_or_get` expected once with the fresh record for `n` recipients, answering `(stored, created)`.
fn expect_insert_or_get(messages: &mut MockRelayMessageStore, n: usize, stored: RelayMessageRecord, created: bool) {
    let fresh = fresh_record(n);
    messages
        .expect_insert_or_get()
        .withf(move |r| *r == fresh)
        .times(1)
        .returning(move |_| Ok((stored.clone(), created)));
}

/// `send` of batch `index` of `n` recipients expected once (in `seq`), answering `answer`.
fn expect_send(
    messenger: &mut MockMessenger,
    seq: &mut Sequence,
    n: usize,
    index: usize,
    answer: Result<DeliveryId, MessengerError>,
) {
    let batch = recipients(n).batches()[index].clone();
    messenger
        .expect_send()
        .withf(move |c, b, body, _| *c == corp_a() && *b == batch && *body == text("hello"))
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _, _| answer.clone());
}

/// `record_batch` of `index` expected once (in `seq`) with `delivery_id` / `error`.
fn expect_record_batch(
    messages: &mut MockRelayMessageStore,
    seq: &mut Sequence,
    index: usize,
    delivery_id: Option<DeliveryId>,
    error: Option<&str>,
) {
    let error = error.map(str::to_owned);
    messages
        .expect_record_batch()
        .withf(move |c, k, i, t, e, at| {
            c == CLIENT_ID && k == KEY && *i == index && *t == delivery_id && *e == error && *at == now()
        })
        .times(1)
        .in_sequence(seq)
        .returning(|_, _, _, _, _, _| Ok(()));
}

fn expect_set_state(messages: &mut MockRelayMessageStore, state: MessageState) {
    messages
        .expect_set_state()
        .withf(move |c, k, s, at| c == CLIENT_ID && k == KEY && *s == state && *at == now())
        .times(1)
        .returning(|_, _, _, _| Ok(()));
}

#[tokio::test]
async fn relay_send_for_a_corp_outside_the_client_is_forbidden_and_stores_nothing() {
    let mut messages = MockRelayMessageStore::new();
    messages.expect_insert_or_get().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();

    let err = relay_send(messages, messenger).execute(&client(), &send_request(corp_c(), 3)).await.unwrap_err();

    assert!(matches!(err, CloudError::Forbidden(ref msg) if msg.contains("dingcorpc")), "{err:?}");
}

#[tokio::test]
async fn relay_send_refused_by_the_tenants_body_rules_is_invalid_and_stores_nothing() {
    let mut messages = MockRelayMessageStore::new();
    messages.expect_insert_or_get().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    // Corp A's provider refuses the body; the default (every other corp) is never asked.
    let mut refusing = crate::ports::MockBodyRules::new();
    refusing.expect_check().times(2).returning(|_, _| {
        Err(domain::ValidationError::new("body.msgtype", "unsupported", "body.msgtype: not this provider's"))
    });
    let mut default = crate::ports::MockBodyRules::new();
    default.expect_check().never();
    let rules = crate::ports::MessageRules::new(Arc::new(default)).with(vec![corp_a()], Arc::new(refusing));
    let send = relay_send(messages, messenger).with_body_rules(rules);

    for err in [
        send.accept(&client(), &send_request(corp_a(), 3)).await.unwrap_err(),
        send.execute(&client(), &send_request(corp_a(), 3)).await.unwrap_err(),
    ] {
        assert!(matches!(err, CloudError::Invalid(ref e) if e.field == "body.msgtype"), "{err:?}");
    }
}

#[tokio::test]
async fn relay_send_of_250_recipients_sends_three_batches_and_records_each_task() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    expect_insert_or_get(&mut messages, 250, fresh_record(250), true);
    for index in 0..3 {
        let id = task(11 + i64::try_from(index).unwrap());
        expect_send(&mut messenger, &mut seq, 250, index, Ok(id.clone()));
        expect_record_batch(&mut messages, &mut seq, index, Some(id), None);
    }
    expect_set_state(&mut messages, MessageState::Sent);
    assert_eq!(recipients(250).batches().iter().map(|b| b.user_ids().len()).collect::<Vec<_>>(), vec![100, 100, 50]);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 250)).await?;

    assert_eq!(receipt.key, KEY);
    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12), task(13)]);
    assert!(receipt.errors.is_empty());
    Ok(())
}

#[tokio::test]
async fn relay_send_repeated_key_sends_only_the_batches_without_a_task_id() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let existing = stored_record(250, &[Some(11), None, None], MessageState::Accepted);
    expect_insert_or_get(&mut messages, 250, existing, false);
    for index in 1..3 {
        let id = task(11 + i64::try_from(index).unwrap());
        expect_send(&mut messenger, &mut seq, 250, index, Ok(id.clone()));
        expect_record_batch(&mut messages, &mut seq, index, Some(id), None);
    }
    expect_set_state(&mut messages, MessageState::Sent);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 250)).await?;

    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12), task(13)]);
    Ok(())
}

#[tokio::test]
async fn relay_send_repeated_key_with_a_different_body_is_key_reused() {
    let mut messages = MockRelayMessageStore::new();
    let mut existing = fresh_record(3);
    existing.body = text("something else");
    expect_insert_or_get(&mut messages, 3, existing, false);
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    messages.expect_record_batch().never();
    messages.expect_set_state().never();

    let err = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 3)).await.unwrap_err();

    assert!(matches!(err, CloudError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn relay_send_repeated_key_with_different_recipients_is_key_reused() {
    let mut messages = MockRelayMessageStore::new();
    let mut existing = fresh_record(3);
    existing.batches = fresh_record(4).batches;
    expect_insert_or_get(&mut messages, 3, existing, false);
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();

    let err = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 3)).await.unwrap_err();

    assert!(matches!(err, CloudError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn relay_send_already_sent_returns_the_record_without_sending() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let existing = stored_record(150, &[Some(11), Some(12)], MessageState::Sent);
    expect_insert_or_get(&mut messages, 150, existing, false);
    messages.expect_record_batch().never();
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 150)).await?;

    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12)]);
    Ok(())
}

#[tokio::test]
async fn relay_send_rejected_batch_records_the_error_and_fails_the_message() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    expect_insert_or_get(&mut messages, 150, fresh_record(150), true);
    expect_send(&mut messenger, &mut seq, 150, 0, Err(MessengerError::Upstream(rejected())));
    expect_record_batch(&mut messages, &mut seq, 0, None, Some("40035: bad request"));
    expect_send(&mut messenger, &mut seq, 150, 1, Ok(task(12)));
    expect_record_batch(&mut messages, &mut seq, 1, Some(task(12)), None);
    expect_set_state(&mut messages, MessageState::Failed);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 150)).await?;

    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.delivery_ids, vec![task(12)]);
    assert_eq!(receipt.errors, vec!["40035: bad request".to_owned()]);
    Ok(())
}

#[tokio::test]
async fn relay_send_skips_a_batch_that_already_has_an_error() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let mut existing = fresh_record(150);
    existing.batches[0].error = Some("40035: bad request".to_owned());
    expect_insert_or_get(&mut messages, 150, existing, false);
    expect_send(&mut messenger, &mut seq, 150, 1, Ok(task(12)));
    expect_record_batch(&mut messages, &mut seq, 1, Some(task(12)), None);
    expect_set_state(&mut messages, MessageState::Failed);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 150)).await?;

    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.errors.len(), 1);
    Ok(())
}

#[tokio::test]
async fn relay_send_propagates_a_record_batch_store_error() {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    expect_insert_or_get(&mut messages, 150, fresh_record(150), true);
    expect_send(&mut messenger, &mut seq, 150, 0, Ok(task(11)));
    messages
        .expect_record_batch()
        .times(1)
        .returning(|_, _, _, _, _, _| Err(StoreError::Unavailable("db down".to_owned())));
    messages.expect_set_state().never();

    let err = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 150)).await.unwrap_err();

    assert!(matches!(err, CloudError::Store(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn relay_send_propagates_an_insert_store_error() {
    let mut messages = MockRelayMessageStore::new();
    messages.expect_insert_or_get().times(1).returning(|_| Err(StoreError::Unavailable("db down".to_owned())));
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();

    let err = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 1)).await.unwrap_err();

    assert!(matches!(err, CloudError::Store(StoreError::Unavailable(_))), "{err:?}");
}

/// `record_waiting` expected once with `reason`, a detail containing `detail` and `retry_at`
/// `delay_ms` after [`now`].
fn expect_record_waiting(messages: &mut MockRelayMessageStore, reason: WaitReason, detail: String, delay_ms: i64) {
    messages
        .expect_record_waiting()
        .withf(move |c, k, w, at| {
            c == CLIENT_ID
                && k == KEY
                && w.reason == reason
                && w.detail.contains(&detail)
                && w.retry_at.as_millis() == NOW_MS + delay_ms
                && *at == now()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
}

#[tokio::test]
async fn relay_send_transient_failure_returns_an_accepted_receipt_with_the_earlier_task_ids() -> Result<(), CloudError>
{
    for (transient, reason) in [
        (unavailable(), WaitReason::Unavailable),
        (UpstreamError::Throttled("90018".to_owned()), WaitReason::Throttled),
        (UpstreamError::TokenRejected("40014".to_owned()), WaitReason::Unavailable),
    ] {
        let mut seq = Sequence::new();
        let mut messages = MockRelayMessageStore::new();
        let mut messenger = MockMessenger::new();
        expect_insert_or_get(&mut messages, 250, fresh_record(250), true);
        expect_send(&mut messenger, &mut seq, 250, 0, Ok(task(11)));
        expect_record_batch(&mut messages, &mut seq, 0, Some(task(11)), None);
        expect_send(&mut messenger, &mut seq, 250, 1, Err(MessengerError::Upstream(transient.clone())));
        // Batch 2 is never attempted, nothing is recorded for batch 1, and the state is left
        // `accepted`; the attempt is recorded with why and when the next is due (0.5 s after the first).
        messages.expect_set_state().never();
        expect_record_waiting(&mut messages, reason, transient.to_string(), 500);

        let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 250)).await?;

        assert_eq!(receipt.key, KEY, "{transient:?}");
        assert_eq!(receipt.state, MessageState::Accepted, "{transient:?}");
        assert_eq!(receipt.delivery_ids, vec![task(11)], "{transient:?}");
        assert!(receipt.errors.is_empty(), "{transient:?}");
        // The receipt says why (the relay client stores it as the message's waiting reason).
        let waiting = receipt.waiting.ok_or_else(|| CloudError::Unavailable("no waiting reason".into()))?;
        assert_eq!(waiting.reason, reason, "{transient:?}");
        assert!(waiting.detail.contains(&transient.to_string()), "{waiting:?}");
        assert_eq!(waiting.retry_at, Timestamp::from_millis(NOW_MS + 500));
    }
    Ok(())
}

#[tokio::test]
async fn relay_send_held_calls_wait_as_long_as_asked_with_their_reason() -> Result<(), CloudError> {
    for (reason, retry_after_ms, expected_delay) in [
        (WaitReason::WaitingQuota, 60_000, 60_000),
        (WaitReason::IpBanned, 300_000, 300_000),
        // The governor's next slot is close: the sender still waits its first backoff.
        (WaitReason::Throttled, 40, 500),
    ] {
        let held = UpstreamError::Held { reason, retry_after_ms, detail: format!("held: {}", reason.as_str()) };
        let mut seq = Sequence::new();
        let mut messages = MockRelayMessageStore::new();
        let mut messenger = MockMessenger::new();
        expect_insert_or_get(&mut messages, 1, fresh_record(1), true);
        expect_send(&mut messenger, &mut seq, 1, 0, Err(MessengerError::Upstream(held)));
        messages.expect_set_state().never();
        expect_record_waiting(&mut messages, reason, format!("held: {}", reason.as_str()), expected_delay);

        let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 1)).await?;

        assert_eq!(receipt.state, MessageState::Accepted);
        let waiting = receipt.waiting.ok_or_else(|| CloudError::Unavailable("no waiting reason".into()))?;
        assert_eq!((waiting.reason, waiting.retry_at.as_millis()), (reason, NOW_MS + expected_delay));
    }
    Ok(())
}

#[tokio::test]
async fn relay_send_backs_off_doubling_per_attempt_up_to_30_seconds() -> Result<(), CloudError> {
    for (attempts_before, expected_delay) in [(1, 1_000), (2, 2_000), (5, 16_000), (6, 30_000), (40, 30_000)] {
        let mut seq = Sequence::new();
        let mut messages = MockRelayMessageStore::new();
        let mut messenger = MockMessenger::new();
        let mut stored = fresh_record(1);
        stored.attempts = attempts_before;
        expect_insert_or_get(&mut messages, 1, stored, false);
        expect_send(&mut messenger, &mut seq, 1, 0, Err(MessengerError::Upstream(unavailable())));
        expect_record_waiting(&mut messages, WaitReason::Unavailable, "timeout".to_owned(), expected_delay);

        let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 1)).await?;

        assert_eq!(receipt.state, MessageState::Accepted, "after {attempts_before} attempts");
    }
    Ok(())
}

#[tokio::test]
async fn relay_accept_stores_and_wakes_the_sender_without_calling_the_provider() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    expect_insert_or_get(&mut messages, 250, fresh_record(250), true);
    let mut wakeup = MockDispatchTrigger::new();
    wakeup.expect_wake().times(1).return_const(());

    let receipt = relay_send(messages, messenger)
        .with_wakeup(Arc::new(wakeup))
        .accept(&client(), &send_request(corp_a(), 250))
        .await?;

    assert_eq!((receipt.state, receipt.delivery_ids.len()), (MessageState::Accepted, 0));
    let waiting = receipt.waiting.ok_or_else(|| CloudError::Unavailable("no waiting reason".into()))?;
    assert_eq!((waiting.reason, waiting.retry_at), (WaitReason::Queued, now()));
    Ok(())
}

#[tokio::test]
async fn relay_accept_of_a_sent_message_returns_it_without_waking_the_sender() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    expect_insert_or_get(&mut messages, 150, stored_record(150, &[Some(11), Some(12)], MessageState::Sent), false);
    let mut wakeup = MockDispatchTrigger::new();
    wakeup.expect_wake().never();

    let receipt = relay_send(messages, messenger)
        .with_wakeup(Arc::new(wakeup))
        .accept(&client(), &send_request(corp_a(), 150))
        .await?;

    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12)]);
    assert_eq!(receipt.waiting, None);
    Ok(())
}

#[tokio::test]
async fn relay_accept_refuses_a_reused_key_and_a_foreign_corp() {
    let mut messages = MockRelayMessageStore::new();
    expect_insert_or_get(&mut messages, 3, RelayMessageRecord { body: text("other"), ..fresh_record(3) }, false);
    let uc = relay_send(messages, MockMessenger::new());

    assert!(matches!(uc.accept(&client(), &send_request(corp_a(), 3)).await, Err(CloudError::KeyReused)));
    assert!(matches!(uc.accept(&client(), &send_request(corp_c(), 3)).await, Err(CloudError::Forbidden(_))));
}

#[tokio::test]
async fn relay_accept_of_a_waiting_message_reports_why_and_until_when() -> Result<(), CloudError> {
    let waiting = RelayWaiting {
        reason: WaitReason::WaitingQuota,
        detail: "the monthly quota is exhausted (90020)".into(),
        retry_at: Timestamp::from_millis(NOW_MS + 60_000),
    };
    let mut messages = MockRelayMessageStore::new();
    let stored = RelayMessageRecord { attempts: 3, waiting: Some(waiting.clone()), ..fresh_record(1) };
    expect_insert_or_get(&mut messages, 1, stored, false);

    let receipt = relay_send(messages, MockMessenger::new()).accept(&client(), &send_request(corp_a(), 1)).await?;

    assert_eq!(receipt.waiting, Some(waiting));
    Ok(())
}

#[tokio::test]
async fn deliver_relayed_sends_every_due_message_and_reports_how_many() -> Result<(), StoreError> {
    let mut messages = MockRelayMessageStore::new();
    let due: Vec<_> = ["k1", "k2", "k3"]
        .into_iter()
        .map(|key| claimed(RelayMessageRecord { key: key.to_owned(), ..fresh_record(1) }, &[]))
        .collect();
    messages
        .expect_claim_due()
        .withf(|claim, at, until, limit| {
            claim == "sender:0"
                && *at == now()
                && until.as_millis() == now().as_millis() + DEFAULT_SEND_LEASE_MS
                && *limit == 10
        })
        .times(1)
        .returning(move |_, _, _, _| Ok(due.clone()));
    messages
        .expect_start_batch()
        .withf(|_, _, index, claim, _, until| {
            *index == 0 && claim == "sender:0" && until.as_millis() == now().as_millis() + DEFAULT_SEND_LEASE_MS
        })
        .times(3)
        .returning(|_, _, _, _, _, _| Ok(true));
    messages.expect_record_batch().times(3).returning(|_, _, _, _, _, _| Ok(()));
    messages
        .expect_set_state()
        .withf(|_, _, state, _| *state == MessageState::Sent)
        .times(3)
        .returning(|_, _, _, _| Ok(()));
    let mut messenger = MockMessenger::new();
    messenger.expect_send().times(3).returning(|_, _, _, _| Ok(task(7)));
    let messages: Arc<dyn RelayMessageStore> = Arc::new(messages);
    let send = Arc::new(RelaySend::new(messages.clone(), Arc::new(messenger), clock()));

    let attempted = DeliverRelayed::new(send, messages, clock()).with_concurrency(2).run_once(10).await?;

    assert_eq!(attempted, 3);
    Ok(())
}

#[tokio::test]
async fn deliver_relayed_keeps_going_when_one_message_fails_to_record() -> Result<(), StoreError> {
    let mut messages = MockRelayMessageStore::new();
    let due: Vec<_> = ["k1", "k2"]
        .into_iter()
        .map(|key| claimed(RelayMessageRecord { key: key.to_owned(), ..fresh_record(1) }, &[]))
        .collect();
    messages.expect_claim_due().times(1).returning(move |_, _, _, _| Ok(due.clone()));
    messages.expect_start_batch().times(2).returning(|_, _, _, _, _, _| Ok(true));
    messages
        .expect_record_batch()
        .times(2)
        .returning(|_, key, _, _, _, _| if key == "k1" { Err(StoreError::Unavailable("disk".into())) } else { Ok(()) });
    messages.expect_set_state().withf(|_, key, _, _| key == "k2").times(1).returning(|_, _, _, _| Ok(()));
    let mut messenger = MockMessenger::new();
    messenger.expect_send().times(2).returning(|_, _, _, _| Ok(task(7)));
    let messages: Arc<dyn RelayMessageStore> = Arc::new(messages);
    let send = Arc::new(RelaySend::new(messages.clone(), Arc::new(messenger), clock()));

    assert_eq!(DeliverRelayed::new(send, messages, clock()).run_once(10).await?, 2);
    Ok(())
}

#[tokio::test]
async fn relay_send_transient_failure_on_the_first_batch_returns_accepted_without_task_ids() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    expect_insert_or_get(&mut messages, 150, fresh_record(150), true);
    expect_send(&mut messenger, &mut seq, 150, 0, Err(MessengerError::Upstream(unavailable())));
    messages.expect_record_batch().never();
    messages.expect_set_state().never();
    expect_record_waiting(&mut messages, WaitReason::Unavailable, "timeout".to_owned(), 500);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 150)).await?;

    assert_eq!(receipt.state, MessageState::Accepted);
    assert!(receipt.delivery_ids.is_empty());
    Ok(())
}

#[tokio::test]
async fn relay_send_retry_after_a_transient_failure_sends_only_the_rest() -> Result<(), CloudError> {
    // The record as the transient failure above left it: batch 0 sent, the rest not.
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let existing = stored_record(250, &[Some(11)], MessageState::Accepted);
    expect_insert_or_get(&mut messages, 250, existing, false);
    for index in 1..3 {
        let id = task(11 + i64::try_from(index).unwrap());
        expect_send(&mut messenger, &mut seq, 250, index, Ok(id.clone()));
        expect_record_batch(&mut messages, &mut seq, index, Some(id), None);
    }
    expect_set_state(&mut messages, MessageState::Sent);

    let receipt = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 250)).await?;

    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12), task(13)]);
    Ok(())
}

#[tokio::test]
async fn relay_send_for_a_corp_the_messenger_does_not_serve_is_not_left_pending() {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    expect_insert_or_get(&mut messages, 3, fresh_record(3), true);
    expect_send(&mut messenger, &mut seq, 3, 0, Err(MessengerError::CorpNotServed(corp_a())));
    messages.expect_record_batch().returning(|_, _, _, _, _, _| Ok(()));
    messages.expect_set_state().returning(|_, _, _, _| Ok(()));

    let outcome = relay_send(messages, messenger).execute(&client(), &send_request(corp_a(), 3)).await;

    // Before the outbox change this was Err(Forbidden); either that or a `failed` receipt is
    // fine, but not a pending (`accepted`) one that the dispatcher retries for ever.
    match outcome {
        Err(CloudError::Forbidden(_)) => {}
        Ok(receipt) => assert_eq!(receipt.state, MessageState::Failed, "{receipt:?}"),
        Err(other) => panic!("{other:?}"),
    }
}

// --- RelaySend: the in-flight guard ----------------------------------------

/// A hand-written [`Messenger`] whose first `send` blocks until released (later ones answer at
/// once), so two `execute`s of one key can overlap.
#[derive(Default)]
struct GatedMessenger {
    calls: AtomicUsize,
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl Messenger for GatedMessenger {
    async fn send(&self, _: &CorpId, _: &Batch, _: &MessageBody, _: &str) -> Result<DeliveryId, MessengerError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(task(11 + i64::try_from(n).unwrap()))
    }

    async fn progress(&self, _: &CorpId, _: &DeliveryId) -> Result<SendProgress, MessengerError> {
        unreachable!("not used by RelaySend")
    }

    async fn result(&self, _: &CorpId, _: &DeliveryId) -> Result<SendResult, MessengerError> {
        unreachable!("not used by RelaySend")
    }

    async fn recall(&self, _: &CorpId, _: &DeliveryId) -> Result<(), MessengerError> {
        unreachable!("not used by RelaySend")
    }
}

fn other_client() -> RelayClient {
    RelayClient { id: "client-b".to_owned(), ..client() }
}

/// A store that accepts anything: `insert_or_get` creates each record it is given.
fn permissive_store() -> MockRelayMessageStore {
    let mut messages = MockRelayMessageStore::new();
    messages.expect_insert_or_get().returning(|record| Ok((record.clone(), true)));
    messages.expect_record_batch().returning(|_, _, _, _, _, _| Ok(()));
    messages.expect_set_state().returning(|_, _, _, _| Ok(()));
    messages
}

#[tokio::test]
async fn relay_send_refuses_a_second_concurrent_send_of_the_same_key_then_releases_it() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let mut seq = Sequence::new();
    // First execute: creates the record and sends it. The concurrent second one must not reach
    // the store. The third (after the first finished) finds the sent record.
    messages
        .expect_insert_or_get()
        .withf(|r| *r == fresh_record(3))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok((fresh_record(3), true)));
    messages.expect_record_batch().times(1).returning(|_, _, _, _, _, _| Ok(()));
    expect_set_state(&mut messages, MessageState::Sent);
    messages
        .expect_insert_or_get()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok((stored_record(3, &[Some(11)], MessageState::Sent), false)));
    let messenger = Arc::new(GatedMessenger::default());
    let uc = RelaySend::new(Arc::new(messages), messenger.clone(), clock());
    let request = send_request(corp_a(), 3);
    let client = client();

    let (first, second) = tokio::join!(uc.execute(&client, &request), async {
        messenger.entered.notified().await;
        let second = uc.execute(&client, &request).await;
        messenger.release.notify_one();
        second
    });

    let err = second.unwrap_err();
    assert!(
        matches!(err, CloudError::Unavailable(ref m) if m.contains("already in progress") && m.contains(KEY)),
        "{err:?}"
    );
    let first = first?;
    assert_eq!(first.state, MessageState::Sent);
    assert_eq!(first.delivery_ids, vec![task(11)]);
    assert_eq!(messenger.calls.load(Ordering::SeqCst), 1, "the provider was called once");

    // Released: the same key goes through again (and, being sent, sends nothing).
    let third = uc.execute(&client, &request).await?;
    assert_eq!(third.delivery_ids, vec![task(11)]);
    assert_eq!(messenger.calls.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn relay_send_in_flight_guard_is_per_client_and_key() -> Result<(), CloudError> {
    let messenger = Arc::new(GatedMessenger::default());
    let uc = RelaySend::new(Arc::new(permissive_store()), messenger.clone(), clock());
    let request = send_request(corp_a(), 3);
    let client = client();
    let other_key = RelaySendRequest { key: "msg-0002".to_owned(), ..send_request(corp_a(), 3) };

    let (first, others) = tokio::join!(uc.execute(&client, &request), async {
        messenger.entered.notified().await;
        // While the first send of (client-a, KEY) is blocked: another key of the same client
        // and the same key of another client both proceed.
        let other_key = uc.execute(&client, &other_key).await;
        let other_client = uc.execute(&other_client(), &request).await;
        messenger.release.notify_one();
        (other_key, other_client)
    });

    assert_eq!(first?.state, MessageState::Sent);
    assert_eq!(others.0?.state, MessageState::Sent);
    assert_eq!(others.1?.state, MessageState::Sent);
    assert_eq!(messenger.calls.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn relay_send_in_flight_guard_is_released_when_the_send_fails() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let mut seq = Sequence::new();
    messages
        .expect_insert_or_get()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(StoreError::Unavailable("db down".to_owned())));
    messages
        .expect_insert_or_get()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok((stored_record(3, &[Some(11)], MessageState::Sent), false)));
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    let uc = relay_send(messages, messenger);

    let err = uc.execute(&client(), &send_request(corp_a(), 3)).await.unwrap_err();
    assert!(matches!(err, CloudError::Store(_)), "{err:?}");

    let receipt = uc.execute(&client(), &send_request(corp_a(), 3)).await?;
    assert_eq!(receipt.state, MessageState::Sent);
    Ok(())
}

#[tokio::test]
async fn relay_send_in_flight_guard_is_released_when_the_send_is_cancelled() -> Result<(), CloudError> {
    let messenger = Arc::new(GatedMessenger::default());
    let uc = RelaySend::new(Arc::new(permissive_store()), messenger.clone(), clock());
    let request = send_request(corp_a(), 3);
    let client = client();

    // Drop the first execute while it waits inside the provider's `send`.
    tokio::select! {
        _ = uc.execute(&client, &request) => panic!("the first send is never released"),
        () = messenger.entered.notified() => {}
    }

    let receipt = uc.execute(&client, &request).await?;
    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(messenger.calls.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn relay_send_for_a_forbidden_corp_does_not_take_the_key() -> Result<(), CloudError> {
    let messenger = Arc::new(GatedMessenger::default());
    let uc = RelaySend::new(Arc::new(permissive_store()), messenger.clone(), clock());
    let forbidden = RelaySendRequest { corp_id: corp_c(), ..send_request(corp_a(), 3) };

    let err = uc.execute(&client(), &forbidden).await.unwrap_err();
    assert!(matches!(err, CloudError::Forbidden(_)), "{err:?}");

    // The gated first send: it must get in (the forbidden call took no claim); release it.
    let (client, request) = (client(), send_request(corp_a(), 3));
    let (receipt, ()) = tokio::join!(uc.execute(&client, &request), async {
        messenger.entered.notified().await;
        messenger.release.notify_one();
    });
    assert_eq!(receipt?.state, MessageState::Sent);
    Ok(())
}

// ---------------------------------------------------------------------------
// RelayStatus
// ---------------------------------------------------------------------------

fn expect_get(messages: &mut MockRelayMessageStore, found: Option<RelayMessageRecord>) {
    messages.expect_get().withf(|c, k| c == CLIENT_ID && k == KEY).times(1).returning(move |_, _| Ok(found.clone()));
}

fn expect_task_report(messenger: &mut MockMessenger, id: i64, progress: SendProgress, result: SendResult) {
    messenger.expect_progress().withf(move |c, t| *c == corp_a() && *t == task(id)).times(1).return_const(Ok(progress));
    messenger
        .expect_result()
        .withf(move |c, t| *c == corp_a() && *t == task(id))
        .times(1)
        .returning(move |_, _| Ok(result.clone()));
}

fn progress(percent: u8, done: bool) -> SendProgress {
    SendProgress { percent, done }
}

fn read_by(user: &str) -> SendResult {
    SendResult { read: vec![uid(user)], ..SendResult::default() }
}

fn unread_by(user: &str) -> SendResult {
    SendResult { unread: vec![uid(user)], ..SendResult::default() }
}

#[tokio::test]
async fn relay_status_unknown_key_is_not_found() {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, None);
    let mut messenger = MockMessenger::new();
    messenger.expect_progress().never();

    let err =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::NotFound), "{err:?}");
}

#[tokio::test]
async fn relay_status_merges_every_task_and_leaves_an_unfinished_message_alone() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(stored_record(150, &[Some(11), Some(12)], MessageState::Sent)));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    expect_task_report(&mut messenger, 11, progress(100, true), read_by("user0000"));
    expect_task_report(&mut messenger, 12, progress(50, false), unread_by("user0100"));

    let (receipt, report) =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12)]);
    assert_eq!(
        report,
        DeliveryReport::merge(&[
            (progress(100, true), read_by("user0000")),
            (progress(50, false), unread_by("user0100")),
        ])
    );
    assert!(!report.done);
    assert_eq!(report.percent, 75);
    Ok(())
}

#[tokio::test]
async fn relay_status_marks_a_sent_message_completed_when_every_task_is_done() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(stored_record(150, &[Some(11), Some(12)], MessageState::Sent)));
    expect_set_state(&mut messages, MessageState::Completed);
    let mut messenger = MockMessenger::new();
    expect_task_report(&mut messenger, 11, progress(100, true), read_by("user0000"));
    expect_task_report(&mut messenger, 12, progress(100, true), unread_by("user0100"));

    let (receipt, report) =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Completed);
    assert!(report.done);
    assert_eq!(report.recipients.len(), 2);
    Ok(())
}

#[tokio::test]
async fn relay_status_does_not_complete_a_failed_message() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let mut record = stored_record(150, &[None, Some(12)], MessageState::Failed);
    record.batches[0].error = Some("40035: bad request".to_owned());
    expect_get(&mut messages, Some(record));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    // Only the batch with a task id is asked about.
    expect_task_report(&mut messenger, 12, progress(100, true), read_by("user0100"));

    let (receipt, report) =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.errors, vec!["40035: bad request".to_owned()]);
    assert!(report.done);
    Ok(())
}

#[tokio::test]
async fn relay_status_propagates_a_messenger_error() {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(stored_record(1, &[Some(11)], MessageState::Sent)));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_progress().times(1).returning(|_, _| Err(MessengerError::Upstream(unavailable())));
    messenger.expect_result().never();

    let err =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::Unavailable(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// RelayRecall
// ---------------------------------------------------------------------------

fn relay_recall(messages: MockRelayMessageStore, messenger: MockMessenger) -> RelayRecall {
    RelayRecall::new(Arc::new(messages), Arc::new(messenger), clock())
}

fn created_ago(mut record: RelayMessageRecord, ago_ms: i64) -> RelayMessageRecord {
    record.created_at = Timestamp::from_millis(NOW_MS - ago_ms);
    record
}

#[tokio::test]
async fn relay_recall_unknown_key_is_not_found() {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, None);
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().never();

    let err = relay_recall(messages, messenger).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::NotFound), "{err:?}");
}

#[tokio::test]
async fn relay_recall_after_24_hours_is_rejected_without_calling_the_provider() {
    let mut messages = MockRelayMessageStore::new();
    let record = created_ago(stored_record(1, &[Some(11)], MessageState::Sent), RECALL_WINDOW_MS + 1);
    expect_get(&mut messages, Some(record));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().never();

    let err = relay_recall(messages, messenger).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::Rejected(ref msg) if msg.contains("24 hours")), "{err:?}");
}

#[tokio::test]
async fn relay_recall_exactly_24_hours_old_is_still_allowed() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    let record = created_ago(stored_record(1, &[Some(11)], MessageState::Sent), RECALL_WINDOW_MS);
    expect_get(&mut messages, Some(record));
    expect_set_state(&mut messages, MessageState::Recalled);
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().withf(|c, t| *c == corp_a() && *t == task(11)).times(1).returning(|_, _| Ok(()));

    let receipt = relay_recall(messages, messenger).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Recalled);
    Ok(())
}

#[tokio::test]
async fn relay_recall_of_a_message_without_tasks_is_rejected() {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(fresh_record(3)));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().never();

    let err = relay_recall(messages, messenger).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::Rejected(ref msg) if msg.contains("not been sent")), "{err:?}");
}

#[tokio::test]
async fn relay_recall_recalls_every_task_and_marks_the_message_recalled() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(stored_record(250, &[Some(11), Some(12), Some(13)], MessageState::Completed)));
    expect_set_state(&mut messages, MessageState::Recalled);
    let mut messenger = MockMessenger::new();
    for id in [11, 12, 13] {
        messenger
            .expect_recall()
            .withf(move |c, t| *c == corp_a() && *t == task(id))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
    }

    let receipt = relay_recall(messages, messenger).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Recalled);
    assert_eq!(receipt.delivery_ids, vec![task(11), task(12), task(13)]);
    Ok(())
}

#[tokio::test]
async fn relay_recall_of_a_recalled_message_makes_no_calls() -> Result<(), CloudError> {
    let mut messages = MockRelayMessageStore::new();
    // Even past the 24 h window: an already recalled message is simply reported.
    let record = created_ago(stored_record(1, &[Some(11)], MessageState::Recalled), RECALL_WINDOW_MS * 2);
    expect_get(&mut messages, Some(record));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().never();

    let receipt = relay_recall(messages, messenger).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Recalled);
    Ok(())
}

#[tokio::test]
async fn relay_recall_refused_by_the_provider_is_rejected_and_not_marked() {
    let mut messages = MockRelayMessageStore::new();
    expect_get(&mut messages, Some(stored_record(1, &[Some(11)], MessageState::Sent)));
    messages.expect_set_state().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_recall().times(1).returning(|_, _| Err(MessengerError::Upstream(rejected())));

    let err = relay_recall(messages, messenger).execute(&client(), KEY).await.unwrap_err();

    assert!(matches!(err, CloudError::Rejected(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// FetchMember
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fetch_member_of_a_corp_outside_the_client_is_forbidden() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_find_userid().never();
    idp.expect_get_member().never();

    let err = FetchMember::new(providers(idp))
        .execute(&client(), &corp_c(), &MemberKey::UserId(uid("manager4220")))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn fetch_member_by_userid_calls_get_member_only() -> Result<(), CloudError> {
    let mut idp = MockIdentityProvider::new();
    idp.expect_find_userid().never();
    idp.expect_get_member()
        .withf(|c, u| *c == corp_a() && *u == uid("manager4220"))
        .times(1)
        .returning(|_, _| Ok(details()));

    let profile =
        FetchMember::new(providers(idp)).execute(&client(), &corp_a(), &MemberKey::UserId(uid("manager4220"))).await?;

    assert_eq!(profile, MemberProfile::from_details(provider(), corp_a(), details(), None));
    Ok(())
}

#[tokio::test]
async fn fetch_member_by_union_id_finds_the_userid_first() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut idp = MockIdentityProvider::new();
    idp.expect_find_userid()
        .withf(|c, u| *c == corp_b() && *u == union_id())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(uid("manager4220")));
    idp.expect_get_member()
        .withf(|c, u| *c == corp_b() && *u == uid("manager4220"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(details()));

    let profile =
        FetchMember::new(providers(idp)).execute(&client(), &corp_b(), &MemberKey::UnionId(union_id())).await?;

    assert_eq!(profile, MemberProfile::from_details(provider(), corp_b(), details(), None));
    Ok(())
}

#[tokio::test]
async fn fetch_member_by_union_id_not_member_maps_to_not_member() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_find_userid().times(1).returning(|_, _| Err(IdentityError::NotMember));
    idp.expect_get_member().never();

    let err = FetchMember::new(providers(idp))
        .execute(&client(), &corp_a(), &MemberKey::UnionId(union_id()))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::NotMember), "{err:?}");
}

#[tokio::test]
async fn fetch_member_get_member_not_member_maps_to_not_member() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_get_member().times(1).returning(|_, _| Err(IdentityError::NotMember));

    let err = FetchMember::new(providers(idp))
        .execute(&client(), &corp_a(), &MemberKey::UserId(uid("gone")))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::NotMember), "{err:?}");
}

#[tokio::test]
async fn fetch_member_upstream_failure_maps_to_unavailable() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_get_member()
        .times(1)
        .returning(|_, _| Err(IdentityError::Upstream(UpstreamError::TokenRejected("40014".to_owned()))));

    let err = FetchMember::new(providers(idp))
        .execute(&client(), &corp_a(), &MemberKey::UserId(uid("manager4220")))
        .await
        .unwrap_err();

    assert!(matches!(err, CloudError::Unavailable(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Error conversions
// ---------------------------------------------------------------------------

#[test]
fn upstream_transient_errors_become_unavailable() {
    for err in [
        UpstreamError::Unavailable("timeout".to_owned()),
        UpstreamError::Throttled("90018".to_owned()),
        UpstreamError::TokenRejected("40014".to_owned()),
    ] {
        let message = err.to_string();
        assert!(matches!(CloudError::from(err), CloudError::Unavailable(ref m) if *m == message), "{message}");
    }
}

#[test]
fn upstream_rejected_becomes_rejected_with_code_and_message() {
    let err = CloudError::from(rejected());
    assert!(matches!(err, CloudError::Rejected(ref m) if m.contains("40035") && m.contains("bad request")), "{err:?}");
}

#[test]
fn messenger_corp_not_served_becomes_forbidden() {
    let err = CloudError::from(MessengerError::CorpNotServed(corp_c()));
    assert!(matches!(err, CloudError::Forbidden(ref m) if m.contains("dingcorpc")), "{err:?}");
}

#[test]
fn messenger_upstream_errors_map_like_upstream_errors() {
    assert!(matches!(CloudError::from(MessengerError::Upstream(unavailable())), CloudError::Unavailable(_)));
    assert!(matches!(CloudError::from(MessengerError::Upstream(rejected())), CloudError::Rejected(_)));
}

#[test]
fn identity_not_member_becomes_not_member() {
    assert!(matches!(CloudError::from(IdentityError::NotMember), CloudError::NotMember));
}

#[test]
fn identity_invalid_code_becomes_rejected() {
    assert!(matches!(
        CloudError::from(IdentityError::InvalidCode),
        CloudError::Rejected(ref m) if m.contains("authorization code")
    ));
}

#[test]
fn identity_corp_not_served_becomes_forbidden() {
    assert!(matches!(
        CloudError::from(IdentityError::CorpNotServed(corp_c())),
        CloudError::Forbidden(ref m) if m.contains("dingcorpc")
    ));
}

#[test]
fn identity_upstream_errors_map_like_upstream_errors() {
    assert!(matches!(
        CloudError::from(IdentityError::Upstream(UpstreamError::Throttled("90002".to_owned()))),
        CloudError::Unavailable(_)
    ));
    assert!(matches!(CloudError::from(IdentityError::Upstream(rejected())), CloudError::Rejected(_)));
}

fn unrecognized() -> MessengerError {
    MessengerError::Upstream(UpstreamError::Unrecognized { code: "71001".into(), message: "新的错误".into() })
}

#[tokio::test]
async fn relay_send_retries_an_unrecognised_code_within_its_budget() -> Result<(), CloudError> {
    // The message was accepted 59 s ago; the budget is 60 s: the batch waits for the next try.
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let mut stored = fresh_record(1);
    stored.created_at = Timestamp::from_millis(NOW_MS - 59_000);
    expect_insert_or_get(&mut messages, 1, stored, false);
    expect_send(&mut messenger, &mut seq, 1, 0, Err(unrecognized()));
    messages.expect_record_batch().never();
    messages.expect_set_state().never();
    expect_record_waiting(&mut messages, WaitReason::Unavailable, "71001".to_owned(), 500);

    let receipt = RelaySend::new(Arc::new(messages), Arc::new(messenger), clock())
        .with_unrecognized_budget_secs(60)
        .execute(&client(), &send_request(corp_a(), 1))
        .await?;

    assert_eq!(receipt.state, MessageState::Accepted);
    assert!(receipt.waiting.is_some_and(|w| w.detail.contains("71001")));
    Ok(())
}

#[tokio::test]
async fn relay_send_fails_a_batch_whose_unrecognised_code_outlasts_the_budget() -> Result<(), CloudError> {
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let mut stored = fresh_record(1);
    stored.created_at = Timestamp::from_millis(NOW_MS - 60_000);
    expect_insert_or_get(&mut messages, 1, stored, false);
    expect_send(&mut messenger, &mut seq, 1, 0, Err(unrecognized()));
    expect_record_batch(
        &mut messages,
        &mut seq,
        0,
        None,
        Some("71001: 新的错误 (unrecognised code, retried for 60 s)"),
    );
    expect_set_state(&mut messages, MessageState::Failed);

    let receipt = RelaySend::new(Arc::new(messages), Arc::new(messenger), clock())
        .with_unrecognized_budget_secs(60)
        .execute(&client(), &send_request(corp_a(), 1))
        .await?;

    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.errors, ["71001: 新的错误 (unrecognised code, retried for 60 s)"]);
    Ok(())
}

#[tokio::test]
async fn relay_send_fails_a_batch_whose_unrecognised_code_used_up_its_attempts() -> Result<(), CloudError> {
    // Young (1 s old, budget an hour) but this is its third attempt of three.
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let mut stored = fresh_record(1);
    stored.created_at = Timestamp::from_millis(NOW_MS - 1_000);
    stored.attempts = 2;
    expect_insert_or_get(&mut messages, 1, stored, false);
    expect_send(&mut messenger, &mut seq, 1, 0, Err(unrecognized()));
    let error = "71001: 新的错误 (unrecognised code, given up after 3 attempts)";
    expect_record_batch(&mut messages, &mut seq, 0, None, Some(error));
    expect_set_state(&mut messages, MessageState::Failed);

    let receipt = RelaySend::new(Arc::new(messages), Arc::new(messenger), clock())
        .with_unrecognized_max_attempts(3)
        .execute(&client(), &send_request(corp_a(), 1))
        .await?;

    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.errors, [error]);
    Ok(())
}

#[tokio::test]
async fn relay_send_retries_an_unrecognised_code_while_attempts_remain() -> Result<(), CloudError> {
    // Its second attempt of three: it waits, counting the attempt.
    let mut seq = Sequence::new();
    let mut messages = MockRelayMessageStore::new();
    let mut messenger = MockMessenger::new();
    let mut stored = fresh_record(1);
    stored.created_at = Timestamp::from_millis(NOW_MS - 1_000);
    stored.attempts = 1;
    expect_insert_or_get(&mut messages, 1, stored, false);
    expect_send(&mut messenger, &mut seq, 1, 0, Err(unrecognized()));
    messages.expect_record_batch().never();
    messages.expect_set_state().never();
    // The second failed attempt waits 1 s (0.5 s doubled).
    expect_record_waiting(&mut messages, WaitReason::Unavailable, "71001".to_owned(), 1_000);

    let receipt = RelaySend::new(Arc::new(messages), Arc::new(messenger), clock())
        .with_unrecognized_max_attempts(3)
        .execute(&client(), &send_request(corp_a(), 1))
        .await?;

    assert_eq!(receipt.state, MessageState::Accepted);
    assert!(receipt.waiting.is_some_and(|w| w.retry_at.as_millis() == NOW_MS + 1_000));
    Ok(())
}

// --- RelaySend: recipients the provider would silently drop ----------------------------------

fn limits_skipping(skip: Vec<(UserId, SkipReason)>, recorded: Option<Vec<UserId>>) -> MockRecipientLimits {
    let mut limits = MockRecipientLimits::new();
    limits.expect_screen().times(1).returning(move |_, _, _| Ok(skip.clone()));
    match recorded {
        Some(users) => {
            limits
                .expect_record()
                .withf(move |c, u, _| *c == corp_a() && u == users.as_slice())
                .times(1)
                .returning(|_, _, _| Ok(()));
        }
        None => {
            limits.expect_record().never();
        }
    }
    limits
}

#[tokio::test]
async fn relay_send_skips_the_recipients_the_provider_would_drop_and_sends_to_the_rest() -> Result<(), CloudError> {
    let everyone = users(3);
    let skipped = vec![(everyone[1].clone(), SkipReason::DuplicateContent)];
    let rest = vec![everyone[0].clone(), everyone[2].clone()];
    let mut messages = MockRelayMessageStore::new();
    expect_insert_or_get(&mut messages, 3, fresh_record(3), true);
    let stored = skipped.clone();
    messages
        .expect_record_skipped()
        .withf(move |c, k, i, s, _| c == CLIENT_ID && k == KEY && *i == 0 && s == stored.as_slice())
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    messages.expect_record_batch().times(1).returning(|_, _, _, _, _, _| Ok(()));
    expect_set_state(&mut messages, MessageState::Sent);
    let mut messenger = MockMessenger::new();
    let sent_to = rest.clone();
    messenger
        .expect_send()
        .withf(move |_, b, _, _| b.user_ids() == sent_to.as_slice())
        .times(1)
        .returning(|_, _, _, _| Ok(task(5)));

    let receipt = relay_send(messages, messenger)
        .with_recipient_limits(Arc::new(limits_skipping(skipped, Some(rest))))
        .execute(&client(), &send_request(corp_a(), 3))
        .await?;

    assert_eq!((receipt.state, receipt.delivery_ids), (MessageState::Sent, vec![task(5)]));
    Ok(())
}

#[tokio::test]
async fn relay_send_of_a_batch_whose_every_recipient_is_skipped_calls_nobody_and_is_sent() -> Result<(), CloudError> {
    let skipped: Vec<_> = users(2).into_iter().map(|u| (u, SkipReason::DailyLimit)).collect();
    let mut messages = MockRelayMessageStore::new();
    expect_insert_or_get(&mut messages, 2, fresh_record(2), true);
    messages.expect_record_skipped().times(1).returning(|_, _, _, _, _| Ok(()));
    messages.expect_record_batch().never();
    expect_set_state(&mut messages, MessageState::Sent);
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();

    let receipt = relay_send(messages, messenger)
        .with_recipient_limits(Arc::new(limits_skipping(skipped, None)))
        .execute(&client(), &send_request(corp_a(), 2))
        .await?;

    assert_eq!((receipt.state, receipt.delivery_ids.len()), (MessageState::Sent, 0));
    Ok(())
}

#[tokio::test]
async fn relay_send_screens_a_batch_once_and_a_later_attempt_keeps_its_skipped_recipients() -> Result<(), CloudError> {
    // Attempt 1 screened batch 0 (user 0 skipped) and then the provider was unavailable.
    let everyone = users(2);
    let mut stored = fresh_record(2);
    stored.batches[0].skipped = vec![(everyone[0].clone(), SkipReason::DailyLimit)];
    let mut messages = MockRelayMessageStore::new();
    expect_insert_or_get(&mut messages, 2, stored, false);
    messages.expect_record_skipped().never();
    messages.expect_record_batch().times(1).returning(|_, _, _, _, _, _| Ok(()));
    expect_set_state(&mut messages, MessageState::Sent);
    let mut messenger = MockMessenger::new();
    let rest = vec![everyone[1].clone()];
    messenger
        .expect_send()
        .withf(move |_, b, _, _| b.user_ids() == rest.as_slice())
        .times(1)
        .returning(|_, _, _, _| Ok(task(6)));
    let mut limits = MockRecipientLimits::new();
    limits.expect_screen().never();
    limits.expect_record().times(1).returning(|_, _, _| Ok(()));

    let receipt = relay_send(messages, messenger)
        .with_recipient_limits(Arc::new(limits))
        .execute(&client(), &send_request(corp_a(), 2))
        .await?;

    assert_eq!(receipt.delivery_ids, vec![task(6)]);
    Ok(())
}

#[tokio::test]
async fn relay_status_reports_skipped_recipients_and_a_message_of_only_skipped_ones_is_done() -> Result<(), CloudError>
{
    let mut stored = stored_record(1, &[], MessageState::Sent);
    stored.batches[0].skipped = vec![(users(1)[0].clone(), SkipReason::DuplicateContent)];
    let mut messages = MockRelayMessageStore::new();
    messages.expect_get().returning(move |_, _| Ok(Some(stored.clone())));
    expect_set_state(&mut messages, MessageState::Completed);
    let mut messenger = MockMessenger::new();
    messenger.expect_progress().never();

    let (receipt, report) =
        RelayStatus::new(Arc::new(messages), Arc::new(messenger), clock()).execute(&client(), KEY).await?;

    assert_eq!(receipt.state, MessageState::Completed);
    assert!(report.done);
    assert_eq!(
        report.recipients,
        vec![(users(1)[0].clone(), domain::RecipientOutcome::Skipped { reason: SkipReason::DuplicateContent })]
    );
    Ok(())
}

fn claimed(record: RelayMessageRecord, uncertain: &[usize]) -> ClaimedRelay {
    ClaimedRelay {
        record,
        claim: "sender:0".to_owned(),
        uncertain: uncertain.iter().map(|i| (*i, Timestamp::from_millis(1_000))).collect(),
    }
}

#[tokio::test]
async fn an_uncertain_batch_is_sent_again_under_the_resend_policy() -> Result<(), StoreError> {
    let mut messages = MockRelayMessageStore::new();
    let due = vec![claimed(fresh_record(1), &[0])];
    messages.expect_claim_due().times(1).returning(move |_, _, _, _| Ok(due.clone()));
    messages.expect_start_batch().times(1).returning(|_, _, _, _, _, _| Ok(true));
    messages.expect_record_batch().times(1).returning(|_, _, _, _, _, _| Ok(()));
    messages
        .expect_set_state()
        .withf(|_, _, state, _| *state == MessageState::Sent)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    messages.expect_record_waiting().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().times(1).returning(|_, _, _, _| Ok(task(8)));
    let messages: Arc<dyn RelayMessageStore> = Arc::new(messages);
    let send = Arc::new(RelaySend::new(messages.clone(), Arc::new(messenger), clock()));

    assert_eq!(DeliverRelayed::new(send, messages, clock()).run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn an_uncertain_batch_holds_its_message_for_an_operator_under_the_hold_policy() -> Result<(), StoreError> {
    let mut messages = MockRelayMessageStore::new();
    let due = vec![claimed(fresh_record(1), &[0])];
    messages.expect_claim_due().times(1).returning(move |_, _, _, _| Ok(due.clone()));
    messages.expect_start_batch().never();
    messages.expect_record_batch().never();
    messages
        .expect_record_waiting()
        .withf(|_, _, waiting, _| {
            waiting.reason == WaitReason::Uncertain
                && waiting.detail.contains("batch 0")
                && waiting.detail.contains("dingbridge relay resend")
                && waiting.retry_at.as_millis() == now().as_millis() + UNCERTAIN_RECHECK_SECS * 1000
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    let messages: Arc<dyn RelayMessageStore> = Arc::new(messages);
    let send = Arc::new(
        RelaySend::new(messages.clone(), Arc::new(messenger), clock()).with_uncertain_policy(UncertainPolicy::Hold),
    );

    assert_eq!(DeliverRelayed::new(send, messages, clock()).run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_sender_that_lost_its_claim_makes_no_call() -> Result<(), StoreError> {
    let mut messages = MockRelayMessageStore::new();
    let due = vec![claimed(fresh_record(1), &[])];
    messages.expect_claim_due().times(1).returning(move |_, _, _, _| Ok(due.clone()));
    messages.expect_start_batch().times(1).returning(|_, _, _, _, _, _| Ok(false));
    messages.expect_record_batch().never();
    messages.expect_set_state().never();
    messages.expect_record_waiting().never();
    let mut messenger = MockMessenger::new();
    messenger.expect_send().never();
    let messages: Arc<dyn RelayMessageStore> = Arc::new(messages);
    let send = Arc::new(RelaySend::new(messages.clone(), Arc::new(messenger), clock()));

    assert_eq!(DeliverRelayed::new(send, messages, clock()).run_once(10).await?, 1);
    Ok(())
}

fn held_record() -> RelayMessageRecord {
    RelayMessageRecord {
        waiting: Some(RelayWaiting { reason: WaitReason::Uncertain, detail: "held".into(), retry_at: now() }),
        attempts: 1,
        ..fresh_record(1)
    }
}

#[tokio::test]
async fn an_operator_resends_a_held_message_and_cannot_resend_one_not_held() {
    let mut messages = MockRelayMessageStore::new();
    let mut seq = Sequence::new();
    messages.expect_get().times(1).in_sequence(&mut seq).returning(|_, _| Ok(Some(held_record())));
    messages
        .expect_release_one()
        .withf(|c, k, reason, at| c == CLIENT_ID && k == KEY && *reason == WaitReason::Uncertain && *at == now())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(true));
    messages.expect_get().times(1).in_sequence(&mut seq).returning(|_, _| Ok(Some(fresh_record(1))));
    let case = ResolveUncertain::new(Arc::new(messages), clock());

    let receipt = case.resend(CLIENT_ID, KEY).await.unwrap();
    assert_eq!(receipt.state, MessageState::Accepted);
    let err = case.resend(CLIENT_ID, KEY).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Rejected(m) if m.contains("not held") && m.contains("waiting nothing")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_operator_abandons_a_held_message_its_unsent_batches_fail() {
    let mut messages = MockRelayMessageStore::new();
    messages.expect_get().times(1).returning(|_, _| Ok(Some(held_record())));
    messages
        .expect_record_batch()
        .withf(|_, _, index, task, error, _| {
            *index == 0 && task.is_none() && error.as_deref().is_some_and(|e| e.starts_with("abandoned by an operator"))
        })
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(()));
    messages
        .expect_set_state()
        .withf(|_, _, state, _| *state == MessageState::Failed)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let case = ResolveUncertain::new(Arc::new(messages), clock());

    let receipt = case.abandon(CLIENT_ID, KEY).await.unwrap();
    assert_eq!(receipt.state, MessageState::Failed);
    assert_eq!(receipt.errors.len(), 1);
}
