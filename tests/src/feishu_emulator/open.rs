//! App tokens (docs/feishu-api.md §B.1), the OpenAPI auth gateway (§0.3) and the contact
//! directory (§C.1).

use serde_json::json;

use super::fixture::{FeishuUserStatus, IdType, avatars, find};
use super::state::FeishuEmulator;
use super::wire::{Incoming, Reply, random_hex, text};

/// Tenant tokens are re-issued below this many remaining seconds (docs/feishu-api.md §B.1: 30 min).
const ROTATE_BELOW_SECS: i64 = 30 * 60;

/// The token of an `Authorization: Bearer <token>` header; `None` when absent, empty or not
/// `Bearer ` (docs/feishu-api.md §0.1: "A header without the `Bearer ` prefix is treated as *no token*").
pub(crate) fn bearer(req: &Incoming) -> Option<&str> {
    req.header("authorization")?.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty())
}

/// The §0.3 gateway for APIs called with a tenant token: `Err` carries the 99991661 (no token) or
/// 99991663 (unknown/expired token) reply, both HTTP 400. User tokens are not emulated on these
/// APIs and get 99991663 like any unknown token.
pub(crate) fn require_tenant_token(emu: &FeishuEmulator, req: &Incoming) -> Result<(), Reply> {
    let Some(token) = bearer(req) else {
        return Err(Reply::fail(
            400,
            99991661,
            "Missing access token for authorization. Please make a request with token attached.",
        ));
    };
    if emu.lock().tenant_token_valid(token) {
        Ok(())
    } else {
        Err(Reply::fail(
            400,
            99991663,
            "Invalid access token for authorization. Please make a request with token attached.",
        ))
    }
}

// docs/feishu-api.md §B.1 — `POST /open-apis/auth/v3/tenant_access_token/internal` (and
// `app_access_token/internal`, same body; for a self-built app both tokens are the same value).
pub(crate) fn tenant_access_token(emu: &FeishuEmulator, req: &Incoming, with_app_token: bool) -> Reply {
    // JSON is documented; whether form bodies are accepted is UNCONFIRMED (§H) — accepted here.
    let params = req.params().unwrap_or_default();
    let fixture = &emu.config().fixture;
    // §B.1: failures are HTTP 200. Unknown/missing app → 10003 "invalid param"; wrong secret →
    // 10014 "app secret invalid" (the captured text; the 10014/10015 split is UNCONFIRMED).
    if text(&params, "app_id").as_deref() != Some(fixture.app_id.as_str()) {
        return Reply::auth_v3(json!({"code": 10003, "data": {}, "msg": "invalid param"}));
    }
    if text(&params, "app_secret").as_deref() != Some(fixture.app_secret.as_str()) {
        return Reply::auth_v3(json!({"code": 10014, "msg": "app secret invalid"}));
    }
    let ttl_ms = emu.config().token_ttl_secs.saturating_mul(1000);
    let mut st = emu.lock();
    let now = st.now_ms();
    st.tenant_token_fetches += 1;
    st.tenant_tokens.retain(|_, exp| *exp > now);
    // §B.1: the same token while ≥ 30 min remain (`expire` = remaining seconds); below, a new one,
    // the old one staying valid until its own expiry.
    let current = st
        .current_tenant_token
        .as_ref()
        .and_then(|t| st.tenant_tokens.get(t).map(|exp| (t.clone(), *exp)))
        .filter(|(_, exp)| (exp - now) / 1000 >= ROTATE_BELOW_SECS);
    let (token, expires_at_ms) = match current {
        Some(c) => c,
        None => {
            let token = format!("t-{}", random_hex(40));
            st.tenant_tokens.insert(token.clone(), now + ttl_ms);
            st.current_tenant_token = Some(token.clone());
            (token, now + ttl_ms)
        }
    };
    let expire = (expires_at_ms - now) / 1000;
    let mut body = json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire});
    if with_app_token {
        body["app_access_token"] = json!(token);
    }
    Reply::auth_v3(body)
}

// docs/feishu-api.md §C.1 — `GET /open-apis/contact/v3/users/:user_id?user_id_type=&department_id_type=`.
pub(crate) fn contact_user(emu: &FeishuEmulator, req: &Incoming, id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let invalid = || Reply::fail(400, 40001, "invalid parameter");
    let Some(id_type) = IdType::parse(req.query("user_id_type").unwrap_or("open_id"), false) else {
        return invalid();
    };
    // §0.6: default `open_department_id`; the fixture only has `od-` ids, so `department_id` gets them too.
    if !matches!(
        req.query("department_id_type").unwrap_or("open_department_id"),
        "open_department_id" | "department_id"
    ) {
        return invalid();
    }
    let st = emu.lock();
    // §C.1: 41050 `no user authority` for people outside the app's contact scope — used for the
    // other tenant's people and, UNCONFIRMED (41012 / 99992351 also possible, §H), for unknown ids.
    let Some((u, false)) = find(&st.users, &st.outsiders, id_type, id) else {
        return Reply::fail(400, 41050, "no user authority error");
    };
    let [a72, a240, a640, origin] = avatars(u);
    // §C.1 `status`; the flag combinations per state are inferred from the state list.
    let s = u.status;
    let status = json!({
        "is_frozen": s == FeishuUserStatus::Frozen,
        "is_resigned": s == FeishuUserStatus::Resigned,
        "is_activated": matches!(s, FeishuUserStatus::Active | FeishuUserStatus::Frozen),
        "is_exited": false,
        "is_unjoin": false,
    });
    // Every field scope is granted to the fixture app; a person's absent values are omitted.
    let mut user = json!({
        "union_id": u.union_id, "user_id": u.user_id, "open_id": u.open_id,
        "name": u.name, "en_name": u.en_name,
        "avatar": {"avatar_72": a72, "avatar_240": a240, "avatar_640": a640, "avatar_origin": origin},
        "status": status, "department_ids": u.department_ids,
    });
    for (key, value) in [("email", &u.email), ("mobile", &u.mobile), ("job_title", &u.job_title)] {
        if let Some(v) = value {
            user[key] = json!(v);
        }
    }
    Reply::ok(json!({"user": user}))
}
