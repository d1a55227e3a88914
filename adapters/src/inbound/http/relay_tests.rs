//! In-process tests of the relay routes' contact-event feed (`GET /relay/v1/events`) with
//! `TestClient`, over a real [`SqliteStore`] on a fresh temporary file: the store is the feed and
//! its signal, so appending to it wakes a waiting long-poll exactly as in the cloud.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use application::ports::{
    Clock, ContactEvent, EventStore, FeedSignal, MockIdentityProvider, MockMessenger, RelayClient,
};
use application::usecases::cloud::{
    CreateLoginIntent, FetchMember, RelayRecall, RelaySend, RelayStatus, TakeLoginResult,
};
use application::usecases::feed::ReadContactFeed;
use domain::{CorpId, Timestamp, UserId};
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use salvo_oapi::OpenApi;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use super::relay::{AuthLimit, AuthLimiter, RelayClientCredentials, RelayHttp, routes};
use crate::outbound::sqlite::SqliteStore;
use crate::outbound::system::SystemClock;

const A: (&str, &str) = ("local-a", "relay-secret-a-0123456789");
const B: (&str, &str) = ("local-b", "relay-secret-b-0123456789");
const BASE: &str = "http://127.0.0.1/relay/v1/events";

/// A temporary database directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Env {
    router: Arc<Router>,
    service: Arc<Service>,
    store: SqliteStore,
    _dir: TempDir,
}

fn credentials((id, secret): (&str, &str), corp: &str) -> RelayClientCredentials {
    RelayClientCredentials {
        client: RelayClient {
            id: id.into(),
            corp_ids: vec![CorpId::parse(corp).unwrap()],
            complete_url_origins: vec!["http://127.0.0.1:1".into()],
        },
        secret: SecretString::from(secret),
    }
}

