//! Feishu's rules for bot-message bodies ([`FeishuBodyRules`]) and how each is sent
//! ([`render`]), from docs/feishu-api.md §D.1–§D.2.
//!
//! Feishu takes the neutral `text`, `markdown` and `link`, rendered as its `text` and `post`
//! messages, and two of its own, passed through as the message `content`:
//!
//! - `{"msgtype":"post","post":{"zh_cn":{"title":"…","content":[[{"tag":"text","text":"…"}]]}}}`
//!   — locale keys at the top, each with paragraphs of nodes (§D.2 `post`);
//! - `{"msgtype":"interactive","interactive":{…card…}}` — a card JSON, or a card template
//!   `{"type":"template","data":{…}}` (§D.2 `interactive`).
//!
//! Messages go to people by `user_id`, one call each (§D.1): departments and "everyone" are not
//! sent to. A rendered `content` is at most 30 KB for `post` / `interactive` and 150 KB for `text`
//! (§D.1, §F).

use application::ports::BodyRules;
use domain::message::fields::{object, required_str, required_url};
use domain::{Content, MessageBody, Recipients, ValidationError};
use serde_json::{Value, json};

/// Largest `content` of a `post` or `interactive` message, in bytes (docs/feishu-api.md §D.1:
/// 30 KB).
pub const MAX_CARD_BYTES: usize = 30 * 1024;
/// Largest `content` of a `text` message, in bytes (docs/feishu-api.md §D.1: 150 KB).
pub const MAX_TEXT_BYTES: usize = 150 * 1024;

/// The `msgtype`s Feishu takes: the neutral three and its own `post` and `interactive`.
pub const MSGTYPES: [&str; 5] = ["text", "markdown", "link", "post", "interactive"];

/// A Feishu message: `msg_type` and its `content` as a JSON string (docs/feishu-api.md §D.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `text`, `post` or `interactive`.
    pub msg_type: &'static str,
    /// The `content` string.
    pub content: String,
}

/// [`BodyRules`] of Feishu bot messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeishuBodyRules;

impl BodyRules for FeishuBodyRules {
    /// Errors: `recipients.dept_ids` / `recipients.to_all` `unsupported` (Feishu messages go to
    /// people, one call each); those of [`render`] for the body.
    fn check(&self, body: &MessageBody, recipients: &Recipients) -> Result<(), ValidationError> {
        if !recipients.dept_ids().is_empty() {
            return Err(ValidationError::new(
                "recipients.dept_ids",
                "unsupported",
                "recipients.dept_ids: Feishu messages go to people (userids); departments are not sent to",
            ));
        }
        if recipients.to_all() {
            return Err(ValidationError::new(
                "recipients.to_all",
                "unsupported",
                "recipients.to_all: Feishu messages go to people (userids); everyone is not sent to",
            ));
        }
        render(body).map(drop)
    }
}

