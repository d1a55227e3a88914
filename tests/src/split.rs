//! Three real processes on loopback — the DingTalk emulator, `dingbridge` in cloud mode (SQLite)
//! and in local mode (PostgreSQL, a fresh database per stack) — wired together, with helpers to
//! drive them. Used by the split-deployment and outbox fault tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;

use adapters::outbound::postgres::testing::TestDatabase;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::procs::{Proc, free_port};

pub const CORP: &str = "dingemucorp0001";
pub const ASYNCSEND: &str = "/topapi/message/corpconversation/asyncsend_v2";
pub const SERVICE_TOKEN: &str = "local-service-token-0123456789";
pub const CLIENT_A: (&str, &str) = ("local-a", "relay-secret-a-0123456789");
pub const CLIENT_B: (&str, &str) = ("local-b", "relay-secret-b-0123456789");

pub struct Split {
    pub emulator: Proc,
    pub cloud: Proc,
    pub local: Proc,
    db: Option<TestDatabase>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An environment map from pairs.
pub fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// Environment variables for a process, as (name, value) pairs.
pub type EnvPairs = Vec<(&'static str, String)>;

/// The emulator fixture's third-party suite, and the corp that authorizes it.
pub const SUITE: &str = "suiteemukey0001";
pub const SUITE_CORP: &str = "dingemucorp0002";

/// A cloud's environment for the fixture suite (its keys and callback keys; the owner key defaults
/// to the suite key), and a local's that serves both corps (the internal app's and the suite's).
pub fn suite_env() -> (EnvPairs, EnvPairs) {
    let cloud = vec![
        ("DINGBRIDGE_SUITE__SUITE_KEY", SUITE.to_owned()),
        ("DINGBRIDGE_SUITE__SUITE_SECRET", "emulator-suite-secret".to_owned()),
        ("DINGBRIDGE_SUITE__CORP_IDS", format!("[\"{SUITE_CORP}\"]")),
        ("DINGBRIDGE_EVENTS__TOKEN", "emutoken".to_owned()),
        ("DINGBRIDGE_EVENTS__AES_KEY", "emuSuiteAesKey0123456789abcdefghijklmnopqrs".to_owned()),
    ];
    let local = vec![("DINGBRIDGE_CLOUD__CORP_IDS", format!("[\"{CORP}\", \"{SUITE_CORP}\"]"))];
    (cloud, local)
}

/// Connects the fixture suite to the cloud at `cloud`: the emulator's suite callback points at it,
/// and the emulator pushes the suite_ticket and the corp's authorization.
pub async fn connect_suite(emulator: &str, cloud: &str) {
    let admin = |path: String, body: Value| async move {
        let res = reqwest::Client::new().post(format!("{emulator}{path}")).json(&body).send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json::<Value>().await.unwrap()
    };
    let url = format!("{cloud}/dingtalk/events");
    let out = admin("/_admin/callback".into(), json!({"owner": "suite", "suite_key": SUITE, "url": url})).await;
    assert_eq!(out["ok"], true, "{out}");
    let out = admin(format!("/_admin/suites/{SUITE}/ticket"), json!({"push": true})).await;
    assert_eq!(out["push"]["accepted"], true, "{out}");
    let out = admin("/_admin/push/org_suite_auth".into(), json!({"suite_key": SUITE, "corp_id": SUITE_CORP})).await;
    assert_eq!(out["accepted"], true, "{out}");
}

/// The `[dingtalk]` section of a cloud serving the emulator at `emu`'s internal app.
pub fn emulator_app_toml(emu: &str) -> String {
    format!(
        "[dingtalk]\nlogin_base = \"{emu}\"\napi_base = \"{emu}\"\noapi_base = \"{emu}\"\n\
         app_key = \"dingemuappkey0001\"\napp_secret = \"emulator-app-secret\"\nagent_id = 300001\n\
         corp_id = \"{CORP}\""
    )
}

/// The environment of a local at `local_url` on the PostgreSQL database `database_url`,
/// relaying to the cloud at `cloud_url` as relay client A, with the service token.
pub fn local_vars(local_url: &str, database_url: &str, cloud_url: &str) -> HashMap<String, String> {
    env(&[
        ("DINGBRIDGE_MODE", "local".into()),
        ("DINGBRIDGE_PUBLIC_URL", local_url.to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("DINGDING_CLOUD_HOST", cloud_url.to_owned()),
        ("DINGDING_SECRET_USER", CLIENT_A.0.into()),
        ("DINGDING_SECRET_PASSWORD", CLIENT_A.1.into()),
        ("DINGBRIDGE_DINGTALK__CORP_ID", CORP.into()),
        ("DINGBRIDGE_API__SERVICE_TOKENS", format!("[\"{SERVICE_TOKEN}\"]")),
    ])
}

/// Starts the three processes; panics when PostgreSQL is unreachable (tests using this carry
/// `#[cfg_attr(pg_unavailable, ignore = "…")]`, see `adapters/build.rs`, so without PostgreSQL
/// at build time they are listed as ignored instead). `local_env` adds or overrides local's
/// environment (e.g. `DINGBRIDGE_OUTBOX__LEASE_SECS`).
pub async fn split(emulator_bin: &str, dingbridge_bin: &str, local_env: &[(&str, String)]) -> Split {
    split_with(emulator_bin, dingbridge_bin, &[], local_env).await
}

/// [`split`] with environment for the cloud too (e.g. `DINGBRIDGE_EVENTS__TOKEN`).
pub async fn split_with(
    emulator_bin: &str,
    dingbridge_bin: &str,
    cloud_env: &[(&str, String)],
    local_env: &[(&str, String)],
) -> Split {
    split_logged(emulator_bin, dingbridge_bin, cloud_env, local_env, None).await
}

/// [`split_with`], appending the cloud's and local's stderr (their logs) to `logs.0` and
/// `logs.1` when given.
pub async fn split_logged(
    emulator_bin: &str,
    dingbridge_bin: &str,
    cloud_env: &[(&str, String)],
    local_env: &[(&str, String)],
    logs: Option<(&std::path::Path, &std::path::Path)>,
) -> Split {
    let db = TestDatabase::create().await.unwrap_or_else(|err| panic!("{err}"));
    let dir = std::env::temp_dir().join(format!("dingbridge-split-{}", free_port().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let emulator = Proc::emulator(emulator_bin).await.unwrap();
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
{app}
[governor]
rate_per_second = {unpaced}
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
        app = emulator_app_toml(&emu),
        a_id = CLIENT_A.0,
        a_secret = CLIENT_A.1,
        b_id = CLIENT_B.0,
        b_secret = CLIENT_B.1,
        unpaced = crate::stack::UNPACED_RATE,
    );
    let cloud_config = dir.join("cloud.toml");
    std::fs::write(&cloud_config, cloud_toml).unwrap();
    let cloud =
        Proc::dingbridge_logged(dingbridge_bin, cloud_port, Some(&cloud_config), env(cloud_env), logs.map(|l| l.0))
            .await
            .unwrap();
    let mut local_vars = local_vars(&local_url, db.url(), &cloud_url);
    local_vars.extend(env(local_env));
    let local = Proc::dingbridge_logged(dingbridge_bin, local_port, None, local_vars, logs.map(|l| l.1)).await.unwrap();
    Split { emulator, cloud, local, db: Some(db), _dir: TempDir(dir) }
}

impl Split {
    /// The cloud's configuration file (for running `dingbridge --config … <command>` beside it).
    pub fn cloud_config(&self) -> std::path::PathBuf {
        self._dir.0.join("cloud.toml")
    }

    /// Local's PostgreSQL URL (its own database).
    pub fn database_url(&self) -> &str {
        self.db.as_ref().map(TestDatabase::url).unwrap_or_default()
    }

    /// Stops local and drops its database.
    pub async fn finish(mut self) {
        if let Some(db) = self.db.take() {
            let _ = self.local.kill().await;
            db.drop_database().await.expect("test database dropped");
        }
    }

    pub async fn approve(&self, who: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/_admin/consent", self.emulator.base_url))
            .json(&json!({"mode": "approve", "who": who}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    /// Polls local's `GET /api/messages/{id}` until its state is one of `states`.
    pub async fn wait_for_state(&self, id: &str, states: &[&str], within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let message: Value =
                self.api(reqwest::Method::GET, &format!("/api/messages/{id}"), None).await.json().await.unwrap();
            if states.iter().any(|s| message["state"] == *s) {
                return message;
            }
            assert!(std::time::Instant::now() < deadline, "message {id} stuck: {message}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until local shows message `id` pending with `waiting == reason`.
    pub async fn wait_for_waiting(&self, id: &str, reason: &str, within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let message: Value =
                self.api(reqwest::Method::GET, &format!("/api/messages/{id}"), None).await.json().await.unwrap();
            if message["waiting"] == reason {
                return message;
            }
            assert!(std::time::Instant::now() < deadline, "message {id} is not waiting for {reason}: {message}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn emulator_calls(&self, path: &str) -> usize {
        emulator_calls(&self.emulator.base_url, path).await
    }

    pub fn relay(&self, client: (&str, &str), method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.cloud.base_url))
            .basic_auth(client.0, Some(client.1))
    }

    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut req =
            reqwest::Client::new().request(method, format!("{}{path}", self.local.base_url)).bearer_auth(SERVICE_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Follows a login from local through cloud and DingTalk, stopping before local's completion.
    pub async fn until_complete(&self, browser: &reqwest::Client) -> String {
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

/// How many calls the emulator at `emulator` received on `path`.
pub async fn emulator_calls(emulator: &str, path: &str) -> usize {
    let calls: Vec<Value> = reqwest::Client::new()
        .get(format!("{emulator}/_admin/calls"))
        .query(&[("path", path)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls.len()
}

/// `GET {base}{path}` with the service token; the JSON answer.
pub async fn service_get(base: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A cookie-jar client that follows redirects, or not.
pub fn browser(follow: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().cookie_store(true);
    if follow { builder.build().unwrap() } else { builder.redirect(Policy::none()).build().unwrap() }
}
