//! End-to-end tests of a third-party suite app in dev mode: dingbridge acts as the emulator's
//! suite (no internal app); the suite_ticket and the corps' authorizations arrive as signed,
//! encrypted pushes (docs/dingtalk-api.md §B.5, §E.6); each corp's token comes from
//! `/v1.0/oauth2/corpAccessToken` (§B.4) and each send uses that corp's agent id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::emulator::ConsentMode;
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};

const SUITE: &str = "suiteemukey0001";
const CORP_1: &str = "dingemucorp0001";
const CORP_2: &str = "dingemucorp0002";
const CORP_TOKEN: &str = "/v1.0/oauth2/corpAccessToken";
const APP_TOKEN: &str = "/v1.0/oauth2/accessToken";

async fn suite_stack() -> Stack {
    Stack::start(StackOptions { suite: true, ..StackOptions::ephemeral() }).await.expect("stack starts")
}

async fn send(stack: &Stack, corp_id: &str, userids: &[&str], body: Value) -> String {
    let request = json!({"corp_id": corp_id, "recipients": {"userids": userids}, "body": body});
    let res = reqwest::Client::new()
        .post(format!("{}/api/messages", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    accepted["id"].as_str().unwrap().to_owned()
}

async fn message(stack: &Stack, id: &str) -> Value {
    let url = format!("{}/api/messages/{id}", stack.base_url);
    reqwest::Client::new().get(url).bearer_auth(SERVICE_TOKEN).send().await.unwrap().json().await.unwrap()
}

/// Polls the message until its state is one of `states`.
async fn wait_for(stack: &Stack, id: &str, states: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let m = message(stack, id).await;
        if states.iter().any(|s| m["state"] == *s) {
            return m;
        }
        assert!(Instant::now() < deadline, "message {id} stuck: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the message until `check` holds (20 s deadline).
async fn wait_until(stack: &Stack, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = message(stack, id).await;
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "message {id}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_post(admin: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new().post(format!("{admin}{path}")).json(&body).send().await.unwrap();
    res.json().await.unwrap()
}

fn text(content: &str) -> Value {
    json!({"msgtype": "text", "text": {"content": content}})
}

#[tokio::test(flavor = "multi_thread")]
async fn two_corps_each_get_their_own_token_and_agent_id() {
    let stack = suite_stack().await;
    let emu = stack.emulator.state();

    // Both corps install the suite before any suite_ticket has arrived (a fresh deployment: DingTalk
    // pushes one about every 5 hours, docs/dingtalk-api.md §B.5).
    let admin = stack.emulator.base_url();
    let url = format!("{}/dingtalk/events", stack.base_url);
    admin_post(&admin, "/_admin/callback", json!({"owner": "suite", "suite_key": SUITE, "url": url})).await;
    for corp_id in [CORP_1, CORP_2] {
        let out =
            admin_post(&admin, "/_admin/push/org_suite_auth", json!({"suite_key": SUITE, "corp_id": corp_id})).await;
        assert_eq!(out["accepted"], true, "{out}");
    }
    // Without a suite_ticket no corp token can be fetched: the message waits, nothing is lost.
    // A recorded error proves that a dispatch attempt has finished (not merely that none ran yet).
    let early = send(&stack, CORP_2, &["c2boss01"], text("sent before the ticket")).await;
    let waiting = wait_until(&stack, &early, |m| m["attempts"].as_u64() >= Some(1) && m["error"].is_string()).await;
    assert!(["accepted", "relayed"].contains(&waiting["state"].as_str().unwrap()), "{waiting}");
    assert!(emu.sends().is_empty());
    assert_eq!(emu.calls_to(CORP_TOKEN), 0);

    let out = admin_post(&admin, &format!("/_admin/suites/{SUITE}/ticket"), json!({"push": true})).await;
    assert_eq!(out["push"]["accepted"], true, "{out}");
    let one = send(&stack, CORP_1, &["manager4220", "lisi0002"], text("to corp one")).await;
    let two = send(&stack, CORP_2, &["c2staff02"], text("to corp two")).await;
    let template = json!({"msgtype": "template", "template": {"template_id": "tpl-approval", "data": {"message": "请审批", "url": "https://erp.example/approvals/7"}}});
    let three = send(&stack, CORP_2, &["c2boss01", "c2lisi03"], template).await;
    for id in [&early, &one, &two, &three] {
        wait_for(&stack, id, &["sent", "completed"], Duration::from_secs(20)).await;
    }

    let sends = emu.sends();
    assert_eq!(sends.len(), 4, "each message sent exactly once");
    for s in &sends {
        assert_eq!(s.app_key, SUITE);
        let expected = if s.corp_id == CORP_1 { 400_001 } else { 400_002 };
        assert_eq!(s.agent_id, expected, "{} sent as the suite's agent in that corp", s.corp_id);
    }
    assert_eq!(sends.iter().filter(|s| s.corp_id == CORP_2).count(), 3);
    let templated = sends.iter().find(|s| s.msg.get("template_id").is_some()).expect("the template send");
    assert_eq!(templated.msg["template_id"], "tpl-approval");
    assert_eq!(templated.msg["data"]["message"], "请审批");
    assert_eq!(templated.userid_list, vec!["c2boss01".to_owned(), "c2lisi03".to_owned()]);
    assert_eq!(emu.calls_to("/topapi/message/corpconversation/sendbytemplate"), 1);
    // One corp token per corp (cached), never an app token.
    assert_eq!(emu.calls_to(CORP_TOKEN), 2);
    assert_eq!(emu.calls_to(APP_TOKEN), 0);

    // Tracking works with the corp's token too: per-recipient outcomes.
    let status = wait_for(&stack, &two, &["completed"], Duration::from_secs(20)).await;
    assert_eq!(status["delivery"]["recipients"], json!([{"outcome": "unread", "userid": "c2staff02"}]), "{status}");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_sign_in_through_the_suite() {
    let stack = suite_stack().await;
    stack.connect_suite().await.unwrap();
    stack.emulator.state().set_consent(ConsentMode::Approve { who: "manager4220".into() });
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let res = browser.get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.url());
    let me: Value = browser.get(format!("{}/api/me", stack.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["corp_id"], CORP_1);
    assert_eq!(me["userid"], "manager4220");
    let calls = stack.emulator.state().calls();
    let authorize = calls.iter().find(|c| c.path == "/oauth2/auth").expect("authorize call");
    assert!(authorize.query.contains(&format!("client_id={SUITE}")), "{}", authorize.query);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_the_suite_ticket_and_authorizations() {
    let mut stack = suite_stack().await;
    stack.connect_suite().await.unwrap();
    let before = send(&stack, CORP_2, &["c2boss01"], text("before the restart")).await;
    wait_for(&stack, &before, &["sent", "completed"], Duration::from_secs(20)).await;
    let pushes = stack.emulator.state().pushes().len();

    stack.restart().await.unwrap();
    let after = send(&stack, CORP_2, &["c2staff02"], text("after the restart")).await;
    wait_for(&stack, &after, &["sent", "completed"], Duration::from_secs(20)).await;
    let emu = stack.emulator.state();
    assert_eq!(emu.pushes().len(), pushes, "nothing was pushed again");
    assert_eq!(emu.calls_to(CORP_TOKEN), 2, "the new process fetched its own corp token with the stored ticket");
    assert!(emu.sends().iter().all(|s| s.agent_id == 400_002));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relieved_corp_is_no_longer_served() {
    let stack = suite_stack().await;
    stack.connect_suite().await.unwrap();
    let admin = stack.emulator.base_url();
    let out = admin_post(&admin, "/_admin/push/suite_relieve", json!({"suite_key": SUITE, "corp_id": CORP_2})).await;
    assert_eq!(out["accepted"], true, "{out}");
    let id = send(&stack, CORP_2, &["c2boss01"], text("after uninstall")).await;
    let failed = wait_for(&stack, &id, &["failed"], Duration::from_secs(20)).await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains(CORP_2)), "{failed}");
    assert!(stack.emulator.state().sends().is_empty());
    stack.stop_and_clean().await;
}
