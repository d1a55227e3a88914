#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the local use cases, with strict mockall expectations: every
//! port call a branch makes is expected `.times(1)` with its arguments checked,
//! and a port a branch must not touch has no expectation (a call would panic).

use std::sync::Arc;

use domain::{
    CorpId, DeliveryId, DeliveryReport, DeptId, LoginAttempt, LoginFailure, LoginState, MemberProfile, MessageState,
    ProviderKey, Recipients, ReturnTo, SessionToken, Timestamp, UnionId, User, ValidationError,
};

use mockall::Sequence;

use super::local::{
    CompleteLogin, CurrentUser, GetUser, ListMessagesQuery, ListUsersQuery, LoginError, Logout, MessageError,
    MessageStatus, RecallMessage, SendMessage, SendMessageCommand, StartLogin,
};
use super::test_support::*;
use crate::ports::{
    GatewayError, ListMessages, ListUsers, LoginOutcome, MessageRecord, MessageRules, MockCloudGateway,
    MockDispatchTrigger, MockLoginAttemptStore, MockMessageStore, MockRandomSource, MockSessionStore,
    MockUserRepository, RelayReceipt, Session, StoreError,
};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const PUBLIC_URL: &str = "https://local.example";
const COMPLETE_URL: &str = "https://local.example/auth/idp-a/complete";
const AUTHORIZE_URL: &str = "https://idp-a.example/oauth2/auth?state=x";
const SESSION_TTL_SECS: i64 = 3600;
const STATE_BYTES: [u8; 32] = [3; 32];
const TOKEN_BYTES: [u8; 32] = [5; 32];
const NEW_USER_ID: &str = "0197-new-user";
const MSG_ID: &str = "0197-msg";

fn task(n: i64) -> DeliveryId {
    DeliveryId::parse(&n.to_string()).unwrap()
}

fn state() -> LoginState {
    LoginState::from_random_bytes(&STATE_BYTES)
}

fn token() -> SessionToken {
    SessionToken::from_random_bytes(&TOKEN_BYTES)
}

fn profile(corp_id: CorpId, userid: &str) -> MemberProfile {
    MemberProfile {
        provider: provider(),
        corp_id,
        union_id: UnionId::parse(&format!("union-{userid}")).unwrap(),
        userid: uid(userid),
        open_id: None,
        name: format!("Name of {userid}"),
        avatar_url: None,
        title: None,
        org_email: None,
        email: None,
        mobile: None,
        dept_ids: vec![],
        active: true,
    }
}

fn user(id: &str, corp_id: CorpId, userid: &str) -> User {
    User {
        id: id.to_owned(),
        profile: profile(corp_id, userid),
        created_at: Timestamp::from_millis(NOW_MS - 1000),
        updated_at: now(),
    }
}

fn random_bytes(bytes: [u8; 32]) -> MockRandomSource {
    let mut random = MockRandomSource::new();
    random.expect_bytes32().times(1).return_const(bytes);
    random
}

// ---------------------------------------------------------------------------
// StartLogin
// ---------------------------------------------------------------------------

fn start_login(attempts: MockLoginAttemptStore, gateway: MockCloudGateway) -> StartLogin {
    StartLogin::new(
        Arc::new(attempts),
        Arc::new(gateway),
        Arc::new(random_bytes(STATE_BYTES)),
        clock(),
        PUBLIC_URL.to_owned(),
    )
}

fn provider() -> ProviderKey {
    ProviderKey::from_static("idp-a")
}

fn attempts_inserting(return_to: &str) -> MockLoginAttemptStore {
    let expected = LoginAttempt {
        state_hash: state().hash(),
        provider: provider(),
        return_to: ReturnTo::parse_or_root(Some(return_to)),
        expires_at: now().plus_secs(600),
    };
    assert_eq!(expected.return_to.as_str(), return_to);
    let mut attempts = MockLoginAttemptStore::new();
    attempts.expect_insert().withf(move |a| *a == expected).times(1).returning(|_| Ok(()));
    attempts
}

fn gateway_starting(answer: Result<String, GatewayError>) -> MockCloudGateway {
    let mut gateway = MockCloudGateway::new();
    gateway
        .expect_start_login()
        .withf(|p, s, url| *p == provider() && *s == state() && url == COMPLETE_URL)
        .times(1)
        .returning(move |_, _, _| answer.clone());
    gateway
}

#[tokio::test]
async fn start_login_stores_the_attempt_and_returns_the_authorize_url() -> Result<(), LoginError> {
    let (state, url) = start_login(attempts_inserting("/inbox?tab=1"), gateway_starting(Ok(AUTHORIZE_URL.to_owned())))
        .execute(&provider(), Some("/inbox?tab=1"))
        .await?;

    assert_eq!(state, self::state());
    assert_eq!(url, AUTHORIZE_URL);
    Ok(())
}

