//! End-to-end tests of Feishu / Lark beside DingTalk in dev mode: a real dingbridge, the
//! DingTalk emulator and the Feishu emulator on 127.0.0.1:0, driven by HTTP clients as browsers
//! and a calling service would (docs/feishu-api.md §A, §B.1, §C.1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tests::emulator::ConsentMode;
use tests::feishu_emulator::{ContactEventKind, FeishuConsent, encrypt_event, sign_event};
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};

/// The Feishu emulator's default tenant (`FeishuFixture::default`).
const TENANT: &str = "736588c9260f175d";

async fn stack() -> Stack {
    Stack::start(StackOptions::ephemeral()).await.expect("stack starts")
}

/// A browser that does not follow redirects, to inspect each hop.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') { format!("{base}{location}") } else { location.to_owned() }
}

/// Walks `/auth/{provider}/login` → the provider's consent (approving at once) → the cloud's
/// `/auth/{provider}/callback`; returns the callback URL (not yet called).
async fn until_callback(stack: &Stack, client: &reqwest::Client, provider: &str, provider_base: &str) -> String {
    let res = client.get(format!("{}/auth/{provider}/login?return_to=/", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "{provider} login redirects to the provider");
    let authorize = location(&res);
    assert!(authorize.starts_with(provider_base), "{authorize}");
    let res = client.get(&authorize).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "{provider} consent approves: {}",
        res.text().await.unwrap_or_default()
    );
    let callback = location(&res);
    assert!(callback.starts_with(&format!("{}/auth/{provider}/callback?", stack.base_url)), "{callback}");
    callback
}

/// Signs in with `provider` to the end; returns the `/api/me` body, or the failing page's status
/// and text.
async fn sign_in(
    stack: &Stack,
    client: &reqwest::Client,
    provider: &str,
    provider_base: &str,
) -> Result<Value, (StatusCode, String)> {
    let callback = until_callback(stack, client, provider, provider_base).await;
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "the callback redirects to the completion");
    let complete = absolute(&stack.base_url, &location(&res));
    assert!(complete.starts_with(&format!("{}/auth/{provider}/complete?state=", stack.base_url)), "{complete}");
    let res = client.get(&complete).send().await.unwrap();
    if res.status() != StatusCode::FOUND {
        return Err((res.status(), res.text().await.unwrap_or_default()));
    }
    let me = client.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    Ok(me.json().await.unwrap())
}

fn api(stack: &Stack, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().get(format!("{}{path}", stack.base_url)).bearer_auth(SERVICE_TOKEN)
}

