//! Tests of the Feishu emulator over real HTTP (server on 127.0.0.1:0, reqwest client):
//! login (§A), app tokens (§B.1), contact (§C.1), envelopes (§0.2). IM tests: `tests_im.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::redirect::Policy;
use serde_json::{Value, json};

use super::*;

pub(super) const APP_ID: &str = "cli_a5d611352af9d00b";
pub(super) const REDIRECT: &str = "http://app.example/cb";
/// RFC 7636 App. B (docs/feishu-api.md §E.6 vector 4).
pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub(super) const V2: &str = "/open-apis/authen/v2/oauth/token";
const V3: &str = "/oauth/v3/token";

pub(super) struct Env {
    pub(super) running: RunningFeishuEmulator,
    pub(super) http: reqwest::Client,
    pub(super) emu: FeishuEmulator,
}

pub(super) async fn env() -> Env {
    env_with(FeishuEmulatorConfig::default()).await
}

pub(super) async fn env_with(config: FeishuEmulatorConfig) -> Env {
    let running = start(config, "127.0.0.1:0").await.unwrap();
    let emu = running.state();
    let http = reqwest::Client::builder().redirect(Policy::none()).no_proxy().build().unwrap();
    Env { running, http, emu }
}

impl Env {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    pub(super) async fn get_auth(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    pub(super) async fn tenant_token(&self) -> String {
        let secret = self.emu.config().fixture.app_secret.clone();
        let (status, v) = self
            .post("/open-apis/auth/v3/tenant_access_token/internal", json!({"app_id": APP_ID, "app_secret": secret}))
            .await;
        assert_eq!((status, v["code"].as_i64()), (200, Some(0)), "{v}");
        v["tenant_access_token"].as_str().unwrap().to_owned()
    }

    /// `GET authorize` with `extra` query; returns the 302 `location` (or panics).
    async fn authorize(&self, extra: &str) -> String {
        let url = format!(
            "{}?client_id={APP_ID}&response_type=code&redirect_uri={}{extra}",
            self.url("/open-apis/authen/v1/authorize"),
            wire::url_encode(REDIRECT)
        );
        let res = self.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), 302);
        res.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Approve-mode login as `open_id` with an S256 challenge; returns the code.
    pub(super) async fn code_for(&self, open_id: &str, extra: &str) -> String {
        self.emu.set_consent(FeishuConsent::Approve { open_id: open_id.to_owned() });
        let location = self.authorize(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}")).await;
        query_param(&location, "code").unwrap()
    }

    pub(super) async fn exchange(&self, path: &str, code: &str, verifier: Option<&str>) -> (u16, Value) {
        let secret = self.emu.config().fixture.app_secret.clone();
        let mut body = json!({"grant_type": "authorization_code", "client_id": APP_ID, "client_secret": secret,
            "code": code, "redirect_uri": REDIRECT});
        if let Some(v) = verifier {
            body["code_verifier"] = json!(v);
        }
        self.post(path, body).await
    }
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn s256_matches_rfc7636_appendix_b() {
    assert_eq!(oauth::s256(VERIFIER), CHALLENGE);
}

#[tokio::test]
async fn login_round_trip_with_pkce_s256_through_the_consent_page() {
    let env = env().await;
    let url = format!(
        "{}?client_id={APP_ID}&response_type=code&redirect_uri={}&scope={}&state=st1&code_challenge={CHALLENGE}&code_challenge_method=S256",
        env.url("/open-apis/authen/v1/authorize"),
        wire::url_encode("http://app.example/cb#/login"),
        wire::url_encode("contact:user.email:readonly offline_access"),
    );
    let page = env.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("ou_feishu_olivia"), "outsiders are listed");
    let start = html.find("/open-apis/authen/v1/authorize/approve?").unwrap();
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let href = href.replace("&amp;", "&");
    assert!(href.ends_with("open_id=ou_feishu_alice"), "users come first: {href}");
    let res = env.http.get(env.url(&href)).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://app.example/cb?code="), "{location}");
    assert!(location.ends_with("&state=st1#/login"), "fragment moves to the end: {location}");
    let code = query_param(&location, "code").unwrap();
    assert_eq!(code.len(), 64);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    let secret = env.emu.config().fixture.app_secret.clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", APP_ID),
        ("client_secret", secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.example/cb#/login"),
        ("code_verifier", VERIFIER),
    ];
    let res = env.http.post(env.url(V3)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], 0);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(v["scope"], "contact:user.email:readonly offline_access");
    assert_eq!(v["refresh_token_expires_in"], 604_800);
    let access = v["access_token"].as_str().unwrap();
    assert!(access.starts_with("eyJ"));

    let (status, info) = env.get_auth("/open-apis/authen/v1/user_info", access).await;
    assert_eq!(status, 200);
    assert_eq!(info["code"], 0);
    let d = &info["data"];
    assert_eq!(d["open_id"], "ou_feishu_alice");
    assert_eq!(d["union_id"], "on_feishu_alice");
    assert_eq!(d["user_id"], "fs_alice");
    assert_eq!(d["name"], "李雷");
    assert_eq!(d["tenant_key"], "736588c9260f175d");
    assert_eq!(d["mobile"], "+8613800000001");
    assert!(d["avatar_thumb"].as_str().unwrap().contains("72x72"));

    // §A.3: reuse → 20065; §A.4: the refresh token rotates.
    let (status, v2) = env.exchange(V2, &code, Some(VERIFIER)).await;
    assert_eq!((status, v2["code"].as_i64(), v2["error"].as_str()), (400, Some(20065), Some("invalid_grant")));
    let refresh = v["refresh_token"].as_str().unwrap();
    let body =
        json!({"grant_type": "refresh_token", "client_id": APP_ID, "client_secret": secret, "refresh_token": refresh});
    let (status, r) = env.post(V2, body.clone()).await;
    assert_eq!((status, r["code"].as_i64()), (200, Some(0)), "{r}");
    let (status, r) = env.post(V2, body).await;
    assert_eq!((status, r["code"].as_i64()), (400, Some(20073)));
}