#[tokio::test]
async fn start_login_sanitises_an_absolute_return_to() -> Result<(), LoginError> {
    // attempts_inserting("/") expects the stored return_to to be `/`.
    start_login(attempts_inserting("/"), gateway_starting(Ok(AUTHORIZE_URL.to_owned())))
        .execute(&provider(), Some("https://evil.example/"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn start_login_without_return_to_uses_root() -> Result<(), LoginError> {
    start_login(attempts_inserting("/"), gateway_starting(Ok(AUTHORIZE_URL.to_owned())))
        .execute(&provider(), None)
        .await?;
    Ok(())
}

#[tokio::test]
async fn start_login_gateway_unavailable_is_unavailable() {
    let err = start_login(
        attempts_inserting("/"),
        gateway_starting(Err(GatewayError::Unavailable("connect refused".to_owned()))),
    )
    .execute(&provider(), None)
    .await
    .unwrap_err();

    assert!(matches!(err, LoginError::Unavailable(ref m) if m == "connect refused"), "{err:?}");
}

#[tokio::test]
async fn start_login_gateway_forbidden_is_refused() {
    let err = start_login(
        attempts_inserting("/"),
        gateway_starting(Err(GatewayError::Forbidden("complete_url outside origins".to_owned()))),
    )
    .execute(&provider(), None)
    .await
    .unwrap_err();

    assert!(matches!(err, LoginError::Refused(ref m) if m.contains("complete_url outside origins")), "{err:?}");
}

#[tokio::test]
async fn start_login_store_error_propagates_without_calling_the_cloud() {
    let mut attempts = MockLoginAttemptStore::new();
    attempts.expect_insert().times(1).returning(|_| Err(store_down()));
    let mut gateway = MockCloudGateway::new();
    gateway.expect_start_login().never();

    let err = start_login(attempts, gateway).execute(&provider(), None).await.unwrap_err();

    assert!(matches!(err, LoginError::Store(StoreError::Unavailable(_))), "{err:?}");
}

// ---------------------------------------------------------------------------
// CompleteLogin
// ---------------------------------------------------------------------------

struct LoginMocks {
    attempts: MockLoginAttemptStore,
    gateway: MockCloudGateway,
    users: MockUserRepository,
    sessions: MockSessionStore,
    random: MockRandomSource,
}

impl LoginMocks {
    /// Mocks where users and sessions must never be touched.
    fn untouched() -> Self {
        let mut users = MockUserRepository::new();
        users.expect_upsert().never();
        let mut sessions = MockSessionStore::new();
        sessions.expect_insert().never();
        Self {
            attempts: MockLoginAttemptStore::new(),
            gateway: MockCloudGateway::new(),
            users,
            sessions,
            random: MockRandomSource::new(),
        }
    }

    /// `take` expected once for `state()` at `now()`.
    fn taking(mut self, found: Option<LoginAttempt>) -> Self {
        let hash = state().hash();
        self.attempts
            .expect_take()
            .withf(move |h, at| h == hash && *at == now())
            .times(1)
            .returning(move |_, _| Ok(found.clone()));
        self
    }

    /// `take_login_result` expected once for `state()`.
    fn result(mut self, answer: Result<LoginOutcome, GatewayError>) -> Self {
        self.gateway.expect_take_login_result().withf(|s| *s == state()).times(1).returning(move |_| answer.clone());
        self
    }

    fn build(self) -> CompleteLogin {
        CompleteLogin::new(
            Arc::new(self.attempts),
            Arc::new(self.gateway),
            Arc::new(self.users),
            Arc::new(self.sessions),
            Arc::new(self.random),
            clock(),
            SESSION_TTL_SECS,
        )
    }
}

fn attempt() -> LoginAttempt {
    LoginAttempt {
        state_hash: state().hash(),
        provider: provider(),
        return_to: ReturnTo::parse_or_root(Some("/inbox")),
        expires_at: now().plus_secs(600),
    }
}

async fn complete_invalid(mocks: LoginMocks, query: Option<&str>, cookie: Option<&str>, why: &str) {
    let err = mocks.build().execute(query, cookie).await.unwrap_err();
    assert!(matches!(err, LoginError::InvalidState(m) if m.contains(why)), "{err:?}");
}

fn never_taken() -> LoginMocks {
    let mut mocks = LoginMocks::untouched();
    mocks.attempts.expect_take().never();
    mocks.gateway.expect_take_login_result().never();
    mocks
}

#[tokio::test]
async fn complete_login_without_query_state_is_invalid() {
    let cookie = state();
    complete_invalid(never_taken(), None, Some(cookie.expose()), "missing or malformed").await;
}

#[tokio::test]
async fn complete_login_with_a_malformed_query_state_is_invalid() {
    let cookie = state();
    complete_invalid(never_taken(), Some("short"), Some(cookie.expose()), "missing or malformed").await;
}

#[tokio::test]
async fn complete_login_without_cookie_is_invalid() {
    let query = state();
    complete_invalid(never_taken(), Some(query.expose()), None, "no login cookie").await;
}

#[tokio::test]
async fn complete_login_with_a_malformed_cookie_is_invalid() {
    let query = state();
    complete_invalid(never_taken(), Some(query.expose()), Some("garbage"), "cookie is malformed").await;
}

#[tokio::test]
async fn complete_login_with_a_cookie_for_another_login_is_invalid() {
    let query = state();
    let other = LoginState::from_random_bytes(&[4; 32]);
    complete_invalid(never_taken(), Some(query.expose()), Some(other.expose()), "cookie mismatch").await;
}

#[tokio::test]
async fn complete_login_with_an_unknown_attempt_is_invalid() {
    let mut mocks = LoginMocks::untouched().taking(None);
    mocks.gateway.expect_take_login_result().never();
    let s = state();
    complete_invalid(mocks, Some(s.expose()), Some(s.expose()), "unknown, expired or already used").await;
}

#[tokio::test]
async fn complete_login_result_not_found_on_the_cloud_is_invalid() {
    let mocks = LoginMocks::untouched().taking(Some(attempt())).result(Err(GatewayError::NotFound));
    let s = state();
    complete_invalid(mocks, Some(s.expose()), Some(s.expose()), "unknown, expired or already used").await;
}

#[tokio::test]
async fn complete_login_cloud_unavailable_is_unavailable() {
    let mocks =
        LoginMocks::untouched().taking(Some(attempt())).result(Err(GatewayError::Unavailable("502".to_owned())));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Unavailable(ref m) if m == "502"), "{err:?}");
}

#[tokio::test]
async fn complete_login_other_cloud_refusal_is_refused() {
    let mocks = LoginMocks::untouched()
        .taking(Some(attempt()))
        .result(Err(GatewayError::Forbidden("bad credentials".to_owned())));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Refused(ref m) if m.contains("bad credentials")), "{err:?}");
}

#[tokio::test]
async fn complete_login_of_a_member_the_org_marks_inactive_is_failed_and_stores_no_user() {
    let mut profile = user(NEW_USER_ID, corp_a(), "manager4220").profile;
    profile.active = false;
    // `untouched()` expects no user upsert and no session.
    let mocks = LoginMocks::untouched().taking(Some(attempt())).result(Ok(Ok(profile)));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Failed(LoginFailure::Inactive)), "{err:?}");
}

#[tokio::test]
async fn complete_login_failed_outcome_is_failed_and_stores_no_user() {
    let mocks = LoginMocks::untouched().taking(Some(attempt())).result(Ok(Err(LoginFailure::NotMember)));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Failed(LoginFailure::NotMember)), "{err:?}");
}

#[tokio::test]
async fn complete_login_answered_with_another_providers_member_is_refused_and_stores_no_user() {
    let mut profile = user(NEW_USER_ID, corp_a(), "manager4220").profile;
    profile.provider = ProviderKey::from_static("idp-b");
    // `untouched()` expects no user upsert and no session.
    let mocks = LoginMocks::untouched().taking(Some(attempt())).result(Ok(Ok(profile)));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Refused(ref m) if m.contains("another identity provider")), "{err:?}");
}

/// Mocks for a login that gets as far as storing the user, who comes back as `stored`.
fn signing_in(stored: User) -> LoginMocks {
    let member = profile(corp_a(), "manager4220");
    let mut mocks =
        LoginMocks { users: MockUserRepository::new(), sessions: MockSessionStore::new(), ..LoginMocks::untouched() }
            .taking(Some(attempt()))
            .result(Ok(Ok(member.clone())));
    mocks.random.expect_new_id().times(1).return_const(NEW_USER_ID.to_owned());
    mocks.random.expect_bytes32().times(1).return_const(TOKEN_BYTES);
    mocks
        .users
        .expect_upsert()
        .withf(move |p, id, at| *p == member && id == NEW_USER_ID && *at == now())
        .times(1)
        .returning(move |_, _, _| Ok(stored.clone()));
    mocks
}

