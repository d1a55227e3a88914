//! End-to-end tests of the split deployment across three real processes on
//! loopback: the DingTalk emulator, `dingbridge --mode cloud` on SQLite, and
//! `dingbridge --mode local` on PostgreSQL (a fresh database per test, dropped
//! afterwards). Without PostgreSQL at build time (outside CI) the tests are
//! built as ignored (`adapters/build.rs`); a test that runs without it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::split::{ASYNCSEND, CLIENT_A, CLIENT_B, CORP, Split, browser};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

async fn split() -> Split {
    tests::split::split(EMULATOR, DINGBRIDGE, &[]).await
}
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn login_across_three_processes_stores_the_member_in_postgres_and_survives_a_local_restart() {
    let mut split = split().await;
    split.approve("manager4220").await;
    let browser = browser(true);
    let res =
        browser.get(format!("{}/auth/dingtalk/login?return_to=/welcome", split.local.base_url)).send().await.unwrap();
    assert_eq!(res.url().path(), "/welcome");
    let me: Value = browser.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["userid"], "manager4220");
    assert_eq!(me["corp_id"], CORP);
    let users: Vec<Value> = split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap();
    assert_eq!(users.len(), 1, "the member is stored in PostgreSQL");

    // SIGKILL local and start it again on the same database: users and sessions survive.
    split.local.kill().await.unwrap();
    split.local.restart().await.unwrap();
    let me: Value = browser.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["userid"], "manager4220", "the session survived the restart");
    let users: Vec<Value> = split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap();
    assert_eq!(users.len(), 1);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_relay_client_cannot_take_another_clients_login_result() {
    let split = split().await;
    split.approve("lisi0002").await;
    let browser = browser(false);
    let complete = split.until_complete(&browser).await;
    let state = complete.split("state=").nth(1).unwrap().to_owned();
    let res = split.relay(CLIENT_B, reqwest::Method::GET, &format!("/relay/v1/logins/{state}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Client A's login still completes: B's attempt consumed nothing.
    let res = browser.get(&complete).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let me = browser.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn the_relay_refuses_foreign_origins_foreign_corps_and_bad_credentials() {
    let split = split().await;
    let state = "A".repeat(43);
    let res = split
        .relay(CLIENT_A, reqwest::Method::POST, "/relay/v1/logins")
        .json(&json!({"state": state, "complete_url": "https://evil.example/auth/dingtalk/complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = split
        .relay(CLIENT_A, reqwest::Method::POST, "/relay/v1/messages")
        .json(&json!({"key": "k-1", "corp_id": "dingothercorp", "recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "hi"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(split.emulator_calls(ASYNCSEND).await, 0);

    let res = split
        .relay((CLIENT_A.0, "wrong-secret-0123456789"), reqwest::Method::GET, "/relay/v1/messages/k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // local has no cloud routes, and the cloud has no local routes
    let res = reqwest::get(format!("{}/relay/v1/messages/k-1", split.local.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = reqwest::get(format!("{}/api/me", split.cloud.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_relayed_message_arrives_once_even_when_the_request_is_retried() {
    let split = split().await;
    let body = json!({"recipients": {"userids": ["manager4220", "lisi0002"]}, "body": {"msgtype": "text", "text": {"content": "relayed"}}});
    let res = split.api(reqwest::Method::POST, "/api/messages", Some(body)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    let message = split
        .wait_for_state(accepted["id"].as_str().unwrap(), &["sent", "completed"], std::time::Duration::from_secs(10))
        .await;
    assert_eq!(split.emulator_calls(ASYNCSEND).await, 1);

    // The same relay request again (as a retry after a lost answer would be): no second send.
    let id = message["id"].as_str().unwrap();
    for _ in 0..2 {
        let res = split
            .relay(CLIENT_A, reqwest::Method::POST, "/relay/v1/messages")
            .json(&json!({"key": id, "corp_id": CORP, "recipients": {"userids": ["manager4220", "lisi0002"]}, "body": {"msgtype": "text", "text": {"content": "relayed"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let receipt: Value = res.json().await.unwrap();
        assert_eq!(receipt["task_ids"], message["task_ids"]);
    }
    assert_eq!(split.emulator_calls(ASYNCSEND).await, 1, "sent exactly once");

    // Another client cannot see it.
    let res = split.relay(CLIENT_B, reqwest::Method::GET, &format!("/relay/v1/messages/{id}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let status: Value =
        split.api(reqwest::Method::GET, &format!("/api/messages/{id}"), None).await.json().await.unwrap();
    assert_eq!(status["delivery"]["recipients"].as_array().map(Vec::len), Some(2));
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn local_keeps_answering_while_the_cloud_is_down_and_delivers_when_it_is_back() {
    let mut split = split().await;
    // A member signs in while the cloud is up; their session is local's own.
    split.approve("manager4220").await;
    let member = browser(true);
    let res = member.get(format!("{}/auth/dingtalk/login", split.local.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.url());

    split.cloud.kill().await.unwrap();
    let res = split
        .api(
            reqwest::Method::POST,
            "/api/messages",
            Some(json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "waits for the cloud"}}})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let message: Value = res.json().await.unwrap();
    assert_eq!(message["state"], "accepted", "the message waits for the cloud");
    let id = message["id"].as_str().unwrap().to_owned();

    // Local answers everything it can without the cloud.
    let me = member.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "the session is local");
    assert_eq!(me.json::<Value>().await.unwrap()["userid"], "manager4220");
    let res = split.api(reqwest::Method::GET, "/api/users", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = reqwest::get(format!("{}/readyz", split.local.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = browser(false).get(format!("{}/auth/dingtalk/login", split.local.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "sign-in says the cloud is unreachable");

    // Local's outbox tried to relay it, failed and kept it (the error recorded is the proof that a
    // relay attempt finished while the cloud was down).
    let waiting = wait_for(&split, &id, |m| m["attempts"].as_u64() >= Some(1) && m["error"].is_string()).await;
    assert_eq!(waiting["state"], "accepted", "{waiting}");
    assert_eq!(split.emulator_calls(ASYNCSEND).await, 0);

    // The cloud comes back on the same database: the retry delivers the message, once.
    split.cloud.restart().await.unwrap();
    let sent = split.wait_for_state(&id, &["sent", "completed"], Duration::from_secs(60)).await;
    let sends = wait_for_sends(&split, "waits for the cloud").await;
    assert_eq!(sends.len(), 1, "sent exactly once: {sends:?}");
    assert_eq!(sends[0]["userid_list"], json!(["manager4220"]));
    assert_eq!(sent["task_ids"], json!([sends[0]["task_id"]]), "{sent}");
    assert_eq!(split.emulator_calls(ASYNCSEND).await, 1);
    split.finish().await;
}

/// Polls local's `GET /api/messages/{id}` until `check` holds (30 s deadline); returns the message.
async fn wait_for(split: &Split, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let message: Value =
            split.api(reqwest::Method::GET, &format!("/api/messages/{id}"), None).await.json().await.unwrap();
        if check(&message) {
            return message;
        }
        assert!(Instant::now() < deadline, "message {id}: {message}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the emulator's recorded sends until one has text `content` (30 s deadline); returns those.
async fn wait_for_sends(split: &Split, content: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sends: Vec<Value> =
            reqwest::get(format!("{}/_admin/sends", split.emulator.base_url)).await.unwrap().json().await.unwrap();
        let matching: Vec<Value> = sends.into_iter().filter(|s| s["msg"]["text"]["content"] == content).collect();
        if !matching.is_empty() {
            return matching;
        }
        assert!(Instant::now() < deadline, "no send of {content:?} recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
