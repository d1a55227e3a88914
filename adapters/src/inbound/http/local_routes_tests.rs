//! In-process tests (salvo `TestClient`) of every route [`super::local_router`] mounts, through
//! the whole service (request ids, the JSON catcher, probes): sign-in start and completion with
//! their cookies, the session routes, the directory (users, refresh, bindings), messages, health
//! and the document. The cloud is a [`MockCloudGateway`] with strict expectations; storage is a
//! real SQLite store on a temporary file, so a stored user, session or message is really there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use application::ports::{GatewayError, MockCloudGateway, RelayReceipt};
use domain::{CorpId, DeliveryId, DeptId, MemberProfile, MessageState, UnionId, UserId};
use salvo::http::header::{HeaderMap, LOCATION};
use salvo::prelude::*;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::{Value, json};

use super::test_support::{CORP, LocalOptions, SERVICE_TOKEN, TempDir, local_with, store};
use super::{LoginLimit, Probes, local_router, service};
use crate::outbound::sqlite::SqliteStore;

const HOST: &str = "http://127.0.0.1";
const AUTHORIZE: &str = "https://login.dingtalk.example/oauth2/auth?state=x";

struct Env {
    service: Service,
    store: Arc<SqliteStore>,
    _dir: TempDir,
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    /// Every cookie set, encoded as in `Set-Cookie` (read from the jar: salvo's `TestClient`
    /// keeps only the last `Set-Cookie` header).
    cookies: Vec<String>,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> Option<&str> {
        self.json["code"].as_str()
    }

    /// The `Set-Cookie` line for cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|c| c.starts_with(&format!("{name}="))).cloned()
    }
}

fn profile(userid: &str, active: bool) -> MemberProfile {
    MemberProfile {
        provider: crate::outbound::dingtalk::provider_key(),
        corp_id: CorpId::parse(CORP).unwrap(),
        union_id: UnionId::parse(&format!("union-{userid}")).unwrap(),
        userid: UserId::parse(userid).unwrap(),
        open_id: None,
        name: "张三".into(),
        avatar_url: None,
        title: Some("Engineer".into()),
        org_email: Some(format!("{userid}@corp.example")),
        email: None,
        mobile: None,
        dept_ids: vec![DeptId::new(2).unwrap()],
        active,
    }
}

/// A gateway that lets people start sign-ins and hands `outcome` back once per sign-in.
fn signing_in(mut gateway: MockCloudGateway, outcome: MemberProfile) -> MockCloudGateway {
    gateway.expect_start_login().returning(|_, _, complete_url| {
        assert!(complete_url.ends_with("/auth/dingtalk/complete"), "{complete_url}");
        Ok(AUTHORIZE.to_owned())
    });
    gateway.expect_take_login_result().returning(move |_| Ok(Ok(outcome.clone())));
    gateway
}

async fn env_with(gateway: MockCloudGateway, options: LocalOptions) -> Env {
    let (store, dir) = store().await;
    let local = local_with(&store, gateway, options);
    let probes = Arc::new(Probes { checks: Vec::new() });
    Env { service: service(local_router(local, None, probes)), store, _dir: dir }
}

async fn env(gateway: MockCloudGateway) -> Env {
    env_with(gateway, LocalOptions::default()).await
}

fn get(path: &str) -> RequestBuilder {
    TestClient::get(format!("{HOST}{path}"))
}

fn post(path: &str) -> RequestBuilder {
    TestClient::post(format!("{HOST}{path}"))
}

fn put(path: &str) -> RequestBuilder {
    TestClient::put(format!("{HOST}{path}"))
}

fn service_auth(req: RequestBuilder) -> RequestBuilder {
    req.add_header("authorization", format!("Bearer {SERVICE_TOKEN}"), true)
}

