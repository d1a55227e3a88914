//! OAuth 2.0 login (docs/feishu-api.md §A): the authorize page on `accounts.feishu.cn`, the
//! code/refresh → user token exchange (v2 and v3 endpoints) and the current user (`user_info`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::fixture::{FeishuUserStatus, OUTSIDER_TENANT_KEY, avatars};
use super::open::bearer;
use super::state::{AuthCode, FeishuConsent, FeishuEmulator, PendingAuth, UserGrant};
use super::wire::{Incoming, Reply, URL_SAFE, append_query, html_escape, random_from, random_hex, text, url_encode};

/// Refresh token lifetime: 604800 s (docs/feishu-api.md §A.3 example, §A.4 "7 days").
const REFRESH_TTL_SECS: i64 = 604_800;

/// Which token endpoint was called (docs/feishu-api.md §A.3 "v3 endpoint").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenEndpoint {
    /// `open.feishu.cn/open-apis/authen/v2/oauth/token`: ignores an unexpected `code_verifier`.
    V2,
    /// `accounts.feishu.cn/oauth/v3/token`: rejects a `code_verifier` when no challenge was sent.
    V3,
}

fn login_error(message: &str) -> Reply {
    // The real page's error rendering is not documented (UNCONFIRMED): an HTML page, HTTP 400.
    Reply::html(400, "授权失败 — Feishu emulator", &format!("<p id=\"error\">{}</p>", html_escape(message)))
}

// docs/feishu-api.md §A.1 — `GET /open-apis/authen/v1/authorize?client_id&response_type=code&redirect_uri&scope&state
// &code_challenge&code_challenge_method&prompt`.
pub(crate) fn authorize(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let fixture = &emu.config().fixture;
    match req.query("client_id").filter(|s| !s.is_empty()) {
        None => return login_error("missing client_id"),
        Some(id) if id != fixture.app_id => return login_error(&format!("unknown client_id {id}")),
        Some(_) => {}
    }
    if req.query("response_type") != Some("code") {
        return login_error("response_type must be code");
    }
    let Some(redirect_uri) = req.query("redirect_uri").filter(|s| !s.is_empty()) else {
        return login_error("missing redirect_uri");
    };
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return login_error("redirect_uri must be an http(s) URL");
    }
    let method = req.query("code_challenge_method").filter(|s| !s.is_empty()).unwrap_or("plain");
    if method != "S256" && method != "plain" {
        return login_error("code_challenge_method must be S256 or plain");
    }
    // §A.1: scope is space-separated, ≤50 scopes (20027 for scopes the app lacks is not emulated:
    // the fixture app has every scope).
    let scopes: Vec<&str> = req.query("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if scopes.len() > 50 {
        return login_error("at most 50 scopes");
    }
    let pending = PendingAuth {
        redirect_uri: redirect_uri.to_owned(),
        state: req.query("state").map(str::to_owned),
        scope: scopes.join(" "),
        code_challenge: req.query("code_challenge").filter(|s| !s.is_empty()).map(str::to_owned),
        code_challenge_method: method.to_owned(),
    };
    let consent = emu.lock().consent.clone();
    match consent {
        FeishuConsent::Approve { open_id } => approve(emu, pending, &open_id),
        FeishuConsent::Deny => deny(&pending),
        FeishuConsent::Page => {
            let request_id = random_hex(16);
            emu.lock().pending.insert(request_id.clone(), pending);
            consent_page(emu, &request_id)
        }
    }
}

fn consent_page(emu: &FeishuEmulator, request_id: &str) -> Reply {
    let st = emu.lock();
    let link = |open_id: &str, label: &str| {
        format!(
            "<li><a id=\"approve-{o}\" class=\"approve\" href=\"/open-apis/authen/v1/authorize/approve?request={r}&amp;open_id={e}\">{l}</a></li>\n",
            o = html_escape(open_id),
            r = url_encode(request_id),
            e = url_encode(open_id),
            l = html_escape(label),
        )
    };
    let mut html = format!(
        "<p>应用 <code>{}</code> 申请使用你的飞书身份登录。选择以谁的身份同意：</p>\n<ul id=\"users\">\n",
        html_escape(&emu.config().fixture.app_id)
    );
    for u in &st.users {
        html.push_str(&link(&u.open_id, &format!("{} ({}, {:?})", u.name, u.open_id, u.status)));
    }
    html.push_str("</ul>\n<p>其他企业的飞书账号：</p>\n<ul id=\"outsiders\">\n");
    for u in &st.outsiders {
        html.push_str(&link(&u.open_id, &format!("{} (outsider {})", u.name, u.open_id)));
    }
    html.push_str(&format!(
        "</ul>\n<p><a id=\"deny\" href=\"/open-apis/authen/v1/authorize/deny?request={}\">拒绝 (Deny)</a></p>",
        url_encode(request_id)
    ));
    Reply::html(200, "飞书授权登录 — Feishu emulator", &html)
}