fn expect_session(mocks: &mut LoginMocks, user_id: &str) {
    let expected = Session {
        token_hash: token().hash(),
        user_id: user_id.to_owned(),
        created_at: now(),
        expires_at: now().plus_secs(SESSION_TTL_SECS),
    };
    mocks.sessions.expect_insert().withf(move |s| *s == expected).times(1).returning(|_| Ok(()));
}

#[tokio::test]
async fn complete_login_success_stores_the_user_and_opens_a_session() -> Result<(), LoginError> {
    let stored = user(NEW_USER_ID, corp_a(), "manager4220");
    let mut mocks = signing_in(stored.clone());
    expect_session(&mut mocks, NEW_USER_ID);
    let s = state();

    let signed_in = mocks.build().execute(Some(s.expose()), Some(s.expose())).await?;

    assert_eq!(signed_in.token, token());
    assert_eq!(signed_in.return_to.as_str(), "/inbox");
    assert_eq!(signed_in.user, stored);
    Ok(())
}

#[tokio::test]
async fn complete_login_of_a_known_user_opens_the_session_for_the_stored_id() -> Result<(), LoginError> {
    let stored = user("0190-existing", corp_a(), "manager4220");
    let mut mocks = signing_in(stored.clone());
    expect_session(&mut mocks, "0190-existing");
    let s = state();

    let signed_in = mocks.build().execute(Some(s.expose()), Some(s.expose())).await?;

    assert_eq!(signed_in.user.id, "0190-existing");
    Ok(())
}

#[tokio::test]
async fn complete_login_session_store_error_propagates() {
    let mut mocks = signing_in(user(NEW_USER_ID, corp_a(), "manager4220"));
    mocks.sessions.expect_insert().times(1).returning(|_| Err(store_down()));
    let s = state();

    let err = mocks.build().execute(Some(s.expose()), Some(s.expose())).await.unwrap_err();

    assert!(matches!(err, LoginError::Store(StoreError::Unavailable(_))), "{err:?}");
}

// ---------------------------------------------------------------------------
// CurrentUser / Logout
// ---------------------------------------------------------------------------

fn current_user(sessions: MockSessionStore, users: MockUserRepository) -> CurrentUser {
    CurrentUser::new(Arc::new(sessions), Arc::new(users), clock())
}

fn sessions_finding(found: Option<Session>) -> MockSessionStore {
    let hash = token().hash();
    let mut sessions = MockSessionStore::new();
    sessions
        .expect_find()
        .withf(move |h, at| h == hash && *at == now())
        .times(1)
        .returning(move |_, _| Ok(found.clone()));
    sessions
}

fn session() -> Session {
    Session {
        token_hash: token().hash(),
        user_id: "u-1".to_owned(),
        created_at: now(),
        expires_at: now().plus_secs(SESSION_TTL_SECS),
    }
}

fn users_finding(id: &'static str, found: Option<User>) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_find().withf(move |i| i == id).times(1).returning(move |_| Ok(found.clone()));
    users
}

#[tokio::test]
async fn current_user_without_token_is_not_signed_in() {
    let mut sessions = MockSessionStore::new();
    sessions.expect_find().never();
    let err = current_user(sessions, MockUserRepository::new()).execute(None).await.unwrap_err();
    assert!(matches!(err, LoginError::NotSignedIn), "{err:?}");
}

#[tokio::test]
async fn current_user_with_a_malformed_token_is_not_signed_in() {
    let mut sessions = MockSessionStore::new();
    sessions.expect_find().never();
    let err = current_user(sessions, MockUserRepository::new()).execute(Some("not-a-token")).await.unwrap_err();
    assert!(matches!(err, LoginError::NotSignedIn), "{err:?}");
}

#[tokio::test]
async fn current_user_with_an_unknown_session_is_not_signed_in() {
    let mut users = MockUserRepository::new();
    users.expect_find().never();
    let err = current_user(sessions_finding(None), users).execute(Some(token().expose())).await.unwrap_err();
    assert!(matches!(err, LoginError::NotSignedIn), "{err:?}");
}

#[tokio::test]
async fn current_user_whose_user_is_gone_is_not_signed_in() {
    let err = current_user(sessions_finding(Some(session())), users_finding("u-1", None))
        .execute(Some(token().expose()))
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::NotSignedIn), "{err:?}");
}

#[tokio::test]
async fn current_user_returns_the_sessions_user() -> Result<(), LoginError> {
    let stored = user("u-1", corp_a(), "manager4220");
    let found = current_user(sessions_finding(Some(session())), users_finding("u-1", Some(stored.clone())))
        .execute(Some(token().expose()))
        .await?;
    assert_eq!(found, stored);
    Ok(())
}

#[tokio::test]
async fn current_user_store_error_propagates() {
    let mut sessions = MockSessionStore::new();
    sessions.expect_find().times(1).returning(|_, _| Err(store_down()));
    let err = current_user(sessions, MockUserRepository::new()).execute(Some(token().expose())).await.unwrap_err();
    assert!(matches!(err, LoginError::Store(_)), "{err:?}");
}

fn sessions_deleting(answer: Result<bool, StoreError>) -> MockSessionStore {
    let hash = token().hash();
    let mut sessions = MockSessionStore::new();
    sessions.expect_delete().withf(move |h| h == hash).times(1).returning(move |_| answer.clone());
    sessions
}

#[tokio::test]
async fn logout_deletes_the_session_of_the_token() -> Result<(), LoginError> {
    assert!(Logout::new(Arc::new(sessions_deleting(Ok(true)))).execute(Some(token().expose())).await?);
    Ok(())
}

#[tokio::test]
async fn logout_of_an_unknown_session_is_false() -> Result<(), LoginError> {
    assert!(!Logout::new(Arc::new(sessions_deleting(Ok(false)))).execute(Some(token().expose())).await?);
    Ok(())
}

#[tokio::test]
async fn logout_without_or_with_a_malformed_token_deletes_nothing() -> Result<(), LoginError> {
    for token in [None, Some("nope")] {
        let mut sessions = MockSessionStore::new();
        sessions.expect_delete().never();
        assert!(!Logout::new(Arc::new(sessions)).execute(token).await?);
    }
    Ok(())
}

