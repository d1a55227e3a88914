//! In-process tests (salvo `TestClient`) of every route [`super::cloud_router`] mounts, through
//! the whole cloud router (request ids, probes, OpenAPI): the DingTalk OAuth callback, the event
//! callback (configured and not), the relay API v1, `/healthz`, `/readyz` and `/openapi.json`.
//!
//! DingTalk is mocked ([`MockIdentityProvider`], [`MockMessenger`]); storage is a real
//! [`SqliteStore`] on a fresh temporary file, so a login intent, its callback and its result, or a
//! pushed contact event and the feed, meet exactly as in the cloud. Each test checks the success
//! status and body shape and the main error statuses with their `code`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::inbound::dingtalk_events::HandleEvents;
use application::ports::{
    Clock, IdentityError, MessengerError, MockIdentityProvider, MockMessenger, RelayClient, UpstreamError,
};
use application::usecases::cloud::{
    CreateLoginIntent, DeliverRelayed, FetchMember, HandleCallback, RelayRecall, RelaySend, RelayStatus,
    TakeLoginResult,
};
use application::usecases::feed::ReadContactFeed;
use domain::{
    CorpId, DeliveryId, DeptId, Identity, LoginState, MemberDetails, SendProgress, SendResult, UnionId, UserId,
};
use salvo::http::header::{HeaderMap, LOCATION, WWW_AUTHENTICATE};
use salvo::prelude::*;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::events::{DEFAULT_MAX_BODY_BYTES, EventsHttp};
use super::relay::{AuthLimit, AuthLimiter, RelayClientCredentials, RelayHttp};
use super::{CloudHttp, Probes, ReadinessCheck, cloud_router};
use crate::inbound::dingtalk_events::crypto::CallbackCrypto;
use crate::outbound::sqlite::SqliteStore;
use crate::outbound::system::SystemClock;

const HOST: &str = "http://127.0.0.1";
const PUBLIC_URL: &str = "https://cloud.example";
const CALLBACK_URL: &str = "https://cloud.example/auth/dingtalk/callback";
/// Relay client A: `(id, secret, corp, origin)`.
const A: (&str, &str, &str, &str) = ("local-a", "relay-secret-a-0123456789", "dingcorpa", "https://a.example");
/// Relay client B.
const B: (&str, &str, &str, &str) = ("local-b", "relay-secret-b-0123456789", "dingcorpb", "https://b.example");
const TOKEN: &str = "token123";
const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

/// A temporary database directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to build the router.
struct Setup {
    idp: MockIdentityProvider,
    messenger: MockMessenger,
    events: bool,
    ready: bool,
    max_auth_failures: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            idp: MockIdentityProvider::new(),
            messenger: MockMessenger::new(),
            events: true,
            ready: true,
            max_auth_failures: 1000,
        }
    }
}

struct Env {
    service: Service,
    /// The cloud's background sender over the same store and messenger.
    sender: DeliverRelayed,
    _dir: TempDir,
}

/// One answer: status, headers, the body as text and (when it is JSON) as a value.
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: impl salvo::http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> Option<&str> {
        self.json["code"].as_str()
    }
}

fn credentials((id, secret, corp, origin): (&str, &str, &str, &str)) -> RelayClientCredentials {
    RelayClientCredentials {
        client: RelayClient {
            id: id.into(),
            corp_ids: vec![CorpId::parse(corp).unwrap()],
            complete_url_origins: vec![origin.into()],
        },
        secret: SecretString::from(secret),
    }
}

fn check(result: Result<(), String>) -> ReadinessCheck {
    Arc::new(move || {
        let result = result.clone();
        Box::pin(async move { result })
    })
}