/// Issues a code and redirects: docs/feishu-api.md §A.2 `{redirect_uri}?code=<64 chars>&state=` (no
/// `state` when none was sent; a `#fragment` moves to the end).
fn approve(emu: &FeishuEmulator, auth: PendingAuth, open_id: &str) -> Reply {
    let mut st = emu.lock();
    if st.person(open_id).is_none() {
        return login_error(&format!("unknown person {open_id}"));
    }
    let code = random_from(URL_SAFE, 64);
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &auth.state {
        params.push(("state", s));
    }
    let location = append_query(&auth.redirect_uri, &params);
    let expires_at_ms = st.now_ms() + emu.config().code_ttl_secs.saturating_mul(1000);
    st.codes.insert(code.clone(), AuthCode { auth, open_id: open_id.to_owned(), expires_at_ms, used: false });
    Reply::redirect(&location)
}

/// docs/feishu-api.md §A.2: `{redirect_uri}?error=access_denied&state=` (the only error value).
fn deny(auth: &PendingAuth) -> Reply {
    let mut params = vec![("error", "access_denied")];
    if let Some(s) = &auth.state {
        params.push(("state", s));
    }
    Reply::redirect(&append_query(&auth.redirect_uri, &params))
}

/// Emulator consent action: `GET /open-apis/authen/v1/authorize/approve?request=&open_id=`.
pub(crate) fn consent_approve(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let Some(open_id) = req.query("open_id") else {
        return login_error("missing open_id");
    };
    if emu.lock().person(open_id).is_none() {
        return login_error(&format!("unknown person {open_id}"));
    }
    let pending = req.query("request").and_then(|r| emu.lock().pending.remove(r));
    match pending {
        Some(p) => approve(emu, p, open_id),
        None => login_error("unknown or already answered consent request"),
    }
}

/// Emulator consent action: `GET /open-apis/authen/v1/authorize/deny?request=`.
pub(crate) fn consent_deny(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let pending = req.query("request").and_then(|r| emu.lock().pending.remove(r));
    match pending {
        Some(p) => deny(&p),
        None => login_error("unknown or already answered consent request"),
    }
}

/// `BASE64URL-NOPAD(SHA256(verifier))` (RFC 7636 §4.2, docs/feishu-api.md §E.6 vector 4).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A JWT-looking opaque token (docs/feishu-api.md §0.1: `eyJhbGciOiJFUzI1NiIs...`, 1–2 KB).
fn jwt_like() -> String {
    format!("eyJhbGciOiJFUzI1NiIsImZlaXNodS1lbXUiOnRydWV9.{}.{}", random_from(URL_SAFE, 600), random_from(URL_SAFE, 86))
}

// The RFC `error` strings other than 20002 invalid_client / 20003 invalid_grant / 20050 server_error
// are UNCONFIRMED (docs/feishu-api.md §A.3, §H); these helpers pick the RFC 6749 §5.2 value that fits.
fn invalid_request(code: i64, d: &str) -> Reply {
    Reply::oauth_err(code, "invalid_request", d)
}
fn invalid_grant(code: i64, d: &str) -> Reply {
    Reply::oauth_err(code, "invalid_grant", d)
}

/// Client credentials from the body, or from HTTP Basic auth (implied by 20070, docs/feishu-api.md
/// §A.3; Basic alone is UNCONFIRMED and accepted here).
fn client_credentials(req: &Incoming, p: &Map<String, Value>) -> Result<(String, String), Reply> {
    let basic = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(i, s)| (i.to_owned(), s.to_owned())));
    let body = (text(p, "client_id"), text(p, "client_secret"));
    match (basic, body) {
        (Some(_), (_, Some(_))) => Err(invalid_request(20070, "Basic Authentication and client_secret both provided.")),
        (Some(creds), _) => Ok(creds),
        (None, (Some(id), Some(secret))) => Ok((id, secret)),
        (None, _) => {
            Err(invalid_request(20001, "The request is missing a required parameter: client_id or client_secret."))
        }
    }
}