#[tokio::test]
async fn logout_store_error_propagates() {
    let err =
        Logout::new(Arc::new(sessions_deleting(Err(store_down())))).execute(Some(token().expose())).await.unwrap_err();
    assert!(matches!(err, LoginError::Store(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// ListUsersQuery / GetUser
// ---------------------------------------------------------------------------

async fn list_with_limit(asked: u32, expected: u32) -> Result<(), MessageError> {
    let mut users = MockUserRepository::new();
    let page = vec![user("u-1", corp_a(), "manager4220")];
    let answer = page.clone();
    users
        .expect_list()
        .withf(move |q| *q == ListUsers { corp_id: Some(corp_a()), limit: expected, offset: 20 })
        .times(1)
        .returning(move |_| Ok(answer.clone()));

    let listed = ListUsersQuery::new(Arc::new(users))
        .execute(ListUsers { corp_id: Some(corp_a()), limit: asked, offset: 20 })
        .await?;

    assert_eq!(listed, page);
    Ok(())
}

#[tokio::test]
async fn list_users_clamps_a_zero_limit_to_one() -> Result<(), MessageError> {
    list_with_limit(0, 1).await
}

#[tokio::test]
async fn list_users_clamps_a_huge_limit_to_500() -> Result<(), MessageError> {
    list_with_limit(10_000, 500).await
}

#[tokio::test]
async fn list_users_keeps_a_limit_in_range() -> Result<(), MessageError> {
    list_with_limit(50, 50).await?;
    list_with_limit(500, 500).await
}

#[tokio::test]
async fn list_users_store_error_propagates() {
    let mut users = MockUserRepository::new();
    users.expect_list().times(1).returning(|_| Err(store_down()));
    let err = ListUsersQuery::new(Arc::new(users))
        .execute(ListUsers { corp_id: None, limit: 10, offset: 0 })
        .await
        .unwrap_err();
    assert!(matches!(err, MessageError::Store(_)), "{err:?}");
}

#[tokio::test]
async fn get_user_unknown_is_not_found() {
    let err = GetUser::new(Arc::new(users_finding("u-404", None))).execute("u-404").await.unwrap_err();
    assert!(matches!(err, MessageError::NotFound), "{err:?}");
}

#[tokio::test]
async fn get_user_returns_the_user() -> Result<(), MessageError> {
    let stored = user("u-1", corp_a(), "manager4220");
    let found = GetUser::new(Arc::new(users_finding("u-1", Some(stored.clone())))).execute("u-1").await?;
    assert_eq!(found, stored);
    Ok(())
}

// ---------------------------------------------------------------------------
// SendMessage
// ---------------------------------------------------------------------------

const KEY: &str = "order-4711";

struct SendMocks {
    users: MockUserRepository,
    messages: MockMessageStore,
    trigger: MockDispatchTrigger,
    random: MockRandomSource,
}

impl SendMocks {
    /// Mocks where nothing may be stored and the dispatcher must not be woken.
    fn rejecting() -> Self {
        let mut messages = MockMessageStore::new();
        messages.expect_insert().never();
        messages.expect_update().never();
        let mut trigger = MockDispatchTrigger::new();
        trigger.expect_wake().never();
        let mut random = MockRandomSource::new();
        random.expect_new_id().never();
        Self { users: MockUserRepository::new(), messages, trigger, random }
    }

    /// Mocks for a message that is stored (as `corp_id`, `recipients`, body "hello", no key) in
    /// state `accepted`, due now, and then the dispatcher is woken (after the insert).
    fn accepting(corp_id: CorpId, recipients: Recipients) -> Self {
        Self::accepting_record(accepted_record(corp_id, recipients, None))
    }

    /// As [`SendMocks::accepting`], expecting exactly `expected` to be inserted.
    fn accepting_record(expected: MessageRecord) -> Self {
        let mut seq = Sequence::new();
        let mut random = MockRandomSource::new();
        random.expect_new_id().times(1).return_const(MSG_ID.to_owned());
        let mut messages = MockMessageStore::new();
        messages.expect_insert().withf(move |r| *r == expected).times(1).in_sequence(&mut seq).returning(|_| Ok(()));
        messages.expect_update().never();
        let mut trigger = MockDispatchTrigger::new();
        trigger.expect_wake().times(1).in_sequence(&mut seq).return_const(());
        Self { users: MockUserRepository::new(), messages, trigger, random }
    }

    fn finding(mut self, id: &'static str, found: Option<User>) -> Self {
        self.users.expect_find().withf(move |i| i == id).times(1).returning(move |_| Ok(found.clone()));
        self
    }

    /// `find_by_idempotency_key(KEY)` expected once more, answering `found`.
    fn looking_up_key(mut self, seq: &mut Sequence, found: Result<Option<MessageRecord>, StoreError>) -> Self {
        self.messages
            .expect_find_by_idempotency_key()
            .withf(|k| k == KEY)
            .times(1)
            .in_sequence(seq)
            .returning(move |_| found.clone());
        self
    }

    /// The use case serving both test corps, `default_corp` first (the default); with `None`, both
    /// corps in order (the default is then corp A).
    fn build(self, default_corp: Option<CorpId>) -> SendMessage {
        let default = default_corp.unwrap_or_else(corp_a);
        let others = [corp_a(), corp_b()].into_iter().filter(|c| *c != default);
        self.serving(std::iter::once(default.clone()).chain(others).collect())
    }

    fn serving(self, corps: Vec<CorpId>) -> SendMessage {
        SendMessage::new(
            Arc::new(self.users),
            Arc::new(crate::ports::MockBindingStore::new()),
            Arc::new(self.messages),
            Arc::new(self.trigger),
            Arc::new(self.random),
            clock(),
            corps,
        )
    }
}

/// The record `SendMessage` stores for body "hello": `accepted`, due now, no attempts yet.
fn accepted_record(corp_id: CorpId, recipients: Recipients, key: Option<&str>) -> MessageRecord {
    MessageRecord {
        id: MSG_ID.to_owned(),
        corp_id,
        body: text("hello"),
        recipients,
        state: MessageState::Accepted,
        delivery_ids: vec![],
        error: None,
        idempotency_key: key.map(str::to_owned),
        attempts: 0,
        next_attempt_at: now(),
        relayed_at: None,
        sent_at: None,
        finished_at: None,
        created_at: now(),
        updated_at: now(),
    }
}

fn command() -> SendMessageCommand {
    SendMessageCommand {
        corp_id: None,
        user_ids: vec![],
        userids: vec![],
        external_ids: vec![],
        tenant_id: None,
        dept_ids: vec![],
        to_all: false,
        body: text("hello"),
        idempotency_key: None,
    }
}

fn invalid_field(err: &MessageError) -> Option<&str> {
    match err {
        MessageError::Invalid(v) => Some(v.field.as_str()),
        _ => None,
    }
}

fn to_alice() -> Recipients {
    Recipients::new(vec![uid("alice")], vec![]).unwrap()
}

#[tokio::test]
async fn send_message_resolves_local_users_to_their_userids_and_corp() -> Result<(), MessageError> {
    // Direct userids come first, then the resolved ones in the order given.
    let recipients = Recipients::new(vec![uid("carol"), uid("alice"), uid("bob")], vec![]).unwrap();
    let mocks = SendMocks::accepting(corp_a(), recipients.clone())
        .finding("u-1", Some(user("u-1", corp_a(), "alice")))
        .finding("u-2", Some(user("u-2", corp_a(), "bob")));
    let cmd = SendMessageCommand {
        user_ids: vec!["u-1".to_owned(), "u-2".to_owned()],
        userids: vec![uid("carol")],
        ..command()
    };

    let record = mocks.build(Some(corp_b())).execute(cmd).await?;

    assert_eq!(record, accepted_record(corp_a(), recipients, None));
    Ok(())
}

#[tokio::test]
async fn send_message_stores_an_accepted_message_wakes_the_dispatcher_and_relays_nothing() -> Result<(), MessageError> {
    // SendMocks has no gateway at all: accepting a message never calls the cloud.
    let mocks = SendMocks::accepting(corp_a(), to_alice());
    let cmd = SendMessageCommand { userids: vec![uid("alice")], ..command() };

    let record = mocks.build(Some(corp_a())).execute(cmd).await?;

    assert_eq!(record.state, MessageState::Accepted);
    assert!(record.delivery_ids.is_empty());
    assert_eq!(record.error, None);
    assert_eq!(record.attempts, 0);
    assert_eq!(record.next_attempt_at, now());
    assert_eq!((record.relayed_at, record.sent_at, record.finished_at), (None, None, None));
    Ok(())
}

#[tokio::test]
async fn send_message_with_unknown_local_users_stores_nothing() {
    let mocks = SendMocks::rejecting()
        .finding("u-1", Some(user("u-1", corp_a(), "alice")))
        .finding("u-2", None)
        .finding("u-3", None);
    let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned(), "u-2".to_owned(), "u-3".to_owned()], ..command() };

    let err = mocks.build(None).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::UnknownUsers(ref ids) if *ids == ["u-2", "u-3"]), "{err:?}");
}

