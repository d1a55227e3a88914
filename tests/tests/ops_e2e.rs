//! Operating dingbridge (README "Operating dingbridge") across three real processes — the
//! DingTalk emulator, a cloud (SQLite) and a local (PostgreSQL) — with JSON logs at `debug`
//! captured from both dingbridge processes and `/metrics` on their own listeners:
//!
//! - a full sign-in, a message send, a contact-event push and a failed token refresh leave no
//!   secret, token, authorization code, login state or session token anywhere in the logs;
//! - every log line is a JSON object with `timestamp`, `level` and `target`, request lines carry
//!   the span's `request_id` and `trace_id`;
//! - the W3C `traceparent` local sends on relay calls makes one message (and one sign-in)
//!   followable across both processes by its `trace_id`;
//! - both `/metrics` parse as Prometheus text and carry every family of the run.
//!
//! Built as ignored when PostgreSQL is unreachable at build time outside CI (`adapters/build.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::procs::free_port;
use tests::split::{CLIENT_A, CLIENT_B, SERVICE_TOKEN, Split};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

const APP_KEY: &str = "dingemuappkey0001";
/// The cloud's app secret (`tests::split`'s cloud config).
const APP_SECRET: &str = "emulator-app-secret";
const EVENTS_TOKEN: &str = "opsEventsToken42";
const EVENTS_AES_KEY: &str = "opsAesKey0123456789abcdefghijklmnopqrstuvwx";
const METRICS_TOKEN: &str = "local-metrics-scrape-token-0123";