// docs/feishu-api.md §A.3 (code grant) and §A.4 (refresh grant) — `POST /open-apis/authen/v2/oauth/token`
// and `POST /oauth/v3/token`, JSON or form body.
pub(crate) fn token(emu: &FeishuEmulator, req: &Incoming, endpoint: TokenEndpoint) -> Reply {
    let Some(p) = req.params() else {
        return invalid_request(20063, "The request is malformed.");
    };
    let (client_id, client_secret) = match client_credentials(req, &p) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let fixture = &emu.config().fixture;
    if client_id != fixture.app_id {
        // §A.3 error table: 20048 app does not exist (`error` string UNCONFIRMED).
        return Reply::oauth_err(20048, "invalid_client", "The specified app does not exist.");
    }
    if client_secret != fixture.app_secret {
        return Reply::oauth_err(20002, "invalid_client", "The client secret is invalid.");
    }
    match text(&p, "grant_type").as_deref() {
        Some("authorization_code") => code_grant(emu, &p, endpoint),
        Some("refresh_token") => refresh_grant(emu, &p),
        Some(_) => Reply::oauth_err(20036, "unsupported_grant_type", "The grant type is not supported."),
        None => invalid_request(20001, "The request is missing a required parameter: grant_type."),
    }
}

fn code_grant(emu: &FeishuEmulator, p: &Map<String, Value>, endpoint: TokenEndpoint) -> Reply {
    let Some(code) = text(p, "code") else {
        return invalid_request(20001, "The request is missing a required parameter: code.");
    };
    let verifier = text(p, "code_verifier");
    let mut st = emu.lock();
    let now = st.now_ms();
    let Some(entry) = st.codes.get(&code).cloned() else {
        return invalid_grant(20003, "The authorization code is not found. Please check the code.");
    };
    if entry.used {
        return invalid_grant(20065, "The authorization code has been used.");
    }
    if entry.expires_at_ms <= now {
        return invalid_grant(20004, "The authorization code has expired.");
    }
    if text(p, "redirect_uri").is_some_and(|r| r != entry.auth.redirect_uri) {
        return invalid_grant(20071, "The redirect_uri does not match the one of the authorization request.");
    }
    // §A.1/§A.3 PKCE: S256 or plain (default); verifier 43–128 chars of [A-Za-z0-9-._~].
    let pkce_ok = match (&entry.auth.code_challenge, &verifier) {
        (Some(_), None) => false,
        (Some(challenge), Some(v)) => {
            let well_formed = (43..=128).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            let computed = if entry.auth.code_challenge_method == "S256" { s256(v) } else { v.clone() };
            well_formed && &computed == challenge
        }
        // §A.3 "v3 endpoint": v2 accepts a verifier when no challenge was sent, v3 rejects it
        // (the code for that rejection is UNCONFIRMED; 20049 per §G.5 "20049 likely").
        (None, Some(_)) => endpoint == TokenEndpoint::V2,
        (None, None) => true,
    };
    if !pkce_ok {
        return invalid_grant(20049, "PKCE verification failed: the code_verifier is invalid.");
    }
    let Some(person) = st.person(&entry.open_id).cloned() else {
        return invalid_grant(20008, "The user does not exist.");
    };
    // The code is consumed by a successful exchange only (whether failed attempts consume it is
    // UNCONFIRMED). §A.3: 20010 for a person outside the app's availability.
    if !person.available {
        return invalid_grant(20010, "The user does not have permission to use this app.");
    }
    if let Some(c) = st.codes.get_mut(&code) {
        c.used = true;
    }
    let scope = entry.auth.scope.clone();
    issue(emu, &mut st, &entry.open_id, scope)
}

/// Issues an access token (and a refresh token when `offline_access` was granted, §A.3).
fn issue(emu: &FeishuEmulator, st: &mut super::state::State, open_id: &str, scope: String) -> Reply {
    let now = st.now_ms();
    let ttl = emu.config().token_ttl_secs;
    let access = jwt_like();
    st.user_tokens.insert(
        access.clone(),
        UserGrant {
            open_id: open_id.to_owned(),
            scope: scope.clone(),
            expires_at_ms: now + ttl.saturating_mul(1000),
            used: false,
        },
    );
    let mut body =
        json!({"code": 0, "access_token": access, "expires_in": ttl, "token_type": "Bearer", "scope": scope});
    if scope.split(' ').any(|s| s == "offline_access") {
        let refresh = jwt_like();
        st.refresh_tokens.insert(
            refresh.clone(),
            UserGrant { open_id: open_id.to_owned(), scope, expires_at_ms: now + REFRESH_TTL_SECS * 1000, used: false },
        );
        body["refresh_token"] = json!(refresh);
        body["refresh_token_expires_in"] = json!(REFRESH_TTL_SECS);
    }
    Reply::oauth_ok(body)
}

