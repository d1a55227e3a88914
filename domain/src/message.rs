//! Work-notification bodies: DingTalk's own `msg` object (docs/dingtalk-api.md §D.2),
//! validated against DingTalk's limits.
//!
//! Callers send exactly the JSON DingTalk documents
//! (`{"msgtype":"text","text":{"content":"hi"}}`), so DingTalk's docs apply
//! unchanged. [`MessageBody::parse`] is the only way to build one; a value
//! that exists fits in one `asyncsend_v2` call.
//!
//! One type is dingbridge's own wrapper, not a DingTalk `msg`: `template`
//! (`{"msgtype":"template","template":{"template_id":"…","data":{"var":"value"}}}`)
//! is sent with `sendbytemplate` (docs/dingtalk-api.md §D.1), the send third-party suite apps
//! created after 2020-11-27 must use; `data` fills the template's variables.

use serde_json::{Map, Value};

use crate::{Recipients, ValidationError};

/// DingTalk's limit on the serialized `msg` object, in bytes (docs/dingtalk-api.md §D.1).
pub const MAX_MSG_BYTES: usize = 2048;
/// Markdown text limit, in characters (docs/dingtalk-api.md §D.2).
pub const MAX_MARKDOWN_CHARS: usize = 5000;
/// OA form rows DingTalk shows; more would be silently dropped (docs/dingtalk-api.md §D.2).
pub const MAX_OA_FORM_ROWS: usize = 6;
/// Recipients allowed with an OA status bar (docs/dingtalk-api.md §D.2: ≤5 userids, no depts, not everyone).
pub const MAX_STATUS_BAR_USERS: usize = 5;
/// Longest template id, in characters (dingbridge's bound; DingTalk documents none in docs/dingtalk-api.md).
pub const MAX_TEMPLATE_ID_CHARS: usize = 64;
/// Most template variables in one `template` body (dingbridge's bound).
pub const MAX_TEMPLATE_VARIABLES: usize = 50;

/// The `msgtype` of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// `text`
    Text,
    /// `markdown`
    Markdown,
    /// `link`
    Link,
    /// `action_card` (single button or button list)
    ActionCard,
    /// `oa`
    Oa,
    /// `image` (by media id)
    Image,
    /// `file` (by media id)
    File,
    /// `voice` (by media id)
    Voice,
    /// `template`: dingbridge's wrapper for `sendbytemplate` (template id + variables, docs/dingtalk-api.md §D.1).
    Template,
}

impl MsgType {
    /// DingTalk's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Link => "link",
            Self::ActionCard => "action_card",
            Self::Oa => "oa",
            Self::Image => "image",
            Self::File => "file",
            Self::Voice => "voice",
            Self::Template => "template",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Self::Text,
            Self::Markdown,
            Self::Link,
            Self::ActionCard,
            Self::Oa,
            Self::Image,
            Self::File,
            Self::Voice,
            Self::Template,
        ]
        .into_iter()
        .find(|t| t.as_str() == raw)
    }
}

/// A validated work-notification `msg` (docs/dingtalk-api.md §D.2), at most
/// [`MAX_MSG_BYTES`] bytes as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageBody {
    msgtype: MsgType,
    msg: Value,
}