/// The Feishu message for a body (docs/feishu-api.md §D.2): `text` → `text`; `markdown` → `post`
/// with its title and one `md` paragraph; `link` → `post` with the text and an `a` link (Feishu
/// shows no picture here); `post` / `interactive` → themselves. Errors (field named under
/// `body`): `unsupported` for another `msgtype`; `invalid` for a link URL that is not `http(s)`
/// or a `post` not shaped as §D.2 says; `too_large` for a `content` over Feishu's limit.
pub fn render(body: &MessageBody) -> Result<Rendered, ValidationError> {
    let post = |title: &str, paragraphs: Vec<Value>| json!({"zh_cn": {"title": title, "content": paragraphs}});
    let (msg_type, content, max) = match body.content() {
        Content::Text { content } => ("text", json!({"text": content}), MAX_TEXT_BYTES),
        Content::Markdown { title, text } => {
            ("post", post(title, vec![json!([{"tag": "md", "text": text}])]), MAX_CARD_BYTES)
        }
        Content::Link { url, title, text, .. } => {
            required_url(body.inner(), "messageUrl", "body.link", &["https"])?;
            let paragraphs =
                vec![json!([{"tag": "text", "text": text}]), json!([{"tag": "a", "text": title, "href": url}])];
            ("post", post(title, paragraphs), MAX_CARD_BYTES)
        }
        Content::Native { msgtype: "post", inner } => {
            check_post(inner)?;
            ("post", Value::Object(inner.clone()), MAX_CARD_BYTES)
        }
        Content::Native { msgtype: "interactive", inner } => {
            if inner.is_empty() {
                return Err(ValidationError::new(
                    "body.interactive",
                    "required",
                    "body.interactive must be a card (docs/feishu-api.md §D.2)",
                ));
            }
            ("interactive", Value::Object(inner.clone()), MAX_CARD_BYTES)
        }
        Content::Native { msgtype, .. } => {
            return Err(ValidationError::new(
                "body.msgtype",
                "unsupported",
                format!("body.msgtype {msgtype:?} is not a Feishu message; use one of {}", MSGTYPES.join(", ")),
            ));
        }
    };
    let content = content.to_string();
    if content.len() > max {
        return Err(ValidationError::new(
            "body",
            "too_large",
            format!("body is {} bytes as a Feishu {msg_type} message; Feishu accepts at most {max}", content.len()),
        ));
    }
    Ok(Rendered { msg_type, content })
}