// docs/feishu-api.md §A.4 — refresh grant: single use (rotation), old access token stays valid.
fn refresh_grant(emu: &FeishuEmulator, p: &Map<String, Value>) -> Reply {
    let Some(refresh) = text(p, "refresh_token") else {
        return invalid_request(20001, "The request is missing a required parameter: refresh_token.");
    };
    let mut st = emu.lock();
    let now = st.now_ms();
    let Some(grant) = st.refresh_tokens.get(&refresh).cloned() else {
        return invalid_grant(20026, "The refresh token is invalid.");
    };
    if grant.used {
        return invalid_grant(20073, "The refresh token has been used.");
    }
    if grant.expires_at_ms <= now {
        return invalid_grant(20037, "The refresh token has expired.");
    }
    let scope = match text(p, "scope") {
        None => grant.scope.clone(),
        Some(s) => {
            let asked: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
            if asked.iter().enumerate().any(|(i, a)| asked.iter().skip(i + 1).any(|b| a == b)) {
                return Reply::oauth_err(20067, "invalid_scope", "Duplicate scopes.");
            }
            if !asked.iter().all(|a| grant.scope.split(' ').any(|g| g == *a)) {
                return Reply::oauth_err(20068, "invalid_scope", "The scope was not granted.");
            }
            asked.join(" ")
        }
    };
    if let Some(g) = st.refresh_tokens.get_mut(&refresh) {
        g.used = true;
    }
    issue(emu, &mut st, &grant.open_id, scope)
}

// docs/feishu-api.md §A.5 — `GET /open-apis/authen/v1/user_info` with `Authorization: Bearer <user_access_token>`.
pub(crate) fn user_info(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let Some(token) = bearer(req) else {
        // §0.3: missing / non-Bearer header → 99991661, HTTP 400.
        return Reply::fail(
            400,
            99991661,
            "Missing access token for authorization. Please make a request with token attached.",
        );
    };
    let st = emu.lock();
    let now = st.now_ms();
    let Some(grant) = st.user_tokens.get(token).filter(|g| g.expires_at_ms > now) else {
        // §A.5's own table: 20005 with HTTP 200 for an invalid user token. Whether a real expired
        // token yields 20005 or 99991668/99991677 is UNCONFIRMED (§0.3, §H); the endpoint's own
        // documented answer is used for unknown and expired tokens alike.
        return Reply::fail(200, 20005, "The user access token passed is invalid");
    };
    let Some(u) = st.person(&grant.open_id) else {
        return Reply::fail(200, 20008, "user not exist");
    };
    match u.status {
        FeishuUserStatus::Active => {}
        FeishuUserStatus::Resigned => return Reply::fail(200, 20021, "user resigned"),
        FeishuUserStatus::Frozen => return Reply::fail(200, 20022, "user frozen"),
        FeishuUserStatus::Unactivated => return Reply::fail(200, 20023, "user not registered"),
    }
    let outsider = st.outsiders.iter().any(|o| o.open_id == u.open_id);
    let tenant_key = if outsider { OUTSIDER_TENANT_KEY } else { emu.config().fixture.tenant_key.as_str() };
    let [a72, a240, a640, origin] = avatars(u);
    // The fixture app holds every field scope, so the gated fields (email, user_id, mobile) are
    // present whenever the person has them; absent values are omitted (omitted vs "" UNCONFIRMED).
    let mut data = json!({
        "name": u.name, "en_name": u.en_name,
        "avatar_url": origin, "avatar_thumb": a72, "avatar_middle": a240, "avatar_big": a640,
        "open_id": u.open_id, "union_id": u.union_id, "tenant_key": tenant_key, "user_id": u.user_id,
    });
    if let Some(e) = &u.email {
        data["email"] = json!(e);
    }
    if let Some(m) = &u.mobile {
        data["mobile"] = json!(m);
    }
    Reply::ok(data)
}
