//! Login pages (login.dingtalk.com), token endpoints and the current-user profile
//! (api.dingtalk.com `/v1.0/oauth2/*`, `/v1.0/contact/users/*`, oapi `/gettoken`).

use serde_json::{Map, Value, json};

use super::state::{AuthCode, ConsentMode, Emulator, PendingAuth, Person, UserToken, random_base36, random_hex};
use super::wire::{Incoming, Reply, append_query, html_escape, url_encode};

/// Cookie carrying the pending consent request id, so a cookie-jar client can approve without
/// scraping the `request` parameter from the page.
pub(crate) const CONSENT_COOKIE: &str = "dingtalk_emu_consent";

/// How many generated users the consent page lists.
const PAGE_GENERATED_USERS: usize = 5;

/// 30 days (docs/dingtalk-api.md §A.3: refreshToken valid 30 days).
const REFRESH_TTL_MS: i64 = 30 * 86_400_000;

fn login_error(message: &str) -> Reply {
    Reply::html(400, "授权失败 — DingTalk emulator", &format!("<p id=\"error\">{}</p>", html_escape(message)))
}

// docs/dingtalk-api.md §A.1 — `GET /oauth2/auth?redirect_uri&response_type=code&client_id&scope&state&prompt=consent`.
pub(crate) fn authorize(emu: &Emulator, req: &Incoming) -> Reply {
    let Some(client_id) = req.query("client_id").filter(|s| !s.is_empty()) else {
        return login_error("missing client_id");
    };
    // docs/dingtalk-api.md §A.1: `client_id` is the AppKey of an internal app or the SuiteKey of an ISV app.
    // Suites have no registered redirect URLs in the fixture (any http(s) URL is accepted).
    let org = emu.org();
    let registered = match (org.app(client_id), org.suite(client_id)) {
        (Some(app), _) => app.redirect_uris.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => return login_error(&format!("unknown client_id {client_id}")),
    };
    let Some(redirect_uri) = req.query("redirect_uri").filter(|s| !s.is_empty()) else {
        return login_error("missing redirect_uri");
    };
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return login_error("redirect_uri must be an http(s) URL");
    }
    // docs/dingtalk-api.md §A.1: must match the app's registered redirect URL (empty list = accept any).
    if !registered.is_empty() && !registered.iter().any(|u| u == redirect_uri) {
        return login_error("redirect_uri does not match the app's registered redirect URL");
    }
    if req.query("response_type") != Some("code") {
        return login_error("response_type must be code");
    }
    // docs/dingtalk-api.md §A.1: scope is `openid` or `openid corpid`, space-separated; the FAQ's `openid%2Bcorpid`
    // form is also accepted (so `+` separates too). A comma-joined scope is rejected.
    let scope = req.query("scope").unwrap_or("");
    let scopes: Vec<&str> = scope.split([' ', '+']).filter(|s| !s.is_empty()).collect();
    if !scopes.contains(&"openid") {
        return login_error("scope must include openid");
    }
    if let Some(bad) = scopes.iter().find(|s| **s != "openid" && **s != "corpid") {
        return login_error(&format!("unsupported scope {bad}"));
    }
    if req.query("prompt") != Some("consent") {
        return login_error("prompt must be consent");
    }
    let pending = PendingAuth {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: req.query("state").map(str::to_owned),
        corpid_scope: scopes.contains(&"corpid"),
    };
    let mode = emu.lock().consent.clone();
    match mode {
        ConsentMode::Approve { who } => approve(emu, &pending, &who),
        ConsentMode::Deny { error } => deny(&pending, &error),
        ConsentMode::Page => {
            let request_id = random_hex(16);
            emu.lock().pending.insert(request_id.clone(), pending);
            consent_page(emu, &request_id, client_id).with_header(
                "set-cookie",
                format!("{CONSENT_COOKIE}={request_id}; Path=/oauth2; HttpOnly; SameSite=Lax"),
            )
        }
    }
}