async fn env(setup: Setup) -> Env {
    let dir = std::env::temp_dir().join(format!("dingbridge-cloud-routes-{}", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("cloud.db").display()), 4).await.unwrap();
    let shared = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let idp = Arc::new(setup.idp);
    let messenger = Arc::new(setup.messenger);
    let send = Arc::new(
        RelaySend::new(shared.clone(), messenger.clone(), clock.clone())
            .with_body_rules(crate::inbound::http::test_support::dingtalk_rules()),
    );
    let sender = DeliverRelayed::new(send.clone(), shared.clone(), clock.clone());
    let cloud = Arc::new(CloudHttp {
        handle_callback: HandleCallback::new(
            shared.clone(),
            shared.clone(),
            crate::inbound::http::test_support::dingtalk_providers(idp.clone()),
            clock.clone(),
        ),
        feishu_events: None,
    });
    let relay = Arc::new(RelayHttp {
        clients: vec![credentials(A), credentials(B)],
        limiter: AuthLimiter::new(AuthLimit { max_failures: setup.max_auth_failures, ..AuthLimit::default() }),
        create_intent: CreateLoginIntent::new(
            shared.clone(),
            crate::inbound::http::test_support::dingtalk_providers(idp.clone()),
            clock.clone(),
            std::sync::Arc::new(crate::outbound::system::OsRandom),
            PUBLIC_URL.to_owned(),
        ),
        take_result: TakeLoginResult::new(shared.clone(), clock.clone()),
        send: send.clone(),
        status: RelayStatus::new(shared.clone(), messenger.clone(), clock.clone()),
        recall: RelayRecall::new(shared.clone(), messenger, clock.clone()),
        fetch_member: FetchMember::new(crate::inbound::http::test_support::dingtalk_providers(idp)),
        read_feed: ReadContactFeed::new(shared.clone(), shared.clone()),
    });
    let events = setup.events.then(|| {
        Arc::new(EventsHttp {
            handle_events: HandleEvents::new(shared.clone(), shared.clone(), clock.clone(), 600),
            cryptos: vec![crypto()],
            clock: clock.clone(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    });
    let database = if setup.ready { Ok(()) } else { Err("database unreachable".to_owned()) };
    let probes = Arc::new(Probes { checks: vec![("config", check(Ok(()))), ("database", check(database))] });
    Env { service: super::service(cloud_router(cloud, relay, events, probes)), sender, _dir: TempDir(dir) }
}

/// The subscription's crypto: pushes are encrypted for corp A's id.
fn crypto() -> CallbackCrypto {
    CallbackCrypto::new(TOKEN, AES_KEY, A.2).unwrap()
}

fn state(byte: u8) -> LoginState {
    LoginState::from_random_bytes(&[byte; 32])
}

fn auth(req: RequestBuilder, client: (&str, &str, &str, &str)) -> RequestBuilder {
    req.basic_auth(client.0, Some(client.1))
}

fn get(path: &str) -> RequestBuilder {
    TestClient::get(format!("{HOST}{path}"))
}

fn post(path: &str) -> RequestBuilder {
    TestClient::post(format!("{HOST}{path}"))
}

impl Env {
    async fn send(&self, req: RequestBuilder) -> Reply {
        let mut res = req.send(&self.service).await;
        let status = res.status_code.map(|s| s.as_u16()).unwrap_or(0);
        let headers = res.headers().clone();
        let text = res.take_string().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }

    /// `POST /relay/v1/logins` as `client`.
    async fn create_login(&self, client: (&str, &str, &str, &str), state: &LoginState, complete_url: &str) -> Reply {
        let body = json!({"state": state.expose(), "complete_url": complete_url});
        self.send(auth(post("/relay/v1/logins"), client).json(&body)).await
    }

    /// Pushes `event` to the event callback at `path`, encrypted and signed now.
    async fn push(&self, path: &str, event: &Value, nonce: &str) -> Reply {
        let c = crypto();
        let encrypt = c.encrypt(&event.to_string());
        let ts = SystemClock.now().as_millis().to_string();
        let sig = c.signature(&ts, nonce, &encrypt);
        let url = format!("{path}?signature={sig}&msg_signature={sig}&timestamp={ts}&nonce={nonce}");
        self.send(post(&url).json(&json!({"encrypt": encrypt}))).await
    }
}

/// Asserts the relay's authentication answers on `req` (built fresh each time by `make`): 401
/// `unauthorized` with a `WWW-Authenticate` challenge without credentials, with a wrong secret,
/// with an unknown client id and with a non-Basic scheme.
async fn assert_needs_basic_auth(env: &Env, make: impl Fn() -> RequestBuilder) {
    let attempts = [
        ("no credentials", make()),
        ("wrong secret", make().basic_auth(A.0, Some("wrong-secret-0123456789"))),
        ("unknown client", make().basic_auth("local-z", Some(A.1))),
        ("other client's secret", make().basic_auth(A.0, Some(B.1))),
        ("bearer", make().bearer_auth(A.1)),
        ("garbage", make().add_header("authorization", "Basic !!!not-base64", true)),
    ];
    for (what, req) in attempts {
        let reply = env.send(req).await;
        assert_eq!((reply.status, reply.code()), (401, Some("unauthorized")), "{what}: {}", reply.text);
        // Some challenge is always sent; that it is `Basic` is checked (ignored until fixed) by
        // `the_relay_challenge_is_basic`.
        assert!(reply.header(WWW_AUTHENTICATE).is_some_and(|c| !c.is_empty()), "{what}: no WWW-Authenticate");
    }
}

/// The relay is HTTP Basic (RFC 7617): its 401 challenges with `Basic`, not the service API's
/// `Bearer`, and the scheme name is case-insensitive (RFC 7235 §2.1).
#[tokio::test]
async fn the_relay_challenge_is_basic() {
    let env = env(Setup::default()).await;
    for req in [get("/relay/v1/events"), get("/relay/v1/events").basic_auth(A.0, Some("wrong-secret-0123456789"))] {
        let reply = env.send(req).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.header(WWW_AUTHENTICATE), Some("Basic realm=\"dingbridge relay\""));
    }
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", A.0, A.1));
    let reply = env.send(get("/relay/v1/events").add_header("authorization", format!("bAsIc {encoded}"), true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Unknown routes and wrong methods answer the JSON error body, not salvo's HTML page.
#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let env = env(Setup::default()).await;
    let reply = env.send(get("/relay/v1/nope")).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_found")), "{}", reply.text);
    assert!(reply.header("x-request-id").is_some());
    let reply = env.send(TestClient::put(format!("{HOST}/relay/v1/logins"))).await;
    assert_eq!((reply.status, reply.code()), (405, Some("method_not_allowed")), "{}", reply.text);
    let reply = env.send(get("/dingtalk/events")).await;
    assert_eq!((reply.status, reply.code()), (405, Some("method_not_allowed")), "{}", reply.text);
}

#[tokio::test]
async fn repeated_bad_credentials_are_rate_limited_with_retry_after() {
    let env = env(Setup { max_auth_failures: 3, ..Setup::default() }).await;
    for _ in 0..3 {
        let reply = env.send(get("/relay/v1/events").basic_auth(A.0, Some("wrong-secret-0123456789"))).await;
        assert_eq!(reply.status, 401);
    }
    // Locked out, even with the right secret, until the window ends.
    for req in [get("/relay/v1/events").basic_auth(A.0, Some("wrong")), auth(get("/relay/v1/events"), A)] {
        let reply = env.send(req).await;
        assert_eq!((reply.status, reply.code()), (429, Some("rate_limited")), "{}", reply.text);
        let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
}

/// Asserts a 422 `validation_failed` naming `field`.
fn assert_field(reply: &Reply, field: &str, what: &str) {
    assert_eq!((reply.status, reply.code()), (422, Some("validation_failed")), "{what}: {}", reply.text);
    assert!(reply.json["fields"][field].is_object(), "{what}: no field {field}: {}", reply.text);
}

fn details(userid: &str, union_id: &str) -> MemberDetails {
    MemberDetails {
        userid: UserId::parse(userid).unwrap(),
        union_id: UnionId::parse(union_id).unwrap(),
        name: "张三".into(),
        avatar_url: None,
        title: Some("Engineer".into()),
        org_email: None,
        email: Some("zhang@a.example".into()),
        mobile: None,
        dept_ids: vec![DeptId::new(1).unwrap()],
        active: true,
    }
}

fn identity(union_id: &str) -> Identity {
    Identity {
        union_id: UnionId::parse(union_id).unwrap(),
        open_id: None,
        corp_id: None,
        nick: "zhang".into(),
        avatar_url: None,
        email: None,
        mobile: None,
    }
}

// ------------------------------------------------------------------ health, readiness, OpenAPI

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let env = env(Setup::default()).await;
    let reply = env.send(get("/healthz")).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({"status": "ok"})));
    assert!(reply.header("x-request-id").is_some_and(|id| !id.is_empty()), "every answer carries a request id");
    let reply = env.send(get("/readyz").add_header("x-request-id", "probe-1", true)).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({"status": "ok"})));
    assert_eq!(reply.header("x-request-id"), Some("probe-1"));
}

