//! End-to-end tests of the DingTalk event callback in dev mode: the emulator pushes signed,
//! encrypted events (docs/dingtalk-api.md §E) to `<base_url>/dingtalk/events`; storage is checked through the
//! stack's SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adapters::inbound::dingtalk_events::crypto::CallbackCrypto;
use adapters::outbound::sqlite::SqliteStore;
use application::ports::{EventStore, SuiteStore};
use domain::{AgentId, CorpId};
use serde_json::{Value, json};
use tests::stack::{Stack, StackOptions};

const SUITE: &str = "suiteemukey0001";
const TOKEN: &str = "emutoken";
const AES_KEY: &str = "emuSuiteAesKey0123456789abcdefghijklmnopqrs";
const CORP_1: &str = "dingemucorp0001";
const CORP_2: &str = "dingemucorp0002";

struct Env {
    stack: Stack,
    http: reqwest::Client,
    admin: String,
}

impl Env {
    async fn start() -> Self {
        let stack =
            Stack::start(StackOptions { events: true, ..StackOptions::ephemeral() }).await.expect("stack starts");
        let admin = stack.emulator.base_url();
        let env = Self { stack, http: reqwest::Client::new(), admin };
        let url = format!("{}/dingtalk/events", env.stack.base_url);
        let out = env.post("/_admin/callback", json!({"owner": "suite", "suite_key": SUITE, "url": url})).await;
        assert_eq!(out["ok"], true, "{out}");
        env
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let res = self.http.post(format!("{}{path}", self.admin)).json(&body).send().await.unwrap();
        res.json().await.unwrap()
    }

    /// A push through the emulator's admin API; asserts DingTalk would count it as accepted.
    async fn push(&self, path: &str, body: Value) -> Value {
        let out = self.post(path, json!(body)).await;
        assert_eq!(out["accepted"], true, "{path}: {out}");
        out
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::connect(&self.stack.config.database.url, 1).await.unwrap()
    }