async fn admin(emulator: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new().post(format!("{emulator}{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Polls until `check` holds, failing after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of query parameter `name` in `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What a sign-in exposed on the way: the login state, the authorization code, the session token.
struct SignIn {
    state: String,
    auth_code: String,
    session: String,
}

/// Follows a sign-in hop by hop (no redirect following), keeping what must never be logged.
async fn sign_in(split: &Split) -> SignIn {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut url = format!("{}/auth/dingtalk/login?return_to=/welcome", split.local.base_url);
    let (mut state, mut auth_code, mut session) = (None, None, None);
    let mut cookies: Vec<String> = Vec::new();
    for _ in 0..6 {
        let mut req = browser.get(&url);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let res = req.send().await.unwrap();
        for set in res.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            if let Some(value) = pair.strip_prefix("dingbridge_session=")
                && !value.is_empty()
            {
                session = Some(value.to_owned());
            }
            cookies.retain(|c| c.split('=').next() != pair.split('=').next());
            cookies.push(pair);
        }
        if res.status() != StatusCode::FOUND {
            break;
        }
        let next = res.headers()["location"].to_str().unwrap().to_owned();
        let next = if next.starts_with('/') { format!("{}{next}", split.local.base_url) } else { next };
        state = state.or_else(|| query_param(&next, "state"));
        auth_code = auth_code.or_else(|| query_param(&next, "authCode"));
        if next.ends_with("/welcome") {
            break;
        }
        url = next;
    }
    SignIn {
        state: state.expect("a login state in the redirects"),
        auth_code: auth_code.expect("an authorization code in the redirects"),
        session: session.expect("a session cookie"),
    }
}

/// Scrapes `url` (with `token` as bearer) and parses it as Prometheus text: the family names.
async fn scrape(url: &str, token: Option<&str>) -> (BTreeSet<String>, prometheus_parse::Scrape) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    // The parser skips lines it cannot read: every sample line must read on its own.
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let alone = prometheus_parse::Scrape::parse(std::iter::once(Ok(line.to_owned()))).unwrap();
        assert_eq!(alone.samples.len(), 1, "an unparseable sample line in {url}: {line}");
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let names = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    (names, scrape)
}

fn read_json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_full_run_logs_no_secret_follows_one_message_across_processes_and_serves_parseable_metrics() {
    let dir = std::env::temp_dir().join(format!("dingbridge-ops-{}", free_port().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cloud_log, local_log) = (dir.join("cloud.log"), dir.join("local.log"));
    let (cloud_metrics, local_metrics) = (free_port().unwrap(), free_port().unwrap());
    let logging = [("RUST_LOG", "debug".to_owned()), ("DINGBRIDGE_LOG__FORMAT", "json".to_owned())];
    let mut cloud_env = vec![
        ("DINGBRIDGE_EVENTS__TOKEN", EVENTS_TOKEN.to_owned()),
        ("DINGBRIDGE_EVENTS__AES_KEY", EVENTS_AES_KEY.to_owned()),
        ("DINGBRIDGE_EVENTS__OWNER_KEY", APP_KEY.to_owned()),
        ("DINGBRIDGE_METRICS__BIND", format!("127.0.0.1:{cloud_metrics}")),
    ];
    cloud_env.extend(logging.clone());
    let mut local_env = vec![
        ("DINGBRIDGE_METRICS__BIND", format!("127.0.0.1:{local_metrics}")),
        ("DINGBRIDGE_METRICS__TOKEN", METRICS_TOKEN.to_owned()),
    ];
    local_env.extend(logging);
    let split =
        tests::split::split_logged(EMULATOR, DINGBRIDGE, &cloud_env, &local_env, Some((&cloud_log, &local_log))).await;
    let emulator = split.emulator.base_url.clone();
    let out = admin(
        &emulator,
        "/_admin/callback",
        json!({"owner": "app", "url": format!("{}/dingtalk/events", split.cloud.base_url),
               "token": EVENTS_TOKEN, "aes_key": EVENTS_AES_KEY, "owner_key": APP_KEY}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");

    // 1. A full sign-in, hop by hop.
    split.approve("manager4220").await;
    let signed_in = sign_in(&split).await;

    // 2. A message, relayed by local's dispatcher (a background job: its relay call starts a trace).
    let body =
        json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "ops"}}});
    let res = split.api(reqwest::Method::POST, "/api/messages", Some(body)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let message_id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    split.wait_for_state(&message_id, &["sent", "completed"], Duration::from_secs(10)).await;

    // 3. A contact-event push, applied by local through the feed.
    let out = admin(
        &emulator,
        "/_admin/push/contact",
        json!({"target": "app", "event_type": "user_modify_org", "user_ids": ["lisi0002"], "corp_id": tests::split::CORP}),
    )
    .await;
    assert_eq!(out["accepted"], true, "{out}");
    eventually("lisi0002 is added through the feed", || async {
        let users: Vec<Value> = split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap();
        users.iter().any(|u| u["userid"] == "lisi0002")
    })
    .await;

    // Every token the emulator handed out (app and user tokens, refresh tokens), before any revoke.
    let tokens: Vec<String> = reqwest::get(format!("{emulator}/_admin/tokens")).await.unwrap().json().await.unwrap();
    assert!(tokens.len() >= 3, "an app token, a user token and its refresh token: {tokens:?}");

    // 4. A failed token refresh: DingTalk refuses the app token and its token endpoint is down.
    admin(&emulator, "/_admin/faults", json!({"path": "/v1.0/oauth2/accessToken", "error": "500"})).await;
    admin(&emulator, "/_admin/tokens/revoke", json!({"kind": "app"})).await;
    let users: Vec<Value> = split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap();
    let member = users.iter().find(|u| u["userid"] == "manager4220").unwrap()["id"].as_str().unwrap().to_owned();
    let res = split.api(reqwest::Method::POST, &format!("/api/users/{member}/refresh"), None).await;
    assert!(res.status().is_server_error(), "refresh with DingTalk's token endpoint down: {}", res.status());

    // /metrics: both parse, and carry the run's families.
    let (cloud_names, _) = scrape(&format!("http://127.0.0.1:{cloud_metrics}/metrics"), None).await;
    for family in [
        "dingbridge_http_requests_total",
        "dingbridge_http_request_duration_seconds",
        "dingbridge_dingtalk_calls_total",
        "dingbridge_dingtalk_call_duration_seconds",
        "dingbridge_token_refreshes_total",
        "dingbridge_token_refresh_failures_total",
        "dingbridge_event_pushes_total",
        "dingbridge_governor_waiting_calls",
        "dingbridge_governor_wait_seconds",
        "dingbridge_quota_metered_calls",
        "dingbridge_quota_remaining_calls",
        "dingbridge_build_info",
    ] {
        assert!(cloud_names.contains(family), "cloud /metrics lacks {family}: {cloud_names:?}");
    }
    let res = reqwest::get(format!("http://127.0.0.1:{local_metrics}/metrics")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "local's /metrics wants its token");
    let (local_names, local) = scrape(&format!("http://127.0.0.1:{local_metrics}/metrics"), Some(METRICS_TOKEN)).await;
    for family in [
        "dingbridge_http_requests_total",
        "dingbridge_http_request_duration_seconds",
        "dingbridge_relay_calls_total",
        "dingbridge_relay_call_duration_seconds",
        "dingbridge_outbox_depth",
        "dingbridge_outbox_oldest_pending_age_seconds",
        "dingbridge_outbox_attempts_total",
        "dingbridge_outbox_dead_letters_total",
        "dingbridge_feed_cursor_lag_seconds",
        "dingbridge_feed_cursor",
        "dingbridge_feed_events_applied_total",
        "dingbridge_logins_total",
    ] {
        assert!(local_names.contains(family), "local /metrics lacks {family}: {local_names:?}");
    }
    let success = local
        .samples
        .iter()
        .find(|s| s.metric == "dingbridge_logins_total" && s.labels.get("outcome") == Some("success"));
    assert!(matches!(success.map(|s| &s.value), Some(prometheus_parse::Value::Counter(n)) if *n >= 1.0));
    let routes: BTreeSet<_> = local
        .samples
        .iter()
        .filter(|s| s.metric == "dingbridge_http_requests_total")
        .filter_map(|s| s.labels.get("route").map(str::to_owned))
        .collect();
    assert!(routes.contains("/api/users/:id/refresh"), "route templates, never paths: {routes:?}");
    assert!(!routes.iter().any(|r| r.contains(&member)), "{routes:?}");

    // The logs: JSON lines, with request ids, and no secret anywhere.
    let cloud_lines = read_json_lines(&cloud_log);
    let local_lines = read_json_lines(&local_log);
    for line in cloud_lines.iter().chain(&local_lines) {
        for key in ["timestamp", "level", "target"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let handled = |lines: &[Value]| lines.iter().filter(|l| l["message"] == "handled").cloned().collect::<Vec<_>>();
    assert!(
        handled(&local_lines).iter().all(|l| l["span"]["request_id"].is_string() && l["span"]["trace_id"].is_string())
    );
    let everything =
        format!("{}\n{}", std::fs::read_to_string(&cloud_log).unwrap(), std::fs::read_to_string(&local_log).unwrap());
    let mut secrets: Vec<(&str, String)> = vec![
        ("the app secret", APP_SECRET.to_owned()),
        ("relay client A's secret", CLIENT_A.1.to_owned()),
        ("relay client B's secret", CLIENT_B.1.to_owned()),
        ("the service token", SERVICE_TOKEN.to_owned()),
        ("the events token", EVENTS_TOKEN.to_owned()),
        ("the EncodingAESKey", EVENTS_AES_KEY.to_owned()),
        ("the metrics token", METRICS_TOKEN.to_owned()),
        ("the login state", signed_in.state.clone()),
        ("the authorization code", signed_in.auth_code.clone()),
        ("the session token", signed_in.session.clone()),
    ];
    secrets.extend(tokens.iter().map(|t| ("a DingTalk token", t.clone())));
    // The search is over real logs: debug lines of both processes, naming the message.
    assert!(cloud_lines.iter().chain(&local_lines).any(|l| l["level"] == "DEBUG"), "debug lines were captured");
    assert!(everything.contains(&message_id), "the logs name the message");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for: {secret:?}");
        assert!(!everything.contains(secret.as_str()), "{what} appears in the logs");
    }

    // traceparent: the message's relay call (local) and its handling (cloud) share one trace id.
    let relayed = local_lines
        .iter()
        .find(|l| {
            l["message"] == "cloud relay call" && l["route"] == "/relay/v1/messages" && l["key"] == message_id.as_str()
        })
        .unwrap_or_else(|| panic!("local logged no relay call for message {message_id}"));
    let trace = relayed["trace_id"].as_str().unwrap();
    assert_eq!(trace.len(), 32);
    let on_cloud = handled(&cloud_lines);
    assert!(
        on_cloud.iter().any(|l| l["span"]["trace_id"] == trace && l["span"]["route"] == "/relay/v1/messages"),
        "the cloud logged no /relay/v1/messages request in trace {trace}"
    );
    // The sign-in's start: local's request and the cloud's /relay/v1/logins are one trace too.
    let start = handled(&local_lines)
        .into_iter()
        .find(|l| l["span"]["route"] == "/auth/{provider}/login")
        .expect("local logged the sign-in start");
    let start_trace = start["span"]["trace_id"].as_str().unwrap().to_owned();
    assert!(
        on_cloud
            .iter()
            .any(|l| l["span"]["trace_id"] == start_trace.as_str() && l["span"]["route"] == "/relay/v1/logins"),
        "the cloud logged no /relay/v1/logins request in trace {start_trace}"
    );

    split.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}