impl MessageBody {
    /// Validates DingTalk's `msg` JSON. Errors name the field under `body`
    /// (e.g. `body.action_card.btn_json_list[1].action_url`) with codes
    /// `required`, `invalid`, `too_long`, `too_many`, `unknown_field` or
    /// `too_large` (the whole `msg` over 2048 bytes).
    pub fn parse(msg: &Value) -> Result<Self, ValidationError> {
        let root = object(msg, "body")?;
        let raw_type = required_str(root, "msgtype", "body", usize::MAX)?;
        let msgtype = MsgType::parse(&raw_type).ok_or_else(|| {
            ValidationError::new(
                "body.msgtype",
                "invalid",
                format!(
                    "body.msgtype {raw_type:?} is not one of text, markdown, link, action_card, oa, image, file, voice, template"
                ),
            )
        })?;
        let key = msgtype.as_str();
        only_keys(root, &["msgtype", key], "body")?;
        let path = format!("body.{key}");
        let inner = object(root.get(key).unwrap_or(&Value::Null), &path)?;
        match msgtype {
            MsgType::Text => {
                only_keys(inner, &["content"], &path)?;
                required_str(inner, "content", &path, MAX_MSG_BYTES)?;
            }
            MsgType::Markdown => {
                only_keys(inner, &["title", "text"], &path)?;
                required_str(inner, "title", &path, 256)?;
                required_str(inner, "text", &path, MAX_MARKDOWN_CHARS)?;
            }
            MsgType::Link => {
                only_keys(inner, &["messageUrl", "picUrl", "title", "text"], &path)?;
                required_url(inner, "messageUrl", &path)?;
                required_str(inner, "picUrl", &path, 1024)?;
                required_str(inner, "title", &path, 256)?;
                required_str(inner, "text", &path, MAX_MSG_BYTES)?;
            }
            MsgType::ActionCard => action_card(inner, &path)?,
            MsgType::Oa => oa(inner, &path)?,
            MsgType::Image | MsgType::File => {
                only_keys(inner, &["media_id"], &path)?;
                required_str(inner, "media_id", &path, 256)?;
            }
            MsgType::Voice => {
                only_keys(inner, &["media_id", "duration"], &path)?;
                required_str(inner, "media_id", &path, 256)?;
                let duration = required_str(inner, "duration", &path, 2)?;
                if !duration.parse::<u8>().is_ok_and(|d| (1..60).contains(&d)) {
                    return Err(ValidationError::new(
                        format!("{path}.duration"),
                        "invalid",
                        format!("{path}.duration must be a whole number of seconds from 1 to 59, as a string"),
                    ));
                }
            }
            MsgType::Template => template(inner, &path)?,
        }
        let bytes = msg.to_string().len();
        if bytes > MAX_MSG_BYTES {
            return Err(ValidationError::new(
                "body",
                "too_large",
                format!("body is {bytes} bytes as JSON; DingTalk accepts at most {MAX_MSG_BYTES}"),
            ));
        }
        Ok(Self { msgtype, msg: msg.clone() })
    }

    /// A plain text body; see [`MessageBody::parse`] for errors.
    pub fn text(content: &str) -> Result<Self, ValidationError> {
        Self::parse(&serde_json::json!({"msgtype": "text", "text": {"content": content}}))
    }

    /// The `msgtype`.
    pub fn msgtype(&self) -> MsgType {
        self.msgtype
    }

    /// The `msg` object to send, exactly as validated.
    pub fn as_json(&self) -> &Value {
        &self.msg
    }

    /// For a `template` body: the template id and its variables as the JSON
    /// *string* `sendbytemplate` takes in `data` (docs/dingtalk-api.md §D.1; the Python
    /// service sends `data` as a string too, docs/seed.md §E6). `None` for
    /// every other type.
    pub fn template(&self) -> Option<(&str, String)> {
        if self.msgtype != MsgType::Template {
            return None;
        }
        let id = self.msg.pointer("/template/template_id").and_then(Value::as_str)?;
        let data = self.msg.pointer("/template/data").map_or_else(|| "{}".to_owned(), Value::to_string);
        Some((id, data))
    }

    /// Whether this is an `oa` body with a `status_bar`.
    pub fn has_status_bar(&self) -> bool {
        self.msgtype == MsgType::Oa && self.msg.pointer("/oa/status_bar").is_some()
    }

