//! End-to-end tests of the split deployment across three real processes on
//! loopback: the DingTalk emulator, `dingbridge --mode cloud` on SQLite, and
//! `dingbridge --mode local` on PostgreSQL (a fresh database per test, dropped
//! afterwards). With `CI=true` a missing PostgreSQL fails the test; elsewhere
//! it is skipped with a printed reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use adapters::outbound::postgres::testing::TestDatabase;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tests::procs::{Proc, free_port};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");
const CORP: &str = "dingemucorp0001";
const ASYNCSEND: &str = "/topapi/message/corpconversation/asyncsend_v2";
const SERVICE_TOKEN: &str = "local-service-token-0123456789";
const CLIENT_A: (&str, &str) = ("local-a", "relay-secret-a-0123456789");
const CLIENT_B: (&str, &str) = ("local-b", "relay-secret-b-0123456789");

struct Split {
    emulator: Proc,
    cloud: Proc,
    local: Proc,
    db: Option<TestDatabase>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

async fn split() -> Option<Split> {
    let db = match TestDatabase::create().await {
        Ok(Some(db)) => db,
        Ok(None) => return None,
        Err(err) => panic!("{err}"),
    };
    let dir = std::env::temp_dir().join(format!("dingbridge-split-{}", free_port().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let emulator = Proc::emulator(EMULATOR).await.unwrap();
    let (cloud_port, local_port) = (free_port().unwrap(), free_port().unwrap());
    let cloud_url = format!("http://127.0.0.1:{cloud_port}");
    let local_url = format!("http://127.0.0.1:{local_port}");
    let emu = emulator.base_url.clone();
    let cloud_toml = format!(
        r#"
mode = "cloud"
public_url = "{cloud_url}"
[database]
url = "sqlite://{db}"
[dingtalk]
login_base = "{emu}"
api_base = "{emu}"
oapi_base = "{emu}"
app_key = "dingemuappkey0001"
app_secret = "emulator-app-secret"
agent_id = 300001
corp_id = "{CORP}"
[[relay.clients]]
id = "{a_id}"
secret = "{a_secret}"
complete_url_origins = ["{local_url}"]
[[relay.clients]]
id = "{b_id}"
secret = "{b_secret}"
corp_ids = ["dingothercorp"]
complete_url_origins = ["http://127.0.0.1:1"]
"#,
        db = dir.join("cloud.db").display(),
        a_id = CLIENT_A.0,
        a_secret = CLIENT_A.1,
        b_id = CLIENT_B.0,
        b_secret = CLIENT_B.1,
    );
    let cloud_config = dir.join("cloud.toml");
    std::fs::write(&cloud_config, cloud_toml).unwrap();
    let cloud = Proc::dingbridge(DINGBRIDGE, cloud_port, Some(&cloud_config), HashMap::new())
        .await
        .unwrap();
    let local = Proc::dingbridge(
        DINGBRIDGE,
        local_port,
        None,
        env(&[
            ("DINGBRIDGE_MODE", "local".into()),
            ("DINGBRIDGE_PUBLIC_URL", local_url.clone()),
            ("DATABASE_URL", db.url().to_owned()),
            ("DINGDING_CLOUD_HOST", cloud_url.clone()),
            ("DINGDING_SECRET_USER", CLIENT_A.0.into()),
            ("DINGDING_SECRET_PASSWORD", CLIENT_A.1.into()),
            ("DINGBRIDGE_DINGTALK__CORP_ID", CORP.into()),
            ("DINGBRIDGE_API__SERVICE_TOKENS", format!("[\"{SERVICE_TOKEN}\"]")),
        ]),
    )
    .await
    .unwrap();
    Some(Split {
        emulator,
        cloud,
        local,
        db: Some(db),
        _dir: TempDir(dir),
    })
}

impl Split {
    async fn finish(mut self) {
        if let Some(db) = self.db.take() {
            let _ = self.local.kill().await;
            db.drop_database().await.expect("test database dropped");
        }
    }

    async fn approve(&self, who: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/_admin/consent", self.emulator.base_url))
            .json(&json!({"mode": "approve", "who": who}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    /// Polls local's `GET /api/messages/{id}` until its state is one of `states`.
    async fn wait_for_state(&self, id: &str, states: &[&str], within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let message: Value = self
                .api(reqwest::Method::GET, &format!("/api/messages/{id}"), None)
                .await
                .json()
                .await
                .unwrap();
            if states.iter().any(|s| message["state"] == *s) {
                return message;
            }
            assert!(std::time::Instant::now() < deadline, "message {id} stuck: {message}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn emulator_calls(&self, path: &str) -> usize {
        let calls: Vec<Value> = reqwest::Client::new()
            .get(format!("{}/_admin/calls", self.emulator.base_url))
            .query(&[("path", path)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls.len()
    }

    fn relay(&self, client: (&str, &str), method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.cloud.base_url))
            .basic_auth(client.0, Some(client.1))
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.local.base_url))
            .bearer_auth(SERVICE_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Follows a login from local through cloud and DingTalk, stopping before local's completion.
    async fn until_complete(&self, browser: &reqwest::Client) -> String {
        let mut url = format!("{}/auth/dingtalk/login", self.local.base_url);
        for _ in 0..5 {
            let res = browser.get(&url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FOUND, "{url}");
            let next = res.headers()["location"].to_str().unwrap().to_owned();
            if next.starts_with(&format!("{}/auth/dingtalk/complete", self.local.base_url)) {
                return next;
            }
            url = next;
        }
        panic!("no completion redirect");
    }
}

fn browser(follow: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().cookie_store(true);
    if follow {
        builder.build().unwrap()
    } else {
        builder.redirect(Policy::none()).build().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_across_three_processes_stores_the_member_in_postgres_and_survives_a_local_restart() {
    let Some(mut split) = split().await else { return };
    split.approve("manager4220").await;
    let browser = browser(true);
    let res = browser
        .get(format!(
            "{}/auth/dingtalk/login?return_to=/welcome",
            split.local.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.url().path(), "/welcome");
    let me: Value = browser
        .get(format!("{}/api/me", split.local.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["userid"], "manager4220");
    assert_eq!(me["corp_id"], CORP);
    let users: Vec<Value> = split
        .api(reqwest::Method::GET, "/api/users", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 1, "the member is stored in PostgreSQL");

    // SIGKILL local and start it again on the same database: users and sessions survive.
    split.local.kill().await.unwrap();
    split.local.restart().await.unwrap();
    let me: Value = browser
        .get(format!("{}/api/me", split.local.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["userid"], "manager4220", "the session survived the restart");
    let users: Vec<Value> = split
        .api(reqwest::Method::GET, "/api/users", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_client_cannot_take_another_clients_login_result() {
    let Some(split) = split().await else { return };
    split.approve("lisi0002").await;
    let browser = browser(false);
    let complete = split.until_complete(&browser).await;
    let state = complete.split("state=").nth(1).unwrap().to_owned();
    let res = split
        .relay(CLIENT_B, reqwest::Method::GET, &format!("/relay/v1/logins/{state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Client A's login still completes: B's attempt consumed nothing.
    let res = browser.get(&complete).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let me = browser
        .get(format!("{}/api/me", split.local.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_refuses_foreign_origins_foreign_corps_and_bad_credentials() {
    let Some(split) = split().await else { return };
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
        .relay(
            (CLIENT_A.0, "wrong-secret-0123456789"),
            reqwest::Method::GET,
            "/relay/v1/messages/k-1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // local has no cloud routes, and the cloud has no local routes
    let res = reqwest::get(format!("{}/relay/v1/messages/k-1", split.local.base_url))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = reqwest::get(format!("{}/api/me", split.cloud.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_message_arrives_once_even_when_the_request_is_retried() {
    let Some(split) = split().await else { return };
    let body = json!({"recipients": {"userids": ["manager4220", "lisi0002"]}, "body": {"msgtype": "text", "text": {"content": "relayed"}}});
    let res = split.api(reqwest::Method::POST, "/api/messages", Some(body)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    let message = split
        .wait_for_state(
            accepted["id"].as_str().unwrap(),
            &["sent", "completed"],
            std::time::Duration::from_secs(10),
        )
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
    let res = split
        .relay(CLIENT_B, reqwest::Method::GET, &format!("/relay/v1/messages/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let status: Value = split
        .api(reqwest::Method::GET, &format!("/api/messages/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["delivery"]["recipients"].as_array().map(Vec::len), Some(2));
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_keeps_answering_while_the_cloud_is_down_and_delivers_when_it_is_back() {
    let Some(mut split) = split().await else { return };
    split.cloud.kill().await.unwrap();
    let res = split
        .api(
            reqwest::Method::POST,
            "/api/messages",
            Some(json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "waits"}}})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let message: Value = res.json().await.unwrap();
    assert_eq!(message["state"], "accepted", "the message waits for the cloud");
    let res = split.api(reqwest::Method::GET, "/api/users", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = reqwest::get(format!("{}/readyz", split.local.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = browser(false)
        .get(format!("{}/auth/dingtalk/login", split.local.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "sign-in says the cloud is unreachable"
    );
    split.finish().await;
}