impl Env {
    async fn send(&self, req: RequestBuilder) -> Reply {
        let mut res = req.send(&self.service).await;
        let text = res.take_string().await.unwrap_or_default();
        let cookies = res.cookies().delta().map(|c| c.encoded().to_string()).collect();
        Reply {
            cookies,
            status: res.status_code.map_or(0, |s| s.as_u16()),
            headers: res.headers().clone(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Signs in through start + complete; returns the session cookie's value.
    async fn sign_in(&self) -> String {
        let start = self.send(get("/auth/dingtalk/login?return_to=/inbox")).await;
        assert_eq!(start.status, 302, "{}", start.text);
        let login = start.cookie("dingbridge_login").unwrap();
        let state = login.split(';').next().unwrap().trim_start_matches("dingbridge_login=").to_owned();
        let done = self
            .send(get(&format!("/auth/dingtalk/complete?state={state}")).add_header(
                "cookie",
                format!("dingbridge_login={state}"),
                true,
            ))
            .await;
        assert_eq!(done.status, 302, "{}", done.text);
        let session = done.cookie("dingbridge_session").unwrap();
        session.split(';').next().unwrap().trim_start_matches("dingbridge_session=").to_owned()
    }

    async fn user_id(&self) -> String {
        let users = self.send(service_auth(get("/api/users"))).await;
        users.json[0]["id"].as_str().unwrap().to_owned()
    }
}

fn with_session(req: RequestBuilder, session: &str) -> RequestBuilder {
    req.add_header("cookie", format!("dingbridge_session={session}"), true)
}

#[tokio::test]
async fn sign_in_sets_a_login_cookie_then_a_session_cookie_with_safe_attributes() {
    let env = env(signing_in(MockCloudGateway::new(), profile("manager4220", true))).await;
    let start = env.send(get("/auth/dingtalk/login?return_to=/inbox")).await;
    assert_eq!(start.status, 302);
    assert_eq!(start.header(LOCATION.as_str()), Some(AUTHORIZE));
    let login = start.cookie("dingbridge_login").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/auth/dingtalk", "Max-Age=600"] {
        assert!(login.contains(attribute), "{login} lacks {attribute}");
    }
    assert!(!login.contains("Secure"), "http public URL: no Secure");
    let state = login.split(';').next().unwrap().trim_start_matches("dingbridge_login=").to_owned();

    // Without the cookie the state is refused (login CSRF), as an HTML page.
    let stolen = env.send(get(&format!("/auth/dingtalk/complete?state={state}"))).await;
    assert_eq!(stolen.status, 400);
    assert!(stolen.header("content-type").unwrap().starts_with("text/html"));
    assert!(stolen.text.contains("invalid_login_state"));
    assert!(stolen.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));

    let done = env
        .send(get(&format!("/auth/dingtalk/complete?state={state}")).add_header(
            "cookie",
            format!("dingbridge_login={state}"),
            true,
        ))
        .await;
    assert_eq!(done.status, 302, "{}", done.text);
    assert_eq!(done.header(LOCATION.as_str()), Some("/inbox"));
    let session = done.cookie("dingbridge_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    let cleared = done.cookie("dingbridge_login");
    assert!(cleared.as_deref().is_some_and(|c| c.contains("Max-Age=0")), "login cookie not cleared: {cleared:?}");

    // The state was single use.
    let again = env
        .send(get(&format!("/auth/dingtalk/complete?state={state}")).add_header(
            "cookie",
            format!("dingbridge_login={state}"),
            true,
        ))
        .await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn a_member_the_org_marks_inactive_is_refused_and_nothing_is_stored() {
    let env = env(signing_in(MockCloudGateway::new(), profile("left0001", false))).await;
    let start = env.send(get("/auth/dingtalk/login")).await;
    let state = start.cookie("dingbridge_login").unwrap();
    let state = state.split(';').next().unwrap().trim_start_matches("dingbridge_login=").to_owned();
    let done = env
        .send(get(&format!("/auth/dingtalk/complete?state={state}")).add_header(
            "cookie",
            format!("dingbridge_login={state}"),
            true,
        ))
        .await;
    assert_eq!(done.status, 403, "{}", done.text);
    assert!(done.text.contains("inactive_member"));
    assert!(done.cookie("dingbridge_session").is_none());
    let users = env.send(service_auth(get("/api/users"))).await;
    assert_eq!(users.json, json!([]), "nothing stored");
}

#[tokio::test]
async fn sign_in_starts_are_rate_limited_per_address() {
    let options = LocalOptions {
        login_limit: LoginLimit { per_address_per_minute: 3, total_per_second: 100 },
        ..LocalOptions::default()
    };
    let env = env_with(signing_in(MockCloudGateway::new(), profile("manager4220", true)), options).await;
    for _ in 0..3 {
        assert_eq!(env.send(get("/auth/dingtalk/login")).await.status, 302);
    }
    let limited = env.send(get("/auth/dingtalk/login")).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.text.contains("rate_limited"));
    assert!(limited.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    assert!(limited.cookie("dingbridge_login").is_none(), "a refused start sets no cookie");
}

#[tokio::test]
async fn the_session_routes_need_a_session() {
    let mut gateway = signing_in(MockCloudGateway::new(), profile("manager4220", true));
    gateway.expect_send_message().never();
    let env = env(gateway).await;
    let me = env.send(get("/api/me")).await;
    assert_eq!((me.status, me.code()), (401, Some("not_signed_in")));
    let session = env.sign_in().await;

    let me = env.send(with_session(get("/api/me"), &session)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.json["userid"].as_str(), me.json["corp_id"].as_str()), (Some("manager4220"), Some(CORP)));

    let sent = env.send(with_session(post("/api/me/messages"), &session).json(&json!({"text": "hello"}))).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    assert_eq!(sent.json["state"], "accepted");
    let blank = env.send(with_session(post("/api/me/messages"), &session).json(&json!({"text": "   "}))).await;
    assert_eq!((blank.status, blank.code()), (422, Some("validation_failed")), "{}", blank.text);
    let bad_key = env
        .send(
            with_session(post("/api/me/messages"), &session)
                .add_header("idempotency-key", salvo::http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(), true)
                .json(&json!({"text": "hello"})),
        )
        .await;
    assert_eq!((bad_key.status, bad_key.code()), (400, Some("invalid_idempotency_key")), "{}", bad_key.text);

    let out = env.send(with_session(post("/auth/logout"), &session)).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.header(LOCATION.as_str()), Some("/"));
    assert!(out.cookie("dingbridge_session").unwrap().contains("Max-Age=0"));
    let me = env.send(with_session(get("/api/me"), &session)).await;
    assert_eq!(me.status, 401, "the session is gone");
}

#[tokio::test]
async fn the_service_api_needs_a_service_token() {
    let env = env(MockCloudGateway::new()).await;
    for req in [
        get("/api/users"),
        get("/api/users/x"),
        post("/api/users/x/refresh"),
        get("/api/users/x/binding"),
        put("/api/users/x/binding"),
        get("/api/messages"),
        post("/api/messages"),
        get("/api/messages/x"),
        post("/api/messages/x/recall"),
    ] {
        let reply = env.send(req.add_header("authorization", "Bearer wrong-token-0123456789", true)).await;
        assert_eq!((reply.status, reply.code()), (401, Some("unauthorized")), "{}", reply.text);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn users_refresh_and_bindings_are_mounted_and_checked() {
    let mut gateway = signing_in(MockCloudGateway::new(), profile("manager4220", true));
    gateway.expect_get_member().times(1).returning(|_, _| {
        let mut fresh = profile("manager4220", true);
        fresh.title = Some("Manager".into());
        Ok(fresh)
    });
    let env = env(gateway).await;
    env.sign_in().await;
    let id = env.user_id().await;

    let one = env.send(service_auth(get(&format!("/api/users/{id}")))).await;
    assert_eq!((one.status, one.json["userid"].as_str()), (200, Some("manager4220")));
    let missing = env.send(service_auth(get("/api/users/nobody"))).await;
    assert_eq!((missing.status, missing.code()), (404, Some("not_found")));
    let filtered = env.send(service_auth(get("/api/users?corp_id=dingother"))).await;
    assert_eq!(filtered.json, json!([]));
    for (query, field) in [("limit=0", "limit"), ("limit=501", "limit"), ("offset=2147483648", "offset")] {
        let bad = env.send(service_auth(get(&format!("/api/users?{query}")))).await;
        assert_eq!(bad.status, 422, "{query}: {}", bad.text);
        assert!(bad.json["fields"][field].is_object(), "{query}: {}", bad.text);
    }

    let refreshed = env.send(service_auth(post(&format!("/api/users/{id}/refresh")))).await;
    assert_eq!((refreshed.status, refreshed.json["title"].as_str()), (200, Some("Manager")), "{}", refreshed.text);

    let none = env.send(service_auth(get(&format!("/api/users/{id}/binding")))).await;
    assert_eq!((none.status, none.code()), (404, Some("not_found")));
    let bound =
        env.send(service_auth(put(&format!("/api/users/{id}/binding"))).json(&json!({"external_id": "staff-7"}))).await;
    assert_eq!((bound.status, bound.json["external_id"].as_str()), (200, Some("staff-7")), "{}", bound.text);
    let read = env.send(service_auth(get(&format!("/api/users/{id}/binding")))).await;
    assert_eq!(read.json["external_id"], "staff-7");
    let unknown_user =
        env.send(service_auth(put("/api/users/nobody/binding")).json(&json!({"external_id": "staff-8"}))).await;
    assert_eq!(unknown_user.status, 404);
    let bad = env.send(service_auth(put(&format!("/api/users/{id}/binding"))).json(&json!({"external": 1}))).await;
    assert_eq!(bad.status, 422, "{}", bad.text);

    // The binding addresses messages; an unknown one is reported under its own field.
    let sent = env
        .send(service_auth(post("/api/messages")).json(&json!({
            "recipients": {"external_ids": ["staff-7"]},
            "body": {"msgtype": "text", "text": {"content": "hi"}}
        })))
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let unknown = env
        .send(service_auth(post("/api/messages")).json(&json!({
            "recipients": {"external_ids": ["staff-9"]},
            "body": {"msgtype": "text", "text": {"content": "hi"}}
        })))
        .await;
    assert_eq!((unknown.status, unknown.code()), (422, Some("unknown_recipients")), "{}", unknown.text);
    assert!(unknown.json["fields"]["recipients.external_ids"].is_object(), "{}", unknown.text);
}

fn text_message(content: &str) -> Value {
    json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": content}}})
}

#[tokio::test]
async fn sending_validates_everything_before_storing_and_honours_idempotency_keys() {
    let env = env(MockCloudGateway::new()).await;
    let send = |body: Value| service_auth(post("/api/messages")).json(&body);

    let accepted = env.send(send(text_message("Build 42 passed"))).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap().to_owned();
    assert_eq!(accepted.header("location"), Some(format!("/api/messages/{id}").as_str()));

    // Each bad request: its status, code and the field it names.
    let cases: Vec<(&str, RequestBuilder, u16, &str, Option<&str>)> = vec![
        (
            "foreign corp",
            send(
                json!({"corp_id": "dingforeign", "recipients": {"userids": ["a"]}, "body": text_message("x")["body"]}),
            ),
            422,
            "validation_failed",
            Some("corp_id"),
        ),
        (
            "to_all not a bool",
            send(json!({"recipients": {"to_all": "yes"}, "body": text_message("x")["body"]})),
            422,
            "validation_failed",
            Some("recipients.to_all"),
        ),
        (
            "dept id a string",
            send(json!({"recipients": {"dept_ids": ["2"]}, "body": text_message("x")["body"]})),
            422,
            "validation_failed",
            Some("recipients.dept_ids[0]"),
        ),
        (
            "duplicate key in body",
            service_auth(post("/api/messages")).raw_json(
                r#"{"recipients":{"userids":["a"]},"body":{"msgtype":"text","text":{"content":"a","content":"b"}}}"#,
            ),
            422,
            "validation_failed",
            Some("body.text.content"),
        ),
        (
            "duplicate recipients",
            service_auth(post("/api/messages")).raw_json(
                r#"{"recipients":{"userids":["a"]},"recipients":{},"body":{"msgtype":"text","text":{"content":"a"}}}"#,
            ),
            422,
            "validation_failed",
            Some("recipients"),
        ),
        ("malformed", service_auth(post("/api/messages")).raw_json("{nope"), 400, "malformed_json", None),
        ("not json", service_auth(post("/api/messages")).text("hello"), 415, "unsupported_media_type", None),
        (
            "non-ASCII key",
            send(text_message("x")).add_header(
                "idempotency-key",
                salvo::http::HeaderValue::from_bytes("ключ".as_bytes()).unwrap(),
                true,
            ),
            400,
            "invalid_idempotency_key",
            None,
        ),
    ];
    for (what, req, status, code, field) in cases {
        let reply = env.send(req).await;
        assert_eq!((reply.status, reply.code()), (status, Some(code)), "{what}: {}", reply.text);
        if let Some(field) = field {
            assert!(reply.json["fields"][field].is_object(), "{what}: no field {field}: {}", reply.text);
        }
    }
    let listed = env.send(service_auth(get("/api/messages"))).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1, "only the good message was stored");

    // One Idempotency-Key, one message.
    let first = env.send(send(text_message("again")).add_header("idempotency-key", "order-7", true)).await;
    let second = env.send(send(text_message("again")).add_header("idempotency-key", "order-7", true)).await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.json["id"], second.json["id"]);
    let reused = env.send(send(text_message("other")).add_header("idempotency-key", "order-7", true)).await;
    assert_eq!((reused.status, reused.code()), (409, Some("idempotency_key_reused")));
}

#[tokio::test]
async fn messages_are_listed_read_and_recalled() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_recall_message().times(1).returning(|key| {
        Ok(RelayReceipt {
            key: key.to_owned(),
            state: MessageState::Recalled,
            delivery_ids: vec![DeliveryId::parse("7001").unwrap()],
            errors: vec![],
            waiting: None,
        })
    });
    let env = env(gateway).await;
    let accepted = env.send(service_auth(post("/api/messages")).json(&text_message("hi"))).await;
    let id = accepted.json["id"].as_str().unwrap().to_owned();