fn consent_page(emu: &Emulator, request_id: &str, app_key: &str) -> Reply {
    let org = emu.org();
    let link = |who: &str, label: &str, id: &str| {
        format!(
            "<li><a id=\"approve-{id}\" class=\"approve\" href=\"/oauth2/consent/approve?request={r}&amp;who={w}\">{l}</a></li>\n",
            id = html_escape(id),
            r = url_encode(request_id),
            w = url_encode(who),
            l = html_escape(label),
        )
    };
    let mut html = format!(
        "<p>应用 <code>{}</code> 申请使用你的钉钉身份登录。选择以谁的身份同意：</p>\n<ul id=\"members\">\n",
        html_escape(app_key)
    );
    let generated_end = org.main.named_count + PAGE_GENERATED_USERS;
    for u in org.main.users.iter().take(generated_end) {
        let state = if u.active { "" } else { "，未激活" };
        html.push_str(&link(&u.userid, &format!("{} ({}{state})", u.name, u.userid), &u.userid));
    }
    html.push_str("</ul>\n<p>非本组织的钉钉账号：</p>\n<ul id=\"outsiders\">\n");
    for o in &org.outsiders {
        html.push_str(&link(&o.unionid, &format!("{} (outsider {})", o.nick, o.unionid), &o.unionid));
    }
    html.push_str(&format!(
        "</ul>\n<p><a id=\"deny\" href=\"/oauth2/consent/deny?request={}\">拒绝 (Deny)</a></p>",
        url_encode(request_id)
    ));
    Reply::html(200, "钉钉授权登录 — DingTalk emulator", &html)
}

fn resolve_person(emu: &Emulator, who: &str) -> Option<Person> {
    let org = emu.org();
    if let Some(u) = org.user(who).or_else(|| org.user_by_unionid(who)) {
        return Some(Person::Member(u.userid.clone()));
    }
    org.outsider(who).map(|o| Person::Outsider(o.unionid.clone()))
}

/// Issues an auth code and redirects (docs/dingtalk-api.md §A.2: both `code` and `authCode`, then `state`).
fn approve(emu: &Emulator, pending: &PendingAuth, who: &str) -> Reply {
    let Some(person) = resolve_person(emu, who) else {
        return login_error(&format!("unknown person {who}"));
    };
    let code = random_hex(32);
    {
        let mut st = emu.lock();
        let expires_at_ms = st.now_ms() + emu.inner.auth_code_ttl_secs.saturating_mul(1000);
        st.codes.insert(
            code.clone(),
            AuthCode {
                client_id: pending.client_id.clone(),
                person,
                corpid_scope: pending.corpid_scope,
                expires_at_ms,
            },
        );
    }
    let mut params = vec![("code", code.as_str()), ("authCode", code.as_str())];
    if let Some(state) = &pending.state {
        params.push(("state", state));
    }
    Reply::redirect(&append_query(&pending.redirect_uri, &params))
}

/// docs/dingtalk-api.md §A.2 failure: `redirect_uri?error=...&state=...` (error vocabulary UNCONFIRMED).
fn deny(pending: &PendingAuth, error: &str) -> Reply {
    let mut params = vec![("error", error)];
    if let Some(state) = &pending.state {
        params.push(("state", state));
    }
    Reply::redirect(&append_query(&pending.redirect_uri, &params))
}

fn take_pending(emu: &Emulator, req: &Incoming) -> Option<PendingAuth> {
    let id = req.query("request").map(str::to_owned).or_else(|| req.cookie(CONSENT_COOKIE))?;
    emu.lock().pending.remove(&id)
}

// Emulator-only page action (the real consent page is interactive): approve as `who`.
pub(crate) fn consent_approve(emu: &Emulator, req: &Incoming) -> Reply {
    let Some(who) = req.query("who").filter(|s| !s.is_empty()) else {
        return login_error("missing who");
    };
    if resolve_person(emu, who).is_none() {
        return login_error(&format!("unknown person {who}"));
    }
    match take_pending(emu, req) {
        Some(pending) => approve(emu, &pending, who),
        None => login_error("unknown or already used consent request"),
    }
}

// Emulator-only page action: deny (`error=access_denied` unless `error` is given).
pub(crate) fn consent_deny(emu: &Emulator, req: &Incoming) -> Reply {
    let error = req.query("error").filter(|s| !s.is_empty()).unwrap_or("access_denied");
    match take_pending(emu, req) {
        Some(pending) => deny(&pending, error),
        None => login_error("unknown or already used consent request"),
    }
}

