//! Bot messaging (docs/feishu-api.md §D): send (§D.1/§D.2), recall (§D.5), read receipts (§D.6).

use serde_json::{Map, Value, json};

use super::fixture::{FeishuUserStatus, IdType, find};
use super::open::require_tenant_token;
use super::state::{FeishuEmulator, FeishuMessage};
use super::wire::{Incoming, Reply, random_hex};

/// docs/feishu-api.md §D.1: text requests ≤ 150 KB.
const TEXT_MAX_BYTES: usize = 150 * 1024;
/// docs/feishu-api.md §D.1: post and card ≤ 30 KB.
const RICH_MAX_BYTES: usize = 30 * 1024;
/// docs/feishu-api.md §D.1: at most one success per `uuid` within 1 hour.
const UUID_WINDOW_MS: i64 = 3_600_000;
/// docs/feishu-api.md §D.6: read receipts only for messages ≤ 7 days old.
const READ_WINDOW_MS: i64 = 7 * 86_400_000;

fn invalid(msg: &str) -> Reply {
    Reply::fail(400, 230001, &format!("Your request contains an invalid request parameter, {msg}."))
}

/// Checks `content` against `msg_type` (docs/feishu-api.md §D.2): `Err` names the problem.
fn check_content(msg_type: &str, content: &str) -> Result<(), String> {
    let Ok(Value::Object(c)) = serde_json::from_str::<Value>(content) else {
        return Err("content is not a JSON object string".to_owned());
    };
    let has_str = |c: &Map<String, Value>, k: &str| c.get(k).is_some_and(Value::is_string);
    let ok = match msg_type {
        "text" => has_str(&c, "text"),
        // Locale keys at top level, each `{title?, content: [[node, ...], ...]}`.
        "post" => {
            !c.is_empty()
                && c.values()
                    .all(|l| l.get("content").and_then(Value::as_array).is_some_and(|p| p.iter().all(Value::is_array)))
        }
        // A card JSON, a template `{"type":"template","data":{...}}` or a card entity `{"type":"card",...}`.
        "interactive" => {
            ["elements", "body", "header", "schema", "i18n_elements"].iter().any(|k| c.contains_key(*k))
                || (matches!(c.get("type").and_then(Value::as_str), Some("template" | "card"))
                    && c.get("data").is_some_and(Value::is_object))
        }
        "image" => has_str(&c, "image_key"),
        "file" | "audio" | "sticker" => has_str(&c, "file_key"),
        "media" => has_str(&c, "file_key"),
        "share_chat" => has_str(&c, "chat_id"),
        "share_user" => has_str(&c, "user_id"),
        _ => return Err(format!("unknown msg_type {msg_type}")),
    };
    if ok { Ok(()) } else { Err(format!("content does not match msg_type {msg_type}")) }
}

/// The §D.1 response `data` of a stored message.
fn message_data(emu: &FeishuEmulator, m: &FeishuMessage) -> Value {
    let fixture = &emu.config().fixture;
    json!({
        "message_id": m.message_id,
        "msg_type": m.msg_type,
        "create_time": m.at_ms.to_string(),
        "update_time": m.at_ms.to_string(),
        "deleted": m.recalled,
        "updated": false,
        "chat_id": m.chat_id,
        "sender": {"id": fixture.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": fixture.tenant_key},
        "body": {"content": m.content},
    })
}

// docs/feishu-api.md §D.1 — `POST /open-apis/im/v1/messages?receive_id_type=` with a tenant token,
// body `{receive_id, msg_type, content (JSON string, §D.2), uuid?}`.
pub(crate) fn send(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let Some(type_name) = req.query("receive_id_type") else {
        return invalid("receive_id_type is required");
    };
    // `chat_id` is documented but group chats are not emulated: refused like an unknown type.
    let Some(id_type) = IdType::parse(type_name, true) else {
        return invalid(&format!("receive_id_type {type_name} is not supported"));
    };
    let Some(body) = req.json_object() else {
        return invalid("the body is not a JSON object");
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(receive_id), Some(msg_type), Some(content)) = (field("receive_id"), field("msg_type"), field("content"))
    else {
        return invalid("receive_id, msg_type and content are required strings");
    };
    let uuid = match body.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if u.chars().count() <= 50 => Some(u.clone()),
        Some(_) => return invalid("uuid must be a string of at most 50 characters"),
    };
    if let Err(problem) = check_content(msg_type, content) {
        return invalid(&problem);
    }
    let cap = if msg_type == "text" { TEXT_MAX_BYTES } else { RICH_MAX_BYTES };
    if matches!(msg_type, "text" | "post" | "interactive") && content.len() > cap {
        return Reply::fail(400, 230025, "The message content is too long.");
    }
    let mut st = emu.lock();
    let now = st.now_ms();
    let open_id = match find(&st.users, &st.outsiders, id_type, receive_id) {
        // §D.1 observed body for a bad open_id; the same code is used for the other id types
        // (their own codes 99992359/99992363 are listed in §C.1 but not observed on this API).
        None => {
            return Reply::fail(
                400,
                99992351,
                &format!("not a valid {type_name} or not exists. Invalid ids: [{receive_id}]"),
            );
        }
        // §D.1: 230038 cross-tenant p2p forbidden (the other tenant's people).
        Some((_, true)) => return Reply::fail(400, 230038, "Cross-tenant p2p chat is not allowed."),
        // §D.1: 230013 outside the availability — also returned for resigned users.
        Some((u, false)) if !u.available || u.status == FeishuUserStatus::Resigned => {
            return Reply::fail(400, 230013, "Bot has NO availability to this user.");
        }
        Some((u, false)) => u.open_id.clone(),
    };
    // §D.1 uuid: at most one success per uuid within 1 h. What a duplicate returns is UNCONFIRMED
    // (§H): the emulator answers success with the SAME message and stores nothing.
    if let Some(u) = &uuid
        && let Some(m) = st.messages.iter().find(|m| m.uuid.as_ref() == Some(u) && now - m.at_ms < UUID_WINDOW_MS)
    {
        return Reply::ok(message_data(emu, m));
    }
    // §D.1 "5 QPS per target user": the next send within one second is refused, nothing stored.
    // Code 230020 "frequency limit" is the presumed one (§G.8), HTTP 400 like the other IM errors.
    let qps = usize::try_from(emu.config().per_user_qps).unwrap_or(usize::MAX);
    if qps > 0 && st.messages.iter().filter(|m| m.open_id == open_id && now - m.at_ms < 1000).count() >= qps {
        return Reply::fail(400, 230020, "The request you send is too frequent, please try again later.");
    }
    let chat_id = st.chats.entry(open_id.clone()).or_insert_with(|| format!("oc_{}", random_hex(32))).clone();
    let message = FeishuMessage {
        message_id: format!("om_{}", random_hex(32)),
        receive_id: receive_id.to_owned(),
        receive_id_type: type_name.to_owned(),
        open_id,
        chat_id,
        msg_type: msg_type.to_owned(),
        content: content.to_owned(),
        uuid,
        recalled: false,
        read_at_ms: None,
        at_ms: now,
    };
    let data = message_data(emu, &message);
    st.messages.push(message);
    Reply::ok(data)
}

