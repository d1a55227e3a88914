//! DingTalk's rules for work-notification bodies ([`DingTalkBodyRules`]): the `msg` object of
//! docs/dingtalk-api.md §D.2 and its limits, checked before a message is stored (local) and
//! accepted (cloud), so DingTalk never refuses — or silently drops — a body dingbridge took.
//!
//! DingTalk takes the neutral `text`, `markdown` and `link` (its own `msg` shapes, which the
//! neutral set borrows) and its own `action_card`, `oa`, `image`, `file`, `voice`; plus
//! dingbridge's `template` wrapper (`{"msgtype":"template","template":{"template_id":"…",
//! "data":{"var":"value"}}}`), sent with `sendbytemplate` (§D.1), the send third-party suite apps
//! created after 2020-11-27 must use. A body that passes fits in one `asyncsend_v2` call.

use application::ports::BodyRules;
use domain::message::fields::{max_bytes, object, only_keys, required_str, required_url};
use domain::{MessageBody, Recipients, ValidationError};
use serde_json::{Map, Value};

/// DingTalk's limit on the serialized `msg` object, in bytes (docs/dingtalk-api.md §D.1).
pub const MAX_MSG_BYTES: usize = 2048;
/// Markdown text limit, in characters (docs/dingtalk-api.md §D.2).
pub const MAX_MARKDOWN_CHARS: usize = 5000;
/// OA form rows DingTalk shows; more would be silently dropped (docs/dingtalk-api.md §D.2).
pub const MAX_OA_FORM_ROWS: usize = 6;
/// Recipients allowed with an OA status bar (docs/dingtalk-api.md §D.2: ≤5 userids, no depts,
/// not everyone).
pub const MAX_STATUS_BAR_USERS: usize = 5;
/// Longest template id, in characters (dingbridge's bound; DingTalk documents none).
pub const MAX_TEMPLATE_ID_CHARS: usize = 64;
/// Most template variables in one `template` body (dingbridge's bound).
pub const MAX_TEMPLATE_VARIABLES: usize = 50;

/// The `msgtype`s DingTalk takes (docs/dingtalk-api.md §D.2), and dingbridge's `template`.
pub const MSGTYPES: [&str; 9] = ["text", "markdown", "link", "action_card", "oa", "image", "file", "voice", "template"];

/// In-app link scheme DingTalk opens besides `http(s)` (docs/dingtalk-api.md §D.2).
const APP_SCHEMES: [&str; 1] = ["dingtalk"];

/// [`BodyRules`] of DingTalk's work notifications.
#[derive(Debug, Clone, Copy, Default)]
pub struct DingTalkBodyRules;

impl BodyRules for DingTalkBodyRules {
    /// The body by [`check_body`]; then an OA `status_bar` only for at most 5 user ids, no
    /// departments and not everyone (docs/dingtalk-api.md §D.2; `not_allowed`).
    fn check(&self, body: &MessageBody, recipients: &Recipients) -> Result<(), ValidationError> {
        check_body(body)?;
        let status_bar = body.msgtype() == "oa" && body.inner().contains_key("status_bar");
        if status_bar
            && (recipients.to_all()
                || !recipients.dept_ids().is_empty()
                || recipients.user_ids().len() > MAX_STATUS_BAR_USERS)
        {
            return Err(ValidationError::new(
                "body.oa.status_bar",
                "not_allowed",
                "body.oa.status_bar is only allowed for at most 5 user ids, with no departments and not to everyone",
            ));
        }
        Ok(())
    }
}

