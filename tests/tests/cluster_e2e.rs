//! Several instances sharing PostgreSQL (docs/design.md "Several instances"), as real processes
//! on loopback: two clouds on one database, two locals on another, the DingTalk emulator
//! enforcing DingTalk's 20 calls a second per app and API. Without PostgreSQL at build time
//! (outside CI) the tests are built as ignored (`adapters/build.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::cluster::{Cluster, cluster};
use tests::split::SERVICE_TOKEN;

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

async fn post(local: &str, key: &str, i: usize) -> (StatusCode, Value) {
    let body = json!({
        "recipients": {"userids": [user(i)]},
        "body": {"msgtype": "text", "text": {"content": format!("cluster #{i}")}}
    });
    let res = reqwest::Client::new()
        .post(format!("{local}/api/messages"))
        .bearer_auth(SERVICE_TOKEN)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn user(i: usize) -> String {
    format!("user{:04}", i % 400 + 1)
}

/// For each `cluster #i` the emulator accepted: (sends of it, sends that delivered it to its person).
async fn sends_by_content(cluster: &Cluster) -> HashMap<String, (usize, usize)> {
    let sends: Vec<Value> =
        reqwest::get(format!("{}/_admin/sends", cluster.emulator.base_url)).await.unwrap().json().await.unwrap();
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for send in &sends {
        let Some(content) = send["msg"]["text"]["content"].as_str().filter(|c| c.starts_with("cluster #")) else {
            continue;
        };
        let delivered = ["read_user_id_list", "unread_user_id_list"]
            .iter()
            .any(|list| send["outcome"][list].as_array().is_some_and(|users| !users.is_empty()));
        let entry = seen.entry(content.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(delivered);
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn two_clouds_and_two_locals_deliver_every_message_once_within_the_limit_while_one_of_each_is_killed() {
    // 450 messages (about 25 s of sending at 18/s); a cloud killed after 20 %, a local after 30 %.
    killed_mid_delivery(450, 0.2, 0.3).await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_cloud_and_a_local_killed_as_sending_starts_lose_and_duplicate_nothing() {
    killed_mid_delivery(300, 0.03, 0.1).await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_cloud_and_a_local_killed_near_the_end_lose_and_duplicate_nothing() {
    killed_mid_delivery(300, 0.7, 0.85).await;
}

/// Posts `messages` messages to two clouds + two locals (each to one local and retried through
/// the other), SIGKILLs the first cloud once `cloud_at` of them reached DingTalk and the first
/// local at `local_at`, and checks that the survivors deliver every message to its person once,
/// within DingTalk's 20 calls/s, and report them sent.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
async fn killed_mid_delivery(messages: usize, cloud_at: f64, local_at: f64) {
    let mut cluster = cluster(EMULATOR, DINGBRIDGE, &[], &[("DINGBRIDGE_OUTBOX__LEASE_SECS", "5".into())]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/_admin/limits", cluster.emulator.base_url))
        .json(&json!({"qps": 20}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let locals: Vec<String> = cluster.locals.iter().map(|l| l.base_url.clone()).collect();

    // Every message is posted to one local and retried through the other, with its key: both
    // answers are the one message.
    let mut posts = Vec::with_capacity(messages);
    // 32 callers at once, as a busy service would post.
    let callers = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..messages {
        let locals = locals.clone();
        let caller = callers.clone().acquire_owned().await.unwrap();
        posts.push(tokio::spawn(async move {
            let _caller = caller;
            let key = format!("cluster-key-{i}");
            let first = i % 2;
            let (status, one) = post(&locals[first], &key, i).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{one}");
            let (status, two) = post(&locals[1 - first], &key, i).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{two}");
            assert_eq!(one["id"], two["id"], "a retry through the other instance is the same message");
            one["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::with_capacity(messages);
    for post in posts {
        ids.push(post.await.unwrap());
    }

    // Mid-delivery, SIGKILL the first cloud, then the first local.
    let deadline = Instant::now() + Duration::from_secs(30);
    let at = |fraction: f64| ((messages as f64 * fraction) as usize).clamp(1, messages);
    while sends_by_content(&cluster).await.len() < at(cloud_at) {
        assert!(Instant::now() < deadline, "sending did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.clouds[0].kill().await.unwrap();
    while sends_by_content(&cluster).await.len() < at(local_at) {
        assert!(Instant::now() < deadline + Duration::from_secs(60), "the surviving cloud does not send");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.locals[0].kill().await.unwrap();

    // The survivors drain everything: each message reaches its person once.
    let deadline = Instant::now() + Duration::from_secs(150);
    let seen = loop {
        let seen = sends_by_content(&cluster).await;
        if seen.len() == messages && seen.values().all(|(_, delivered)| *delivered >= 1) {
            break seen;
        }
        assert!(Instant::now() < deadline, "only {} of {messages} messages reached DingTalk", seen.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let twice: Vec<_> = seen.iter().filter(|(_, (_, delivered))| *delivered != 1).collect();
    assert!(twice.is_empty(), "delivered to its person more than once: {twice:?}");
    let resent = seen.values().filter(|(sends, _)| *sends > 1).count();
    eprintln!("{messages} messages, each delivered once; {resent} uncertain batch(es) resent after the cloud's kill");
    assert!(resent <= 16, "only the batches in flight at the kill may be sent again: {resent}");

    // DingTalk's limit held cluster-wide: nothing throttled, no window over 20.
    let limits: Value =
        reqwest::get(format!("{}/_admin/limits", cluster.emulator.base_url)).await.unwrap().json().await.unwrap();
    assert_eq!(limits["throttled"], 0, "{limits}");
    assert!(limits["busiest_window"].as_u64().unwrap() <= 20, "{limits}");

    // The surviving local reports every message sent.
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let message = tests::split::service_get(&locals[1], &format!("/api/messages/{id}")).await;
            if matches!(message["state"].as_str(), Some("sent" | "completed")) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} is not sent at local: {message}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_on_one_sqlite_database_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("dingbridge-sqlite-one-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let emulator = tests::procs::Proc::emulator(EMULATOR).await.unwrap();
    let config = dir.join("cloud.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"cloud\"\npublic_url = \"http://127.0.0.1:1\"\n[database]\nurl = \"sqlite://{}\"\n[dingtalk]\n\
             api_base = \"{e}\"\noapi_base = \"{e}\"\nlogin_base = \"{e}\"\napp_key = \"dingemuappkey0001\"\n\
             app_secret = \"emulator-app-secret\"\nagent_id = 300001\ncorp_id = \"{}\"\n[[relay.clients]]\n\
             id = \"a\"\nsecret = \"relay-secret-a-0123456789\"\ncomplete_url_origins = [\"http://127.0.0.1:1\"]\n",
            dir.join("cloud.db").display(),
            tests::split::CORP,
            e = emulator.base_url,
        ),
    )
    .unwrap();
    let first =
        tests::procs::Proc::dingbridge(DINGBRIDGE, tests::procs::free_port().unwrap(), Some(&config), HashMap::new())
            .await
            .unwrap();
    // The second one exits at once, naming the reason.
    let second = tokio::process::Command::new(DINGBRIDGE)
        .args(["--config", &config.display().to_string(), "serve", "--bind"])
        .arg(format!("127.0.0.1:{}", tests::procs::free_port().unwrap()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), second).await.expect("it exits").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("another dingbridge instance is serving the SQLite database"), "{stderr}");
    assert!(stderr.contains("cloud.db.lock"), "{stderr}");
    drop(first);
    let _ = std::fs::remove_dir_all(dir);
}

const EVENTS_TOKEN: &str = "feedtoken123";
const EVENTS_AES_KEY: &str = "feedAesKey0123456789abcdefghijklmnopqrstuvw";
const APP_KEY: &str = "dingemuappkey0001";

async fn admin(emulator: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new().post(format!("{emulator}{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

async fn userids(local: &str) -> Vec<String> {
    let users = tests::split::service_get(local, "/api/users").await;
    users.as_array().unwrap().iter().filter_map(|u| u["userid"].as_str().map(str::to_owned)).collect()
}

/// DingTalk pushes `user_modify_org` for `userid` to the first cloud; the cluster's feed poller
/// (whichever local leads it, long-polling whichever cloud) must add them within `within`.
async fn pushed_and_applied(cluster: &Cluster, local: &str, userid: &str, within: Duration) -> Duration {
    let out = admin(
        &cluster.emulator.base_url,
        "/_admin/push/contact",
        json!({"target": "app", "event_type": "user_modify_org", "user_ids": [userid], "corp_id": tests::split::CORP}),
    )
    .await;
    assert_eq!(out["accepted"], true, "{out}");
    let pushed = Instant::now();
    while !userids(local).await.iter().any(|u| u == userid) {
        assert!(pushed.elapsed() < within, "{userid} not applied within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pushed.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn the_feed_is_followed_by_one_local_and_taken_over_when_it_dies_across_clouds() {
    let cloud_env = [
        ("DINGBRIDGE_EVENTS__TOKEN", EVENTS_TOKEN.to_owned()),
        ("DINGBRIDGE_EVENTS__AES_KEY", EVENTS_AES_KEY.to_owned()),
        ("DINGBRIDGE_EVENTS__OWNER_KEY", APP_KEY.to_owned()),
    ];
    let mut cluster = cluster(EMULATOR, DINGBRIDGE, &cloud_env, &[]).await;
    // DingTalk pushes to the first cloud only (one callback URL): the second local long-polls the
    // second cloud, which learns of the events through PostgreSQL's NOTIFY.
    let out = admin(
        &cluster.emulator.base_url,
        "/_admin/callback",
        json!({"owner": "app", "url": format!("{}/dingtalk/events", cluster.clouds[0].base_url),
               "token": EVENTS_TOKEN, "aes_key": EVENTS_AES_KEY, "owner_key": APP_KEY}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    let locals: Vec<String> = cluster.locals.iter().map(|l| l.base_url.clone()).collect();

    let took = pushed_and_applied(&cluster, &locals[0], "user0001", Duration::from_secs(10)).await;
    eprintln!("applied in {took:?} with both locals up");

    // Whichever local led, kill the first: the second follows the feed (taking over if needed).
    cluster.locals[0].kill().await.unwrap();
    let took = pushed_and_applied(&cluster, &locals[1], "user0002", Duration::from_secs(15)).await;
    eprintln!("applied in {took:?} after the first local's SIGKILL");

    // Now the second dies with the lead (it is the only local): the restarted first takes over.
    cluster.locals[0].restart().await.unwrap();
    cluster.locals[1].kill().await.unwrap();
    let took = pushed_and_applied(&cluster, &locals[0], "user0003", Duration::from_secs(15)).await;
    eprintln!("applied in {took:?} after the leader's SIGKILL");

    // Nothing skipped: all three are in the directory, and the cluster's cursor is the last event's.
    let mut seen = userids(&locals[0]).await;
    seen.sort();
    assert_eq!(seen, ["user0001", "user0002", "user0003"]);
    let store = adapters::outbound::postgres::PgStore::connect(cluster.local_database_url(), 1).await.unwrap();
    let cursor = application::ports::FeedCursorStore::cursor(&store, "contact_events").await.unwrap();
    let page: Value = reqwest::Client::new()
        .get(format!("{}/relay/v1/events?after=0", cluster.clouds[0].base_url))
        .basic_auth(tests::split::CLIENT_A.0, Some(tests::split::CLIENT_A.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = page["events"].as_array().unwrap().iter().filter_map(|e| e["cursor"].as_i64()).max();
    assert_eq!(page["events"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(cursor, last, "the cluster's stored cursor is the last event's");
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn an_uncertain_batch_is_held_for_an_operator_and_sent_once_after_relay_resend() {
    use tests::split::{ASYNCSEND, CLIENT_A};
    let hold = [("DINGBRIDGE_DELIVERY__UNCERTAIN_BATCHES", "hold".to_owned())];
    let mut split = tests::split::split_with(EMULATOR, DINGBRIDGE, &hold, &[]).await;
    let emulator = split.emulator.base_url.clone();
    // DingTalk takes 60 s to answer a send: the cloud is killed while its call is under way.
    admin(&emulator, "/_admin/faults", json!({"path": ASYNCSEND, "latency_ms": 60_000, "rate": 0.0})).await;
    let res = split
        .api(
            reqwest::Method::POST,
            "/api/messages",
            Some(json!({"recipients": {"userids": ["user0042"]}, "body": {"msgtype": "text", "text": {"content": "uncertain #1"}}})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let in_flight: Value =
            reqwest::get(format!("{emulator}/_admin/in_flight")).await.unwrap().json().await.unwrap();
        if in_flight["count"].as_u64() >= Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the send never reached DingTalk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    split.cloud.kill().await.unwrap();
    reqwest::Client::new().delete(format!("{emulator}/_admin/faults")).send().await.unwrap();
    split.cloud.restart().await.unwrap();

    // Once the dead instance's claim ends, the restarted cloud finds the batch uncertain and holds
    // it: local shows why, and nothing more is sent.
    let held = split.wait_for_waiting(&id, "uncertain", Duration::from_secs(60)).await;
    assert_eq!(held["state"], "relayed", "{held}");
    let sends = |sends: Vec<Value>| sends.iter().filter(|s| s["msg"]["text"]["content"] == "uncertain #1").count();
    let before: Vec<Value> = reqwest::get(format!("{emulator}/_admin/sends")).await.unwrap().json().await.unwrap();
    assert_eq!(sends(before), 0, "the killed call was never answered, so DingTalk recorded nothing");

    // The operator resends it (the CLI, beside the running cloud): it goes out once.
    let out = tokio::process::Command::new(DINGBRIDGE)
        .args(["--config", &split.cloud_config().display().to_string(), "relay", "resend", "--client-id", CLIENT_A.0])
        .args(["--key", &id])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("due now"), "{stdout}");
    // Local learns it at its next look at the cloud (its checks back off to 30 s apart).
    let sent = split.wait_for_state(&id, &["sent", "completed"], Duration::from_secs(60)).await;
    assert_eq!(sent["task_ids"].as_array().map(Vec::len), Some(1), "{sent}");
    let after: Vec<Value> = reqwest::get(format!("{emulator}/_admin/sends")).await.unwrap().json().await.unwrap();
    assert_eq!(sends(after), 1);
    // A second resend is refused: nothing is held any more.
    let again = tokio::process::Command::new(DINGBRIDGE)
        .args(["--config", &split.cloud_config().display().to_string(), "relay", "resend", "--client-id", CLIENT_A.0])
        .args(["--key", &id])
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not held for an uncertain batch"));
    split.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn two_clouds_under_load_fetch_one_corp_token_and_one_app_token_between_them() {
    const CORP_2: &str = tests::split::SUITE_CORP;
    let corp = tests::split::CORP;
    let (cloud_env, local_env) = tests::split::suite_env();
    let cluster = cluster(EMULATOR, DINGBRIDGE, &cloud_env, &local_env).await;
    let emu = cluster.emulator.base_url.clone();
    // The suite is set up through the first cloud; the second learns it from the database.
    tests::split::connect_suite(&emu, &cluster.clouds[0].base_url).await;

    // 80 messages at once through both locals (so both clouds send), half to the suite's corp.
    let locals: Vec<String> = cluster.locals.iter().map(|l| l.base_url.clone()).collect();
    let mut posts = Vec::new();
    for i in 0..80 {
        let local = locals[i % 2].clone();
        let (corp_id, userid) =
            if i % 4 < 2 { (CORP_2, ["c2boss01", "c2staff02"][i % 2]) } else { (corp, "manager4220") };
        posts.push(tokio::spawn(async move {
            let body = json!({"corp_id": corp_id, "recipients": {"userids": [userid]},
                              "body": {"msgtype": "text", "text": {"content": format!("tokens #{i}")}}});
            reqwest::Client::new()
                .post(format!("{local}/api/messages"))
                .bearer_auth(SERVICE_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), StatusCode::ACCEPTED);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sends_with_prefix(&cluster, "tokens #").await < 80 {
        assert!(Instant::now() < deadline, "not every message reached DingTalk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both clouds sent for both corps, with one token of each kind between them.
    assert_eq!(
        tests::split::emulator_calls(&emu, "/v1.0/oauth2/corpAccessToken").await,
        1,
        "one corp token for the cluster"
    );
    assert_eq!(
        tests::split::emulator_calls(&emu, "/v1.0/oauth2/accessToken").await,
        1,
        "one app token for the cluster"
    );
    cluster.finish().await;
}

async fn sends_with_prefix(cluster: &Cluster, prefix: &str) -> usize {
    let sends: Vec<Value> =
        reqwest::get(format!("{}/_admin/sends", cluster.emulator.base_url)).await.unwrap().json().await.unwrap();
    sends.iter().filter(|s| s["msg"]["text"]["content"].as_str().is_some_and(|c| c.starts_with(prefix))).count()
}