/// docs/dingtalk-api.md §0.2: only JSON bodies are accepted by the v1.0 token endpoints; a form body fails with
/// "body is mandatory for this action". The server-side code casing is UNCONFIRMED: we answer
/// `MissingBody` (the SDK shows `[Missingbody]`).
fn v1_json_body(req: &Incoming) -> Result<Map<String, Value>, Reply> {
    let is_json = req.media_type() == "application/json";
    match req.json_object() {
        Some(m) if is_json => Ok(m),
        _ => Err(Reply::v1_err(400, "MissingBody", "body is mandatory for this action.")),
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn invalid_client() -> Reply {
    Reply::v1_err(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
}

fn check_app(emu: &Emulator, key: Option<&str>, secret: Option<&str>) -> Option<String> {
    let org = emu.org();
    let app = org.app(key?)?;
    (Some(app.app_secret.as_str()) == secret).then(|| app.app_key.clone())
}

/// An OAuth client (docs/dingtalk-api.md §A.3 `clientId`/`clientSecret`: AppKey/AppSecret or SuiteKey/SuiteSecret).
fn check_client(emu: &Emulator, key: Option<&str>, secret: Option<&str>) -> Option<String> {
    check_app(emu, key, secret).or_else(|| {
        let org = emu.org();
        let suite = org.suite(key?)?;
        (Some(suite.suite_secret.as_str()) == secret).then(|| suite.suite_key.clone())
    })
}

// docs/dingtalk-api.md §B.1 — `POST /v1.0/oauth2/accessToken` `{"appKey","appSecret"}` → `{"accessToken","expireIn"}`.
pub(crate) fn app_access_token(emu: &Emulator, req: &Incoming) -> Reply {
    let body = match v1_json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // Missing credentials are treated like wrong ones (UNCONFIRMED: the real gateway may answer a
    // missing-parameter code instead).
    let Some(app_key) = check_app(emu, str_field(&body, "appKey"), str_field(&body, "appSecret")) else {
        return invalid_client();
    };
    let (token, expire_in) = emu.issue_app_token(&app_key);
    Reply::v1_ok(json!({"accessToken": token, "expireIn": expire_in}))
}

// docs/dingtalk-api.md §B.2 — `GET /gettoken?appkey&appsecret` (success without `request_id`; 40096 on bad
// credentials; 40035 when the parameters are missing from the query).
pub(crate) fn gettoken(emu: &Emulator, req: &Incoming) -> Reply {
    let (key, secret) = (req.query("appkey"), req.query("appsecret"));
    if key.is_none_or(str::is_empty) {
        return Reply::legacy(json!({"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"}));
    }
    let Some(app_key) = check_app(emu, key, secret) else {
        return Reply::legacy(json!({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}));
    };
    let (token, expires_in) = emu.issue_app_token(&app_key);
    Reply::legacy(json!({
        "errcode": 0,
        "access_token": token,
        "errmsg": "ok",
        "expires_in": expires_in,
    }))
}

// docs/dingtalk-api.md §A.3 — `POST /v1.0/oauth2/userAccessToken`.
pub(crate) fn user_access_token(emu: &Emulator, req: &Incoming) -> Reply {
    let body = match v1_json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(app_key) = check_client(emu, str_field(&body, "clientId"), str_field(&body, "clientSecret")) else {
        return invalid_client();
    };
    let ttl_ms = emu.inner.token_ttl_secs.saturating_mul(1000);
    let grant = match str_field(&body, "grantType") {
        Some("authorization_code") => {
            // UNCONFIRMED (docs/dingtalk-api.md §A.3): the code for a bad/used/expired authCode; we answer
            // 400 `invalidCode` "无效的授权码" from the global error list.
            let invalid_code = || Reply::v1_err(400, "invalidCode", "无效的授权码");
            let Some(code) = str_field(&body, "code") else {
                return invalid_code();
            };
            let mut st = emu.lock();
            let now = st.now_ms();
            // Single use (docs/dingtalk-api.md §A.2): removed on the first exchange attempt that names this app.
            match st.codes.get(code) {
                Some(c) if c.client_id == app_key => {}
                _ => return invalid_code(),
            }
            let Some(c) = st.codes.remove(code) else {
                return invalid_code();
            };
            if c.expires_at_ms <= now {
                return invalid_code();
            }
            (c.person, c.corpid_scope)
        }
        Some("refresh_token") => {
            // UNCONFIRMED (docs/dingtalk-api.md §A.3): the code for a bad/expired refreshToken; we answer
            // 400 `invalidRefreshToken`.
            let invalid_refresh = || Reply::v1_err(400, "invalidRefreshToken", "无效的refreshToken");
            let Some(refresh) = str_field(&body, "refreshToken") else {
                return invalid_refresh();
            };
            let st = emu.lock();
            let now = st.now_ms();
            match st.refresh_tokens.get(refresh) {
                Some(r) if r.app_key == app_key && r.expires_at_ms > now => (r.person.clone(), r.corpid_scope),
                _ => return invalid_refresh(),
            }
        }
        // UNCONFIRMED: the code for a bad grantType; we reuse §B.3's `unsupported.grant.type`.
        _ => {
            return Reply::v1_err(
                400,
                "unsupported.grant.type",
                "grantType must be authorization_code or refresh_token",
            );
        }
    };
    let (person, corpid_scope) = grant;
    let mut st = emu.lock();
    let now = st.now_ms();
    // docs/dingtalk-api.md §A.3/§B.6: a repeated fetch while valid returns the same token and extends it. The
    // refresh token is likewise reused while valid (not rotated) — UNCONFIRMED.
    let same = |t: &UserToken| t.app_key == app_key && t.person == person && t.expires_at_ms > now;
    let access = match st.user_tokens.iter_mut().find(|(_, t)| same(t)) {
        Some((token, t)) => {
            t.expires_at_ms = now + ttl_ms;
            t.corpid_scope = corpid_scope;
            token.clone()
        }
        None => {
            let token = random_hex(32);
            st.user_tokens.insert(
                token.clone(),
                UserToken {
                    app_key: app_key.clone(),
                    person: person.clone(),
                    corpid_scope,
                    expires_at_ms: now + ttl_ms,
                },
            );
            token
        }
    };
    let refresh = match st.refresh_tokens.iter_mut().find(|(_, t)| same(t)) {
        Some((token, t)) => {
            t.corpid_scope = corpid_scope;
            token.clone()
        }
        None => {
            let token = random_base36(32);
            st.refresh_tokens.insert(
                token.clone(),
                UserToken {
                    app_key: app_key.clone(),
                    person: person.clone(),
                    corpid_scope,
                    expires_at_ms: now + REFRESH_TTL_MS,
                },
            );
            token
        }
    };
    drop(st);
    let mut out = json!({
        "accessToken": access,
        "refreshToken": refresh,
        "expireIn": emu.inner.token_ttl_secs,
    });
    // `corpId` only when the scope included `corpid` and the person is a member (docs/dingtalk-api.md §A.3).
    if corpid_scope && matches!(person, Person::Member(_)) {
        out["corpId"] = json!(emu.org().corp().corp_id);
    }
    Reply::v1_ok(out)
}

// docs/dingtalk-api.md §A.4 — `GET /v1.0/contact/users/{unionId|me}` with `x-acs-dingtalk-access-token`.
pub(crate) fn users_me(emu: &Emulator, req: &Incoming, who: &str) -> Reply {
    let Some(token) = req.header("x-acs-dingtalk-access-token").filter(|t| !t.is_empty()) else {
        return Reply::v1_err(400, "AuthenticationFailed.MissingParameter", "缺少参数：x-acs-dingtalk-access-token");
    };
    let Some(user_token) = emu.user_token(token) else {
        if emu.app_token(token).is_some() {
            return Reply::v1_err(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied", "没有调用该接口的权限");
        }
        return Reply::v1_err(400, "InvalidAuthentication", "不合法的access_token");
    };
    let org = emu.org();
    let mut profile = Map::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            profile.insert(k.to_owned(), json!(v));
        }
    };
    let unionid = match &user_token.person {
        Person::Member(userid) => {
            let Some(u) = org.user(userid) else {
                return Reply::v1_err(404, "invalidParameter.user.notFound", "找不到该用户");
            };
            put("nick", Some(&u.name));
            put("avatarUrl", u.avatar.as_ref());
            put("mobile", u.mobile.as_ref());
            put("openId", Some(&u.open_id));
            put("unionId", Some(&u.unionid));
            put("email", u.email.as_ref());
            put("stateCode", u.state_code.as_ref());
            u.unionid.clone()
        }
        Person::Outsider(unionid) => {
            let Some(o) = org.outsider(unionid) else {
                return Reply::v1_err(404, "invalidParameter.user.notFound", "找不到该用户");
            };
            put("nick", Some(&o.nick));
            put("avatarUrl", o.avatar.as_ref());
            put("mobile", o.mobile.as_ref());
            put("openId", Some(&o.open_id));
            put("unionId", Some(&o.unionid));
            put("email", o.email.as_ref());
            put("stateCode", o.state_code.as_ref());
            o.unionid.clone()
        }
    };
    // Only `me` or the token owner's own unionId are served; anyone else is "not found" here.
    if who != "me" && who != unionid {
        return Reply::v1_err(404, "invalidParameter.user.notFound", "找不到该用户");
    }
    Reply::v1_ok(Value::Object(profile))
}