#[tokio::test]
async fn pkce_failures_unavailable_people_and_token_errors() {
    let env = env().await;
    let code = env.code_for("ou_feishu_alice", "").await;
    let (status, v) = env.exchange(V2, &code, Some("wrong-verifier-wrong-verifier-wrong-verifier-00")).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(20049)), "{v}");
    let (_, v) = env.exchange(V2, &code, None).await;
    assert_eq!(v["code"], 20049);
    let (status, v) = env.exchange(V2, "no-such-code", None).await;
    assert_eq!((status, v["code"].as_i64(), v["error"].as_str()), (400, Some(20003), Some("invalid_grant")));
    // No challenge: v2 ignores a verifier, v3 rejects it.
    env.emu.set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let plain_code = query_param(&env.authorize("").await, "code").unwrap();
    let (_, v) = env.exchange(V3, &plain_code, Some(VERIFIER)).await;
    assert_eq!(v["code"], 20049);
    let (_, v) = env.exchange(V2, &plain_code, Some(VERIFIER)).await;
    assert_eq!(v["code"], 0);
    assert!(v.get("refresh_token").is_none(), "no offline_access, no refresh token");
    // 20010: outside the availability.
    let code = env.code_for("ou_feishu_dave", "").await;
    let (status, v) = env.exchange(V2, &code, Some(VERIFIER)).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(20010)));
    // 20004: expired; 20071: redirect_uri mismatch; 20002: bad secret.
    let code = env.code_for("ou_feishu_alice", "").await;
    let secret = env.emu.config().fixture.app_secret.clone();
    let bad = json!({"grant_type": "authorization_code", "client_id": APP_ID, "client_secret": secret,
        "code": code, "redirect_uri": "http://evil.example/", "code_verifier": VERIFIER});
    assert_eq!(env.post(V2, bad).await.1["code"], 20071);
    let wrong = json!({"grant_type": "authorization_code", "client_id": APP_ID, "client_secret": "nope", "code": code});
    let (status, v) = env.post(V2, wrong).await;
    assert_eq!((status, v["code"].as_i64(), v["error"].as_str()), (400, Some(20002), Some("invalid_client")));
    env.emu.advance_clock(301);
    assert_eq!(env.exchange(V2, &code, Some(VERIFIER)).await.1["code"], 20004);
}

