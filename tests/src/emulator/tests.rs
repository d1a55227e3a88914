//! End-to-end tests of the emulator over real HTTP (server on 127.0.0.1:0, reqwest client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use serde_json::{Value, json};

use super::*;

const APP_KEY: &str = "dingemuappkey0001";
const APP_SECRET: &str = "emulator-app-secret";
const AGENT_ID: i64 = 300001;
const SEND: &str = "/topapi/message/corpconversation/asyncsend_v2";

struct Env {
    running: RunningEmulator,
    base: String,
    http: reqwest::Client,
    emu: Emulator,
}

/// An emulator without the §G.1 rate limit (the limit's own test switches it on).
async fn env() -> Env {
    let running = start(EmulatorConfig { qps_limit: None, ..EmulatorConfig::default() }, "127.0.0.1:0").await.unwrap();
    let base = running.base_url();
    let emu = running.state();
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    Env { running, base, http, emu }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.unwrap()
    }

    async fn app_token(&self) -> String {
        let res = self.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["expireIn"], 7200);
        v["accessToken"].as_str().unwrap().to_owned()
    }

    /// POST a topapi call with the token in the query and a JSON body.
    async fn topapi(&self, path: &str, token: &str, body: Value) -> Value {
        let res = self.http.post(format!("{}?access_token={token}", self.url(path))).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200, "topapi is always HTTP 200");
        res.json().await.unwrap()
    }

    async fn authorize(&self, extra: &str) -> reqwest::Response {
        let url = format!(
            "{}/oauth2/auth?redirect_uri={}&response_type=code&client_id={APP_KEY}&prompt=consent{extra}",
            self.base,
            wire::url_encode("http://app.example/cb"),
        );
        self.http.get(url).send().await.unwrap()
    }

    /// Approve-mode login as `who`; returns the auth code.
    async fn code_for(&self, who: &str, scope: &str) -> String {
        self.emu.set_consent(ConsentMode::Approve { who: who.to_owned() });
        let res = self.authorize(&format!("&scope={}&state=st", wire::url_encode(scope))).await;
        assert_eq!(res.status(), 302);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let query = location.split_once('?').unwrap().1;
        let params = wire::parse_urlencoded(query);
        params.iter().find(|(k, _)| k == "authCode").unwrap().1.clone()
    }

    async fn exchange(&self, body: Value) -> reqwest::Response {
        self.post_json("/v1.0/oauth2/userAccessToken", body).await
    }

    async fn user_token(&self, who: &str, scope: &str) -> Value {
        let code = self.code_for(who, scope).await;
        let res = self
            .exchange(json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"}))
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn me(&self, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url("/v1.0/contact/users/me"));
        if let Some(t) = token {
            req = req.header("x-acs-dingtalk-access-token", t);
        }
        req.send().await.unwrap()
    }

    async fn send(&self, token: &str, body: Value) -> Value {
        self.topapi(SEND, token, body).await
    }

    async fn result(&self, token: &str, task_id: &Value) -> Value {
        let v = self
            .topapi(
                "/topapi/message/corpconversation/getsendresult",
                token,
                json!({"agent_id": AGENT_ID, "task_id": task_id}),
            )
            .await;
        assert_eq!(v["errcode"], 0, "{v}");
        v["send_result"].clone()
    }
}

fn text_msg(content: &str) -> Value {
    json!({"msgtype": "text", "text": {"content": content}})
}

/// Asserts the exact v1.0 error shape (docs/dingtalk-api.md §0.2) and returns the body.
async fn assert_v1_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/json;charset=utf-8");
    let header_id = res.headers()["x-acs-request-id"].to_str().unwrap().to_owned();
    let v: Value = res.json().await.unwrap();
    assert_eq!(keys(&v), set(&["code", "message", "requestid"]), "{v}");
    assert_eq!(v["code"], code);
    assert_eq!(v["requestid"], header_id.as_str());
    assert_eq!(header_id.len(), 36);
    v
}

fn assert_topapi_error(v: &Value, errcode: i64) {
    assert_eq!(v["errcode"], errcode, "{v}");
    assert!(v["errcode"].is_i64(), "errcode must be a JSON number");
    assert!(v["errmsg"].is_string(), "{v}");
    assert!(v["request_id"].as_str().is_some_and(|r| r.len() == 13), "{v}");
}

