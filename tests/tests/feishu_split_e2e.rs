//! Feishu / Lark beside DingTalk in the split deployment, across real processes on loopback: the
//! DingTalk emulator, the Feishu emulator, `dingbridge` cloud (holding both apps) and `dingbridge`
//! local on PostgreSQL (offering both sign-ins). Without PostgreSQL at build time (outside CI)
//! the test is built as ignored (`adapters/build.rs`); a test that runs without it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::procs::Proc;
use tests::split::{CLIENT_A, CORP, browser};

const EMULATOR: &str = env!("CARGO_BIN_EXE_dingtalk-emulator");
const FEISHU_EMULATOR: &str = env!("CARGO_BIN_EXE_feishu-emulator");
const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");
/// The Feishu emulator's default app and tenant (`FeishuFixture::default`).
const FEISHU_APP: (&str, &str) = ("cli_a5d611352af9d00b", "EmuFeishuAppSecret0000000000001");
const TENANT: &str = "736588c9260f175d";

/// The messages the Feishu emulator accepted (its admin API).
async fn feishu_messages(base: &str) -> Vec<Value> {
    let res = reqwest::get(format!("{base}/_admin/messages")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn a_dingtalk_and_a_feishu_person_sign_in_through_the_relay_to_one_local() {
    let feishu = Proc::emulator(FEISHU_EMULATOR).await.unwrap();
    let base = feishu.base_url.clone();
    let cloud_env = [
        ("DINGBRIDGE_FEISHU__APP_ID", FEISHU_APP.0.to_owned()),
        ("DINGBRIDGE_FEISHU__APP_SECRET", FEISHU_APP.1.to_owned()),
        ("DINGBRIDGE_FEISHU__TENANT_KEYS", format!("[\"{TENANT}\"]")),
        ("DINGBRIDGE_FEISHU__OPEN_BASE", base.clone()),
        ("DINGBRIDGE_FEISHU__ACCOUNTS_BASE", base.clone()),
    ];
    let local_env = [
        ("DINGBRIDGE_LOGIN__PROVIDERS", r#"["dingtalk","feishu"]"#.to_owned()),
        // The tenants local sends messages to: DingTalk's corp first (the default), then Feishu's,
        // which local checks messages for by Feishu's rules.
        ("DINGBRIDGE_CLOUD__CORP_IDS", format!("[\"{CORP}\"]")),
        ("DINGBRIDGE_FEISHU__TENANT_KEYS", format!("[\"{TENANT}\"]")),
    ];
    let split = tests::split::split_with(EMULATOR, DINGBRIDGE, &cloud_env, &local_env).await;

    // DingTalk, as before.
    split.approve("manager4220").await;
    let dingtalk = browser(true);
    let res = dingtalk.get(format!("{}/auth/dingtalk/login?return_to=/welcome", split.local.base_url)).send().await;
    assert_eq!(res.unwrap().url().path(), "/welcome");

    // Feishu: local → cloud (relay) → Feishu consent → the cloud's /auth/feishu/callback → local.
    let consent = reqwest::Client::new()
        .post(format!("{base}/_admin/consent"))
        .json(&json!({"mode": "approve", "open_id": "ou_feishu_alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    let person = browser(false);
    let mut url = format!("{}/auth/feishu/login?return_to=/welcome", split.local.base_url);
    let mut hops: Vec<String> = Vec::new();
    loop {
        let res = person.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "{url}: {}", res.text().await.unwrap_or_default());
        let next = res.headers()["location"].to_str().unwrap().to_owned();
        url = if next.starts_with('/') { format!("{}{next}", split.local.base_url) } else { next };
        hops.push(url.split('?').next().unwrap_or_default().to_owned());
        assert!(hops.len() < 6, "{hops:?}");
        if hops.last().is_some_and(|hop| hop.ends_with("/welcome")) {
            break;
        }
    }
    assert_eq!(
        hops,
        [
            format!("{base}/open-apis/authen/v1/authorize"),
            format!("{}/auth/feishu/callback", split.cloud.base_url),
            format!("{}/auth/feishu/complete", split.local.base_url),
            format!("{}/welcome", split.local.base_url),
        ]
    );

    let me: Value = person.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!((me["provider"].as_str(), me["corp_id"].as_str()), (Some("feishu"), Some(TENANT)));
    assert_eq!((me["userid"].as_str(), me["name"].as_str()), (Some("fs_alice"), Some("李雷")));
    let them: Value =
        dingtalk.get(format!("{}/api/me", split.local.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!((them["provider"].as_str(), them["corp_id"].as_str()), (Some("dingtalk"), Some(CORP)));

    let users: Vec<Value> = split.api(reqwest::Method::GET, "/api/users", None).await.json().await.unwrap();
    let mut providers: Vec<&str> = users.iter().filter_map(|u| u["provider"].as_str()).collect();
    providers.sort_unstable();
    assert_eq!(providers, ["dingtalk", "feishu"], "both members are stored in local's PostgreSQL");

    // A notification to the Feishu member: local's outbox → relay → cloud → Feishu, once.
    let res = person.post(format!("{}/api/me/messages", split.local.base_url)).json(&json!({"text": "hi"})).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    let message = split.wait_for_state(&id, &["sent", "completed"], std::time::Duration::from_secs(10)).await;
    let sent = feishu_messages(&base).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["receive_id"].as_str(), sent[0]["msg_type"].as_str()), (Some("fs_alice"), Some("text")));
    // The same relay request again (a retry after a lost answer): the same receipt, no second message.
    for _ in 0..2 {
        let res = split
            .relay(CLIENT_A, reqwest::Method::POST, "/relay/v1/messages")
            .json(&json!({"key": id, "corp_id": TENANT, "recipients": {"userids": ["fs_alice"]},
                          "body": {"msgtype": "text", "text": {"content": "hi"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let receipt: Value = res.json().await.unwrap();
        assert_eq!(receipt["delivery_ids"], message["delivery_ids"], "{receipt}");
    }
    assert_eq!(feishu_messages(&base).await.len(), 1, "the Feishu member got it once");
    // The DingTalk member's notification still goes to DingTalk.
    let res = dingtalk.post(format!("{}/api/me/messages", split.local.base_url)).json(&json!({"text": "hi"})).send();
    let accepted: Value = res.await.unwrap().json().await.unwrap();
    let theirs = split
        .wait_for_state(accepted["id"].as_str().unwrap(), &["sent", "completed"], std::time::Duration::from_secs(10))
        .await;
    assert_eq!(theirs["task_ids"].as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(feishu_messages(&base).await.len(), 1);
    // A DingTalk-only body for the Feishu tenant: local refuses it before storing it (it knows the
    // tenant is Feishu's), and so does the cloud when asked directly.
    let card = json!({"msgtype": "action_card", "action_card": {"title": "T", "markdown": "m",
                      "single_title": "Open", "single_url": "https://a.example"}});
    let body = json!({"corp_id": TENANT, "recipients": {"userids": ["fs_alice"]}, "body": card});
    let res = split.api(reqwest::Method::POST, "/api/messages", Some(body)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = res.json().await.unwrap();
    assert_eq!(refused["fields"]["body.msgtype"]["code"], "unsupported", "{refused}");
    let res = split
        .relay(CLIENT_A, reqwest::Method::POST, "/relay/v1/messages")
        .json(&json!({"key": "card-1", "corp_id": TENANT, "recipients": {"userids": ["fs_alice"]}, "body": card}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(feishu_messages(&base).await.len(), 1);
    split.finish().await;
}
