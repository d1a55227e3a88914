//! App tokens (docs/feishu-api.md §B.1) and the OpenAPI auth gateway (§0.3).

use serde_json::json;

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