#[tokio::test]
async fn v1_errors_have_the_exact_gateway_shape() {
    let e = env().await;
    let res = e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": "wrong"})).await;
    let v = assert_v1_error(res, 400, "invalidClientIdOrSecret").await;
    assert_eq!(v["message"], "无效的clientId或者clientSecret");

    // Form body → body-missing error (docs/dingtalk-api.md §0.2).
    let res = e
        .http
        .post(e.url("/v1.0/oauth2/accessToken"))
        .form(&[("appKey", APP_KEY), ("appSecret", APP_SECRET)])
        .send()
        .await
        .unwrap();
    assert_v1_error(res, 400, "MissingBody").await;

    // Unknown /v1.0 path and wrong method.
    let res = e.http.get(e.url("/v1.0/nope/nothing")).send().await.unwrap();
    assert_v1_error(res, 404, "InvalidAction.NotFound").await;
    let res = e.http.get(e.url("/v1.0/oauth2/accessToken")).send().await.unwrap();
    assert_v1_error(res, 404, "InvalidAction.NotFound").await;

    // Non-/v1.0 path on api.dingtalk.com.
    let res = e.http.post(e.url("/oauth2/corpAccessToken")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v, json!({"errcode": 404, "errmsg": "请求的URI地址不存在"}));
    e.running.stop().await;
}

#[tokio::test]
async fn topapi_errors_have_the_exact_legacy_shape() {
    let e = env().await;
    // Missing token → 88 / 40000.
    let v = e.post_json("/topapi/v2/user/get", json!({"userid": "manager4220"})).await.json::<Value>().await.unwrap();
    assert_topapi_error(&v, 88);
    assert_eq!(v["sub_code"], "40000");
    assert_eq!(v["sub_msg"], "access_token is blank");
    assert_eq!(v["errmsg"], "ding talk error[subcode=40000,submsg=access_token is blank]");
    // Bad token → 88 / 40014.
    let v = e.topapi("/topapi/v2/user/get", "bogus", json!({"userid": "manager4220"})).await;
    assert_topapi_error(&v, 88);
    assert_eq!(v["sub_code"], "40014");
    assert_eq!(v["errmsg"], "ding talk error[subcode=40014,submsg=不合法的access_token]");
    assert_eq!(keys(&v), set(&["errcode", "errmsg", "request_id", "sub_code", "sub_msg"]));
    // Unknown topapi method → 22.
    let token = e.app_token().await;
    let v = e.topapi("/topapi/v2/user/notexist", &token, json!({})).await;
    assert_topapi_error(&v, 22);
    assert_eq!(v["sub_msg"], "不合法ApiName，ApiName = dingtalk.oapi.v2.user.notexist");
    e.running.stop().await;
}

