//! Directory reads with a tenant token: one user (docs/feishu-api.md §C.1), ids by email or
//! mobile (§C.2) and the app's own tenant (§A.5 "Tenant membership", `tenant/v2/tenant/query`).

use serde_json::{Value, json};

use super::fixture::{FeishuUserFixture, FeishuUserStatus, IdType, avatars, find};
use super::open::require_tenant_token;
use super::state::FeishuEmulator;
use super::wire::{Incoming, Reply};

/// docs/feishu-api.md §C.2: each of `emails` and `mobiles` holds at most 50 entries.
const BATCH_MAX: usize = 50;

fn invalid() -> Reply {
    Reply::fail(400, 40001, "invalid parameter")
}

/// The §C.1 `status` object; the flag combinations per state are inferred from the state list.
pub(crate) fn status_json(u: &FeishuUserFixture) -> Value {
    let s = u.status;
    json!({
        "is_frozen": s == FeishuUserStatus::Frozen,
        "is_resigned": s == FeishuUserStatus::Resigned,
        "is_activated": matches!(s, FeishuUserStatus::Active | FeishuUserStatus::Frozen),
        "is_exited": false,
        "is_unjoin": false,
    })
}

/// `user_id_type` of the query (default `open_id`); `None` for an unknown value.
fn user_id_type(req: &Incoming) -> Option<IdType> {
    IdType::parse(req.query("user_id_type").unwrap_or("open_id"), false)
}

// docs/feishu-api.md §C.1 — `GET /open-apis/contact/v3/users/:user_id?user_id_type=&department_id_type=`.
pub(crate) fn user(emu: &FeishuEmulator, req: &Incoming, id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let Some(id_type) = user_id_type(req) else {
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
    Reply::ok(json!({"user": user_json(u)}))
}

/// The §C.1 `user` object of a person (also `event.object` of the contact events, §E.7). Every
/// field scope is granted to the fixture app; a person's absent values are omitted.
pub(crate) fn user_json(u: &FeishuUserFixture) -> Value {
    let [a72, a240, a640, origin] = avatars(u);
    let mut user = json!({
        "union_id": u.union_id, "user_id": u.user_id, "open_id": u.open_id,
        "name": u.name, "en_name": u.en_name,
        "avatar": {"avatar_72": a72, "avatar_240": a240, "avatar_640": a640, "avatar_origin": origin},
        "status": status_json(u), "department_ids": u.department_ids,
    });
    for (key, value) in [("email", &u.email), ("mobile", &u.mobile), ("job_title", &u.job_title)] {
        if let Some(v) = value {
            user[key] = json!(v);
        }
    }
    user
}

/// A list of strings from the body; `Err` when present but not a list of strings, or too long.
fn string_list(body: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, ()> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= BATCH_MAX => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(())).collect()
        }
        Some(_) => Err(()),
    }
}

/// §C.2 mobile matching: `+<cc>...` compares as is; a bare number is a mainland (+86) number.
fn same_mobile(stored: &str, asked: &str) -> bool {
    if asked.starts_with('+') { stored == asked } else { stored.strip_prefix("+86") == Some(asked) }
}

// docs/feishu-api.md §C.2 — `POST /open-apis/contact/v3/users/batch_get_id?user_id_type=`, body
// `{"emails":[...],"mobiles":[...],"include_resigned":bool}`.
pub(crate) fn batch_get_id(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let Some(id_type) = user_id_type(req) else {
        return invalid();
    };
    let Some(body) = req.json_object() else {
        return invalid();
    };
    let (Ok(emails), Ok(mobiles)) = (string_list(&body, "emails"), string_list(&body, "mobiles")) else {
        return invalid();
    };
    let include_resigned = body.get("include_resigned").and_then(Value::as_bool).unwrap_or(false);
    let st = emu.lock();
    // Only the app's own tenant is visible (outsiders never match); resigned people only with
    // `include_resigned` — otherwise the entry comes back without `user_id` (§C.2).
    let visible = |u: &&FeishuUserFixture| include_resigned || u.status != FeishuUserStatus::Resigned;
    let entry = |key: &str, asked: &str, hit: Option<&FeishuUserFixture>| {
        let mut e = json!({ key: asked });
        if let Some(u) = hit {
            e["user_id"] = json!(id_type.of(u));
            e["status"] = status_json(u);
        }
        e
    };
    let mut list = Vec::new();
    for email in &emails {
        let hit = st.users.iter().filter(visible).find(|u| u.email.as_deref() == Some(email.as_str()));
        list.push(entry("email", email, hit));
    }
    for mobile in &mobiles {
        let hit = st.users.iter().filter(visible).find(|u| u.mobile.as_deref().is_some_and(|m| same_mobile(m, mobile)));
        list.push(entry("mobile", mobile, hit));
    }
    Reply::ok(json!({"user_list": list}))
}

// docs/feishu-api.md §A.5 "Tenant membership" — `GET /open-apis/tenant/v2/tenant/query` with a tenant token.
pub(crate) fn tenant_query(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let key = &emu.config().fixture.tenant_key;
    // The fixture has no tenant name or display id: fixed emulator values; `tenant_tag` 0 = team.
    Reply::ok(json!({"tenant": {
        "name": "飞书模拟企业 (Feishu emulator)",
        "display_id": format!("F{}", key.chars().filter(char::is_ascii_digit).take(10).collect::<String>()),
        "tenant_tag": 0,
        "tenant_key": key,
        "avatar": {},
        "domain": "feishu-emulator",
    }}))
}