    /// Checks rules that involve the recipients: an OA status bar is only
    /// allowed for at most 5 user ids, no departments, not everyone (docs/dingtalk-api.md §D.2).
    pub fn check_recipients(&self, recipients: &Recipients) -> Result<(), ValidationError> {
        if self.has_status_bar()
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

fn action_card(inner: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    only_keys(inner, &["title", "markdown", "single_title", "single_url", "btn_orientation", "btn_json_list"], path)?;
    required_str(inner, "title", path, 256)?;
    required_str(inner, "markdown", path, MAX_MSG_BYTES)?;
    let single = inner.contains_key("single_title") || inner.contains_key("single_url");
    let list = inner.contains_key("btn_json_list") || inner.contains_key("btn_orientation");
    match (single, list) {
        (true, false) => {
            required_str(inner, "single_title", path, 64)?;
            required_url(inner, "single_url", path)?;
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
                required_url(button, "action_url", &button_path)?;
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
    required_url(inner, "message_url", path)?;
    if inner.contains_key("pc_message_url") {
        required_url(inner, "pc_message_url", path)?;
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

/// `template`: `template_id` (letters, digits, `_`, `-`; ≤ 64 characters) and
/// `data`, an object of up to 50 variables whose values are strings.
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

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ValidationError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(ValidationError::new(path, "required", format!("{path} is required"))),
        _ => Err(ValidationError::new(path, "invalid", format!("{path} must be a JSON object"))),
    }
}

fn only_keys(map: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ValidationError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ValidationError::new(
            format!("{path}.{key}"),
            "unknown_field",
            format!("{path}.{key} is not a field DingTalk accepts here (expected one of: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn required_str(map: &Map<String, Value>, key: &str, path: &str, max_chars: usize) -> Result<String, ValidationError> {
    let field = format!("{path}.{key}");
    match map.get(key) {
        Some(Value::String(s)) => crate::error::text(&field, s, max_chars),
        None | Some(Value::Null) => Err(ValidationError::new(&field, "required", format!("{field} is required"))),
        Some(_) => Err(ValidationError::new(&field, "invalid", format!("{field} must be a string"))),
    }
}

fn required_url(map: &Map<String, Value>, key: &str, path: &str) -> Result<String, ValidationError> {
    let url = required_str(map, key, path, 1024)?;
    if ["http://", "https://", "dingtalk://"].iter().any(|scheme| url.starts_with(scheme)) {
        Ok(url)
    } else {
        Err(ValidationError::new(
            format!("{path}.{key}"),
            "invalid",
            format!("{path}.{key} must be an http(s):// or dingtalk:// URL"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{DeptId, UserId};

    fn field_of(result: Result<MessageBody, ValidationError>) -> Option<(String, &'static str)> {
        result.err().map(|e| (e.field, e.code))
    }

    #[test]
    fn every_type_in_its_dingtalk_shape_is_accepted() {
        let bodies = [
            json!({"msgtype":"text","text":{"content":"hello"}}),
            json!({"msgtype":"markdown","markdown":{"title":"T","text":"# hi"}}),
            json!({"msgtype":"link","link":{"messageUrl":"https://a.example","picUrl":"@lADOADmaWMzazQKA","title":"T","text":"x"}}),
            json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","single_title":"查看详情","single_url":"https://a.example"}}),
            json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_orientation":"1","btn_json_list":[{"title":"a","action_url":"https://a.example"},{"title":"b","action_url":"dingtalk://x"}]}}),
            json!({"msgtype":"oa","oa":{"message_url":"https://a.example","head":{"bgcolor":"FFBBBBBB","text":"h"},"status_bar":{"status_value":"进行中","status_bg":"0xFFF65E5E"},"body":{"title":"t","form":[{"key":"姓名:","value":"张三"}],"rich":{"num":"15.6","unit":"元"},"content":"c","author":"a"}}}),
            json!({"msgtype":"image","image":{"media_id":"@lADOADmaWMzazQKA"}}),
            json!({"msgtype":"file","file":{"media_id":"@lAz"}}),
            json!({"msgtype":"voice","voice":{"media_id":"@lAz","duration":"10"}}),
            json!({"msgtype":"template","template":{"template_id":"tpl-1_a","data":{"message":"hi","url":"https://a.example"}}}),
            json!({"msgtype":"template","template":{"template_id":"tpl1"}}),
        ];
        for body in bodies {
            let parsed = MessageBody::parse(&body);
            assert!(parsed.is_ok(), "{body}: {parsed:?}");
            assert_eq!(parsed.map(|b| b.as_json().clone()).ok(), Some(body));
        }
    }

    #[test]
    fn missing_and_empty_fields_are_named() {
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"text","text":{"content":"  "}}))),
            Some(("body.text.content".into(), "required"))
        );
        assert_eq!(field_of(MessageBody::parse(&json!({"msgtype":"text"}))), Some(("body.text".into(), "required")));
        assert_eq!(
            field_of(MessageBody::parse(&json!({"text":{"content":"x"}}))),
            Some(("body.msgtype".into(), "required"))
        );
        assert_eq!(field_of(MessageBody::parse(&json!("hi"))), Some(("body".into(), "invalid")));
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"sms","sms":{}}))),
            Some(("body.msgtype".into(), "invalid"))
        );
    }