#[tokio::test]
async fn app_token_is_reused_extended_and_expires() {
    let e = env().await;
    let t1 = e.app_token().await;
    e.emu.advance_clock(3600);
    let t2 = e.app_token().await;
    assert_eq!(t1, t2, "same token while valid");
    // Legacy gettoken returns the same token, without request_id (docs/dingtalk-api.md §B.2).
    let v: Value = e
        .http
        .get(e.url(&format!("/gettoken?appkey={APP_KEY}&appsecret={APP_SECRET}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"errcode": 0, "access_token": t1, "errmsg": "ok", "expires_in": 7200}));
    // Extended at the last fetch: still valid 7000 s later, expired after 7200 s.
    e.emu.advance_clock(7000);
    let ok = e.topapi("/topapi/user/getbyunionid", &t1, json!({"unionid": "union-user0001"})).await;
    assert_eq!(ok["errcode"], 0);
    e.emu.advance_clock(201);
    let expired = e.topapi("/topapi/user/getbyunionid", &t1, json!({"unionid": "union-user0001"})).await;
    assert_eq!(expired["errcode"], 88);
    assert_eq!(expired["sub_code"], "40014");
    assert_ne!(e.app_token().await, t1, "a new token after expiry");

    let v: Value = e
        .http
        .get(e.url(&format!("/gettoken?appkey={APP_KEY}&appsecret=nope")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}));
    e.running.stop().await;
}

#[tokio::test]
async fn consent_page_links_work_for_a_cookie_jar_client() {
    let e = env().await;
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let cb = e.url("/app/callback?x=1");
    let auth_url = format!(
        "{}/oauth2/auth?redirect_uri={}&response_type=code&client_id={APP_KEY}&scope=openid%20corpid&state={}&prompt=consent",
        e.base,
        wire::url_encode(&cb),
        wire::url_encode("s t&8"),
    );
    let page = client.get(&auth_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for who in ["manager4220", "zhaoliu0004", "user0001", "outsider-union-0001"] {
        assert!(html.contains(&format!("id=\"approve-{who}\"")), "{who}");
    }
    assert!(html.contains("id=\"deny\""));
    // Follow the approve link for 张三 exactly as written in the page.
    let start = html.find("id=\"approve-manager4220\"").unwrap();
    let href_start = start + html[start..].find("href=\"").unwrap() + 6;
    let href_end = href_start + html[href_start..].find('"').unwrap();
    let href = html[href_start..href_end].replace("&amp;", "&");
    let res = client.get(e.url(&href)).send().await.unwrap();
    let url = res.url().clone();
    assert_eq!(url.path(), "/app/callback");
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("x").as_deref(), Some("1"));
    assert_eq!(get("state").as_deref(), Some("s t&8"));
    let code = get("code").unwrap();
    assert_eq!(get("authCode").as_deref(), Some(code.as_str()));
    let res = e
        .exchange(
            json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["corpId"], "dingemucorp0001", "corpid scope + member");
    assert_eq!(keys(&v), set(&["accessToken", "refreshToken", "expireIn", "corpId"]));

    // The same consent request cannot be used twice.
    let res = client.get(e.url(&href)).send().await.unwrap();
    assert_eq!(res.status(), 400);

    // Cookie fallback: approve without `request=`, then deny via the page's deny link.
    client.get(&auth_url).send().await.unwrap();
    let res = client.get(e.url("/oauth2/consent/approve?who=lisi0002")).send().await.unwrap();
    assert_eq!(res.url().path(), "/app/callback");
    assert!(res.url().query().unwrap().contains("authCode="));
    client.get(&auth_url).send().await.unwrap();
    let res = client.get(e.url("/oauth2/consent/deny")).send().await.unwrap();
    assert_eq!(res.url().query(), Some("x=1&error=access_denied&state=s%20t%268"));
    e.running.stop().await;
}

#[tokio::test]
async fn consent_modes_and_parameter_validation() {
    let e = env().await;
    e.emu.set_consent(ConsentMode::Deny { error: "access_denied".to_owned() });
    let res = e.authorize("&scope=openid&state=abc").await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "http://app.example/cb?error=access_denied&state=abc");
    e.emu.set_consent(ConsentMode::Approve { who: "manager4220".to_owned() });
    let res = e.authorize("&scope=openid&state=abc").await;
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let code = loc.strip_prefix("http://app.example/cb?code=").unwrap().split('&').next().unwrap();
    assert_eq!(loc, format!("http://app.example/cb?code={code}&authCode={code}&state=abc"));

    // Bad parameters → HTML error page, 400.
    let good = [
        ("redirect_uri", "http://app/cb"),
        ("response_type", "code"),
        ("client_id", APP_KEY),
        ("scope", "openid"),
        ("prompt", "consent"),
    ];
    for (key, bad) in [
        ("response_type", "token"),
        ("scope", "profile"),
        ("scope", "openid,corpid"),
        ("prompt", "none"),
        ("client_id", "unknown"),
        ("redirect_uri", ""),
    ] {
        let params: Vec<(&str, &str)> =
            good.iter().map(|(k, v)| if *k == key { (*k, bad) } else { (*k, *v) }).collect();
        let res = e.http.get(wire::append_query(&e.url("/oauth2/auth"), &params)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{key}={bad}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    let res = e.http.get(wire::append_query(&e.url("/oauth2/auth"), &good)).send().await.unwrap();
    assert_eq!(res.status(), 302, "valid parameters pass");
    // Admin API rejects an unknown approver.
    let res = e.post_json("/_admin/consent", json!({"mode": "approve", "who": "ghost"})).await;
    assert_eq!(res.status(), 400);
    let res = e.post_json("/_admin/consent", json!({"mode": "page"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(e.authorize("&scope=openid").await.status(), 200);
    e.running.stop().await;
}

#[tokio::test]
async fn auth_codes_are_single_use_and_expire() {
    let e = env().await;
    let code = e.code_for("manager4220", "openid").await;
    let body =
        json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"});
    let first = e.exchange(body.clone()).await;
    assert_eq!(first.status(), 200);
    let v: Value = first.json().await.unwrap();
    assert!(v.get("corpId").is_none(), "no corpid scope → no corpId");
    let v = assert_v1_error(e.exchange(body).await, 400, "invalidCode").await;
    assert_eq!(v["message"], "无效的授权码");

    let code = e.code_for("manager4220", "openid").await;
    e.emu.advance_clock(301);
    let res = e
        .exchange(
            json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"}),
        )
        .await;
    assert_v1_error(res, 400, "invalidCode").await;

    let code = e.code_for("manager4220", "openid").await;
    let res = e
        .exchange(json!({"clientId": APP_KEY, "clientSecret": "bad", "code": code, "grantType": "authorization_code"}))
        .await;
    assert_v1_error(res, 400, "invalidClientIdOrSecret").await;
    e.running.stop().await;
}

#[tokio::test]
async fn users_me_profile_and_token_errors() {
    let e = env().await;
    assert_v1_error(e.me(None).await, 400, "AuthenticationFailed.MissingParameter").await;
    let v = assert_v1_error(e.me(Some("nope")).await, 400, "InvalidAuthentication").await;
    assert_eq!(v["message"], "不合法的access_token");
    let app = e.app_token().await;
    assert_v1_error(e.me(Some(&app)).await, 403, "Forbidden.AccessDenied.AccessTokenPermissionDenied").await;

    let tok = e.user_token("manager4220", "openid corpid").await;
    let t = tok["accessToken"].as_str().unwrap();
    let res = e.me(Some(t)).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        me,
        json!({
            "nick": "张三",
            "avatarUrl": "https://static.example.com/avatar/zhangsan.png",
            "mobile": "15000009144",
            "openId": "Lk1B2iPKiPziPWmWZbyGsXwiEiE",
            "unionId": "z21HjQliSzpw0Yxxxx".replace("xxxx", "WCiiSWeV8giEiE"),
            "email": "zhangsan@example.com",
            "stateCode": "86",
        })
    );
    // Same user token while valid.
    let again = e.user_token("manager4220", "openid corpid").await;
    assert_eq!(again["accessToken"], tok["accessToken"]);

    // A member without a personal email: the field is omitted.
    let tok = e.user_token("wangwu0003", "openid").await;
    let me: Value = e.me(tok["accessToken"].as_str()).await.json().await.unwrap();
    assert!(me.get("email").is_none());
    assert!(me.get("avatarUrl").is_none());
    assert_eq!(me["nick"], "王五");

    // A user token is not an app token on topapi.
    let v =
        e.topapi("/topapi/v2/user/get", tok["accessToken"].as_str().unwrap(), json!({"userid": "wangwu0003"})).await;
    assert_eq!((v["errcode"].clone(), v["sub_code"].clone()), (json!(88), json!("40014")));
    e.running.stop().await;
}

#[tokio::test]
async fn outsider_logs_in_but_is_not_a_member() {
    let e = env().await;
    let tok = e.user_token("outsider-union-0001", "openid corpid").await;
    assert!(tok.get("corpId").is_none(), "outsiders get no corpId");
    let me: Value = e.me(tok["accessToken"].as_str()).await.json().await.unwrap();
    assert_eq!(me["unionId"], "outsider-union-0001");
    assert_eq!(me["nick"], "Outsider");
    let app = e.app_token().await;
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": me["unionId"]})).await;
    assert_topapi_error(&v, 60121);
    assert_eq!(v["errmsg"], "找不到该用户");
    assert_eq!(keys(&v), set(&["errcode", "errmsg", "request_id"]));
    e.running.stop().await;
}

#[tokio::test]
async fn refresh_grant_and_user_token_revocation() {
    let e = env().await;
    let tok = e.user_token("lisi0002", "openid").await;
    let refresh = tok["refreshToken"].as_str().unwrap().to_owned();
    e.emu.advance_clock(7201);
    assert_v1_error(e.me(tok["accessToken"].as_str()).await, 400, "InvalidAuthentication").await;
    let res = e
        .exchange(json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "refreshToken": refresh, "grantType": "refresh_token"}))
        .await;
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    assert_ne!(fresh["accessToken"], tok["accessToken"]);
    assert_eq!(e.me(fresh["accessToken"].as_str()).await.status(), 200);

    let res = e.post_json("/_admin/tokens/revoke", json!({"kind": "user"})).await;
    assert_eq!(res.status(), 200);
    assert_v1_error(e.me(fresh["accessToken"].as_str()).await, 400, "InvalidAuthentication").await;
    let res = e
        .exchange(json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "refreshToken": refresh, "grantType": "refresh_token"}))
        .await;
    assert_v1_error(res, 400, "invalidRefreshToken").await;
    e.running.stop().await;
}

#[tokio::test]
async fn app_token_revocation_hits_both_families() {
    let e = env().await;
    let app = e.app_token().await;
    e.emu.revoke_tokens(TokenKind::App);
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-user0001"})).await;
    assert_eq!(v["sub_code"], "40014");
    let fresh = e.app_token().await;
    assert_ne!(fresh, app);
    let v = e.topapi("/topapi/user/getbyunionid", &fresh, json!({"unionid": "union-user0001"})).await;
    assert_eq!(v["errcode"], 0);
    e.running.stop().await;
}

#[tokio::test]
async fn getbyunionid_member_form_body_and_missing_param() {
    let e = env().await;
    let app = e.app_token().await;
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "z21HjQliSzpw0YWCiiSWeV8giEiE"})).await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert_eq!(v["result"], json!({"contact_type": 0, "userid": "manager4220"}));
    assert_eq!(keys(&v), set(&["errcode", "errmsg", "result", "request_id"]));
    // Form body with the token inside it (docs/dingtalk-api.md §0.3 last bullet).
    let v: Value = e
        .http
        .post(e.url("/topapi/user/getbyunionid"))
        .form(&[("access_token", app.as_str()), ("unionid", "union-user0400")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"]["userid"], "user0400");
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({})).await;
    assert_topapi_error(&v, 400002);
    e.running.stop().await;
}