/// Polls `GET /api/messages/{id}` until its state is one of `states` (10 s deadline).
async fn wait_for_state(stack: &Stack, id: &str, states: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let message: Value = api(stack, &format!("/api/messages/{id}")).send().await.unwrap().json().await.unwrap();
        if states.iter().any(|s| message["state"] == *s) {
            return message;
        }
        assert!(std::time::Instant::now() < deadline, "message {id} stuck: {message}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Polls `GET /api/messages/{id}` until it carries the provider's delivery report (10 s deadline).
async fn wait_for_delivery(stack: &Stack, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let message: Value = api(stack, &format!("/api/messages/{id}")).send().await.unwrap().json().await.unwrap();
        if message["delivery"].is_object() {
            return message["delivery"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "message {id} has no delivery report: {message}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn users(stack: &Stack) -> Vec<Value> {
    let res = reqwest::Client::new()
        .get(format!("{}/api/users", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dingtalk_person_and_a_feishu_person_sign_in_to_one_service_each_with_their_own_profile() {
    let stack = stack().await;
    let page = reqwest::get(&stack.base_url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Continue with DingTalk") && page.contains("Continue with Feishu"), "{page}");

    stack.emulator.state().set_consent(ConsentMode::Approve { who: "manager4220".into() });
    let dingtalk = sign_in(&stack, &browser(), "dingtalk", &stack.emulator.base_url()).await.unwrap();
    assert_eq!(dingtalk["provider"], "dingtalk");
    assert_eq!(dingtalk["userid"], "manager4220");

    stack.feishu.state().set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let person = browser();
    let feishu = sign_in(&stack, &person, "feishu", &stack.feishu.base_url()).await.unwrap();
    assert_eq!(feishu["provider"], "feishu");
    assert_eq!(feishu["corp_id"], TENANT, "the corp of a Feishu member is their tenant_key");
    assert_eq!(feishu["union_id"], "on_feishu_alice");
    assert_eq!(feishu["userid"], "fs_alice");
    assert_eq!(feishu["open_id"], "ou_feishu_alice");
    assert_eq!(feishu["name"], "李雷");
    assert_eq!(feishu["title"], "工程师");
    assert_eq!(feishu["active"], true);

    // A work notification to oneself: the Feishu member's goes to Feishu as a bot message
    // (docs/feishu-api.md §D.1) by user_id, once, with a uuid; the delivery report reads it back.
    let res = person.post(format!("{}/api/me/messages", stack.base_url)).json(&json!({"text": "hi"})).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap();
    let message = wait_for_state(&stack, id, &["sent", "completed"]).await;
    let sent = stack.feishu.state().messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].receive_id_type.as_str(), sent[0].receive_id.as_str()), ("user_id", "fs_alice"));
    assert_eq!((sent[0].msg_type.as_str(), sent[0].content.as_str()), ("text", r#"{"text":"hi"}"#));
    assert_eq!(sent[0].uuid.as_ref().map(String::len), Some(36), "a uuid makes a resend harmless");
    let delivery_ids = message["delivery_ids"].as_array().cloned().unwrap_or_default();
    assert_eq!(delivery_ids, vec![json!(format!("fs_alice={}", sent[0].message_id))]);
    assert_eq!(message["task_ids"], json!([]), "no DingTalk task");
    let report = wait_for_delivery(&stack, id).await;
    assert_eq!(report["recipients"], json!([{"userid": "fs_alice", "outcome": "unread"}]), "{report}");
    assert_eq!(stack.emulator.state().sends().len(), 0, "nothing went to DingTalk");
    // The same text again is sent again: DingTalk's same-content rule is not Feishu's.
    let res = person.post(format!("{}/api/me/messages", stack.base_url)).json(&json!({"text": "hi"})).send();
    let again: Value = res.await.unwrap().json().await.unwrap();
    wait_for_state(&stack, again["id"].as_str().unwrap(), &["sent", "completed"]).await;
    assert_eq!(stack.feishu.state().message_count(), 2);

    // Bodies are checked by the tenant's provider before anything is stored: DingTalk's own `oa`
    // is not a Feishu message; Feishu's own `post` is, and goes through as it was written; 700
    // Chinese characters are over DingTalk's 2048 bytes but fine for Feishu.
    let post_message = |corp: &str, userid: &str, body: Value| {
        reqwest::Client::new()
            .post(format!("{}/api/messages", stack.base_url))
            .bearer_auth(SERVICE_TOKEN)
            .json(&json!({"corp_id": corp, "recipients": {"userids": [userid]}, "body": body}))
            .send()
    };
    let listed_before: Vec<Value> = api(&stack, "/api/messages").send().await.unwrap().json().await.unwrap();
    let oa = json!({"msgtype": "oa", "oa": {"message_url": "https://a.example", "head": {"bgcolor": "FFBBBBBB", "text": "h"}, "body": {"title": "t"}}});
    let res = post_message(TENANT, "fs_alice", oa.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = res.json().await.unwrap();
    assert_eq!(refused["fields"]["body.msgtype"]["code"], "unsupported", "{refused}");
    let long = json!({"msgtype": "text", "text": {"content": "钉".repeat(700)}});
    let res = post_message("dingemucorp0001", "manager4220", long.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "DingTalk's 2048 bytes");
    let listed_after: Vec<Value> = api(&stack, "/api/messages").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed_after.len(), listed_before.len(), "nothing was stored");
    let post = json!({"zh_cn": {"title": "周报", "content": [[{"tag": "text", "text": "见 "}, {"tag": "a", "text": "链接", "href": "https://a.example"}]]}});
    let res = post_message(TENANT, "fs_alice", json!({"msgtype": "post", "post": post})).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    wait_for_state(&stack, accepted["id"].as_str().unwrap(), &["sent", "completed"]).await;
    let res = post_message(TENANT, "fs_alice", long).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    wait_for_state(&stack, accepted["id"].as_str().unwrap(), &["sent", "completed"]).await;
    let sent = stack.feishu.state().messages();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent[2].msg_type, "post");
    assert_eq!(serde_json::from_str::<Value>(&sent[2].content).unwrap(), post);
    assert_eq!(sent[3].msg_type, "text");
    assert_eq!(stack.emulator.state().sends().len(), 0, "nothing went to DingTalk");

    let listed = users(&stack).await;
    let providers: Vec<&str> = listed.iter().filter_map(|u| u["provider"].as_str()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(providers.contains(&"dingtalk") && providers.contains(&"feishu"), "{providers:?}");

    // The sign-in used PKCE S256 (the emulator refuses a missing or wrong verifier with 20049,
    // docs/feishu-api.md §A.3) and one tenant token for the directory (§B.1).
    let calls = stack.feishu.state().calls();
    let authorize = calls.iter().find(|c| c.path == "/open-apis/authen/v1/authorize").expect("authorize called");
    assert!(authorize.query.contains("code_challenge_method=S256"), "{}", authorize.query);
    let token = calls.iter().find(|c| c.path == "/open-apis/authen/v2/oauth/token").expect("token called");
    assert!(token.body.contains("code_verifier") && token.status == 200, "{token:?}");
    assert_eq!(stack.feishu.state().tenant_token_fetches(), 1);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_who_leaves_feishu_loses_their_session_at_the_next_feed_poll() {
    let stack = stack().await;
    let events = format!("{}/feishu/events", stack.base_url);
    // The console's URL check (docs/feishu-api.md §E.2): the challenge comes back.
    stack.feishu.state().push_url_verification(&events).await.unwrap();
    stack.feishu.state().set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let person = browser();
    let me = sign_in(&stack, &person, "feishu", &stack.feishu.base_url()).await.unwrap();
    assert_eq!(me["active"], true);

    // Alice leaves (员工离职, §E.7): an encrypted, signed v2.0 push to the cloud's callback.
    let push = stack.feishu.state().push_contact_event(&events, ContactEventKind::Deleted, "ou_feishu_alice").await;
    let push = push.unwrap();
    assert_eq!((push.status, push.body.as_str()), (200, r#"{"msg":"success"}"#));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = person.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
        if res.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the session survived the leave event");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stored = users(&stack).await;
    assert_eq!((stored.len(), stored[0]["active"].as_bool()), (1, Some(false)), "kept, inactive: {stored:?}");
    // She cannot sign in again (resigned: user_info 20021, §A.5).
    let (status, _) = sign_in(&stack, &browser(), "feishu", &stack.feishu.base_url()).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A forged push — encrypted with the right key, but not signed with it (§E.5) — is refused.
    let key = &stack.feishu.state().config().fixture.encrypt_key.clone();
    let plaintext = format!(
        r#"{{"schema":"2.0","header":{{"event_id":"forged-1","event_type":"contact.user.deleted_v3","token":"{}","app_id":"cli_a5d611352af9d00b","tenant_key":"{TENANT}"}},"event":{{"object":{{"user_id":"fs_erin"}}}}}}"#,
        stack.feishu.state().config().fixture.verification_token
    );
    let body = format!(r#"{{"encrypt":"{}"}}"#, encrypt_event(key, plaintext.as_bytes(), [7; 16]));
    let forged = reqwest::Client::new()
        .post(&events)
        .header("x-lark-request-timestamp", "1")
        .header("x-lark-request-nonce", "n")
        .header("x-lark-signature", sign_event("1", "n", "not-the-key", body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(forged.text().await.unwrap().contains("invalid_signature"));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_people_the_deployment_does_not_serve_are_refused_and_not_stored() {
    let stack = stack().await;
    // olivia: another tenant (docs/feishu-api.md §A.5 membership); bob: resigned (20021);
    // dave: outside the app's availability (20010 at the code exchange, §A.3).
    for who in ["ou_feishu_olivia", "ou_feishu_bob", "ou_feishu_dave"] {
        stack.feishu.state().set_consent(FeishuConsent::Approve { open_id: who.into() });
        let (status, page) = sign_in(&stack, &browser(), "feishu", &stack.feishu.base_url()).await.unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {page}");
        assert!(page.contains("not_member"), "{who}: {page}");
    }
    assert!(users(&stack).await.is_empty(), "nobody was stored");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_cannot_change_provider_and_an_unknown_provider_is_404() {
    let stack = stack().await;
    stack.feishu.state().set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let client = browser();
    let callback = until_callback(&stack, &client, "feishu", &stack.feishu.base_url()).await;
    // The Feishu code brought to DingTalk's callback: the state was started with Feishu.
    let swapped = callback.replace("/auth/feishu/callback", "/auth/dingtalk/callback");
    let res = client.get(&swapped).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("invalid_login_state"));
    // The intent is spent: the real callback cannot use it either.
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    for path in ["/auth/wecom/login", "/auth/wecom/complete?state=x", "/auth/Feishu/callback?state=x"] {
        let res = client.get(format!("{}{path}", stack.base_url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(res.text().await.unwrap().contains("unknown_provider"), "{path}");
    }
    assert!(users(&stack).await.is_empty());
    stack.stop_and_clean().await;
}