    let listed = env.send(service_auth(get("/api/messages?status=accepted&since=2020-01-01T00:00:00Z"))).await;
    assert_eq!(listed.json[0]["id"], id.as_str(), "{}", listed.text);
    for (query, field) in [("status=lost", "status"), ("since=yesterday", "since"), ("limit=0", "limit")] {
        let bad = env.send(service_auth(get(&format!("/api/messages?{query}")))).await;
        assert_eq!(bad.status, 422, "{query}");
        assert!(bad.json["fields"][field].is_object(), "{query}: {}", bad.text);
    }
    let read = env.send(service_auth(get(&format!("/api/messages/{id}")))).await;
    assert_eq!((read.status, read.json["state"].as_str()), (200, Some("accepted")), "{}", read.text);
    let missing = env.send(service_auth(get("/api/messages/nope"))).await;
    assert_eq!((missing.status, missing.code()), (404, Some("not_found")));

    // Not sent yet: nothing to recall.
    let early = env.send(service_auth(post(&format!("/api/messages/{id}/recall")))).await;
    assert_eq!((early.status, early.code()), (409, Some("refused")), "{}", early.text);
    // Once sent (a task id recorded), the recall goes through the cloud.
    use application::ports::MessageStore as _;
    let now = domain::Timestamp::from_millis(1_800_000_000_000);
    env.store.update(&id, MessageState::Sent, &[DeliveryId::parse("7001").unwrap()], None, now).await.unwrap();
    let recalled = env.send(service_auth(post(&format!("/api/messages/{id}/recall")))).await;
    assert_eq!((recalled.status, recalled.json["state"].as_str()), (200, Some("recalled")), "{}", recalled.text);
}

#[tokio::test]
async fn health_document_page_and_unknown_routes() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_start_login().returning(|_, _, _| Err(GatewayError::Unavailable("down".into())));
    let env = env(gateway).await;
    assert_eq!(env.send(get("/healthz")).await.json["status"], "ok");
    assert_eq!(env.send(get("/readyz")).await.json["status"], "ok");
    let doc = env.send(get("/openapi.json")).await;
    assert!(doc.json["paths"]["/api/users/{id}/binding"]["put"].is_object());
    let page = env.send(get("/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.header("referrer-policy").is_some());
    let unreachable = env.send(get("/auth/dingtalk/login")).await;
    assert_eq!(unreachable.status, 503, "the cloud is unreachable: an error page, not a redirect");
    let unknown = env.send(get("/api/nope")).await;
    assert_eq!((unknown.status, unknown.code()), (404, Some("not_found")), "{}", unknown.text);
    let wrong = env.send(TestClient::delete(format!("{HOST}/api/messages"))).await;
    assert_eq!((wrong.status, wrong.code()), (405, Some("method_not_allowed")), "{}", wrong.text);
    assert!(wrong.header("x-request-id").is_some());
}
