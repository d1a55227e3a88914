//! Directory and fixture tests of the Feishu emulator (docs/feishu-api.md §A.5, §C.2, §0.6).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::tests::env;
use super::*;

const BATCH: &str = "/open-apis/contact/v3/users/batch_get_id";

#[tokio::test]
async fn batch_get_id_answers_one_entry_per_input() {
    let env = env().await;
    let token = env.tenant_token().await;
    let body = json!({
        "emails": ["alice@feishu-emulator.example", "bob@feishu-emulator.example", "nobody@x.example",
                   "olivia@feishu-emulator.example"],
        "mobiles": ["13800000001", "+8613800000003"],
    });
    let res = env.http.post(env.url(&format!("{BATCH}?user_id_type=union_id"))).bearer_auth(&token).json(&body).send();
    let v: Value = res.await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], 0, "{v}");
    let list = v["data"]["user_list"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(list[0]["user_id"], "on_feishu_alice");
    assert_eq!(list[0]["status"]["is_activated"], true);
    assert!(list[1].get("user_id").is_none(), "resigned excluded by default");
    assert!(list[2].get("user_id").is_none(), "unknown");
    assert!(list[3].get("user_id").is_none(), "another tenant is not visible");
    assert_eq!(list[4]["user_id"], "on_feishu_alice");
    assert_eq!(list[4]["mobile"], "13800000001");
    assert_eq!(list[5]["user_id"], "on_feishu_carol");
    let body = json!({"emails": ["bob@feishu-emulator.example"], "include_resigned": true});
    let res = env.http.post(env.url(BATCH)).bearer_auth(&token).json(&body).send();
    let v: Value = res.await.unwrap().json().await.unwrap();
    assert_eq!(v["data"]["user_list"][0]["user_id"], "ou_feishu_bob");
    assert_eq!(v["data"]["user_list"][0]["status"]["is_resigned"], true);
    let too_many: Vec<String> = (0..51).map(|i| format!("u{i}@x.example")).collect();
    let res = env.http.post(env.url(BATCH)).bearer_auth(&token).json(&json!({"emails": too_many})).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 40001);
}

#[tokio::test]
async fn tenant_query_and_user_token_expiry() {
    let env = env().await;
    let token = env.tenant_token().await;
    let (status, v) = env.get_auth("/open-apis/tenant/v2/tenant/query", &token).await;
    assert_eq!((status, v["data"]["tenant"]["tenant_key"].as_str()), (200, Some("736588c9260f175d")));
    // A user token expires after token_ttl_secs (emulator clock) → 20005, HTTP 200 (§A.5).
    env.emu.set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let url = format!(
        "{}?client_id={}&response_type=code&redirect_uri=http%3A%2F%2Fapp.example%2Fcb",
        env.url("/open-apis/authen/v1/authorize"),
        tests::APP_ID
    );
    let res = env.http.get(url).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let code = location.split("code=").nth(1).unwrap().to_owned();
    let secret = env.emu.config().fixture.app_secret.clone();
    let body =
        json!({"grant_type": "authorization_code", "client_id": tests::APP_ID, "client_secret": secret, "code": code});
    let (_, v) = env.post("/open-apis/authen/v2/oauth/token", body).await;
    let access = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(env.get_auth("/open-apis/authen/v1/user_info", &access).await.1["code"], 0);
    env.emu.advance_clock(7200);
    let (status, v) = env.get_auth("/open-apis/authen/v1/user_info", &access).await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(20005)));
}

#[tokio::test]
async fn fixtures_load_from_json_and_are_validated() {
    let fixture = FeishuFixture::default();
    fixture.validate().unwrap();
    let path = std::env::temp_dir().join(format!("feishu-fixture-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
    assert_eq!(FeishuFixture::load(&path).unwrap(), fixture);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"status\": \"resigned\""), "statuses are lower-case");
    let mut dup = fixture.clone();
    dup.outsiders[0].open_id = "ou_feishu_alice".to_owned();
    std::fs::write(&path, serde_json::to_string(&dup).unwrap()).unwrap();
    assert!(FeishuFixture::load(&path).unwrap_err().to_string().contains("used twice"));
    std::fs::remove_file(&path).unwrap();
    let config = FeishuEmulatorConfig { fixture: dup, ..FeishuEmulatorConfig::default() };
    assert!(start(config, "127.0.0.1:0").await.is_err());
    let minimal = json!({"app_id": "cli_x", "app_secret": "s", "tenant_key": "t", "users": [{
        "open_id": "ou_1", "union_id": "on_1", "user_id": "u1", "name": "n", "en_name": "n",
        "status": "active", "available": true}]});
    let parsed: FeishuFixture = serde_json::from_value(minimal).unwrap();
    assert!(parsed.outsiders.is_empty() && parsed.users[0].email.is_none());
}

#[tokio::test]
async fn per_api_rate_limit_answers_429_when_set() {
    let env = env().await;
    let token = env.tenant_token().await;
    let res = env.http.post(env.url("/_admin/limits")).json(&json!({"api_qps": 2})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let path = "/open-apis/contact/v3/users/ou_feishu_alice";
    assert_eq!(env.get_auth(path, &token).await.0, 200);
    assert_eq!(env.get_auth(path, &token).await.0, 200);
    let res = env.http.get(env.url(path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-ogw-ratelimit-limit"], "2");
    assert_eq!(res.headers()["x-ogw-ratelimit-reset"], "1");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 99991400);
    // Other APIs have their own window; a second later the API admits again.
    assert_eq!(env.get_auth("/open-apis/tenant/v2/tenant/query", &token).await.0, 200);
    env.emu.advance_clock(1);
    assert_eq!(env.get_auth(path, &token).await.0, 200);
    assert_eq!(env.emu.throttled_calls(), 1);
}