#[tokio::test]
async fn v2_user_get_fields() {
    let e = env().await;
    let app = e.app_token().await;
    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "manager4220", "language": "zh_CN"})).await;
    assert_eq!(v["errcode"], 0);
    let r = &v["result"];
    assert_eq!(r["userid"], "manager4220");
    assert_eq!(r["unionid"], "z21HjQliSzpw0YWCiiSWeV8giEiE");
    assert_eq!(r["name"], "张三");
    assert_eq!(r["dept_id_list"], json!([1, 2]));
    assert_eq!(r["active"], true);
    assert_eq!(r["admin"], true);
    assert_eq!(r["boss"], false);
    assert_eq!(r["org_email"], "zhangsan@corp.example");
    assert_eq!(r["mobile"], "15000009144");
    assert_eq!(r["state_code"], "86");
    assert_eq!(r["title"], "Engineering Manager");
    assert_eq!(r["job_number"], "0001");
    assert_eq!(r["leader_in_dept"][1], json!({"dept_id": 2, "leader": true}));
    assert!(r["dept_order_list"][0]["order"].is_i64());
    assert!(r.get("manager_userid").is_none());

    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "zhaoliu0004"})).await;
    assert_eq!(v["result"]["active"], false);
    assert_eq!(v["result"]["real_authed"], false);

    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "user0037"})).await;
    assert_eq!(v["result"]["name"], "User 0037");
    assert_eq!(v["result"]["dept_id_list"], json!([2]));
    assert!(v["result"].get("email").is_none());
    assert!(v["result"].get("avatar").is_none());

    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "ghost"})).await;
    assert_topapi_error(&v, 60121);
    e.running.stop().await;
}

