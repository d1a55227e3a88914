//! End-to-end tests of dev mode: a real dingbridge and the DingTalk emulator on
//! 127.0.0.1:0, driven by HTTP clients as a browser and a calling service would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tests::emulator::ConsentMode;
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};

const ASYNCSEND: &str = "/topapi/message/corpconversation/asyncsend_v2";
const APP_TOKEN: &str = "/v1.0/oauth2/accessToken";

async fn stack() -> Stack {
    Stack::start(StackOptions::ephemeral()).await.expect("stack starts")
}

/// A browser: cookie jar, follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().unwrap()
}

/// A browser that does not follow redirects, to inspect each hop.
fn manual_browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') { format!("{base}{location}") } else { location.to_owned() }
}

fn approve(stack: &Stack, who: &str) {
    stack.emulator.state().set_consent(ConsentMode::Approve { who: who.into() });
}

/// Walks login → DingTalk → callback, stopping before `/auth/dingtalk/complete`; returns its URL.
async fn until_complete(stack: &Stack, client: &reqwest::Client, return_to: &str) -> String {
    let res = client
        .get(format!("{}/auth/dingtalk/login", stack.base_url))
        .query(&[("return_to", return_to)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "login redirects to DingTalk");
    let authorize = location(&res);
    assert!(authorize.starts_with(&stack.emulator.base_url()), "{authorize}");
    let res = client.get(&authorize).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "consent approves");
    let callback = location(&res);
    assert!(callback.starts_with(&format!("{}/auth/dingtalk/callback", stack.base_url)), "{callback}");
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "callback redirects to complete");
    let complete = absolute(&stack.base_url, &location(&res));
    assert!(complete.starts_with(&format!("{}/auth/dingtalk/complete?state=", stack.base_url)), "{complete}");
    assert!(!complete.contains("code"), "no code in the complete URL");
    complete
}

async fn api_get(stack: &Stack, path: &str) -> reqwest::Response {
    reqwest::Client::new().get(format!("{}{path}", stack.base_url)).bearer_auth(SERVICE_TOKEN).send().await.unwrap()
}