async fn env() -> Env {
    let dir = std::env::temp_dir().join(format!("dingbridge-relay-feed-{}", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("cloud.db").display()), 4).await.unwrap();
    let shared = Arc::new(store.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let idp = Arc::new(MockIdentityProvider::new());
    let messenger = Arc::new(MockMessenger::new());
    let relay = Arc::new(RelayHttp {
        clients: vec![credentials(A, "dingcorpa"), credentials(B, "dingcorpb")],
        limiter: AuthLimiter::new(AuthLimit::default()),
        create_intent: CreateLoginIntent::new(
            shared.clone(),
            crate::inbound::http::test_support::dingtalk_providers(idp.clone()),
            clock.clone(),
            std::sync::Arc::new(crate::outbound::system::OsRandom),
            "http://cb".to_owned(),
        ),
        take_result: TakeLoginResult::new(shared.clone(), clock.clone()),
        send: Arc::new(
            RelaySend::new(shared.clone(), messenger.clone(), clock.clone())
                .with_body_rules(crate::inbound::http::test_support::dingtalk_rules()),
        ),
        status: RelayStatus::new(shared.clone(), messenger.clone(), clock.clone()),
        recall: RelayRecall::new(shared.clone(), messenger, clock),
        fetch_member: FetchMember::new(crate::inbound::http::test_support::dingtalk_providers(idp)),
        read_feed: ReadContactFeed::new(shared.clone(), shared),
    });
    let router = Arc::new(Router::new().push(routes(relay)));
    Env { service: Arc::new(Service::new(router.clone())), router, store, _dir: TempDir(dir) }
}

fn event(corp: &str, id: &str, event_type: &str) -> ContactEvent {
    ContactEvent {
        corp_id: CorpId::parse(corp).unwrap(),
        event_id: id.into(),
        change: crate::feed_names::parse(event_type),
        userids: vec![UserId::parse("manager4220").unwrap()],
        dept_ids: vec![],
        received_at: Timestamp::from_millis(1_750_000_000_000),
    }
}

impl Env {
    async fn append(&self, corp: &str, id: &str) -> i64 {
        self.store.append(&event(corp, id, "user_leave_org")).await.unwrap().unwrap()
    }

    async fn get(&self, client: (&str, &str), query: &str) -> (u16, Value) {
        let mut res =
            TestClient::get(format!("{BASE}{query}")).basic_auth(client.0, Some(client.1)).send(&*self.service).await;
        let status = res.status_code.map(|s| s.as_u16()).unwrap_or(0);
        (status, res.take_json().await.unwrap_or(Value::Null))
    }
}

fn ids(body: &Value) -> Vec<&str> {
    body["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_feed_needs_relay_credentials() {
    let env = env().await;
    let res = TestClient::get(BASE).send(&*env.service).await;
    assert_eq!(res.status_code.map(|s| s.as_u16()), Some(401));
    let (status, body) = env.get((A.0, "wrong-secret-0123456789"), "").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
}

#[tokio::test]
async fn a_client_reads_only_its_own_corps_in_cursor_order_after_its_cursor() {
    let env = env().await;
    let a1 = env.append("dingcorpa", "a1").await;
    env.append("dingcorpb", "b1").await;
    let a2 = env.append("dingcorpa", "a2").await;
    env.append("dingcorpb", "b2").await;

    let (status, body) = env.get(A, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["a1", "a2"]);
    assert_eq!(body["next"], a2);
    let first = &body["events"][0];
    assert_eq!(first["cursor"], a1);
    assert_eq!(first["corp_id"], "dingcorpa");
    assert_eq!(first["event_type"], "user_leave_org");
    assert_eq!(first["userids"], serde_json::json!(["manager4220"]));
    assert_eq!(first["dept_ids"], serde_json::json!([]));
    assert_eq!(first["received_at"], 1_750_000_000_000_i64);

    let (_, body) = env.get(A, &format!("?after={a1}")).await;
    assert_eq!(ids(&body), ["a2"]);
    let (_, body) = env.get(A, &format!("?after={a2}")).await;
    assert_eq!((ids(&body).len(), body["next"].as_i64()), (0, Some(a2)), "nothing new: next stays at after");
    let (_, body) = env.get(A, "?limit=1").await;
    assert_eq!((ids(&body), body["next"].as_i64()), (vec!["a1"], Some(a1)));
    let (_, body) = env.get(B, "").await;
    assert_eq!(ids(&body), ["b1", "b2"], "the other client sees only its corp");
}

// The long-poll tests run on tokio's paused clock (`start_paused`): time advances only when every
// task is idle (SQLite's `spawn_blocking` calls hold it), straight to the next timer. So a sleep in
// the test returns only once the poll is parked in its wait, and an answer that arrives without
// the clock having moved was woken by the append or the close, not by a timeout — whatever the
// machine's load.

#[tokio::test(start_paused = true)]
async fn a_waiting_long_poll_answers_as_soon_as_an_event_is_appended() {
    let env = env().await;
    let service = env.service.clone();
    let poll = tokio::spawn(async move {
        let mut res =
            TestClient::get(format!("{BASE}?after=0&wait=20")).basic_auth(A.0, Some(A.1)).send(&*service).await;
        let body: Value = res.take_json().await.unwrap_or(Value::Null);
        (Instant::now(), body)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "nothing to answer: the poll waits");
    // An event of another client's corp wakes the poll, which reads nothing for its client and
    // waits again (the clock moves on only once it is parked again).
    env.append("dingcorpb", "b1").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "another corp's event does not end the wait");
    let appended = Instant::now();
    let cursor = env.append("dingcorpa", "a1").await;
    let (answered, body) = poll.await.unwrap();
    assert_eq!(ids(&body), ["a1"]);
    assert_eq!(body["next"], cursor);
    assert_eq!(answered.saturating_duration_since(appended), Duration::ZERO, "answered without waiting for a timer");
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_with_wait_0_answers_at_once() {
    let env = env().await;
    let cursor = env.append("dingcorpa", "a1").await;
    let started = Instant::now();
    let (status, body) = env.get(A, &format!("?after={cursor}")).await;
    assert_eq!(status, 200);
    assert_eq!((ids(&body).len(), body["next"].as_i64()), (0, Some(cursor)));
    assert_eq!(started.elapsed(), Duration::ZERO, "wait=0 (the default) waits for no timer");
}

/// On the real clock: the feed's deadline is wall-clock time (`std::time::Instant`), which the
/// paused clock does not move. Only the lower bound is asserted; the guard (half the 30 s maximum
/// wait) only keeps a poll that ignores its `wait` from hanging the test.
#[tokio::test]
async fn a_long_poll_without_events_answers_empty_when_its_wait_ends() {
    let env = env().await;
    let cursor = env.append("dingcorpa", "a1").await;
    let started = std::time::Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), env.get(A, &format!("?after={cursor}&wait=1")))
        .await
        .expect("a wait of 1 s ends");
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!((ids(&body).len(), body["next"].as_i64()), (0, Some(cursor)));
    assert!(elapsed >= Duration::from_secs(1), "answered after {elapsed:?}, before its wait ended");
}

#[tokio::test(start_paused = true)]
async fn closing_the_signal_ends_waiting_long_polls_at_once() {
    let env = env().await;
    let service = env.service.clone();
    let poll = tokio::spawn(async move {
        let res = TestClient::get(format!("{BASE}?wait=30")).basic_auth(A.0, Some(A.1)).send(&*service).await;
        (Instant::now(), res.status_code.map(|s| s.as_u16()))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "the poll waits");
    let closed = Instant::now();
    env.store.close();
    let (answered, status) = poll.await.unwrap();
    assert_eq!(status, Some(200));
    assert_eq!(answered.saturating_duration_since(closed), Duration::ZERO, "ended by the close, not by a timer");
}

#[tokio::test]
async fn bad_parameters_are_422_naming_the_field() {
    let env = env().await;
    for (query, field) in [
        ("?after=-1", "after"),
        ("?after=abc", "after"),
        ("?wait=31", "wait"),
        ("?wait=-1", "wait"),
        ("?wait=soon", "wait"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=1.5", "limit"),
    ] {
        let (status, body) = env.get(A, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["code"], "validation_failed", "{query}");
        assert_eq!(body["fields"][field]["code"], "invalid", "{query}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with(field), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_feed_route_is_in_the_openapi_document() {
    let env = env().await;
    let doc = OpenApi::new("test", "0").merge_router(&env.router);
    let doc = serde_json::to_value(&doc).unwrap();
    let get = &doc["paths"]["/relay/v1/events"]["get"];
    assert!(get.is_object(), "{doc}");
    let names: Vec<&str> = get["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["after", "wait", "limit"]);
    let schema = &get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(schema, "#/components/schemas/adapters.relay_api.ContactFeedDto");
    let feed = &doc["components"]["schemas"]["adapters.relay_api.ContactFeedDto"];
    assert!(feed["properties"]["events"].is_object() && feed["properties"]["next"].is_object(), "{feed}");
}