#[tokio::test]
async fn asyncsend_v2_validation() {
    let e = env().await;
    let app = e.app_token().await;
    let ids: Vec<String> = (1..=101).map(|n| format!("user{n:04}")).collect();
    let cases = [
        json!({"agent_id": AGENT_ID, "userid_list": ids.join(","), "msg": text_msg("x")}),
        json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg(&"字".repeat(700))}),
        json!({"agent_id": 999, "userid_list": "manager4220", "msg": text_msg("x")}),
        json!({"userid_list": "manager4220", "msg": text_msg("x")}),
        json!({"agent_id": AGENT_ID, "userid_list": "manager4220"}),
        json!({"agent_id": AGENT_ID, "msg": text_msg("x")}),
        json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": {"msgtype": "video", "video": {}}}),
        json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": {"msgtype": "text", "markdown": {"title": "t", "text": "x"}}}),
        json!({"agent_id": AGENT_ID, "dept_id_list": (1..=21).map(|n| n.to_string()).collect::<Vec<_>>().join(","), "msg": text_msg("x")}),
    ];
    for (i, body) in cases.into_iter().enumerate() {
        let v = e.send(&app, body).await;
        assert_topapi_error(&v, 400002);
        assert!(v.get("task_id").is_none(), "case {i}");
    }
    // Exactly 100 userids and exactly 2048 bytes are accepted.
    let ids: Vec<String> = (1..=100).map(|n| format!("user{n:04}")).collect();
    let base_len = text_msg("").to_string().len();
    let msg = text_msg(&"a".repeat(2048 - base_len));
    assert_eq!(msg.to_string().len(), 2048);
    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": ids.join(","), "msg": msg})).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert!(v["task_id"].is_u64());
    assert!(v.get("errmsg").is_none(), "asyncsend_v2 success has no errmsg");
    assert_eq!(keys(&v), set(&["errcode", "task_id", "request_id"]));
    assert_eq!(e.emu.sends().len(), 1, "rejected sends are not recorded");
    e.running.stop().await;
}