#[tokio::test]
async fn readyz_is_503_naming_the_failing_check() {
    let env = env(Setup { ready: false, ..Setup::default() }).await;
    let reply = env.send(get("/readyz")).await;
    assert_eq!((reply.status, &reply.json), (503, &json!({"status": "unavailable", "failed": "database"})));
    // Liveness does not depend on the probes.
    assert_eq!(env.send(get("/healthz")).await.status, 200);
}

#[tokio::test]
async fn the_openapi_document_lists_every_cloud_route() {
    let env = env(Setup::default()).await;
    let reply = env.send(get("/openapi.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let paths = &reply.json["paths"];
    for (path, method) in [
        ("/auth/{provider}/callback", "get"),
        ("/dingtalk/events", "post"),
        ("/dingding/event/pushed", "post"),
        ("/relay/v1/logins", "post"),
        ("/relay/v1/logins/{state}", "get"),
        ("/relay/v1/messages", "post"),
        ("/relay/v1/messages/{key}", "get"),
        ("/relay/v1/messages/{key}/recall", "post"),
        ("/relay/v1/members", "get"),
        ("/relay/v1/events", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing from {}", paths);
    }
    // No local route in the cloud's document.
    assert!(paths.as_object().unwrap().keys().all(|p| !p.starts_with("/api/")), "{paths}");
}

// ------------------------------------------------------------------ login: intent, callback, result

#[tokio::test]
async fn a_login_runs_from_intent_through_the_callback_to_a_single_use_result() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().withf(|_, redirect, _| redirect == CALLBACK_URL).returning(|state, redirect, _| {
        format!("https://login.dingtalk.com/oauth2/auth?state={}&redirect_uri={redirect}", state.expose())
    });
    idp.expect_exchange_code()
        .withf(|code, _| code.expose() == "code-123")
        .times(1)
        .returning(|_, _| Ok(identity("union-1")));
    idp.expect_find_userid()
        .withf(|corp, union| corp.as_str() == A.2 && union.as_str() == "union-1")
        .times(1)
        .returning(|_, _| Ok(UserId::parse("user-1").unwrap()));
    idp.expect_get_member().times(1).returning(|_, _| Ok(details("user-1", "union-1")));
    let env = env(Setup { idp, ..Setup::default() }).await;
    let s = state(1);

    let reply = env.create_login(A, &s, "https://a.example/auth/complete?lang=zh").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let authorize = reply.json["authorize_url"].as_str().unwrap();
    assert!(authorize.starts_with("https://login.dingtalk.com/") && authorize.contains(s.expose()), "{authorize}");

    let reply = env.send(get(&format!("/auth/dingtalk/callback?authCode=code-123&state={}", s.expose()))).await;
    assert_eq!(reply.status, 302, "{}", reply.text);
    let location = reply.header(LOCATION).unwrap();
    assert_eq!(location, format!("https://a.example/auth/complete?lang=zh&state={}", s.expose()));
    assert!(!location.contains("code-123") && !location.contains("user-1"), "only the state: {location}");

    // Another client never sees it (and does not consume it).
    let reply = env.send(auth(get(&format!("/relay/v1/logins/{}", s.expose())), B)).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_found")), "{}", reply.text);

    let reply = env.send(auth(get(&format!("/relay/v1/logins/{}", s.expose())), A)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let member = &reply.json["member"];
    assert_eq!(member["corp_id"], A.2);
    assert_eq!(member["userid"], "user-1");
    assert_eq!(member["union_id"], "union-1");
    assert_eq!(member["name"], "张三");
    assert_eq!(member["dept_ids"], json!([1]));
    assert_eq!(member["active"], true);
    assert!(reply.json["failure"].is_null(), "{}", reply.text);

    // Single use: the result and the state are gone.
    let reply = env.send(auth(get(&format!("/relay/v1/logins/{}", s.expose())), A)).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_found")));
    let reply = env.send(get(&format!("/auth/dingtalk/callback?authCode=code-123&state={}", s.expose()))).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text.contains("invalid_login_state"), "{}", reply.text);
}

#[tokio::test]
async fn a_declined_consent_and_the_older_code_name_redirect_too() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().returning(|_, _, _| "https://login.dingtalk.com/oauth2/auth".into());
    idp.expect_exchange_code()
        .withf(|code, _| code.expose() == "old-name")
        .times(1)
        .returning(|_, _| Err(IdentityError::InvalidCode));
    let env = env(Setup { idp, ..Setup::default() }).await;

    let declined = state(2);
    assert_eq!(env.create_login(A, &declined, "https://a.example/done").await.status, 201);
    let reply =
        env.send(get(&format!("/auth/dingtalk/callback?error=access_denied&state={}", declined.expose()))).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header(LOCATION), Some(format!("https://a.example/done?state={}", declined.expose()).as_str()));
    let reply = env.send(auth(get(&format!("/relay/v1/logins/{}", declined.expose())), A)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        (reply.json["failure"].as_str(), reply.json["error"].as_str()),
        (Some("consent_denied"), Some("access_denied"))
    );
    assert!(reply.json["member"].is_null());

    let old = state(3);
    assert_eq!(env.create_login(A, &old, "https://a.example/done#frag").await.status, 201);
    let reply = env.send(get(&format!("/auth/dingtalk/callback?code=old-name&state={}", old.expose()))).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header(LOCATION), Some(format!("https://a.example/done?state={}#frag", old.expose()).as_str()));
    let reply = env.send(auth(get(&format!("/relay/v1/logins/{}", old.expose())), A)).await;
    assert_eq!(reply.json["failure"], "invalid_code", "{}", reply.text);
}