async fn api_post(stack: &Stack, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Polls `GET /api/messages/{id}` until its state is one of `states` (10 s deadline).
async fn wait_for_state(stack: &Stack, id: &str, states: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let message: Value = api_get(stack, &format!("/api/messages/{id}")).await.json().await.unwrap();
        if states.iter().any(|s| message["state"] == *s) {
            return message;
        }
        assert!(std::time::Instant::now() < deadline, "message {id} stuck: {message}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn stored_users(stack: &Stack) -> Vec<Value> {
    api_get(stack, "/api/users").await.json::<Vec<Value>>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_login_lands_on_return_to_with_a_session() {
    let stack = stack().await;
    approve(&stack, "manager4220");
    let client = browser();
    let res = client
        .get(format!("{}/auth/dingtalk/login", stack.base_url))
        .query(&[("return_to", "/?after=login")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.url().as_str(), format!("{}/?after=login", stack.base_url));

    let me: Value = client.get(format!("{}/api/me", stack.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["corp_id"], "dingemucorp0001");
    assert_eq!(me["userid"], "manager4220");
    assert_eq!(me["name"], "张三");
    assert!(me["union_id"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(stored_users(&stack).await.len(), 1);

    // Sign out: the session is gone.
    let res = client.post(format!("{}/auth/logout", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_state_is_refused_and_opens_no_session() {
    let stack = stack().await;
    approve(&stack, "lisi0002");
    let client = manual_browser();
    let complete = until_complete(&stack, &client, "/").await;
    let cookie_header = {
        // Capture the login cookie to replay it later.
        let res = client.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        complete.split("state=").nth(1).unwrap().to_owned()
    };
    let first = client.get(&complete).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);

    // Replay: a second browser presents the same state and its cookie.
    let replay = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let res = replay.get(&complete).header("cookie", format!("dingbridge_login={cookie_header}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.headers().get_all("set-cookie").iter().all(|c| !c
            .to_str()
            .unwrap_or("")
            .starts_with("dingbridge_session=")
            || c.to_str().unwrap_or("").starts_with("dingbridge_session=;"))
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("invalid_login_state"), "{body}");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_without_its_cookie_is_refused() {
    let stack = stack().await;
    approve(&stack, "lisi0002");
    let complete = until_complete(&stack, &manual_browser(), "/").await;
    let stranger = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let res = stranger.get(&complete).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("invalid_login_state"));
    assert!(stored_users(&stack).await.is_empty(), "no user stored");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_member_is_refused_and_not_stored() {
    let stack = stack().await;
    approve(&stack, "outsider-union-0001");
    let res = browser().get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let page = res.text().await.unwrap();
    assert!(page.contains("not_member"), "{page}");
    assert!(stored_users(&stack).await.is_empty());
    assert_eq!(stack.emulator.state().calls_to("/topapi/user/getbyunionid"), 1);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_return_to_lands_on_root() {
    let stack = stack().await;
    approve(&stack, "manager4220");
    let res = browser()
        .get(format!("{}/auth/dingtalk/login", stack.base_url))
        .query(&[("return_to", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.url().as_str(), format!("{}/", stack.base_url));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_consent_shows_a_clear_error() {
    let stack = stack().await;
    stack.emulator.state().set_consent(ConsentMode::Deny { error: "access_denied".into() });
    let res = browser().get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let page = res.text().await.unwrap();
    assert!(page.contains("consent_denied") && page.contains("declined"), "{page}");
    assert!(stored_users(&stack).await.is_empty());
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consent_page_works_for_a_browser_that_clicks() {
    let stack = stack().await; // default consent mode: the page
    let client = browser();
    let page = client.get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let url = page.url().clone();
    let html = page.text().await.unwrap();
    let href = html
        .split("id=\"approve-wangwu0003\"")
        .nth(1)
        .and_then(|after| after.split("href=\"").nth(1))
        .and_then(|h| h.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .expect("approve link");
    let res = client.get(url.join(&href).unwrap()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = client.get(format!("{}/api/me", stack.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["userid"], "wangwu0003");
    stack.stop_and_clean().await;
}

fn userids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("user{i:04}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_to_250_users_is_three_calls_and_reports_each_recipient() {
    let stack = stack().await;
    let res = api_post(
        &stack,
        "/api/messages",
        &json!({"recipients": {"userids": userids(250)}, "body": {"msgtype": "text", "text": {"content": "quarterly update"}}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    assert_eq!(accepted["state"], "accepted");
    let message = wait_for_state(&stack, accepted["id"].as_str().unwrap(), &["sent", "completed"]).await;
    assert_eq!(message["task_ids"].as_array().map(Vec::len), Some(3));

    let sends = stack.emulator.state().sends();
    let sizes: Vec<usize> = sends.iter().map(|s| s.userid_list.len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    assert!(sends.iter().all(|s| s.agent_id == 300001));
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 3);

    let id = message["id"].as_str().unwrap();
    let status: Value = api_get(&stack, &format!("/api/messages/{id}")).await.json().await.unwrap();
    let recipients = status["delivery"]["recipients"].as_array().expect("per-recipient results");
    assert_eq!(recipients.len(), 250);
    assert!(recipients.iter().all(|r| r["outcome"] == "unread"), "{recipients:?}");
    assert_eq!(status["delivery"]["done"], true);
    assert_eq!(status["state"], "completed");
    for stamp in ["relayed_at", "sent_at", "finished_at"] {
        assert!(status[stamp].is_string(), "{stamp} is set: {status}");
    }
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_invalid_recipients_and_skips_what_dingtalk_would_silently_drop() {
    let stack = stack().await;
    let body = json!({"recipients": {"userids": ["manager4220", "nobody-here"]}, "body": {"msgtype": "text", "text": {"content": "same text"}}});
    let first: Value = api_post(&stack, "/api/messages", &body).await.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap();
    wait_for_state(&stack, first_id, &["sent", "completed"]).await;
    let status: Value = api_get(&stack, &format!("/api/messages/{first_id}")).await.json().await.unwrap();
    let recipients = status["delivery"]["recipients"].as_array().unwrap();
    assert!(recipients.contains(&json!({"userid": "nobody-here", "outcome": "invalid_user"})), "{recipients:?}");
    assert!(recipients.contains(&json!({"userid": "manager4220", "outcome": "unread"})), "{recipients:?}");

    // The same content to the same people today: DingTalk would answer success and deliver
    // nothing (docs/dingtalk-api.md §D.6), so the cloud does not send it and says so.
    let second: Value = api_post(&stack, "/api/messages", &body).await.json().await.unwrap();
    let id = second["id"].as_str().unwrap();
    wait_for_state(&stack, id, &["sent", "completed"]).await;
    let status: Value = api_get(&stack, &format!("/api/messages/{id}")).await.json().await.unwrap();
    let recipients = status["delivery"]["recipients"].as_array().unwrap();
    for userid in ["manager4220", "nobody-here"] {
        assert!(
            recipients.contains(&json!({"userid": userid, "outcome": "skipped", "code": "duplicate_content"})),
            "{recipients:?}"
        );
    }
    assert_eq!(status["delivery"]["done"], true, "{status}");
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 1, "the duplicate never reached DingTalk");
    // Other content still goes.
    let other = json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "other text"}}});
    let third: Value = api_post(&stack, "/api/messages", &other).await.json().await.unwrap();
    let message = wait_for_state(&stack, third["id"].as_str().unwrap(), &["sent", "completed"]).await;
    assert_eq!(message["task_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 2);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_422_naming_the_field_and_send_nothing() {
    let stack = stack().await;
    let cases = [
        (
            json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "x".repeat(3000)}}}),
            "body.text.content",
        ),
        (
            json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "钉".repeat(700)}}}),
            "body",
        ),
        (
            json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {}}}),
            "body.text.content",
        ),
        // A type the corp's provider does not take; a type without its object.
        (json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "sms", "sms": {}}}), "body.msgtype"),
        (json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "sms"}}), "body.sms"),
        (json!({"recipients": {}, "body": {"msgtype": "text", "text": {"content": "hi"}}}), "recipients"),
        (
            json!({"recipients": {"dept_ids": (1..=21).collect::<Vec<i64>>()}, "body": {"msgtype": "text", "text": {"content": "hi"}}}),
            "recipients.dept_ids",
        ),
        (
            json!({"recipients": {"userids": ["a,b"]}, "body": {"msgtype": "text", "text": {"content": "hi"}}}),
            "recipients.userids[0]",
        ),
        (
            json!({"recipients": {"user_ids": ["no-such-local-user"]}, "body": {"msgtype": "text", "text": {"content": "hi"}}}),
            "recipients.user_ids",
        ),
        (json!({"recipients": {"userids": ["manager4220"]}}), "body"),
    ];
    for (body, field) in cases {
        let res = api_post(&stack, "/api/messages", &body).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let error: Value = res.json().await.unwrap();
        assert!(
            error["fields"].get(field).is_some() || error["message"].as_str().unwrap_or("").contains(field),
            "{field}: {error}"
        );
    }
    let res = reqwest::Client::new()
        .post(format!("{}/api/messages", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "malformed_json");
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 0, "nothing was sent");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_api_needs_the_token() {
    let stack = stack().await;
    let res = reqwest::Client::new().get(format!("{}/api/users", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
    let res = reqwest::Client::new()
        .get(format!("{}/api/users", stack.base_url))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "unauthorized");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_concurrent_sends_after_a_cold_start_fetch_one_app_token() {
    let stack = Arc::new(stack().await);
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (client, base) = (client.clone(), stack.base_url.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/messages"))
                .bearer_auth(SERVICE_TOKEN)
                .json(&json!({"recipients": {"userids": [format!("user{:04}", i % 400 + 1)]}, "body": {"msgtype": "text", "text": {"content": format!("message {i}")}}}))
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), StatusCode::ACCEPTED);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stack.emulator.state().calls_to(ASYNCSEND) < 500 {
        assert!(std::time::Instant::now() < deadline, "not all messages were sent");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stack.emulator.state().calls_to(APP_TOKEN), 1, "exactly one app-token call");
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 500);
    if let Ok(stack) = Arc::try_unwrap(stack) {
        stack.stop_and_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recall_and_self_messages_work() {
    let stack = stack().await;
    approve(&stack, "manager4220");
    let client = browser();
    client.get(format!("{}/auth/dingtalk/login", stack.base_url)).send().await.unwrap();
    let res = client
        .post(format!("{}/api/me/messages", stack.base_url))
        .json(&json!({"text": "note to self"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let message: Value = res.json().await.unwrap();
    wait_for_state(&stack, message["id"].as_str().unwrap(), &["sent", "completed"]).await;
    let sends = stack.emulator.state().sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].userid_list, vec!["manager4220".to_owned()]);

    let id = message["id"].as_str().unwrap();
    let res = api_post(&stack, &format!("/api/messages/{id}/recall"), &json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "recalled");
    assert!(stack.emulator.state().sends()[0].recalled);
    let res = api_get(&stack, "/api/messages/does-not-exist").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_openapi_are_served() {
    let stack = stack().await;
    for path in ["/healthz", "/readyz"] {
        let res = reqwest::get(format!("{}{path}", stack.base_url)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers().contains_key("x-request-id"));
    }
    let doc: Value = reqwest::get(format!("{}/openapi.json", stack.base_url)).await.unwrap().json().await.unwrap();
    for path in [
        "/api/messages",
        "/api/messages/{id}",
        "/api/users",
        "/api/me",
        "/auth/{provider}/login",
        "/auth/{provider}/callback",
        "/auth/{provider}/complete",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let res = reqwest::get(format!("{}/swagger-ui/", stack.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_returns_the_same_message_and_refuses_a_different_one() {
    let stack = stack().await;
    let body =
        json!({"recipients": {"userids": ["lisi0002"]}, "body": {"msgtype": "text", "text": {"content": "once"}}});
    let post = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/api/messages", stack.base_url))
            .bearer_auth(SERVICE_TOKEN)
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };
    let first: Value = post(body.clone()).await.unwrap().json().await.unwrap();
    let again = post(body.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let other =
        json!({"recipients": {"userids": ["lisi0002"]}, "body": {"msgtype": "text", "text": {"content": "twice"}}});
    let res = post(other).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "idempotency_key_reused");
    wait_for_state(&stack, first["id"].as_str().unwrap(), &["sent", "completed"]).await;
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 1);
    let listed: Vec<Value> = api_get(&stack, "/api/messages").await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    let failed: Vec<Value> = api_get(&stack, "/api/messages?status=failed").await.json().await.unwrap();
    assert!(failed.is_empty());
    let res = api_get(&stack, "/api/messages?status=bogus").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    stack.stop_and_clean().await;
}