#[tokio::test]
async fn asyncsend_v2_form_body_and_dept_expansion() {
    let e = env().await;
    let app = e.app_token().await;
    // Form body: msg is a JSON string; dept 1 includes its sub-departments.
    let v: Value = e
        .http
        .post(format!("{}?access_token={app}", e.url(SEND)))
        .form(&[
            ("agent_id", "300001"),
            ("dept_id_list", "3,777"),
            ("userid_list", "ghost,lisi0002"),
            ("msg", r#"{"msgtype":"markdown","markdown":{"title":"t","text":"**hi**"}}"#),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    let r = e.result(&app, &v["task_id"]).await;
    assert_eq!(r["unread_user_id_list"], json!(["lisi0002", "wangwu0003"]));
    assert_eq!(r["invalid_user_id_list"], json!(["ghost"]));
    assert_eq!(r["invalid_dept_id_list"], json!([777]));
    assert_eq!(r["forbidden_list"], json!([]));
    assert_eq!(r["read_user_id_list"], json!([]));

    let v = e.send(&app, json!({"agent_id": AGENT_ID, "dept_id_list": "1", "msg": text_msg("all")})).await;
    let sends = e.emu.sends();
    let last = sends.last().unwrap();
    assert_eq!(json!(last.task_id), v["task_id"]);
    assert_eq!(last.outcome.unread_user_id_list.len(), 404, "4 named + 400 generated");
    assert_eq!(last.dept_id_list, vec![1]);
    e.running.stop().await;
}

#[tokio::test]
async fn duplicate_content_and_daily_limit_are_forbidden() {
    let e = env().await;
    let app = e.app_token().await;
    let body = json!({"agent_id": AGENT_ID, "userid_list": "manager4220,lisi0002", "msg": text_msg("same")});
    let first = e.send(&app, body.clone()).await;
    let r = e.result(&app, &first["task_id"]).await;
    assert_eq!(r["unread_user_id_list"], json!(["manager4220", "lisi0002"]));
    // Same content with keys in a different order is still a duplicate.
    let reordered = json!({"agent_id": AGENT_ID, "userid_list": "lisi0002", "msg": {"text": {"content": "same"}, "msgtype": "text"}});
    let second = e.send(&app, reordered).await;
    assert_eq!(second["errcode"], 0, "limits never fail the call (§D.6)");
    let r = e.result(&app, &second["task_id"]).await;
    assert_eq!(r["forbidden_list"], json!([{"code": "143106", "count": 1, "userid": "lisi0002"}]));
    assert_eq!(r["forbidden_user_id_list"], json!(["lisi0002"]));
    assert_eq!(r["unread_user_id_list"], json!([]));
    // The next day the same content is delivered again.
    e.emu.advance_clock(86_400);
    let app = e.app_token().await; // the old one expired meanwhile
    let third = e.send(&app, body).await;
    let r = e.result(&app, &third["task_id"]).await;
    assert_eq!(r["unread_user_id_list"], json!(["manager4220", "lisi0002"]));

    // 500 distinct messages per user per app per day; the 501st is forbidden (143105).
    for n in 0..499 {
        let v = e
            .send(&app, json!({"agent_id": AGENT_ID, "userid_list": "lisi0002", "msg": text_msg(&format!("n{n}"))}))
            .await;
        assert_eq!(v["errcode"], 0);
    }
    let v = e
        .send(&app, json!({"agent_id": AGENT_ID, "userid_list": "lisi0002,manager4220", "msg": text_msg("one more")}))
        .await;
    let r = e.result(&app, &v["task_id"]).await;
    assert_eq!(r["forbidden_list"], json!([{"code": "143105", "count": 500, "userid": "lisi0002"}]));
    assert_eq!(r["unread_user_id_list"], json!(["manager4220"]));
    e.running.stop().await;
}

#[tokio::test]
async fn progress_result_read_and_recall() {
    let e = env().await;
    let app = e.app_token().await;
    let v =
        e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220,lisi0002", "msg": text_msg("r")})).await;
    let task = v["task_id"].clone();
    let p = e
        .topapi(
            "/topapi/message/corpconversation/getsendprogress",
            &app,
            json!({"agent_id": AGENT_ID, "task_id": task}),
        )
        .await;
    assert_eq!(p["errcode"], 0);
    assert_eq!(p["progress"], json!({"progress_in_percent": 100, "status": 2}));
    let p = e
        .topapi("/topapi/message/corpconversation/getsendprogress", &app, json!({"agent_id": AGENT_ID, "task_id": 1}))
        .await;
    assert_topapi_error(&p, 40035);

    let res = e.post_json("/_admin/read", json!({"task_id": task, "userid": "lisi0002"})).await;
    assert_eq!(res.status(), 200);
    let r = e.result(&app, &task).await;
    assert_eq!(r["read_user_id_list"], json!(["lisi0002"]));
    assert_eq!(r["unread_user_id_list"], json!(["manager4220"]));

    let recall = "/topapi/message/corpconversation/recall";
    let bad = e.topapi(recall, &app, json!({"agent_id": AGENT_ID, "msg_task_id": 42})).await;
    assert_topapi_error(&bad, 400002);
    assert_eq!(bad["errmsg"], "agentId不合法或taskId不合法");
    let bad = e.topapi(recall, &app, json!({"agent_id": 1, "msg_task_id": task})).await;
    assert_eq!(bad["errmsg"], "agentId不合法或taskId不合法");
    e.emu.advance_clock(23 * 3600);
    let app = e.app_token().await;
    let ok = e.topapi(recall, &app, json!({"agent_id": AGENT_ID, "msg_task_id": task})).await;
    assert_eq!(ok["errcode"], 0);
    assert_eq!(ok["errmsg"], "ok");
    assert!(e.emu.sends()[0].recalled);

    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("late")})).await;
    e.emu.advance_clock(24 * 3600 + 1);
    let app = e.app_token().await;
    let late = e.topapi(recall, &app, json!({"agent_id": AGENT_ID, "msg_task_id": v["task_id"]})).await;
    assert_topapi_error(&late, 400002);
    assert_ne!(late["errmsg"], "agentId不合法或taskId不合法");
    assert!(!e.emu.sends()[1].recalled);
    e.running.stop().await;
}