// docs/feishu-api.md §D.5 — `DELETE /open-apis/im/v1/messages/:message_id`.
pub(crate) fn recall(emu: &FeishuEmulator, req: &Incoming, message_id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    if message_id.starts_with("bm-") {
        // §D.3: batch messages are recalled with §D.4's API.
        return invalid("batch messages are recalled with DELETE /open-apis/im/v1/batch_messages/:id");
    }
    let mut st = emu.lock();
    let now = st.now_ms();
    let window_ms = st.recall_window_secs.saturating_mul(1000);
    // §D.5 lists no "not found" code: 230110 (already deleted) is used for unknown ids too (UNCONFIRMED).
    let Some(m) = st.messages.iter_mut().find(|m| m.message_id == message_id && !m.recalled) else {
        return Reply::fail(400, 230110, "Action unavailable as the message has been deleted.");
    };
    // §D.5: older than the tenant's recall window → 230009 (default 24 h, admin-configurable).
    if now - m.at_ms > window_ms {
        return Reply::fail(400, 230009, "Message has expired when recall message.");
    }
    m.recalled = true;
    Reply::ok(json!({}))
}

// docs/feishu-api.md §D.6 — `GET /open-apis/im/v1/messages/:message_id/read_users?user_id_type=&page_size=&page_token=`.
pub(crate) fn read_users(emu: &FeishuEmulator, req: &Incoming, message_id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let Some(id_type) = req.query("user_id_type").and_then(|t| IdType::parse(t, false)) else {
        return invalid("user_id_type is required (open_id, union_id or user_id)");
    };
    let page_size = match req.query("page_size").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("page_size must be within 1..=100"),
    };
    let offset = match req.query("page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match t.strip_prefix("emu_").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return invalid("page_token is invalid"),
        },
    };
    let st = emu.lock();
    let now = st.now_ms();
    let Some(m) = st.messages.iter().find(|m| m.message_id == message_id && !m.recalled) else {
        return Reply::fail(400, 230110, "Action unavailable as the message has been deleted.");
    };
    if now - m.at_ms > READ_WINDOW_MS {
        return Reply::fail(400, 230033, "The message is too old to query its read status.");
    }
    // A p2p message has one possible reader: its recipient, once read.
    let readers: Vec<Value> = m
        .read_at_ms
        .into_iter()
        .filter_map(|at| {
            let u = st.person(&m.open_id)?;
            Some(json!({
                "user_id_type": req.query("user_id_type"),
                "user_id": id_type.of(u),
                "timestamp": at.to_string(),
                "tenant_key": emu.config().fixture.tenant_key,
            }))
        })
        .collect();
    let items: Vec<Value> = readers.iter().skip(offset).take(page_size).cloned().collect();
    let next = offset + items.len();
    let mut data = json!({"items": items, "has_more": next < readers.len()});
    if next < readers.len() {
        data["page_token"] = json!(format!("emu_{next}"));
    }
    Reply::ok(data)
}
