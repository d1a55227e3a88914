//! Batch sending (docs/feishu-api.md §D.3) and its follow-ups (§D.4): progress, read counts,
//! recall. Batch tasks are stored apart from single messages ([`FeishuBatch`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::fixture::{FeishuUserFixture, FeishuUserStatus, IdType};
use super::open::require_tenant_token;
use super::state::FeishuEmulator;
use super::wire::{Incoming, Reply, random_hex};

/// docs/feishu-api.md §D.3: each id list holds at most 200 ids.
const LIST_MAX: usize = 200;

/// One accepted `message/v4/batch_send` task (docs/feishu-api.md §D.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuBatch {
    /// `bm-` + 32 hex.
    pub batch_id: String,
    /// `msg_type` as sent.
    pub msg_type: String,
    /// The `content` object (or `card` for `interactive`), as JSON text.
    pub content: String,
    /// open_ids of every valid recipient (ids and department members, deduplicated).
    pub recipients: Vec<String>,
    /// open_ids actually delivered: recipients in the availability and not resigned.
    pub delivered: Vec<String>,
    /// open_ids that read it (`POST /_admin/read` with `open_id`).
    pub read: Vec<String>,
    /// Recalled with `DELETE /open-apis/im/v1/batch_messages/:id` (§D.4).
    pub recalled: bool,
    /// Emulator-clock send time, epoch ms.
    pub at_ms: i64,
}

/// docs/feishu-api.md §D.3 errors are HTTP 200: 10003 invalid parameter.
fn invalid(msg: &str) -> Reply {
    Reply::fail(200, 10003, &format!("invalid parameter: {msg}"))
}

fn id_list(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, Reply> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= LIST_MAX => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| invalid(&format!("{key} must hold strings"))))
            .collect(),
        Some(_) => Err(invalid(&format!("{key} must be a list of at most {LIST_MAX} ids"))),
    }
}

/// The content object for `msg_type` (§D.3: objects, `card` for interactive, post wrapped in `post`).
fn batch_content(body: &Map<String, Value>, msg_type: &str) -> Result<Value, Reply> {
    let content = body.get("content").filter(|c| c.is_object());
    let has = |k: &str| content.and_then(|c| c.get(k)).is_some_and(|v| v.is_string() || v.is_object());
    let ok = match msg_type {
        "text" => has("text"),
        "image" => has("image_key"),
        "post" => content.and_then(|c| c.get("post")).is_some_and(Value::is_object),
        "share_chat" => has("share_chat_id"),
        "interactive" => {
            return body.get("card").filter(|c| c.is_object()).cloned().ok_or_else(|| invalid("card is required"));
        }
        _ => return Err(invalid(&format!("msg_type {msg_type} is not supported"))),
    };
    match content {
        Some(c) if ok => Ok(c.clone()),
        _ => Err(invalid(&format!("content does not match msg_type {msg_type}"))),
    }
}