/// A `post` (docs/feishu-api.md §D.2): one or more locale keys (`zh_cn`, `en_us`, …), each an
/// object with an optional `title` and `content`, a list of paragraphs, each a list of nodes with
/// a `tag`.
fn check_post(inner: &serde_json::Map<String, Value>) -> Result<(), ValidationError> {
    if inner.is_empty() {
        return Err(ValidationError::new("body.post", "required", "body.post needs a locale, e.g. zh_cn"));
    }
    for (locale, value) in inner {
        let path = format!("body.post.{locale}");
        let well_formed = locale.len() == 5
            && locale.as_bytes()[2] == b'_'
            && locale.chars().enumerate().all(|(i, c)| i == 2 || c.is_ascii_lowercase());
        if !well_formed {
            return Err(ValidationError::new(
                &path,
                "invalid",
                format!("{path}: a locale is written like zh_cn or en_us"),
            ));
        }
        let localized = object(value, &path)?;
        if localized.contains_key("title") {
            required_str(localized, "title", &path, domain::message::MAX_TITLE_CHARS)?;
        }
        let content_path = format!("{path}.content");
        let paragraphs = localized.get("content").and_then(Value::as_array).ok_or_else(|| {
            ValidationError::new(&content_path, "required", format!("{content_path} must be a list of paragraphs"))
        })?;
        for (i, paragraph) in paragraphs.iter().enumerate() {
            let paragraph_path = format!("{content_path}[{i}]");
            let nodes = paragraph.as_array().ok_or_else(|| {
                ValidationError::new(&paragraph_path, "invalid", format!("{paragraph_path} must be a list of nodes"))
            })?;
            for (j, node) in nodes.iter().enumerate() {
                let node_path = format!("{paragraph_path}[{j}]");
                required_str(object(node, &node_path)?, "tag", &node_path, 32)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use domain::{DeptId, UserId};
    use serde_json::json;

    use super::*;

    fn field_of<T>(result: Result<T, ValidationError>) -> Option<(String, &'static str)> {
        result.err().map(|e| (e.field, e.code))
    }

    fn body(msg: Value) -> MessageBody {
        MessageBody::parse(&msg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_neutral_three_render_as_text_and_post() {
        let text = render(&body(json!({"msgtype": "text", "text": {"content": "hi"}})));
        assert_eq!(text.ok(), Some(Rendered { msg_type: "text", content: r#"{"text":"hi"}"#.into() }));
        let markdown = render(&body(json!({"msgtype": "markdown", "markdown": {"title": "T", "text": "**b**"}})));
        let content: Value = serde_json::from_str(&markdown.map(|r| r.content).unwrap_or_default()).unwrap_or_default();
        assert_eq!(content, json!({"zh_cn": {"title": "T", "content": [[{"tag": "md", "text": "**b**"}]]}}));
        let link = render(&body(json!({"msgtype": "link", "link": {
            "messageUrl": "https://a.example", "picUrl": "@pic", "title": "Open", "text": "see"}})));
        let content: Value = serde_json::from_str(&link.map(|r| r.content).unwrap_or_default()).unwrap_or_default();
        assert_eq!(content["zh_cn"]["content"][1], json!([{"tag": "a", "text": "Open", "href": "https://a.example"}]));
    }

    #[test]
    fn its_own_post_and_card_pass_through() {
        let post = json!({"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "x"}, {"tag": "a", "href": "https://a", "text": "a"}]]},
                          "en_us": {"content": [[{"tag": "md", "text": "**x**"}]]}});
        let rendered = render(&body(json!({"msgtype": "post", "post": post.clone()})));
        assert_eq!(rendered.as_ref().map(|r| r.msg_type).ok(), Some("post"));
        assert_eq!(rendered.ok().and_then(|r| serde_json::from_str::<Value>(&r.content).ok()), Some(post));
        let card = json!({"type": "template", "data": {"template_id": "AAqig", "template_variable": {"x": "1"}}});
        let rendered = render(&body(json!({"msgtype": "interactive", "interactive": card})));
        assert_eq!(rendered.map(|r| r.msg_type).ok(), Some("interactive"));
    }

    #[test]
    fn another_providers_types_bad_posts_and_links_are_named() {
        let cases = [
            (json!({"msgtype": "oa", "oa": {"message_url": "https://a"}}), "body.msgtype", "unsupported"),
            (json!({"msgtype": "action_card", "action_card": {"title": "T"}}), "body.msgtype", "unsupported"),
            (json!({"msgtype": "post", "post": {}}), "body.post", "required"),
            (json!({"msgtype": "post", "post": {"chinese": {"content": []}}}), "body.post.chinese", "invalid"),
            (json!({"msgtype": "post", "post": {"zh_cn": {"title": "T"}}}), "body.post.zh_cn.content", "required"),
            (
                json!({"msgtype": "post", "post": {"zh_cn": {"content": [[{"text": "x"}]]}}}),
                "body.post.zh_cn.content[0][0].tag",
                "required",
            ),
            (
                json!({"msgtype": "post", "post": {"zh_cn": {"content": ["x"]}}}),
                "body.post.zh_cn.content[0]",
                "invalid",
            ),
            (json!({"msgtype": "interactive", "interactive": {}}), "body.interactive", "required"),
            (
                json!({"msgtype": "link", "link": {"messageUrl": "myapp://x", "title": "T", "text": "x"}}),
                "body.link.messageUrl",
                "invalid",
            ),
        ];
        for (msg, field, code) in cases {
            assert_eq!(field_of(render(&body(msg.clone()))), Some((field.to_owned(), code)), "{msg}");
        }
    }

    #[test]
    fn a_card_over_30_kb_is_too_large() {
        let card = json!({"elements": [{"tag": "div", "text": "x".repeat(31 * 1024)}]});
        assert_eq!(
            field_of(render(&body(json!({"msgtype": "interactive", "interactive": card})))),
            Some(("body".into(), "too_large"))
        );
        assert!(render(&body(json!({"msgtype": "text", "text": {"content": "x".repeat(31 * 1024)}}))).is_ok());
    }

    #[test]
    fn departments_and_everyone_are_refused_people_are_not() -> Result<(), ValidationError> {
        let text = MessageBody::text("hi")?;
        let people = Recipients::new(vec![UserId::parse("u1")?], vec![])?;
        assert!(FeishuBodyRules.check(&text, &people).is_ok());
        let depts = Recipients::new(vec![], vec![DeptId::new(1)?])?;
        assert_eq!(field_of(FeishuBodyRules.check(&text, &depts)), Some(("recipients.dept_ids".into(), "unsupported")));
        assert_eq!(
            field_of(FeishuBodyRules.check(&text, &Recipients::everyone())),
            Some(("recipients.to_all".into(), "unsupported"))
        );
        Ok(())
    }
}
