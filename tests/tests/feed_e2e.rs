//! End-to-end tests of the contact-event feed: DingTalk (the emulator) pushes a contact event to
//! the cloud's `/dingtalk/events`, the cloud appends it to its feed and wakes local's long-poll
//! (`GET /relay/v1/events`), and local applies it — a member who left loses their sessions at
//! once and is kept inactive; a modified member is refreshed (created when unknown). Local's
//! cursor survives a restart: nothing is skipped and nothing re-applied.
//!
//! The split test runs three real processes (emulator, cloud on SQLite, local on PostgreSQL; built
//! as ignored when PostgreSQL is unreachable at build time outside CI, see `adapters/build.rs`; it
//! fails when it runs without PostgreSQL); the dev test runs dev mode in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use adapters::outbound::postgres::PgStore;
use application::ports::FeedCursorStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::emulator::ConsentMode;
use tests::split::{CLIENT_A, CORP, Split, browser};
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

/// The cloud's event subscription: an internal app's (owner key = its AppKey).
const EVENTS_TOKEN: &str = "feedtoken123";
const EVENTS_AES_KEY: &str = "feedAesKey0123456789abcdefghijklmnopqrstuvw";
const APP_KEY: &str = "dingemuappkey0001";
/// How long an event may take from DingTalk's push to local's directory (one long-poll round).
const WITHIN: Duration = Duration::from_secs(5);

async fn split() -> Split {
    let cloud_env = [
        ("DINGBRIDGE_EVENTS__TOKEN", EVENTS_TOKEN.to_owned()),
        ("DINGBRIDGE_EVENTS__AES_KEY", EVENTS_AES_KEY.to_owned()),
        ("DINGBRIDGE_EVENTS__OWNER_KEY", APP_KEY.to_owned()),
    ];
    let split = tests::split::split_with(EMULATOR, DINGBRIDGE, &cloud_env, &[]).await;
    let out = admin(
        &split.emulator.base_url,
        "/_admin/callback",
        json!({"owner": "app", "url": format!("{}/dingtalk/events", split.cloud.base_url),
               "token": EVENTS_TOKEN, "aes_key": EVENTS_AES_KEY, "owner_key": APP_KEY}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    split
}

async fn admin(emulator: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new().post(format!("{emulator}{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

async fn me(base_url: &str, browser: &reqwest::Client) -> reqwest::Response {
    browser.get(format!("{base_url}/api/me")).send().await.unwrap()
}

/// Polls until `check` holds, failing after [`WITHIN`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WITHIN;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cloud's feed as relay client A sees it: every cursor, in order.
async fn cloud_cursors(split: &Split) -> Vec<i64> {
    let res = split.relay(CLIENT_A, reqwest::Method::GET, "/relay/v1/events?after=0").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    page["events"].as_array().unwrap().iter().map(|e| e["cursor"].as_i64().unwrap()).collect()
}

async fn stored_cursor(split: &Split) -> Option<i64> {
    let store = PgStore::connect(split.database_url(), 1).await.unwrap();
    FeedCursorStore::cursor(&store, "contact_events").await.unwrap()
}

async fn users(split: &Split) -> Vec<Value> {
    split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_member_who_leaves_loses_their_session_at_once_and_a_restart_neither_skips_nor_reapplies() {
    let mut split = split().await;
    let local = split.local.base_url.clone();

    // manager4220 signs in: the session works.
    split.approve("manager4220").await;
    let first = browser(true);
    first.get(format!("{local}/auth/dingtalk/login")).send().await.unwrap();
    let res = me(&local, &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // They leave the org; DingTalk pushes user_leave_org to the cloud.
    let out = admin(&split.emulator.base_url, "/_admin/users/manager4220/leave", json!({"push": true})).await;
    assert_eq!(out["push"]["accepted"], true, "{out}");
    eventually("the session is revoked", || async { me(&local, &first).await.status() == StatusCode::UNAUTHORIZED })
        .await;
    let user: Value = split.api(reqwest::Method::GET, &format!("/api/users/{id}"), None).await.json().await.unwrap();
    assert_eq!(user["active"], false, "{user}");
    assert_eq!(user["userid"], "manager4220");
    let cursors = cloud_cursors(&split).await;
    assert_eq!(cursors.len(), 1);
    assert_eq!(stored_cursor(&split).await, Some(cursors[0]), "local stored the leave's cursor");

    // They rejoin (no push) and sign in again: active, with a fresh session.
    let rejoin = json!({"userid": "manager4220", "unionid": "z21HjQliSzpw0YWCiiSWeV8giEiE",
                        "open_id": "Lk1B2iPKiPziPWmWZbyGsXwiEiE", "name": "张三", "dept_id_list": [1, 2]});
    admin(&split.emulator.base_url, "/_admin/users", rejoin).await;
    split.approve("manager4220").await;
    let second = browser(true);
    second.get(format!("{local}/auth/dingtalk/login")).send().await.unwrap();
    let again: Value = me(&local, &second).await.json().await.unwrap();
    assert_eq!((again["id"].as_str(), again["active"].as_bool()), (Some(id.as_str()), Some(true)));

    // Restart local (SIGKILL). Then DingTalk pushes user_modify_org for lisi0002, unknown locally.
    split.local.kill().await.unwrap();
    split.local.restart().await.unwrap();
    let out = admin(
        &split.emulator.base_url,
        "/_admin/push/contact",
        json!({"target": "app", "event_type": "user_modify_org", "user_ids": ["lisi0002"], "corp_id": CORP}),
    )
    .await;
    assert_eq!(out["accepted"], true, "{out}");
    eventually("lisi0002 is added to the directory", || async {
        users(&split).await.iter().any(|u| u["userid"] == "lisi0002")
    })
    .await;

    // Exactly the new event was applied: the leave before the restart was not applied again (the
    // rejoined member's new session still works), and the cursor is the new event's.
    let lisi = users(&split).await.into_iter().find(|u| u["userid"] == "lisi0002").unwrap();
    assert_eq!((lisi["name"].as_str(), lisi["active"].as_bool()), (Some("李四"), Some(true)));
    let res = me(&local, &second).await;
    assert_eq!(res.status(), StatusCode::OK, "the leave was not re-applied after the restart");
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);
    let cursors = cloud_cursors(&split).await;
    assert_eq!(cursors.len(), 2);
    assert_eq!(stored_cursor(&split).await, Some(cursors[1]));
    assert_eq!(users(&split).await.len(), 2);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_dev_mode_a_leave_revokes_the_session_through_the_in_process_feed() {
    const SUITE: &str = "suiteemukey0001";
    let stack = Stack::start(StackOptions { events: true, ..StackOptions::ephemeral() }).await.expect("stack starts");
    let emulator = stack.emulator.base_url();
    let url = format!("{}/dingtalk/events", stack.base_url);
    let out = admin(&emulator, "/_admin/callback", json!({"owner": "suite", "suite_key": SUITE, "url": url})).await;
    assert_eq!(out["ok"], true, "{out}");

    stack.emulator.state().set_consent(ConsentMode::Approve { who: "lisi0002".into() });
    let browser = browser(true);
    browser.get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    let res = me(&stack.base_url, &browser).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let out = admin(&emulator, "/_admin/users/lisi0002/leave", json!({"push": true, "target": SUITE})).await;
    assert_eq!(out["push"]["accepted"], true, "{out}");
    eventually("the session is revoked", || async {
        me(&stack.base_url, &browser).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    let user: Value = reqwest::Client::new()
        .get(format!("{}/api/users/{id}", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["active"], false, "{user}");
    stack.stop_and_clean().await;
}