/// Checks a body against DingTalk's `msg` rules (docs/dingtalk-api.md §D.2). Errors name the
/// field under `body` (e.g. `body.action_card.btn_json_list[1].action_url`) with codes
/// `unsupported` (a `msgtype` DingTalk does not take), `required`, `invalid`, `too_long`,
/// `too_many`, `unknown_field` or `too_large` (the whole `msg` over 2048 bytes).
pub fn check_body(body: &MessageBody) -> Result<(), ValidationError> {
    let msgtype = body.msgtype();
    if !MSGTYPES.contains(&msgtype) {
        return Err(ValidationError::new(
            "body.msgtype",
            "unsupported",
            format!("body.msgtype {msgtype:?} is not a DingTalk message; use one of {}", MSGTYPES.join(", ")),
        ));
    }
    let path = format!("body.{msgtype}");
    let inner = body.inner();
    match msgtype {
        "text" => {
            required_str(inner, "content", &path, MAX_MSG_BYTES)?;
        }
        "markdown" => {
            required_str(inner, "text", &path, MAX_MARKDOWN_CHARS)?;
        }
        "link" => {
            required_url(inner, "messageUrl", &path, &APP_SCHEMES)?;
            required_str(inner, "picUrl", &path, 1024)?;
            required_str(inner, "text", &path, MAX_MSG_BYTES)?;
        }
        "action_card" => action_card(inner, &path)?,
        "oa" => oa(inner, &path)?,
        "image" | "file" => {
            only_keys(inner, &["media_id"], &path)?;
            required_str(inner, "media_id", &path, 256)?;
        }
        "voice" => voice(inner, &path)?,
        _ => template(inner, &path)?,
    }
    max_bytes(body.as_json(), "body", MAX_MSG_BYTES, "DingTalk")
}

/// For a `template` body: the template id and its variables as the JSON *string*
/// `sendbytemplate` takes in `data` (docs/dingtalk-api.md §D.1; the Python service sends `data`
/// as a string too, docs/seed.md §E6). `None` for every other type.
pub fn template_of(body: &MessageBody) -> Option<(&str, String)> {
    if body.msgtype() != "template" {
        return None;
    }
    let id = body.inner().get("template_id").and_then(Value::as_str)?;
    let data = body.inner().get("data").map_or_else(|| "{}".to_owned(), Value::to_string);
    Some((id, data))
}

fn voice(inner: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    only_keys(inner, &["media_id", "duration"], path)?;
    required_str(inner, "media_id", path, 256)?;
    let duration = required_str(inner, "duration", path, 2)?;
    if !duration.parse::<u8>().is_ok_and(|d| (1..60).contains(&d)) {
        return Err(ValidationError::new(
            format!("{path}.duration"),
            "invalid",
            format!("{path}.duration must be a whole number of seconds from 1 to 59, as a string"),
        ));
    }
    Ok(())
}

fn action_card(inner: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    only_keys(inner, &["title", "markdown", "single_title", "single_url", "btn_orientation", "btn_json_list"], path)?;
    required_str(inner, "title", path, 256)?;
    required_str(inner, "markdown", path, MAX_MSG_BYTES)?;
    let single = inner.contains_key("single_title") || inner.contains_key("single_url");
    let list = inner.contains_key("btn_json_list") || inner.contains_key("btn_orientation");
    match (single, list) {
        (true, false) => {
            required_str(inner, "single_title", path, 64)?;
            required_url(inner, "single_url", path, &APP_SCHEMES)?;
        }
        (false, true) => {
            if let Some(orientation) = inner.get("btn_orientation")
                && !matches!(orientation.as_str(), Some("0" | "1"))
            {
                return Err(ValidationError::new(
                    format!("{path}.btn_orientation"),
                    "invalid",
                    format!("{path}.btn_orientation must be \"0\" (vertical) or \"1\" (horizontal)"),
                ));
            }
            let list_path = format!("{path}.btn_json_list");
            let buttons = inner.get("btn_json_list").and_then(Value::as_array).ok_or_else(|| {
                ValidationError::new(&list_path, "required", format!("{list_path} must be a non-empty list of buttons"))
            })?;
            if buttons.is_empty() {
                return Err(ValidationError::new(&list_path, "required", format!("{list_path} must not be empty")));
            }
            for (i, button) in buttons.iter().enumerate() {
                let button_path = format!("{list_path}[{i}]");
                let button = object(button, &button_path)?;
                only_keys(button, &["title", "action_url"], &button_path)?;
                required_str(button, "title", &button_path, 64)?;
                required_url(button, "action_url", &button_path, &APP_SCHEMES)?;
            }
        }
        _ => {
            return Err(ValidationError::new(
                path,
                "invalid",
                format!("{path} needs either single_title + single_url, or btn_json_list (not both)"),
            ));
        }
    }
    Ok(())
}