fn inactive_user(id: &str, userid: &str) -> User {
    let mut user = user(id, corp_a(), userid);
    user.profile.active = false;
    user
}

#[tokio::test]
async fn send_message_to_an_inactive_local_user_is_unknown_and_stores_nothing() {
    let mocks = SendMocks::rejecting().finding("u-1", Some(inactive_user("u-1", "alice")));
    let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned()], ..command() };

    let err = mocks.build(Some(corp_a())).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::UnknownUsers(ref ids) if *ids == ["inactive:u-1"]), "{err:?}");
}

#[tokio::test]
async fn send_message_reports_inactive_and_unknown_users_together_in_order() {
    let mocks = SendMocks::rejecting()
        .finding("u-1", Some(user("u-1", corp_a(), "alice")))
        .finding("u-2", None)
        .finding("u-3", Some(inactive_user("u-3", "carol")));
    let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned(), "u-2".to_owned(), "u-3".to_owned()], ..command() };

    let err = mocks.build(None).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::UnknownUsers(ref ids) if *ids == ["u-2", "inactive:u-3"]), "{err:?}");
}

#[tokio::test]
async fn send_message_to_users_of_two_corps_is_invalid() {
    let mocks = SendMocks::rejecting()
        .finding("u-1", Some(user("u-1", corp_a(), "alice")))
        .finding("u-2", Some(user("u-2", corp_b(), "bob")));
    let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned(), "u-2".to_owned()], ..command() };

    let err = mocks.build(None).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("recipients.user_ids"), "{err:?}");
}

#[tokio::test]
async fn send_message_to_a_user_outside_the_requested_corp_is_invalid() {
    let mocks = SendMocks::rejecting().finding("u-1", Some(user("u-1", corp_b(), "alice")));
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), user_ids: vec!["u-1".to_owned()], ..command() };

    let err = mocks.build(None).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("recipients.user_ids"), "{err:?}");
}

#[tokio::test]
async fn send_message_for_a_corp_the_deployment_does_not_serve_is_refused_and_stores_nothing() {
    let cmd = SendMessageCommand { corp_id: Some(corp("dingforeign")), userids: vec![uid("alice")], ..command() };

    let err = SendMocks::rejecting().serving(vec![corp_a()]).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("corp_id"), "{err:?}");
    assert!(matches!(&err, MessageError::Invalid(v) if v.code == "not_served"), "{err:?}");
}

#[tokio::test]
async fn send_message_to_a_user_of_a_corp_no_longer_served_is_refused() {
    let mocks = SendMocks::rejecting().finding("u-1", Some(user("u-1", corp_b(), "alice")));
    let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned()], ..command() };

    let err = mocks.serving(vec![corp_a()]).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("corp_id"), "{err:?}");
}

#[tokio::test]
async fn send_message_without_any_corp_is_invalid_on_corp_id() {
    let cmd = SendMessageCommand { userids: vec![uid("alice")], ..command() };

    let err = SendMocks::rejecting().serving(Vec::new()).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("corp_id"), "{err:?}");
}

#[tokio::test]
async fn send_message_uses_the_default_corp() -> Result<(), MessageError> {
    let mocks = SendMocks::accepting(corp_b(), to_alice());
    let cmd = SendMessageCommand { userids: vec![uid("alice")], ..command() };

    let record = mocks.build(Some(corp_b())).execute(cmd).await?;

    assert_eq!(record.corp_id, corp_b());
    Ok(())
}

#[tokio::test]
async fn send_message_prefers_the_requested_corp_over_the_default() -> Result<(), MessageError> {
    let recipients = Recipients::new(vec![], vec![DeptId::new(7).unwrap()]).unwrap();
    let mocks = SendMocks::accepting(corp_a(), recipients);
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), dept_ids: vec![DeptId::new(7).unwrap()], ..command() };

    let record = mocks.build(Some(corp_b())).execute(cmd).await?;

    assert_eq!(record.corp_id, corp_a());
    Ok(())
}

#[tokio::test]
async fn send_message_to_all_with_ids_is_invalid() {
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), userids: vec![uid("alice")], to_all: true, ..command() };

    let err = SendMocks::rejecting().build(None).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("recipients.to_all"), "{err:?}");
}

#[tokio::test]
async fn send_message_to_all_goes_to_everyone() -> Result<(), MessageError> {
    let mocks = SendMocks::accepting(corp_a(), Recipients::everyone());
    let cmd = SendMessageCommand { to_all: true, ..command() };

    let record = mocks.build(Some(corp_a())).execute(cmd).await?;

    assert!(record.recipients.to_all());
    Ok(())
}

#[tokio::test]
async fn send_message_without_recipients_is_invalid() {
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), ..command() };

    let err = SendMocks::rejecting().build(None).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("recipients"), "{err:?}");
}

/// Body rules that refuse every body with `field` (`times` calls expected).
fn refusing_rules(field: &'static str, times: usize) -> crate::ports::MockBodyRules {
    let mut rules = crate::ports::MockBodyRules::new();
    rules
        .expect_check()
        .times(times)
        .returning(move |_, _| Err(ValidationError::new(field, "unsupported", format!("{field} refused"))));
    rules
}