#[tokio::test]
async fn the_callback_refuses_a_missing_malformed_or_unknown_state_with_an_html_page() {
    let env = env(Setup::default()).await;
    let unknown = state(9);
    for query in [
        "?authCode=abc".to_owned(),
        "?authCode=abc&state=".to_owned(),
        "?authCode=abc&state=short".to_owned(),
        format!("?authCode=abc&state={}", unknown.expose()),
    ] {
        let reply = env.send(get(&format!("/auth/dingtalk/callback{query}"))).await;
        assert_eq!(reply.status, 400, "{query}");
        assert!(reply.header(LOCATION).is_none(), "{query}");
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{query}");
        assert!(reply.text.contains("<code id=\"code\">invalid_login_state</code>"), "{query}: {}", reply.text);
    }
}

#[tokio::test]
async fn creating_a_login_checks_credentials_origin_and_body() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_authorize_url().returning(|_, _, _| "https://login.dingtalk.com/oauth2/auth".into());
    let env = env(Setup { idp, ..Setup::default() }).await;
    let s = state(4);
    let body = json!({"state": s.expose(), "complete_url": "https://a.example/done"});
    assert_needs_basic_auth(&env, || post("/relay/v1/logins").json(&body)).await;

    // complete_url outside the client's origins (another client's, a look-alike host, another scheme).
    for url in
        ["https://b.example/done", "https://a.example.evil.test/done", "http://a.example/done", "javascript:alert(1)"]
    {
        let reply = env.create_login(A, &s, url).await;
        assert_eq!((reply.status, reply.code()), (403, Some("forbidden")), "{url}: {}", reply.text);
    }
    let reply = env.create_login(A, &LoginState::from_random_bytes(&[5; 32]), "https://a.example").await;
    assert_eq!(reply.status, 201, "the bare origin is allowed: {}", reply.text);

    let send = |raw: &str| auth(post("/relay/v1/logins"), A).raw_json(raw.to_owned());
    let reply = env.send(send(r#"{"state": "short", "complete_url": "https://a.example/done"}"#)).await;
    assert_field(&reply, "state", "short state");
    let reply = env.send(send(r#"{"state": "", "complete_url": "https://a.example/done"}"#)).await;
    assert_field(&reply, "state", "empty state");
    let reply = env.send(send(&format!(r#"{{"state": "{}"}}"#, s.expose()))).await;
    assert_field(&reply, "complete_url", "missing complete_url");
    assert!(reply.json["message"].as_str().unwrap().contains("complete_url"), "{}", reply.text);
    let reply = env
        .send(send(&format!(r#"{{"state": "{}", "complete_url": "https://a.example", "extra": 1}}"#, s.expose())))
        .await;
    assert_field(&reply, "extra", "unknown field");
    assert!(reply.json["message"].as_str().unwrap().contains("extra"), "{}", reply.text);
    let reply = env.send(send(r#"{"state": 42, "complete_url": "https://a.example"}"#)).await;
    assert_field(&reply, "state", "wrong type");

    let reply = env.send(send("{not json")).await;
    assert_eq!((reply.status, reply.code()), (400, Some("malformed_json")), "{}", reply.text);
    let reply = env.send(auth(post("/relay/v1/logins"), A).text(body.to_string())).await;
    assert_eq!((reply.status, reply.code()), (415, Some("unsupported_media_type")), "{}", reply.text);
    let reply = env.send(auth(post("/relay/v1/logins"), A).body(body.to_string())).await;
    assert_eq!((reply.status, reply.code()), (415, Some("unsupported_media_type")), "no content type: {}", reply.text);
}

#[tokio::test]
async fn taking_a_login_result_needs_credentials_and_a_known_state() {
    let env = env(Setup::default()).await;
    let s = state(6);
    assert_needs_basic_auth(&env, || get(&format!("/relay/v1/logins/{}", s.expose()))).await;
    for path in [format!("/relay/v1/logins/{}", s.expose()), "/relay/v1/logins/not-a-state".to_owned()] {
        let reply = env.send(auth(get(&path), A)).await;
        assert_eq!((reply.status, reply.code()), (404, Some("not_found")), "{path}: {}", reply.text);
    }
}

// ------------------------------------------------------------------ messages

fn text_message(key: &str, corp: &str, content: &str) -> Value {
    json!({
        "key": key,
        "corp_id": corp,
        "recipients": {"userids": ["user-1", "user-2"]},
        "body": {"msgtype": "text", "text": {"content": content}},
    })
}

#[tokio::test]
async fn a_message_is_sent_once_reported_and_recalled() {
    let mut messenger = MockMessenger::new();
    messenger
        .expect_send()
        .withf(|corp, batch, _, _| corp.as_str() == A.2 && batch.user_ids().len() == 2)
        .times(1)
        .returning(|_, _, _, _| Ok(DeliveryId::parse("7001").unwrap()));
    messenger.expect_progress().returning(|_, _| Ok(SendProgress { percent: 100, done: true }));
    messenger.expect_result().returning(|_, _| {
        Ok(SendResult {
            read: vec![UserId::parse("user-1").unwrap()],
            unread: vec![UserId::parse("user-2").unwrap()],
            ..SendResult::default()
        })
    });
    messenger.expect_recall().withf(|_, task| task.as_str() == "7001").times(1).returning(|_, _| Ok(()));
    let env = env(Setup { messenger, ..Setup::default() }).await;
    let message = text_message("msg-1", A.2, "hello");

    // Accepting is a durable write and an answer: no DingTalk call yet, and the receipt says so.
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&message)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!((reply.json["state"].as_str(), &reply.json["task_ids"]), (Some("accepted"), &json!([])));
    assert_eq!(reply.json["waiting"], "queued", "{}", reply.text);
    assert!(reply.json["retry_at"].as_i64().is_some(), "{}", reply.text);
    // The background sender sends it; the next answer for the key carries the task id.
    assert_eq!(env.sender.run_once(10).await.unwrap(), 1);
    assert_eq!(env.sender.run_once(10).await.unwrap(), 0, "a sent message is not due again");
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&message)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"key": "msg-1", "state": "sent", "delivery_ids": ["7001"], "task_ids": [7001], "errors": []})
    );
    // Idempotent: the same key and message answer the same record without sending again.
    let again = env.send(auth(post("/relay/v1/messages"), A).json(&message)).await;
    assert_eq!((again.status, &again.json), (200, &reply.json));
    // The same key with another message is a conflict.
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&text_message("msg-1", A.2, "changed"))).await;
    assert_eq!((reply.status, reply.code()), (409, Some("idempotency_key_reused")), "{}", reply.text);

    let reply = env.send(auth(get("/relay/v1/messages/msg-1"), A)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["receipt"]["state"], "completed");
    assert_eq!((reply.json["done"].as_bool(), reply.json["percent"].as_u64()), (Some(true), Some(100)));
    assert_eq!(
        reply.json["recipients"],
        json!([{"userid": "user-1", "outcome": "read"}, {"userid": "user-2", "outcome": "unread"}])
    );
    assert_eq!(reply.json["invalid_dept_ids"], json!([]));

    // Another client's key is unknown to B, for the report and the recall.
    let reply = env.send(auth(get("/relay/v1/messages/msg-1"), B)).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_found")));
    let reply = env.send(auth(post("/relay/v1/messages/msg-1/recall"), B)).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_found")));

    let reply = env.send(auth(post("/relay/v1/messages/msg-1/recall"), A)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"key": "msg-1", "state": "recalled", "delivery_ids": ["7001"], "task_ids": [7001], "errors": []})
    );
    // Recalling again answers the recalled record (no second DingTalk call).
    let reply = env.send(auth(post("/relay/v1/messages/msg-1/recall"), A)).await;
    assert_eq!((reply.status, reply.json["state"].as_str()), (200, Some("recalled")));
}

#[tokio::test]
async fn sending_a_message_checks_credentials_corp_and_body() {
    // No expectations: any DingTalk call would panic.
    let env = env(Setup::default()).await;
    let message = text_message("msg-2", A.2, "hello");
    assert_needs_basic_auth(&env, || post("/relay/v1/messages").json(&message)).await;

    let reply = env.send(auth(post("/relay/v1/messages"), B).json(&message)).await;
    assert_eq!((reply.status, reply.code()), (403, Some("forbidden")), "corp A for client B: {}", reply.text);

    let invalid = |mutate: &dyn Fn(&mut Value)| {
        let mut value = message.clone();
        mutate(&mut value);
        auth(post("/relay/v1/messages"), A).json(&value)
    };
    for (what, field, req) in [
        ("empty key", "key", invalid(&|v| v["key"] = json!(""))),
        ("long key", "key", invalid(&|v| v["key"] = json!("k".repeat(129)))),
        ("key with a space", "key", invalid(&|v| v["key"] = json!("a b"))),
        ("bad corp", "corp_id", invalid(&|v| v["corp_id"] = json!("ding corp"))),
        ("empty corp", "corp_id", invalid(&|v| v["corp_id"] = json!(""))),
        ("bad userid", "recipients.userids[1]", invalid(&|v| v["recipients"]["userids"][1] = json!("a,b"))),
        ("bad dept", "recipients.dept_ids[0]", invalid(&|v| v["recipients"] = json!({"dept_ids": [0]}))),
        (
            "to_all with ids",
            "recipients.to_all",
            invalid(&|v| v["recipients"] = json!({"userids": ["user-1"], "to_all": true})),
        ),
        ("bad msgtype", "body.msgtype", invalid(&|v| v["body"] = json!({"msgtype": "fax", "fax": {}}))),
        ("missing content", "body.text.content", invalid(&|v| v["body"] = json!({"msgtype": "text", "text": {}}))),
        // The tenant's provider's rules (DingTalk's here): its types, its limits, its recipient rules.
        (
            "another provider's type",
            "body.msgtype",
            invalid(&|v| v["body"] = json!({"msgtype": "post", "post": {"zh_cn": {"content": []}}})),
        ),
        (
            "over DingTalk's 2048 bytes",
            "body",
            invalid(&|v| v["body"] = json!({"msgtype": "text", "text": {"content": "钉".repeat(700)}})),
        ),
        (
            "status bar to six people",
            "body.oa.status_bar",
            invalid(&|v| {
                v["recipients"] = json!({"userids": ["u1", "u2", "u3", "u4", "u5", "u6"]});
                v["body"] = json!({"msgtype": "oa", "oa": {"message_url": "https://a", "head": {"bgcolor": "FFBBBBBB", "text": "h"},
                    "status_bar": {"status_value": "v", "status_bg": "0xFFF65E5E"}, "body": {"title": "t"}}});
            }),
        ),
        ("unknown field", "priority", invalid(&|v| v["priority"] = json!("high"))),
        ("wrong type", "recipients", invalid(&|v| v["recipients"] = json!("everyone"))),
    ] {
        let reply = env.send(req).await;
        assert_field(&reply, field, what);
    }

    let reply = env.send(auth(post("/relay/v1/messages"), A).raw_json("{\"key\": ")).await;
    assert_eq!((reply.status, reply.code()), (400, Some("malformed_json")), "{}", reply.text);
    let reply = env.send(auth(post("/relay/v1/messages"), A).text(message.to_string())).await;
    assert_eq!((reply.status, reply.code()), (415, Some("unsupported_media_type")));
    let huge = text_message("msg-3", A.2, &"x".repeat(70 * 1024));
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&huge)).await;
    assert_eq!((reply.status, reply.code()), (413, Some("payload_too_large")), "{}", reply.text);
}