#[tokio::test]
async fn deny_and_user_info_errors() {
    let env = env().await;
    env.emu.set_consent(FeishuConsent::Deny);
    let location = env.authorize("&state=xyz").await;
    assert_eq!(location, "http://app.example/cb?error=access_denied&state=xyz");
    env.emu.set_consent(FeishuConsent::Approve { open_id: "ou_feishu_alice".into() });
    let location = env.authorize("").await;
    assert!(!location.contains("state="), "no state when none was sent: {location}");

    let res = env.http.get(env.url("/open-apis/authen/v1/user_info")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().contains_key("x-tt-logid"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], 99991661);
    assert!(v["error"]["log_id"].as_str().unwrap().len() == 34);
    let (status, v) = env.get_auth("/open-apis/authen/v1/user_info", "eyJnope").await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(20005)));

    let code = env.code_for("ou_feishu_carol", "").await;
    let v = env.exchange(V2, &code, Some(VERIFIER)).await.1;
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(env.get_auth("/open-apis/authen/v1/user_info", token).await.1["code"], 20022);
    assert!(env.emu.set_user_status("ou_feishu_carol", FeishuUserStatus::Resigned));
    assert_eq!(env.get_auth("/open-apis/authen/v1/user_info", token).await.1["code"], 20021);

    // The other tenant's person signs in; their own tenant_key comes back.
    let code = env.code_for("ou_feishu_olivia", "").await;
    let v = env.exchange(V2, &code, Some(VERIFIER)).await.1;
    let (_, info) = env.get_auth("/open-apis/authen/v1/user_info", v["access_token"].as_str().unwrap()).await;
    assert_eq!(info["data"]["tenant_key"], OUTSIDER_TENANT_KEY);
}

#[tokio::test]
async fn tenant_token_is_reused_while_30_minutes_remain() {
    let env = env().await;
    let path = "/open-apis/auth/v3/tenant_access_token/internal/";
    let (status, v) = env.post(path, json!({"app_id": "cli_unknown", "app_secret": "x"})).await;
    assert_eq!((status, v["code"].as_i64(), v["msg"].as_str()), (200, Some(10003), Some("invalid param")));
    let (status, v) = env.post(path, json!({"app_id": APP_ID, "app_secret": "wrong"})).await;
    assert_eq!((status, v["code"].as_i64(), v["msg"].as_str()), (200, Some(10014), Some("app secret invalid")));
    let first = env.tenant_token().await;
    assert!(first.starts_with("t-"));
    env.emu.advance_clock(5400 - 1); // 1801 s left
    let secret = env.emu.config().fixture.app_secret.clone();
    let (_, v) = env.post(path, json!({"app_id": APP_ID, "app_secret": secret})).await;
    assert_eq!(v["tenant_access_token"], first.as_str());
    assert!((1800..=1801).contains(&v["expire"].as_i64().unwrap()), "remaining seconds: {v}");
    env.emu.advance_clock(2); // 1799 s left → a new token, the old one still valid
    let second = env.tenant_token().await;
    assert_ne!(second, first);
    assert_eq!(env.emu.tenant_token_fetches(), 3);
    let (status, _) = env.get_auth("/open-apis/contact/v3/users/ou_feishu_alice", &first).await;
    assert_eq!(status, 200);
    env.emu.advance_clock(1800);
    let (status, v) = env.get_auth("/open-apis/contact/v3/users/ou_feishu_alice", &first).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(99991663)));
}

#[tokio::test]
async fn contact_user_and_outsiders() {
    let env = env().await;
    let token = env.tenant_token().await;
    let (status, v) = env.get_auth("/open-apis/contact/v3/users/fs_bob?user_id_type=user_id", &token).await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(0)));
    let u = &v["data"]["user"];
    assert_eq!(u["open_id"], "ou_feishu_bob");
    assert_eq!(u["status"]["is_resigned"], true);
    assert!(u["department_ids"][0].as_str().unwrap().starts_with("od-"));
    assert!(u["avatar"]["avatar_640"].is_string());
    let (status, v) = env.get_auth("/open-apis/contact/v3/users/ou_feishu_olivia", &token).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(41050)));
    let (status, v) = env.get_auth("/open-apis/contact/v3/users/x?user_id_type=email", &token).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(40001)));
    let res = env.http.get(env.url("/open-apis/contact/v3/users/ou_feishu_bob")).header("authorization", token).send();
    let v: Value = res.await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], 99991661, "no Bearer prefix is no token");
}

#[tokio::test]
async fn unknown_paths_are_plain_404_and_calls_are_recorded() {
    let env = env().await;
    let res = env.http.get(env.url("/open-apis/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(res.text().await.unwrap(), "404 page not found");
    let res = env.http.get(env.url("/open-apis/auth/v3/tenant_access_token/internal")).send().await.unwrap();
    assert_eq!(res.status(), 404, "wrong method");
    let res = env.http.get(env.url("/_admin/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let calls = env.emu.calls();
    assert_eq!(calls.len(), 2, "admin calls are not recorded");
    assert_eq!(calls[0].path, "/open-apis/nope");
    let res = env.http.post(env.url("/_admin/consent")).json(&json!({"mode": "approve", "open_id": "ou_x"})).send();
    assert_eq!(res.await.unwrap().status(), 400);
    let res = env.http.post(env.url("/_admin/consent")).json(&json!({"mode": "deny"})).send();
    assert_eq!(res.await.unwrap().status(), 200);
    env.running.stop().await;
}