#[tokio::test]
async fn admin_records_calls_and_sends() {
    let e = env().await;
    let app = e.app_token().await;
    e.send(&app, json!({"agent_id": 1, "userid_list": "manager4220", "msg": text_msg("x")})).await;
    e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")})).await;
    let calls: Vec<Value> =
        e.http.get(e.url(&format!("/_admin/calls?path={SEND}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(keys(&calls[0]), set(&["seq", "method", "path", "query", "body", "status", "at_ms"]));
    assert_eq!(calls[0]["method"], "POST");
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[0]["query"], format!("access_token={app}"));
    assert!(calls[1]["body"].as_str().unwrap().contains("300001"));
    assert_eq!(calls[0]["seq"], 2, "the token call was first");
    assert_eq!(e.emu.calls_to(SEND), 2);
    assert_eq!(e.emu.calls().len(), 3, "admin calls are not recorded");
    let sends: Vec<Value> = e.http.get(e.url("/_admin/sends")).send().await.unwrap().json().await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["userid_list"], json!(["manager4220"]));
    assert_eq!(sends[0]["recalled"], false);
    assert_eq!(sends[0]["outcome"]["unread_user_id_list"], json!(["manager4220"]));
    let count: Value = e.http.get(e.url("/_admin/sends/count")).send().await.unwrap().json().await.unwrap();
    assert_eq!(count, json!({"count": 1}));

    let res = e.post_json("/_admin/clock", json!({"advance_secs": 60})).await;
    assert_eq!(res.status(), 200);
    let res = e.post_json("/_admin/reset", json!({})).await;
    assert_eq!(res.status(), 200);
    assert!(e.emu.calls().is_empty());
    assert!(e.emu.sends().is_empty());
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-user0001"})).await;
    assert_eq!(v["sub_code"], "40014", "reset drops tokens");
    e.running.stop().await;
}

#[tokio::test]
async fn fault_rules_answer_in_each_family_shape() {
    let e = env().await;
    let app = e.app_token().await;
    let res = e.post_json("/_admin/faults", json!({"path": SEND, "error": "90018", "rate": 1.0})).await;
    assert_eq!(res.status(), 200);
    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")})).await;
    assert_topapi_error(&v, 90018);
    assert!(e.emu.sends().is_empty(), "nothing sent under a fault");
    e.emu.set_fault(FaultRule::error(SEND, "88/40014"));
    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")})).await;
    assert_eq!((v["errcode"].clone(), v["sub_code"].clone()), (json!(88), json!("40014")));

    e.emu.set_fault(FaultRule::error("/v1.0/oauth2/accessToken", "500"));
    let res = e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
    assert_v1_error(res, 500, "unknownError").await;
    e.emu.set_fault(FaultRule::error("/v1.0/oauth2/accessToken", "403qps"));
    let res = e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
    assert_v1_error(res, 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi").await;

    // rate 0 never fires; latency still applies.
    e.emu.set_fault(FaultRule {
        path: Some(SEND.to_owned()),
        error: Some("-1".to_owned()),
        rate: 0.0,
        latency_ms: 300,
        drop_connection: false,
    });
    let t0 = Instant::now();
    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")})).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["errcode"], 0);

    // Dropped connection: the client gets no response at all.
    e.emu.set_fault(FaultRule {
        path: Some(SEND.to_owned()),
        error: None,
        rate: 1.0,
        latency_ms: 0,
        drop_connection: true,
    });
    let err = e
        .http
        .post(format!("{}?access_token={app}", e.url(SEND)))
        .json(&json!({"agent_id": AGENT_ID, "userid_list": "lisi0002", "msg": text_msg("y")}))
        .send()
        .await;
    assert!(err.is_err(), "connection must be dropped: {err:?}");
    assert_eq!(e.emu.calls().last().unwrap().status, 0);
    assert_eq!(e.emu.sends().len(), 1);

    let res = e.http.delete(e.url("/_admin/faults")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v = e.send(&app, json!({"agent_id": AGENT_ID, "userid_list": "lisi0002", "msg": text_msg("y")})).await;
    assert_eq!(v["errcode"], 0, "server survives a dropped connection");
    e.running.stop().await;
}

#[test]
fn fixture_file_matches_the_built_in_org() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/org.json");
    let from_file = Fixture::from_file(path).unwrap();
    assert_eq!(from_file, Fixture::default());
    let org = fixture::Org::build(&from_file).unwrap();
    assert_eq!(org.main.users.len(), 404);
    assert_eq!(org.user("user0400").unwrap().unionid, "union-user0400");
    assert_eq!(org.user("user0001").unwrap().open_id, "open-user0001");
    assert!(org.main.users.iter().any(|u| !u.active));
    assert_eq!(org.main.dept_subtree(1), vec![1, 2, 3]);
    assert_eq!(org.others.len(), 1);
    assert_eq!(org.suites.len(), 1);
}

#[test]
fn url_helpers() {
    assert_eq!(
        wire::append_query("http://a/cb?x=1#frag", &[("state", "a b&c")]),
        "http://a/cb?x=1&state=a%20b%26c#frag"
    );
    assert_eq!(wire::append_query("http://a/cb", &[("k", "v")]), "http://a/cb?k=v");
    assert_eq!(
        wire::parse_urlencoded("a=1+2&b=%E5%BC%A0"),
        vec![("a".to_owned(), "1 2".to_owned()), ("b".to_owned(), "张".to_owned())]
    );
    assert_eq!(wire::canonical_json(&json!({"b": 1, "a": {"d": 2, "c": 3}})), r#"{"a":{"c":3,"d":2},"b":1}"#);
}

// --- docs/dingtalk-api.md §G.1: the egress-IP ban ---------------------------------------------

#[tokio::test]
async fn past_the_ip_ban_rule_every_call_is_refused_with_the_documented_answer_and_does_nothing() {
    let e = env().await;
    let app = e.app_token().await; // one call
    // A bad rule is refused and changes nothing.
    let bad = e.post_json("/_admin/limits", json!({"ip_ban": {"calls": 0, "window_secs": 20, "ban_minutes": 5}})).await;
    assert_eq!(bad.status(), 400);
    let res = e.post_json("/_admin/limits", json!({"ip_ban": {"calls": 2, "window_secs": 20, "ban_minutes": 5}})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["ip_ban"]["calls"], 2);
    let msg = json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")});
    assert_eq!(e.send(&app, msg.clone()).await["errcode"], 0);
    assert_eq!(e.send(&app, msg.clone()).await["errcode"], 0);
    let sent = e.emu.sends().len();
    // The third call from this IP within 20 s starts the ban: HTTP 200, status 1111, wait 5.
    for _ in 0..2 {
        let banned = e.send(&app, msg.clone()).await;
        assert_eq!((banned["status"].as_i64(), banned["wait"].as_i64()), (Some(1111), Some(5)), "{banned}");
        assert_eq!((banned["source"].as_str(), banned["punish"].as_str()), (Some("x5"), Some("deny")));
    }
    // Token calls are refused too (every call from the IP), and nothing was sent meanwhile.
    let token = e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
    assert_eq!(token.json::<Value>().await.unwrap()["status"], 1111);
    assert_eq!(e.emu.sends().len(), sent, "a refused call delivers nothing");
    let report: Value = e.http.get(e.url("/_admin/limits")).send().await.unwrap().json().await.unwrap();
    assert_eq!((report["ip_bans"].as_u64(), report["ip_ban_refused"].as_u64()), (Some(1), Some(3)), "{report}");
    // Lifted: calls pass again.
    let res = e.post_json("/_admin/limits", json!({"ip_ban": null})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["ip_ban"], Value::Null);
    assert_eq!(e.send(&app, msg).await["errcode"], 0);
    e.running.stop().await;
}

// --- docs/dingtalk-api.md §G.1: 20 calls per second per app per API ---------------------------

#[tokio::test]
async fn calls_over_the_per_app_per_api_limit_are_throttled_and_do_nothing() {
    let e = env().await;
    let app = e.app_token().await;
    let res = e.post_json("/_admin/limits", json!({"qps": 3})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["qps"], 3);
    let msg = json!({"agent_id": AGENT_ID, "userid_list": "manager4220", "msg": text_msg("x")});
    // Four sends within one window (retried at the start of a fresh one so a boundary cannot split them).
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.clear();
        let window = std::time::Instant::now();
        for _ in 0..4 {
            answers.push(e.send(&app, msg.clone()).await["errcode"].clone());
        }
        if window.elapsed() < std::time::Duration::from_millis(500) && answers.contains(&json!(90018)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(answers.contains(&json!(90018)), "{answers:?}");
    assert!(e.emu.sends().len() < e.emu.calls_to(SEND), "a throttled send delivers nothing");
    // Another API of the same app has its own count; the v1.0 family answers 403 Qps….
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-user0001"})).await;
    assert_eq!(v["errcode"], 0, "{v}");
    for _ in 0..3 {
        e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
    }
    let res = e.post_json("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
    if res.status() == 403 {
        assert_v1_error(res, 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi").await;
    }
    let report: Value = e.http.get(e.url("/_admin/limits")).send().await.unwrap().json().await.unwrap();
    assert!(report["throttled"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["busiest_window"].as_u64().unwrap() <= 3, "{report}");
    // Switched off: no limit at all.
    let res = e.post_json("/_admin/limits", json!({"qps": null})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["qps"], Value::Null);
    for _ in 0..10 {
        assert_eq!(e.send(&app, msg.clone()).await["errcode"], 0);
    }
    assert_eq!(e.post_json("/_admin/limits", json!({"qps": 0})).await.status(), 400);
    e.running.stop().await;
}