    /// A raw signed push (our own signing with the adapter's crypto).
    async fn raw(&self, event: &Value, timestamp: i64, nonce: &str, tamper: bool) -> (u16, Value) {
        let crypto = CallbackCrypto::new(TOKEN, AES_KEY, SUITE).unwrap();
        let encrypt = crypto.encrypt(&event.to_string());
        let mut signature = crypto.signature(&timestamp.to_string(), nonce, &encrypt);
        if tamper {
            signature = "f".repeat(40);
        }
        let url = format!(
            "{}/dingtalk/events?signature={signature}&msg_signature={signature}&timestamp={timestamp}&nonce={nonce}",
            self.stack.base_url
        );
        let res = self.http.post(url).json(&json!({"encrypt": encrypt})).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn corp(raw: &str) -> CorpId {
    CorpId::parse(raw).unwrap()
}

#[tokio::test]
async fn url_checks_tickets_and_authorizations() {
    let env = Env::start().await;
    for event_type in ["check_url", "check_create_suite_url", "check_update_suite_url"] {
        env.push("/_admin/push/check_url", json!({"target": SUITE, "event_type": event_type})).await;
    }

    // Legacy suite_ticket, then a rotated one over SyncHTTP replaces it.
    let first = env.post(&format!("/_admin/suites/{SUITE}/ticket"), json!({"push": false})).await;
    env.push("/_admin/push/suite_ticket", json!({"suite_key": SUITE})).await;
    let store = env.store().await;
    let stored = store.ticket(SUITE).await.unwrap().unwrap();
    assert_eq!(stored.ticket, first["suite_ticket"].as_str().unwrap());
    let second = env.post(&format!("/_admin/suites/{SUITE}/ticket"), json!({"push": true, "sync": true})).await;
    assert_eq!(second["push"]["accepted"], true, "{second}");
    let stored = store.ticket(SUITE).await.unwrap().unwrap();
    assert_eq!(stored.ticket, second["suite_ticket"].as_str().unwrap());
    assert_ne!(first["suite_ticket"], second["suite_ticket"]);

    // org_suite_auth for two corps: two authorizations with their own agent ids.
    env.push("/_admin/push/org_suite_auth", json!({"suite_key": SUITE, "corp_id": CORP_1})).await;
    env.push("/_admin/push/org_suite_auth", json!({"suite_key": SUITE, "corp_id": CORP_2})).await;
    let a1 = store.authorization(SUITE, &corp(CORP_1)).await.unwrap().unwrap();
    let a2 = store.authorization(SUITE, &corp(CORP_2)).await.unwrap().unwrap();
    assert_eq!(a1.agent_id, Some(AgentId::new(400001).unwrap()));
    assert_eq!(a2.agent_id, Some(AgentId::new(400002).unwrap()));
    assert_eq!(a1.permanent_code.as_deref(), Some("emu-permanent-code-0001"));
    assert!(a1.active && a2.active);

    // Relieve (SyncHTTP and legacy) → inactive.
    env.push(
        "/_admin/push/org_suite_auth",
        json!({"suite_key": SUITE, "corp_id": CORP_1, "sync_action": "org_suite_relieve"}),
    )
    .await;
    assert!(!store.authorization(SUITE, &corp(CORP_1)).await.unwrap().unwrap().active);
    env.push("/_admin/push/suite_relieve", json!({"suite_key": SUITE, "corp_id": CORP_2})).await;
    let a2 = store.authorization(SUITE, &corp(CORP_2)).await.unwrap().unwrap();
    assert!(!a2.active);
    assert_eq!(a2.agent_id, Some(AgentId::new(400002).unwrap()));

    // tmp_auth_code and change_auth are accepted.
    env.push("/_admin/push/tmp_auth_code", json!({"suite_key": SUITE, "corp_id": CORP_1})).await;
    let a1 = store.authorization(SUITE, &corp(CORP_1)).await.unwrap().unwrap();
    assert!(a1.active);
    assert_eq!(a1.agent_id, Some(AgentId::new(400001).unwrap()));
    env.push("/_admin/push/change_auth", json!({"suite_key": SUITE, "corp_id": CORP_1})).await;
    env.stack.stop_and_clean().await;
}

#[tokio::test]
async fn contact_events_unknown_events_and_bad_batches() {
    let env = Env::start().await;
    let types = [
        ("user_add_org", json!({"user_ids": ["u100"]})),
        ("user_modify_org", json!({"user_ids": ["u100"]})),
        ("user_leave_org", json!({"user_ids": ["u100"]})),
        ("user_active_org", json!({"user_ids": ["u100"]})),
        ("org_dept_create", json!({"dept_ids": [12]})),
        ("org_dept_modify", json!({"dept_ids": [12]})),
        ("org_dept_remove", json!({"dept_ids": [12]})),
    ];
    for (event_type, mut body) in types {
        body["target"] = json!(SUITE);
        body["event_type"] = json!(event_type);
        body["corp_id"] = json!(CORP_1);
        env.push("/_admin/push/contact", body).await;
    }
    let store = env.store().await;
    let feed = store.read_after(&[corp(CORP_1)], 0, 100).await.unwrap();
    let got: Vec<&str> = feed.iter().map(|e| adapters::feed_names::name(&e.event.change)).collect();
    assert_eq!(
        got,
        [
            "user_add_org",
            "user_modify_org",
            "user_leave_org",
            "user_active_org",
            "org_dept_create",
            "org_dept_modify",
            "org_dept_remove"
        ]
    );

    // An unknown event: 200 success.
    env.push("/_admin/push", json!({"target": SUITE, "event": {"EventType": "bpms_task_change", "CorpId": CORP_1}}))
        .await;

    // A SyncHTTP batch with one malformed item still stores the others.
    let batch = json!({"EventType": "SYNC_HTTP_PUSH_HIGH", "bizData": [
        {"biz_type": 4, "corp_id": CORP_1, "biz_data": "{not json"},
        {"biz_type": 2, "corp_id": CORP_1, "biz_data": json!({"syncAction": "suite_ticket", "suiteTicket": "batch-ticket"}).to_string()},
    ]});
    env.push("/_admin/push", json!({"target": SUITE, "event": batch})).await;
    assert_eq!(store.ticket(SUITE).await.unwrap().unwrap().ticket, "batch-ticket");
    env.stack.stop_and_clean().await;
}

#[tokio::test]
async fn forged_stale_and_replayed_pushes_are_refused_and_store_nothing() {
    let env = Env::start().await;
    let store = env.store().await;
    let ticket = |t: &str| json!({"EventType": "suite_ticket", "SuiteKey": SUITE, "SuiteTicket": t});

    let (status, body) = env.raw(&ticket("forged"), now_ms(), "nonce001", true).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")), "{body}");
    let (status, body) = env.raw(&ticket("stale"), now_ms() - 3_600_000, "nonce002", false).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("stale_timestamp")), "{body}");
    assert!(store.ticket(SUITE).await.unwrap().is_none());