#[tokio::test]
async fn send_message_refused_by_the_tenants_body_rules_is_invalid_and_stores_nothing() {
    // Corp B's provider takes the body; corp A's refuses it: the rules of the message's corp apply.
    let mut lenient = crate::ports::MockBodyRules::new();
    lenient.expect_check().never();
    let rules = MessageRules::new(Arc::new(lenient)).with(vec![corp_a()], Arc::new(refusing_rules("body.msgtype", 1)));
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), userids: vec![uid("alice")], ..command() };

    let err = SendMocks::rejecting().build(None).with_body_rules(rules).execute(cmd).await.unwrap_err();

    assert_eq!(invalid_field(&err), Some("body.msgtype"), "{err:?}");
}

#[tokio::test]
async fn send_message_checks_the_body_with_its_recipients_by_the_default_rules_for_other_corps() {
    let mut rules = crate::ports::MockBodyRules::new();
    rules
        .expect_check()
        .withf(|body, recipients| *body == text("hello") && *recipients == to_alice())
        .times(1)
        .returning(|_, _| Ok(()));
    let rules = MessageRules::new(Arc::new(rules)).with(vec![corp_b()], Arc::new(refusing_rules("body", 0)));
    let cmd = SendMessageCommand { corp_id: Some(corp_a()), userids: vec![uid("alice")], ..command() };

    let stored = SendMocks::accepting(corp_a(), to_alice()).build(None).with_body_rules(rules).execute(cmd).await;

    assert_eq!(stored.map(|r| r.state).ok(), Some(MessageState::Accepted));
}

#[tokio::test]
async fn send_message_insert_error_propagates_without_waking_the_dispatcher() {
    let mut mocks = SendMocks::rejecting();
    mocks.random = MockRandomSource::new();
    mocks.random.expect_new_id().times(1).return_const(MSG_ID.to_owned());
    mocks.messages = MockMessageStore::new();
    mocks.messages.expect_insert().times(1).returning(|_| Err(store_down()));
    let cmd = SendMessageCommand { userids: vec![uid("alice")], ..command() };

    let err = mocks.build(Some(corp_a())).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::Store(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn send_message_insert_conflict_without_a_key_is_a_store_error() {
    let mut mocks = SendMocks::rejecting();
    mocks.random = MockRandomSource::new();
    mocks.random.expect_new_id().times(1).return_const(MSG_ID.to_owned());
    mocks.messages = MockMessageStore::new();
    mocks.messages.expect_insert().times(1).returning(|_| Err(StoreError::Conflict("messages_pkey".to_owned())));
    mocks.messages.expect_find_by_idempotency_key().never();
    let cmd = SendMessageCommand { userids: vec![uid("alice")], ..command() };

    let err = mocks.build(Some(corp_a())).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::Store(StoreError::Conflict(ref m)) if m == "messages_pkey"), "{err:?}");
}

// --- SendMessage: Idempotency-Key ---------------------------------------------

fn keyed(key: &str) -> SendMessageCommand {
    SendMessageCommand { userids: vec![uid("alice")], idempotency_key: Some(key.to_owned()), ..command() }
}

/// What an earlier request with `KEY` stored (already relayed and sent since).
fn first_under_key() -> MessageRecord {
    MessageRecord {
        id: "0196-first".to_owned(),
        state: MessageState::Sent,
        delivery_ids: vec![task(11)],
        attempts: 1,
        sent_at: Some(Timestamp::from_millis(NOW_MS - 5_000)),
        created_at: Timestamp::from_millis(NOW_MS - 10_000),
        updated_at: Timestamp::from_millis(NOW_MS - 5_000),
        ..accepted_record(corp_a(), to_alice(), Some(KEY))
    }
}

#[tokio::test]
async fn send_message_with_a_new_key_stores_it_on_the_message() -> Result<(), MessageError> {
    let mut seq = Sequence::new();
    let mocks = SendMocks::accepting_record(accepted_record(corp_a(), to_alice(), Some(KEY)))
        .looking_up_key(&mut seq, Ok(None));

    let record = mocks.build(Some(corp_a())).execute(keyed(KEY)).await?;

    assert_eq!(record.idempotency_key.as_deref(), Some(KEY));
    assert_eq!(record.id, MSG_ID);
    Ok(())
}

#[tokio::test]
async fn send_message_trims_the_key_before_using_it() -> Result<(), MessageError> {
    let mut seq = Sequence::new();
    let mocks = SendMocks::accepting_record(accepted_record(corp_a(), to_alice(), Some(KEY)))
        .looking_up_key(&mut seq, Ok(None));

    let record = mocks.build(Some(corp_a())).execute(keyed(&format!("  {KEY}\t"))).await?;

    assert_eq!(record.idempotency_key.as_deref(), Some(KEY));
    Ok(())
}

#[tokio::test]
async fn send_message_repeated_key_with_the_same_message_returns_the_first_without_storing() -> Result<(), MessageError>
{
    let mut seq = Sequence::new();
    // rejecting(): no insert, no new id, no wake.
    let mocks = SendMocks::rejecting().looking_up_key(&mut seq, Ok(Some(first_under_key())));

    let record = mocks.build(Some(corp_a())).execute(keyed(KEY)).await?;

    assert_eq!(record, first_under_key());
    Ok(())
}

