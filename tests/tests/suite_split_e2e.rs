//! A cloud serving an internal app *and* a third-party suite, as real processes (emulator, cloud
//! on SQLite, local on PostgreSQL): the internal app serves its corp, the suite the corp that
//! authorized it, each with its own token and agent id; a SIGKILLed and restarted cloud still has
//! the suite_ticket and the authorizations (nothing is pushed again) and fetches a new corp token
//! with them. Built as ignored when PostgreSQL is unreachable at build time outside CI
//! (`adapters/build.rs`); fails when it runs without PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tests::split::{CORP, SUITE, SUITE_CORP as CORP_2, Split, split_with};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

const CORP_TOKEN: &str = "/v1.0/oauth2/corpAccessToken";

async fn split() -> Split {
    let (cloud_env, local_env) = tests::split::suite_env();
    let split = split_with(EMULATOR, DINGBRIDGE, &cloud_env, &local_env).await;
    tests::split::connect_suite(&split.emulator.base_url, &split.cloud.base_url).await;
    split
}

async fn send(split: &Split, corp_id: &str, userid: &str, content: &str) -> String {
    let body = json!({"corp_id": corp_id, "recipients": {"userids": [userid]},
                      "body": {"msgtype": "text", "text": {"content": content}}});
    let res = split.api(Method::POST, "/api/messages", Some(body)).await;
    assert_eq!(res.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    split.wait_for_state(&id, &["sent", "completed"], Duration::from_secs(20)).await;
    id
}

async fn sends(split: &Split) -> Vec<Value> {
    let url = format!("{}/_admin/sends", split.emulator.base_url);
    reqwest::Client::new().get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn an_internal_app_and_a_suite_side_by_side_and_a_cloud_restart_keeps_the_suite() {
    let mut split = split().await;
    send(&split, CORP, "manager4220", "internal app").await;
    send(&split, CORP_2, "c2boss01", "suite, before the restart").await;

    split.cloud.kill().await.unwrap();
    split.cloud.restart().await.unwrap();
    send(&split, CORP_2, "c2staff02", "suite, after the restart").await;

    let sends = sends(&split).await;
    let seen: Vec<(&str, i64, &str)> = sends
        .iter()
        .map(|s| (s["corp_id"].as_str().unwrap(), s["agent_id"].as_i64().unwrap(), s["app_key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [(CORP, 300_001, "dingemuappkey0001"), (CORP_2, 400_002, SUITE), (CORP_2, 400_002, SUITE)],
        "each corp served by its own app and agent id, each message once"
    );
    // Before the restart one corp token; the restarted process (empty cache) fetched one more with
    // the stored suite_ticket; nothing was pushed again.
    assert_eq!(split.emulator_calls(CORP_TOKEN).await, 2);
    let pushes: Vec<Value> = reqwest::Client::new()
        .get(format!("{}/_admin/pushes", split.emulator.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pushes.len(), 2, "ticket + authorization only");
    split.finish().await;
}