    #[test]
    fn unknown_and_mismatched_keys_are_refused() {
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"text","text":{"content":"x","bold":true}}))),
            Some(("body.text.bold".into(), "unknown_field"))
        );
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"text","markdown":{"title":"t","text":"x"}}))),
            Some(("body.markdown".into(), "unknown_field"))
        );
    }

    #[test]
    fn template_rules_and_data_as_a_string() {
        let body = json!({"msgtype":"template","template":{"template_id":"tpl-1","data":{"message":"hi"}}});
        let parsed = MessageBody::parse(&body).ok();
        let template = parsed.as_ref().and_then(MessageBody::template);
        assert_eq!(template, Some(("tpl-1", r#"{"message":"hi"}"#.to_owned())));
        let bare = MessageBody::parse(&json!({"msgtype":"template","template":{"template_id":"t"}})).ok();
        assert_eq!(bare.as_ref().and_then(MessageBody::template), Some(("t", "{}".to_owned())));
        assert_eq!(MessageBody::text("x").ok().and_then(|b| b.template().map(|(id, _)| id.to_owned())), None);
        let cases = [
            (json!({"template_id":""}), "body.template.template_id", "required"),
            (json!({"template_id":"a b"}), "body.template.template_id", "invalid"),
            (json!({"data":{}}), "body.template.template_id", "required"),
            (json!({"template_id":"t","data":{"n":1}}), "body.template.data.n", "invalid"),
            (json!({"template_id":"t","data":[]}), "body.template.data", "invalid"),
            (json!({"template_id":"t","extra":1}), "body.template.extra", "unknown_field"),
        ];
        for (inner, field, code) in cases {
            let result = MessageBody::parse(&json!({"msgtype":"template","template":inner}));
            assert_eq!(field_of(result), Some((field.to_owned(), code)), "{inner}");
        }
        let many: Map<String, Value> = (0..51).map(|i| (format!("v{i}"), json!("x"))).collect();
        let result = MessageBody::parse(&json!({"msgtype":"template","template":{"template_id":"t","data":many}}));
        assert_eq!(field_of(result), Some(("body.template.data".into(), "too_many")));
    }

    #[test]
    fn over_2048_bytes_is_too_large() {
        let ok = MessageBody::text(&"a".repeat(2000));
        assert!(ok.is_ok());
        assert_eq!(field_of(MessageBody::text(&"a".repeat(2010))), Some(("body".into(), "too_large")));
        // 700 three-byte characters = 2100 bytes although only 700 characters.
        assert_eq!(field_of(MessageBody::text(&"钉".repeat(700))), Some(("body".into(), "too_large")));
        assert_eq!(field_of(MessageBody::text(&"a".repeat(3000))), Some(("body.text.content".into(), "too_long")));
    }

    #[test]
    fn action_card_rules() {
        let both = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","single_title":"a","single_url":"https://x","btn_json_list":[]}});
        assert_eq!(field_of(MessageBody::parse(&both)), Some(("body.action_card".into(), "invalid")));
        let empty = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_json_list":[]}});
        assert_eq!(field_of(MessageBody::parse(&empty)), Some(("body.action_card.btn_json_list".into(), "required")));
        let bad_url = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_json_list":[{"title":"a","action_url":"https://x"},{"title":"b","action_url":"javascript:alert(1)"}]}});
        assert_eq!(
            field_of(MessageBody::parse(&bad_url)),
            Some(("body.action_card.btn_json_list[1].action_url".into(), "invalid"))
        );
        let bad_orientation = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_orientation":"2","btn_json_list":[{"title":"a","action_url":"https://x"}]}});
        assert_eq!(
            field_of(MessageBody::parse(&bad_orientation)),
            Some(("body.action_card.btn_orientation".into(), "invalid"))
        );
    }

    #[test]
    fn oa_rules() {
        let bad_color = json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"red","text":"h"},"body":{"title":"t"}}});
        assert_eq!(field_of(MessageBody::parse(&bad_color)), Some(("body.oa.head.bgcolor".into(), "invalid")));
        let rows: Vec<_> = (0..7).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
        let many = json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"body":{"form": rows}}});
        assert_eq!(field_of(MessageBody::parse(&many)), Some(("body.oa.body.form".into(), "too_many")));
        let empty_body =
            json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"body":{}}});
        assert_eq!(field_of(MessageBody::parse(&empty_body)), Some(("body.oa.body".into(), "required")));
    }

    #[test]
    fn voice_duration_must_be_under_60() {
        let long = json!({"msgtype":"voice","voice":{"media_id":"@a","duration":"60"}});
        assert_eq!(field_of(MessageBody::parse(&long)), Some(("body.voice.duration".into(), "invalid")));
    }

    #[test]
    fn status_bar_needs_at_most_five_users() -> Result<(), ValidationError> {
        let body = MessageBody::parse(
            &json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"status_bar":{"status_value":"v","status_bg":"0xFFF65E5E"},"body":{"title":"t"}}}),
        )?;
        let users = |n: usize| (0..n).map(|i| UserId::parse(&format!("u{i}"))).collect::<Result<Vec<_>, _>>();
        assert!(body.check_recipients(&Recipients::new(users(5)?, vec![])?).is_ok());
        assert_eq!(
            body.check_recipients(&Recipients::new(users(6)?, vec![])?).err().map(|e| e.field),
            Some("body.oa.status_bar".into())
        );
        assert!(body.check_recipients(&Recipients::new(users(1)?, vec![DeptId::new(1)?])?).is_err());
        assert!(body.check_recipients(&Recipients::everyone()).is_err());
        assert!(MessageBody::text("x")?.check_recipients(&Recipients::everyone()).is_ok());
        Ok(())
    }
}