#[tokio::test]
async fn send_message_repeated_key_with_a_different_body_is_key_reused() {
    let mut seq = Sequence::new();
    let mocks = SendMocks::rejecting().looking_up_key(&mut seq, Ok(Some(first_under_key())));
    let cmd = SendMessageCommand { body: text("something else"), ..keyed(KEY) };

    let err = mocks.build(Some(corp_a())).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn send_message_repeated_key_with_different_recipients_is_key_reused() {
    let mut seq = Sequence::new();
    let mocks = SendMocks::rejecting().looking_up_key(&mut seq, Ok(Some(first_under_key())));
    let cmd = SendMessageCommand { userids: vec![uid("alice"), uid("bob")], ..keyed(KEY) };

    let err = mocks.build(Some(corp_a())).execute(cmd).await.unwrap_err();

    assert!(matches!(err, MessageError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn send_message_repeated_key_in_another_corp_is_key_reused() {
    let mut seq = Sequence::new();
    let mocks = SendMocks::rejecting().looking_up_key(&mut seq, Ok(Some(first_under_key())));

    let err = mocks.build(Some(corp_b())).execute(keyed(KEY)).await.unwrap_err();

    assert!(matches!(err, MessageError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn send_message_key_lookup_error_propagates_and_stores_nothing() {
    let mut seq = Sequence::new();
    let mocks = SendMocks::rejecting().looking_up_key(&mut seq, Err(store_down()));

    let err = mocks.build(Some(corp_a())).execute(keyed(KEY)).await.unwrap_err();

    assert!(matches!(err, MessageError::Store(StoreError::Unavailable(_))), "{err:?}");
}

/// Mocks for a keyed request that finds no message under `KEY`, loses the insert race
/// (`Conflict`), and then re-reads the key, finding `winner`.
fn losing_the_insert_race(winner: Result<Option<MessageRecord>, StoreError>) -> SendMocks {
    let mut seq = Sequence::new();
    let mut mocks = SendMocks::rejecting();
    mocks.random = MockRandomSource::new();
    mocks.random.expect_new_id().times(1).return_const(MSG_ID.to_owned());
    let expected = accepted_record(corp_a(), to_alice(), Some(KEY));
    mocks.messages = MockMessageStore::new();
    mocks
        .messages
        .expect_find_by_idempotency_key()
        .withf(|k| k == KEY)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(None));
    mocks
        .messages
        .expect_insert()
        .withf(move |r| *r == expected)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(StoreError::Conflict("messages_idempotency_key_key".to_owned())));
    mocks.messages.expect_update().never();
    mocks.looking_up_key(&mut seq, winner)
}

#[tokio::test]
async fn send_message_losing_an_insert_race_on_the_key_returns_the_winner() -> Result<(), MessageError> {
    let winner = MessageRecord { id: "0197-winner".to_owned(), ..accepted_record(corp_a(), to_alice(), Some(KEY)) };

    // rejecting()'s trigger: the winner woke the dispatcher, the loser must not.
    let record = losing_the_insert_race(Ok(Some(winner.clone()))).build(Some(corp_a())).execute(keyed(KEY)).await?;

    assert_eq!(record, winner);
    Ok(())
}

#[tokio::test]
async fn send_message_losing_an_insert_race_to_a_different_message_is_key_reused() {
    let winner = MessageRecord {
        id: "0197-winner".to_owned(),
        body: text("other"),
        ..accepted_record(corp_a(), to_alice(), Some(KEY))
    };

    let err = losing_the_insert_race(Ok(Some(winner))).build(Some(corp_a())).execute(keyed(KEY)).await.unwrap_err();

    assert!(matches!(err, MessageError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn send_message_insert_conflict_with_no_message_under_the_key_is_the_conflict() {
    // E.g. an id collision: the key is still free, so the original conflict is reported.
    let err = losing_the_insert_race(Ok(None)).build(Some(corp_a())).execute(keyed(KEY)).await.unwrap_err();

    assert!(
        matches!(err, MessageError::Store(StoreError::Conflict(ref m)) if m == "messages_idempotency_key_key"),
        "{err:?}"
    );
}

#[tokio::test]
async fn send_message_with_a_malformed_key_is_invalid_before_any_lookup() {
    let too_long = "k".repeat(129);
    for bad in ["", "   ", "two words", "ключ", "tab\there", "nul\0", too_long.as_str()] {
        // rejecting(): no user, binding or key lookup, nothing stored.
        let cmd = SendMessageCommand { user_ids: vec!["u-1".to_owned()], ..keyed(bad) };
        let err = SendMocks::rejecting().build(Some(corp_a())).execute(cmd).await.unwrap_err();
        assert_eq!(invalid_field(&err), Some("Idempotency-Key"), "{bad:?}: {err:?}");
    }
}

#[tokio::test]
async fn send_message_accepts_a_key_of_128_printable_characters() -> Result<(), MessageError> {
    let key = format!("{}~!", "K".repeat(126));
    let mut mocks = SendMocks::accepting_record(accepted_record(corp_a(), to_alice(), Some(&key)));
    let lookup = key.clone();
    mocks.messages.expect_find_by_idempotency_key().withf(move |k| k == lookup).times(1).returning(|_| Ok(None));

    let record = mocks.build(Some(corp_a())).execute(keyed(&key)).await?;

    assert_eq!(record.idempotency_key, Some(key));
    Ok(())
}

// ---------------------------------------------------------------------------
// ListMessagesQuery
// ---------------------------------------------------------------------------

async fn list_messages_with_limit(asked: u32, expected: u32) -> Result<(), MessageError> {
    let page = vec![stored_message(MessageState::Sent, vec![task(11)])];
    let answer = page.clone();
    let since = Some(Timestamp::from_millis(NOW_MS - 3_600_000));
    let mut messages = MockMessageStore::new();
    messages
        .expect_list()
        .withf(move |q| *q == ListMessages { state: Some(MessageState::Sent), since, limit: expected, offset: 40 })
        .times(1)
        .returning(move |_| Ok(answer.clone()));

    let listed = ListMessagesQuery::new(Arc::new(messages))
        .execute(ListMessages { state: Some(MessageState::Sent), since, limit: asked, offset: 40 })
        .await?;

    assert_eq!(listed, page);
    Ok(())
}

#[tokio::test]
async fn list_messages_clamps_a_zero_limit_to_one() -> Result<(), MessageError> {
    list_messages_with_limit(0, 1).await
}

#[tokio::test]
async fn list_messages_clamps_a_huge_limit_to_500() -> Result<(), MessageError> {
    list_messages_with_limit(501, 500).await?;
    list_messages_with_limit(u32::MAX, 500).await
}

#[tokio::test]
async fn list_messages_keeps_a_limit_in_range() -> Result<(), MessageError> {
    list_messages_with_limit(1, 1).await?;
    list_messages_with_limit(50, 50).await?;
    list_messages_with_limit(500, 500).await
}

#[tokio::test]
async fn list_messages_store_error_propagates() {
    let mut messages = MockMessageStore::new();
    messages.expect_list().times(1).returning(|_| Err(store_down()));
    let err = ListMessagesQuery::new(Arc::new(messages))
        .execute(ListMessages { state: None, since: None, limit: 10, offset: 0 })
        .await
        .unwrap_err();
    assert!(matches!(err, MessageError::Store(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// MessageStatus / RecallMessage
// ---------------------------------------------------------------------------

fn stored_message(state: MessageState, delivery_ids: Vec<DeliveryId>) -> MessageRecord {
    let earlier = Timestamp::from_millis(NOW_MS - 60_000);
    MessageRecord {
        id: MSG_ID.to_owned(),
        corp_id: corp_a(),
        body: text("hello"),
        recipients: Recipients::new(vec![uid("alice")], vec![]).unwrap(),
        state,
        delivery_ids,
        error: None,
        idempotency_key: None,
        attempts: 1,
        next_attempt_at: earlier.plus_secs(60),
        relayed_at: None,
        sent_at: None,
        finished_at: None,
        created_at: earlier,
        updated_at: earlier,
    }
}

fn messages_getting(found: Option<MessageRecord>) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages.expect_get().withf(|id| id == MSG_ID).times(1).returning(move |_| Ok(found.clone()));
    messages
}

fn expect_update(messages: &mut MockMessageStore, state: MessageState, delivery_ids: Vec<DeliveryId>) {
    messages
        .expect_update()
        .withf(move |id, s, t, e, at| id == MSG_ID && *s == state && t == delivery_ids && e.is_none() && *at == now())
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
}

fn report(done: bool) -> DeliveryReport {
    DeliveryReport { done, percent: if done { 100 } else { 40 }, ..DeliveryReport::default() }
}

fn gateway_status(answer: Result<(RelayReceipt, DeliveryReport), GatewayError>) -> MockCloudGateway {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_message_status().withf(|key| key == MSG_ID).times(1).returning(move |_| answer.clone());
    gateway
}

fn receipt(state: MessageState, delivery_ids: Vec<DeliveryId>) -> RelayReceipt {
    RelayReceipt { key: MSG_ID.to_owned(), state, delivery_ids, errors: vec![], waiting: None }
}

#[tokio::test]
async fn message_status_unknown_is_not_found() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_message_status().never();
    let err = MessageStatus::new(Arc::new(messages_getting(None)), Arc::new(gateway), clock())
        .execute(MSG_ID)
        .await
        .unwrap_err();
    assert!(matches!(err, MessageError::NotFound), "{err:?}");
}

#[tokio::test]
async fn message_status_without_task_ids_asks_nobody() -> Result<(), MessageError> {
    let stored = stored_message(MessageState::Accepted, vec![]);
    let mut gateway = MockCloudGateway::new();
    gateway.expect_message_status().never();
    let mut messages = messages_getting(Some(stored.clone()));
    messages.expect_update().never();

    let view = MessageStatus::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await?;

    assert_eq!(view.record, stored);
    assert_eq!(view.report, None);
    Ok(())
}

#[tokio::test]
async fn message_status_applies_a_changed_state() -> Result<(), MessageError> {
    let mut messages = messages_getting(Some(stored_message(MessageState::Sent, vec![task(11)])));
    expect_update(&mut messages, MessageState::Completed, vec![task(11)]);
    let gateway = gateway_status(Ok((receipt(MessageState::Completed, vec![task(11)]), report(true))));

    let view = MessageStatus::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await?;

    assert_eq!(view.record.state, MessageState::Completed);
    assert_eq!(view.record.updated_at, now());
    assert_eq!(view.report, Some(report(true)));
    Ok(())
}

#[tokio::test]
async fn message_status_with_an_unchanged_state_does_not_update() -> Result<(), MessageError> {
    let stored = stored_message(MessageState::Sent, vec![task(11)]);
    let mut messages = messages_getting(Some(stored.clone()));
    messages.expect_update().never();
    let gateway = gateway_status(Ok((receipt(MessageState::Sent, vec![task(11)]), report(false))));

    let view = MessageStatus::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await?;

    assert_eq!(view.record, stored);
    assert_eq!(view.report, Some(report(false)));
    Ok(())
}

#[tokio::test]
async fn message_status_cloud_error_returns_the_record_without_report() -> Result<(), MessageError> {
    let stored = stored_message(MessageState::Sent, vec![task(11)]);
    let mut messages = messages_getting(Some(stored.clone()));
    messages.expect_update().never();
    let gateway = gateway_status(Err(GatewayError::Unavailable("timeout".to_owned())));

    let view = MessageStatus::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await?;

    assert_eq!(view.record, stored);
    assert_eq!(view.report, None);
    Ok(())
}

fn gateway_recalling(answer: Result<RelayReceipt, GatewayError>) -> MockCloudGateway {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_recall_message().withf(|key| key == MSG_ID).times(1).returning(move |_| answer.clone());
    gateway
}

#[tokio::test]
async fn recall_message_unknown_is_not_found() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_recall_message().never();
    let err = RecallMessage::new(Arc::new(messages_getting(None)), Arc::new(gateway), clock())
        .execute(MSG_ID)
        .await
        .unwrap_err();
    assert!(matches!(err, MessageError::NotFound), "{err:?}");
}

#[tokio::test]
async fn recall_message_not_sent_is_rejected() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_recall_message().never();
    let mut messages = messages_getting(Some(stored_message(MessageState::Accepted, vec![])));
    messages.expect_update().never();
    let err = RecallMessage::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await.unwrap_err();
    assert!(matches!(err, MessageError::Rejected(ref m) if m.contains("not been sent")), "{err:?}");
}

#[tokio::test]
async fn recall_message_stores_the_recalled_state() -> Result<(), MessageError> {
    let mut messages = messages_getting(Some(stored_message(MessageState::Sent, vec![task(11), task(12)])));
    expect_update(&mut messages, MessageState::Recalled, vec![task(11), task(12)]);
    let gateway = gateway_recalling(Ok(receipt(MessageState::Recalled, vec![task(11), task(12)])));

    let record = RecallMessage::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await?;

    assert_eq!(record.state, MessageState::Recalled);
    assert_eq!(record.updated_at, now());
    Ok(())
}

#[tokio::test]
async fn recall_message_cloud_refusal_is_rejected_and_not_stored() {
    let mut messages = messages_getting(Some(stored_message(MessageState::Sent, vec![task(11)])));
    messages.expect_update().never();
    let gateway = gateway_recalling(Err(GatewayError::Rejected("older than 24 h".to_owned())));

    let err = RecallMessage::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await.unwrap_err();

    assert!(matches!(err, MessageError::Rejected(ref m) if m.contains("older than 24 h")), "{err:?}");
}

#[tokio::test]
async fn recall_message_cloud_unavailable_is_unavailable() {
    let mut messages = messages_getting(Some(stored_message(MessageState::Sent, vec![task(11)])));
    messages.expect_update().never();
    let gateway = gateway_recalling(Err(GatewayError::Unavailable("timeout".to_owned())));

    let err = RecallMessage::new(Arc::new(messages), Arc::new(gateway), clock()).execute(MSG_ID).await.unwrap_err();

    assert!(matches!(err, MessageError::Unavailable(ref m) if m == "timeout"), "{err:?}");
}

// ---------------------------------------------------------------------------
// GatewayError → MessageError
// ---------------------------------------------------------------------------

#[test]
fn gateway_errors_map_to_message_errors() {
    assert!(matches!(MessageError::from(GatewayError::NotFound), MessageError::NotFound));
    assert!(matches!(
        MessageError::from(GatewayError::Unavailable("x".to_owned())),
        MessageError::Unavailable(ref m) if m == "x"
    ));
    for other in [
        GatewayError::Forbidden("f".to_owned()),
        GatewayError::Invalid("i".to_owned()),
        GatewayError::NotMember,
        GatewayError::Rejected("r".to_owned()),
    ] {
        let text = other.to_string();
        assert!(matches!(MessageError::from(other), MessageError::Rejected(ref m) if *m == text), "{text}");
    }
}