// docs/feishu-api.md §D.3 — `POST /open-apis/message/v4/batch_send/` with a tenant token.
pub(crate) fn send(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let Some(body) = req.json_object() else {
        return invalid("the body is not a JSON object");
    };
    let mut lists = Vec::new();
    for key in ["department_ids", "open_ids", "user_ids", "union_ids"] {
        match id_list(&body, key) {
            Ok(l) => lists.push(l),
            Err(r) => return r,
        }
    }
    let [departments, open_ids, user_ids, union_ids] = <[Vec<String>; 4]>::try_from(lists).unwrap_or_default();
    if departments.is_empty() && open_ids.is_empty() && user_ids.is_empty() && union_ids.is_empty() {
        return invalid("at least one of department_ids, open_ids, user_ids, union_ids is required");
    }
    let Some(msg_type) = body.get("msg_type").and_then(Value::as_str) else {
        return invalid("msg_type is required");
    };
    let content = match batch_content(&body, msg_type) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut st = emu.lock();
    let now = st.now_ms();
    let mut open_of_recipients = Vec::new();
    let mut invalid_ids = Map::new();
    for (key, ids, id_type) in [
        ("invalid_open_ids", &open_ids, IdType::Open),
        ("invalid_user_ids", &user_ids, IdType::User),
        ("invalid_union_ids", &union_ids, IdType::Union),
    ] {
        let mut bad = Vec::new();
        for id in ids {
            match st.users.iter().find(|u| id_type.of(u) == Some(id.as_str())) {
                Some(u) => push_unique(&mut open_of_recipients, &u.open_id),
                None => bad.push(json!(id)),
            }
        }
        invalid_ids.insert(key.to_owned(), Value::Array(bad));
    }
    // §D.3: departments include sub-departments (the fixture has a flat list); root `0` not allowed.
    let mut bad_departments = Vec::new();
    for d in &departments {
        let members: Vec<&FeishuUserFixture> = st.users.iter().filter(|u| u.department_ids.contains(d)).collect();
        if d == "0" || members.is_empty() {
            bad_departments.push(json!(d));
        }
        for u in members {
            push_unique(&mut open_of_recipients, &u.open_id);
        }
    }
    invalid_ids.insert("invalid_department_ids".to_owned(), Value::Array(bad_departments));
    // Delivery skips people outside the availability and resigned people (as §D.1's 230013).
    let delivered = st
        .users
        .iter()
        .filter(|u| open_of_recipients.contains(&u.open_id) && u.available && u.status != FeishuUserStatus::Resigned)
        .map(|u| u.open_id.clone())
        .collect();
    let batch_id = format!("bm-{}", random_hex(32));
    st.batches.push(FeishuBatch {
        batch_id: batch_id.clone(),
        msg_type: msg_type.to_owned(),
        content: content.to_string(),
        recipients: open_of_recipients,
        delivered,
        read: Vec::new(),
        recalled: false,
        at_ms: now,
    });
    let mut data = invalid_ids;
    data.insert("message_id".to_owned(), json!(batch_id));
    // §D.3 success: HTTP 200 `{"code":0,"msg":"ok","data":{...}}`.
    Reply::auth_v3(json!({"code": 0, "msg": "ok", "data": data}))
}

fn push_unique(acc: &mut Vec<String>, open_id: &str) {
    if !acc.iter().any(|o| o == open_id) {
        acc.push(open_id.to_owned());
    }
}

fn not_found() -> Reply {
    Reply::fail(400, 230030, "The message id is invalid, record not found.")
}

// docs/feishu-api.md §D.4 — `GET /open-apis/im/v1/batch_messages/:id/get_progress` (int counts).
pub(crate) fn progress(emu: &FeishuEmulator, req: &Incoming, id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let st = emu.lock();
    let Some(b) = st.batches.iter().find(|b| b.batch_id == id) else {
        return not_found();
    };
    Reply::ok(json!({
        "batch_message_send_progress": {
            "valid_user_ids_count": b.recipients.len(),
            "success_user_ids_count": b.delivered.len(),
            "read_user_ids_count": b.read.len(),
        },
        "batch_message_recall_progress": {"recall": b.recalled, "recall_count": if b.recalled { b.delivered.len() } else { 0 }},
    }))
}

// docs/feishu-api.md §D.4 — `GET /open-apis/im/v1/batch_messages/:id/read_user` (string counts).
pub(crate) fn read_user(emu: &FeishuEmulator, req: &Incoming, id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let st = emu.lock();
    let Some(b) = st.batches.iter().find(|b| b.batch_id == id) else {
        return not_found();
    };
    Reply::ok(
        json!({"read_user": {"read_count": b.read.len().to_string(), "total_count": b.delivered.len().to_string()}}),
    )
}

// docs/feishu-api.md §D.4 — `DELETE /open-apis/im/v1/batch_messages/:id`: recall, within the recall
// window (230009 "Message can only be recalled within one days.").
pub(crate) fn recall(emu: &FeishuEmulator, req: &Incoming, id: &str) -> Reply {
    if let Err(r) = require_tenant_token(emu, req) {
        return r;
    }
    let mut st = emu.lock();
    let now = st.now_ms();
    let window_ms = st.recall_window_secs.saturating_mul(1000);
    let Some(b) = st.batches.iter_mut().find(|b| b.batch_id == id) else {
        return not_found();
    };
    if now - b.at_ms > window_ms {
        return Reply::fail(400, 230009, "Message can only be recalled within one days.");
    }
    b.recalled = true;
    Reply::ok(json!({}))
}