#[tokio::test]
async fn reports_and_recalls_check_credentials_and_keys() {
    let env = env(Setup::default()).await;
    assert_needs_basic_auth(&env, || get("/relay/v1/messages/msg-1")).await;
    assert_needs_basic_auth(&env, || post("/relay/v1/messages/msg-1/recall")).await;
    for (what, path) in [("status", "/relay/v1/messages/nope"), ("recall", "/relay/v1/messages/nope/recall")] {
        let req = if what == "status" { get(path) } else { post(path) };
        let reply = env.send(auth(req, A)).await;
        assert_eq!((reply.status, reply.code()), (404, Some("not_found")), "{what}: {}", reply.text);
    }
    let long = "k".repeat(129);
    let reply = env.send(auth(get(&format!("/relay/v1/messages/{long}")), A)).await;
    assert_field(&reply, "key", "long key, status");
    let reply = env.send(auth(post(&format!("/relay/v1/messages/{long}/recall")), A)).await;
    assert_field(&reply, "key", "long key, recall");
    let reply = env.send(auth(get("/relay/v1/messages/a%20b"), A)).await;
    assert_field(&reply, "key", "key with a space");
}

#[tokio::test]
async fn a_message_dingtalk_never_accepted_cannot_be_recalled() {
    let mut messenger = MockMessenger::new();
    messenger.expect_send().times(1).returning(|_, _, _, _| {
        Err(MessengerError::Upstream(UpstreamError::Rejected { code: "40035".into(), message: "bad agent".into() }))
    });
    let env = env(Setup { messenger, ..Setup::default() }).await;
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&text_message("msg-4", A.2, "hi"))).await;
    assert_eq!((reply.status, reply.json["state"].as_str()), (200, Some("accepted")), "{}", reply.text);
    assert_eq!(env.sender.run_once(10).await.unwrap(), 1);
    let reply = env.send(auth(post("/relay/v1/messages"), A).json(&text_message("msg-4", A.2, "hi"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["state"], "failed");
    assert_eq!(reply.json["task_ids"], json!([]));
    assert!(reply.json["errors"][0].as_str().unwrap().contains("40035"), "{}", reply.text);
    let reply = env.send(auth(post("/relay/v1/messages/msg-4/recall"), A)).await;
    assert_eq!((reply.status, reply.code()), (502, Some("upstream_refused")), "{}", reply.text);
    // The report of a message without tasks is empty, not an error.
    let reply = env.send(auth(get("/relay/v1/messages/msg-4"), A)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!((reply.json["receipt"]["state"].as_str(), reply.json["done"].as_bool()), (Some("failed"), Some(false)));
}

// ------------------------------------------------------------------ members

#[tokio::test]
async fn a_member_is_fetched_by_userid_or_union_id() {
    let mut idp = MockIdentityProvider::new();
    idp.expect_find_userid()
        .withf(|corp, union| corp.as_str() == A.2 && union.as_str() == "union-1")
        .times(1)
        .returning(|_, _| Ok(UserId::parse("user-1").unwrap()));
    idp.expect_get_member()
        .withf(|corp, userid| corp.as_str() == A.2 && userid.as_str() == "user-1")
        .times(2)
        .returning(|_, _| Ok(details("user-1", "union-1")));
    idp.expect_get_member()
        .withf(|_, userid| userid.as_str() == "gone")
        .times(1)
        .returning(|_, _| Err(IdentityError::NotMember));
    let env = env(Setup { idp, ..Setup::default() }).await;

    for query in ["userid=user-1", "union_id=union-1"] {
        let reply = env.send(auth(get(&format!("/relay/v1/members?corp_id={}&{query}", A.2)), A)).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        assert_eq!(
            reply.json,
            json!({
                "provider": "dingtalk", "corp_id": A.2, "union_id": "union-1", "userid": "user-1", "open_id": null, "name": "张三",
                "avatar_url": null, "title": "Engineer", "org_email": null, "email": "zhang@a.example",
                "mobile": null, "dept_ids": [1], "active": true,
            }),
            "{query}"
        );
    }
    let reply = env.send(auth(get(&format!("/relay/v1/members?corp_id={}&userid=gone", A.2)), A)).await;
    assert_eq!((reply.status, reply.code()), (404, Some("not_member")), "{}", reply.text);
}

#[tokio::test]
async fn fetching_a_member_checks_credentials_corp_and_parameters() {
    // No expectations: any DingTalk call would panic.
    let env = env(Setup::default()).await;
    assert_needs_basic_auth(&env, || get(&format!("/relay/v1/members?corp_id={}&userid=user-1", A.2))).await;
    let reply = env.send(auth(get(&format!("/relay/v1/members?corp_id={}&userid=user-1", B.2)), A)).await;
    assert_eq!((reply.status, reply.code()), (403, Some("forbidden")), "{}", reply.text);
    for (query, field) in [
        ("userid=user-1", "corp_id"),
        ("corp_id=&userid=user-1", "corp_id"),
        ("corp_id=ding%20corp&userid=user-1", "corp_id"),
        ("corp_id=dingcorpa", "userid"),
        ("corp_id=dingcorpa&userid=user-1&union_id=union-1", "userid"),
        ("corp_id=dingcorpa&userid=", "userid"),
        ("corp_id=dingcorpa&userid=a%2Cb", "userid"),
        ("corp_id=dingcorpa&union_id=", "union_id"),
    ] {
        let reply = env.send(auth(get(&format!("/relay/v1/members?{query}")), A)).await;
        assert_field(&reply, field, query);
    }
}

// ------------------------------------------------------------------ event callback and the feed

#[tokio::test]
async fn a_pushed_contact_event_reaches_only_its_corps_feed() {
    let env = env(Setup::default()).await;
    assert_needs_basic_auth(&env, || get("/relay/v1/events")).await;
    let reply = env.send(auth(get("/relay/v1/events"), A)).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({"events": [], "next": 0})), "{}", reply.text);

    let event = json!({"EventType": "user_leave_org", "CorpId": A.2, "eventId": "ev-1", "userId": ["user-1"]});
    let reply = env.push("/dingtalk/events", &event, "nonce-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let c = crypto();
    let (ts, nonce, encrypt) = (
        reply.json["timeStamp"].as_str().unwrap(),
        reply.json["nonce"].as_str().unwrap(),
        reply.json["encrypt"].as_str().unwrap(),
    );
    assert_eq!(reply.json["msg_signature"].as_str().unwrap(), c.signature(ts, nonce, encrypt));
    assert_eq!(c.decrypt(encrypt).unwrap(), "success");
    // The same nonce again is a replay.
    let reply = env.push("/dingtalk/events", &event, "nonce-1").await;
    assert_eq!((reply.status, reply.code()), (409, Some("replayed_nonce")), "{}", reply.text);

    let reply = env.send(auth(get("/relay/v1/events?after=0&limit=10"), A)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let events = reply.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", reply.text);
    assert_eq!(events[0]["corp_id"], A.2);
    assert_eq!(events[0]["event_type"], "user_leave_org");
    assert_eq!(events[0]["userids"], json!(["user-1"]));
    assert_eq!(reply.json["next"], events[0]["cursor"]);
    let reply = env.send(auth(get("/relay/v1/events"), B)).await;
    assert_eq!(reply.json["events"], json!([]), "B's corp has no event: {}", reply.text);

    let reply = env.send(auth(get("/relay/v1/events?limit=0"), A)).await;
    assert_field(&reply, "limit", "limit=0");
    let reply = env.send(auth(get("/relay/v1/events?after=x"), A)).await;
    assert_field(&reply, "after", "after=x");
}

#[tokio::test]
async fn the_event_callback_answers_on_both_paths_and_refuses_bad_pushes() {
    let env = env(Setup::default()).await;
    for (path, nonce) in [("/dingtalk/events", "n-1"), ("/dingding/event/pushed", "n-2")] {
        let reply = env.push(path, &json!({"EventType": "check_url"}), nonce).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(crypto().decrypt(reply.json["encrypt"].as_str().unwrap()).unwrap(), "success");
        for key in ["msg_signature", "timeStamp", "nonce", "encrypt"] {
            assert!(reply.json[key].is_string(), "{path}: {key} in {}", reply.text);
        }

        let ts = SystemClock.now().as_millis();
        let reply = env
            .send(
                post(&format!("{path}?signature={}&timestamp={ts}&nonce=n-x", "0".repeat(40)))
                    .json(&json!({"encrypt": crypto().encrypt("{}")})),
            )
            .await;
        assert_eq!((reply.status, reply.code()), (401, Some("invalid_signature")), "{path}: {}", reply.text);
        let reply = env.send(post(&format!("{path}?signature=x&timestamp={ts}&nonce=n")).raw_json("{not json")).await;
        assert_eq!((reply.status, reply.code()), (400, Some("invalid_payload")), "{path}: {}", reply.text);
        let reply = env.send(post(path).json(&json!({"encrypt": "abc"}))).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, Some("invalid_payload")),
            "{path}: no parameters: {}",
            reply.text
        );
        let big = format!("{{\"encrypt\":\"{}\"}}", "A".repeat(DEFAULT_MAX_BODY_BYTES));
        let reply = env.send(post(&format!("{path}?signature=x&timestamp={ts}&nonce=n")).raw_json(big)).await;
        assert_eq!((reply.status, reply.code()), (413, Some("payload_too_large")), "{path}");
    }
}

#[tokio::test]
async fn without_events_configured_both_paths_are_404() {
    let env = env(Setup { events: false, ..Setup::default() }).await;
    for path in ["/dingtalk/events", "/dingding/event/pushed"] {
        let reply = env.push(path, &json!({"EventType": "check_url"}), "n-1").await;
        assert_eq!((reply.status, reply.code()), (404, Some("events_not_configured")), "{path}: {}", reply.text);
    }
    // The rest of the cloud still works.
    assert_eq!(env.send(get("/healthz")).await.status, 200);
    assert_eq!(env.send(auth(get("/relay/v1/events"), A)).await.status, 200);
}