fn oa(inner: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    only_keys(inner, &["message_url", "pc_message_url", "head", "status_bar", "body"], path)?;
    required_url(inner, "message_url", path, &APP_SCHEMES)?;
    if inner.contains_key("pc_message_url") {
        required_url(inner, "pc_message_url", path, &APP_SCHEMES)?;
    }
    let head_path = format!("{path}.head");
    let head = object(inner.get("head").unwrap_or(&Value::Null), &head_path)?;
    only_keys(head, &["bgcolor", "text"], &head_path)?;
    let bgcolor = required_str(head, "bgcolor", &head_path, 8)?;
    if bgcolor.len() != 8 || !bgcolor.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ValidationError::new(
            format!("{head_path}.bgcolor"),
            "invalid",
            format!("{head_path}.bgcolor must be 8 hex digits, ARGB (e.g. FFBBBBBB)"),
        ));
    }
    required_str(head, "text", &head_path, 64)?;
    if let Some(bar) = inner.get("status_bar") {
        let bar_path = format!("{path}.status_bar");
        let bar = object(bar, &bar_path)?;
        only_keys(bar, &["status_value", "status_bg"], &bar_path)?;
        required_str(bar, "status_value", &bar_path, 64)?;
        required_str(bar, "status_bg", &bar_path, 10)?;
    }
    let body_path = format!("{path}.body");
    let body = object(inner.get("body").unwrap_or(&Value::Null), &body_path)?;
    only_keys(body, &["title", "form", "rich", "content", "image", "file_count", "author"], &body_path)?;
    if body.is_empty() {
        return Err(ValidationError::new(&body_path, "required", format!("{body_path} must have at least one field")));
    }
    for key in ["title", "content", "image", "file_count", "author"] {
        if body.contains_key(key) {
            required_str(body, key, &body_path, MAX_MSG_BYTES)?;
        }
    }
    if let Some(form) = body.get("form") {
        let form_path = format!("{body_path}.form");
        let rows = form
            .as_array()
            .ok_or_else(|| ValidationError::new(&form_path, "invalid", format!("{form_path} must be a list")))?;
        if rows.len() > MAX_OA_FORM_ROWS {
            return Err(ValidationError::new(
                &form_path,
                "too_many",
                format!("{form_path} has {} rows; DingTalk shows at most {MAX_OA_FORM_ROWS}", rows.len()),
            ));
        }
        for (i, row) in rows.iter().enumerate() {
            let row_path = format!("{form_path}[{i}]");
            let row = object(row, &row_path)?;
            only_keys(row, &["key", "value"], &row_path)?;
            required_str(row, "key", &row_path, 64)?;
            required_str(row, "value", &row_path, MAX_MSG_BYTES)?;
        }
    }
    if let Some(rich) = body.get("rich") {
        let rich_path = format!("{body_path}.rich");
        let rich = object(rich, &rich_path)?;
        only_keys(rich, &["num", "unit"], &rich_path)?;
        required_str(rich, "num", &rich_path, 32)?;
        if rich.contains_key("unit") {
            required_str(rich, "unit", &rich_path, 32)?;
        }
    }
    Ok(())
}

/// `template`: `template_id` (letters, digits, `_`, `-`; ≤ 64 characters) and `data`, an object
/// of up to 50 variables whose values are strings.
fn template(inner: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    only_keys(inner, &["template_id", "data"], path)?;
    let id = required_str(inner, "template_id", path, MAX_TEMPLATE_ID_CHARS)?;
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(ValidationError::new(
            format!("{path}.template_id"),
            "invalid",
            format!("{path}.template_id may hold only letters, digits, '_' and '-'"),
        ));
    }
    let data_path = format!("{path}.data");
    let Some(data) = inner.get("data") else {
        return Ok(());
    };
    let data = object(data, &data_path)?;
    if data.len() > MAX_TEMPLATE_VARIABLES {
        return Err(ValidationError::new(
            &data_path,
            "too_many",
            format!("{data_path} has {} variables; at most {MAX_TEMPLATE_VARIABLES}", data.len()),
        ));
    }
    for (name, value) in data {
        let field = format!("{data_path}.{name}");
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(ValidationError::new(&field, "invalid", format!("{data_path} has an empty variable name")));
        }
        if !value.is_string() {
            return Err(ValidationError::new(&field, "invalid", format!("{field} must be a string")));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