    let (status, body) = env.raw(&ticket("first"), now_ms(), "nonce003", false).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.raw(&ticket("replayed"), now_ms(), "nonce003", false).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("replayed_nonce")), "{body}");
    assert_eq!(store.ticket(SUITE).await.unwrap().unwrap().ticket, "first");

    let res = reqwest::Client::new()
        .post(format!("{}/dingtalk/events?signature=x&timestamp=1&nonce=n", env.stack.base_url))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    env.stack.stop_and_clean().await;
}

#[tokio::test]
async fn the_internal_app_and_the_suite_share_the_endpoint() {
    // The internal app's org-level subscription (owner key = corp id) configured with the same
    // token and EncodingAESKey as the suite: both kinds of push are accepted at one URL.
    let env = Env::start().await;
    let url = format!("{}/dingtalk/events", env.stack.base_url);
    let out = env
        .post(
            "/_admin/callback",
            json!({"owner": "app", "url": url, "token": TOKEN, "aes_key": AES_KEY, "owner_key": CORP_1}),
        )
        .await;
    assert_eq!(out["ok"], true, "{out}");
    let target = out["target"].as_str().unwrap().to_owned();
    env.push(
        "/_admin/push/contact",
        json!({"target": target, "event_type": "user_modify_org", "corp_id": CORP_1, "user_ids": ["u7"]}),
    )
    .await;
    env.push(
        "/_admin/push/contact",
        json!({"target": SUITE, "event_type": "user_modify_org", "corp_id": CORP_2, "user_ids": ["u8"]}),
    )
    .await;
    let store = env.store().await;
    let feed = store.read_after(&[corp(CORP_1), corp(CORP_2)], 0, 10).await.unwrap();
    let users: Vec<&str> = feed.iter().flat_map(|e| e.event.userids.iter().map(|u| u.as_str())).collect();
    assert_eq!(users, ["u7", "u8"]);
    // A subscription for someone else (another corp id as owner) is still refused.
    let out = env
        .post(
            "/_admin/callback",
            json!({"owner": "app", "url": url, "token": TOKEN, "aes_key": AES_KEY, "owner_key": "dingsomeoneelse"}),
        )
        .await;
    assert_eq!(out["ok"], true, "{out}");
    let refused = env
        .post(
            "/_admin/push/contact",
            json!({"target": target, "event_type": "user_modify_org", "corp_id": CORP_1, "user_ids": ["u9"]}),
        )
        .await;
    assert_eq!(refused["accepted"], false, "{refused}");
    assert_eq!(store.read_after(&[corp(CORP_1)], 0, 10).await.unwrap().len(), 1);
    env.stack.stop_and_clean().await;
}
