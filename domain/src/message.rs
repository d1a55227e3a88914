//! Message bodies: a small provider-neutral set every provider renders, plus each provider's own
//! ("native") body, passed through for that provider's adapter to check (docs/design.md
//! "Message bodies").
//!
//! The wire shape is one JSON object, `{"msgtype": name, name: {…}}`:
//!
//! | `msgtype` | fields | every provider |
//! |---|---|---|
//! | `text` | `content` | shows it as plain text |
//! | `markdown` | `title`, `text` | renders the markdown under the title |
//! | `link` | `messageUrl`, `title`, `text`, optional `picUrl` | a card that opens the URL |
//! | any other name | whatever that provider documents | only the provider that knows it |
//!
//! [`MessageBody::parse`] checks the neutral three fully and, for a native body, only the
//! envelope (one object named by `msgtype`); the tenant's provider checks the rest and its own
//! limits before anything is stored (`application::ports::BodyRules`). Bounds here are
//! dingbridge's own (what it stores and relays), not any provider's.

use serde_json::{Map, Value};

use crate::ValidationError;

/// Largest body dingbridge stores and relays: 32 KiB as JSON (dingbridge's bound; each provider's
/// rules narrow it).
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Longest `title`, in characters (dingbridge's bound).
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest URL, in characters (dingbridge's bound).
pub const MAX_URL_CHARS: usize = 1024;
/// Longest `msgtype` name, in characters.
pub const MAX_MSGTYPE_CHARS: usize = 32;

/// Which kind of body: one of the neutral three, or a provider's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `text`: plain text.
    Text,
    /// `markdown`: a title and markdown text.
    Markdown,
    /// `link`: a card that opens a URL.
    Link,
    /// Any other `msgtype`: a provider's own body.
    Native,
}

/// A body's content, borrowed, as a provider renders it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Content<'a> {
    /// `text.content`, trimmed as given.
    Text {
        /// The text.
        content: &'a str,
    },
    /// `markdown.title` and `markdown.text`.
    Markdown {
        /// The title (shown in notifications).
        title: &'a str,
        /// The markdown.
        text: &'a str,
    },
    /// `link.messageUrl`, `link.title`, `link.text` and `link.picUrl`.
    Link {
        /// The URL the card opens.
        url: &'a str,
        /// The card's title.
        title: &'a str,
        /// The card's text.
        text: &'a str,
        /// An image for the card (a URL or a provider's media id), when given.
        pic_url: Option<&'a str>,
    },
    /// A provider's own body: its `msgtype` and the object under it.
    Native {
        /// The `msgtype`.
        msgtype: &'a str,
        /// The object named by `msgtype`.
        inner: &'a Map<String, Value>,
    },
}

/// A message body that passed [`MessageBody::parse`]: at most [`MAX_BODY_BYTES`] as JSON, kept
/// exactly as given (so it is stored, relayed and sent unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageBody {
    kind: BodyKind,
    msg: Value,
}

impl MessageBody {
    /// Checks a body. Errors name the field under `body` (e.g. `body.link.messageUrl`) with codes
    /// `required` (missing or blank), `invalid` (wrong type, bad URL, bad `msgtype`), `too_long`,
    /// `unknown_field` (a key the neutral types do not have, or a key beside `msgtype` other than
    /// the one it names) or `too_large` (over [`MAX_BODY_BYTES`] as JSON).
    pub fn parse(msg: &Value) -> Result<Self, ValidationError> {
        let root = fields::object(msg, "body")?;
        let msgtype = fields::required_str(root, "msgtype", "body", MAX_MSGTYPE_CHARS)?;
        let well_formed = msgtype.starts_with(|c: char| c.is_ascii_lowercase())
            && msgtype.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(ValidationError::new(
                "body.msgtype",
                "invalid",
                format!("body.msgtype {msgtype:?} must be a lowercase name (letters, digits, '_'), e.g. \"text\""),
            ));
        }
        fields::only_keys(root, &["msgtype", &msgtype], "body")?;
        let path = format!("body.{msgtype}");
        let inner = fields::object(root.get(&msgtype).unwrap_or(&Value::Null), &path)?;
        let kind = match msgtype.as_str() {
            "text" => {
                fields::only_keys(inner, &["content"], &path)?;
                fields::required_str(inner, "content", &path, MAX_BODY_BYTES)?;
                BodyKind::Text
            }
            "markdown" => {
                fields::only_keys(inner, &["title", "text"], &path)?;
                fields::required_str(inner, "title", &path, MAX_TITLE_CHARS)?;
                fields::required_str(inner, "text", &path, MAX_BODY_BYTES)?;
                BodyKind::Markdown
            }
            "link" => {
                fields::only_keys(inner, &["messageUrl", "picUrl", "title", "text"], &path)?;
                fields::required_url(inner, "messageUrl", &path, &[])?;
                if inner.contains_key("picUrl") {
                    fields::required_str(inner, "picUrl", &path, MAX_URL_CHARS)?;
                }
                fields::required_str(inner, "title", &path, MAX_TITLE_CHARS)?;
                fields::required_str(inner, "text", &path, MAX_BODY_BYTES)?;
                BodyKind::Link
            }
            _ => BodyKind::Native,
        };
        fields::max_bytes(msg, "body", MAX_BODY_BYTES, "dingbridge")?;
        Ok(Self { kind, msg: msg.clone() })
    }

    /// A plain `text` body; see [`MessageBody::parse`] for errors.
    pub fn text(content: &str) -> Result<Self, ValidationError> {
        Self::parse(&serde_json::json!({"msgtype": "text", "text": {"content": content}}))
    }

    /// The kind: neutral `text` / `markdown` / `link`, or a provider's own.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// The `msgtype`, as given.
    pub fn msgtype(&self) -> &str {
        self.msg.get("msgtype").and_then(Value::as_str).unwrap_or_default()
    }

    /// The object named by `msgtype`.
    pub fn inner(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.msg.get(self.msgtype()).and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// The content to render, trimmed strings borrowed from the body.
    pub fn content(&self) -> Content<'_> {
        let inner = self.inner();
        let field = |key: &str| inner.get(key).and_then(Value::as_str).map_or("", str::trim);
        match self.kind {
            BodyKind::Text => Content::Text { content: field("content") },
            BodyKind::Markdown => Content::Markdown { title: field("title"), text: field("text") },
            BodyKind::Link => Content::Link {
                url: field("messageUrl"),
                title: field("title"),
                text: field("text"),
                pic_url: inner.get("picUrl").and_then(Value::as_str).map(str::trim),
            },
            BodyKind::Native => Content::Native { msgtype: self.msgtype(), inner },
        }
    }

    /// The body's JSON, exactly as given.
    pub fn as_json(&self) -> &Value {
        &self.msg
    }
}

/// Field checks over a body's JSON, shared by [`MessageBody::parse`] and the providers' rules so
/// every error names its field the same way (`body.<msgtype>.<field>[i]…`).
pub mod fields {
    use serde_json::{Map, Value};

    use crate::ValidationError;

    /// URL schemes never accepted, whatever a provider allows besides `http(s)`.
    const UNSAFE_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

    /// `value` as an object. Errors: `required` when null, `invalid` when another type.
    pub fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ValidationError> {
        match value {
            Value::Object(map) => Ok(map),
            Value::Null => Err(ValidationError::new(path, "required", format!("{path} is required"))),
            _ => Err(ValidationError::new(path, "invalid", format!("{path} must be a JSON object"))),
        }
    }

    /// Refuses the first key of `map` not in `allowed` (`unknown_field`, naming the allowed ones).
    pub fn only_keys(map: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ValidationError> {
        match map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(ValidationError::new(
                format!("{path}.{key}"),
                "unknown_field",
                format!("{path}.{key} is not accepted here (expected one of: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// `map[key]` as a non-blank string of at most `max_chars` characters, trimmed. Errors:
    /// `required` (missing, null or blank), `invalid` (not a string), `too_long`.
    pub fn required_str(
        map: &Map<String, Value>,
        key: &str,
        path: &str,
        max_chars: usize,
    ) -> Result<String, ValidationError> {
        let field = format!("{path}.{key}");
        match map.get(key) {
            Some(Value::String(s)) => crate::error::text(&field, s, max_chars),
            None | Some(Value::Null) => Err(ValidationError::new(&field, "required", format!("{field} is required"))),
            Some(_) => Err(ValidationError::new(&field, "invalid", format!("{field} must be a string"))),
        }
    }

    /// `map[key]` as a URL of at most [`super::MAX_URL_CHARS`] characters: `http://` or
    /// `https://`, or `<scheme>://` for a scheme in `app_schemes` (a provider's in-app links;
    /// `["https"]` allows `http(s)` alone).
    /// With an empty `app_schemes`, any `<scheme>://` whose scheme is a name (RFC 3986 §3.1) and
    /// not `javascript`, `data`, `vbscript` or `file` — the neutral rule, which each provider
    /// narrows. Errors: those of [`required_str`], and `invalid` for another scheme.
    pub fn required_url(
        map: &Map<String, Value>,
        key: &str,
        path: &str,
        app_schemes: &[&str],
    ) -> Result<String, ValidationError> {
        let url = required_str(map, key, path, super::MAX_URL_CHARS)?;
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let allowed = scheme.as_deref().is_some_and(|s| {
            let named = s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            matches!(s, "http" | "https")
                || if app_schemes.is_empty() { named && !UNSAFE_SCHEMES.contains(&s) } else { app_schemes.contains(&s) }
        });
        if allowed {
            return Ok(url);
        }
        let others: Vec<String> =
            app_schemes.iter().filter(|s| !matches!(**s, "http" | "https")).map(|s| format!("{s}://")).collect();
        let expected = match (app_schemes.is_empty(), others.is_empty()) {
            (true, _) => "an http(s):// URL or an app link (<scheme>://)".to_owned(),
            (false, true) => "an http(s):// URL".to_owned(),
            (false, false) => format!("an http(s):// or {} URL", others.join(" or ")),
        };
        Err(ValidationError::new(format!("{path}.{key}"), "invalid", format!("{path}.{key} must be {expected}")))
    }

    /// Refuses `value` when its JSON is over `max` bytes (`too_large`, naming `who` sets the bound).
    pub fn max_bytes(value: &Value, path: &str, max: usize, who: &str) -> Result<(), ValidationError> {
        let bytes = value.to_string().len();
        if bytes > max {
            return Err(ValidationError::new(
                path,
                "too_large",
                format!("{path} is {bytes} bytes as JSON; {who} accepts at most {max}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(result: Result<MessageBody, ValidationError>) -> Option<(String, &'static str)> {
        result.err().map(|e| (e.field, e.code))
    }

    #[test]
    fn the_neutral_three_are_checked_and_kept_exactly() {
        let cases = [
            (json!({"msgtype":"text","text":{"content":"hello"}}), BodyKind::Text),
            (json!({"msgtype":"markdown","markdown":{"title":"T","text":"# hi"}}), BodyKind::Markdown),
            (
                json!({"msgtype":"link","link":{"messageUrl":"https://a.example","picUrl":"@lADOADmaWMzazQKA","title":"T","text":"x"}}),
                BodyKind::Link,
            ),
            (
                json!({"msgtype":"link","link":{"messageUrl":"https://a.example","title":"T","text":"x"}}),
                BodyKind::Link,
            ),
        ];
        for (body, kind) in cases {
            let parsed = MessageBody::parse(&body);
            assert_eq!(parsed.as_ref().map(MessageBody::kind).ok(), Some(kind), "{body}: {parsed:?}");
            assert_eq!(parsed.map(|b| b.as_json().clone()).ok(), Some(body));
        }
    }

    #[test]
    fn content_borrows_the_trimmed_fields() -> Result<(), ValidationError> {
        let link = MessageBody::parse(
            &json!({"msgtype":"link","link":{"messageUrl":" https://a.example ","title":"T ","text":"x"}}),
        )?;
        assert_eq!(link.content(), Content::Link { url: "https://a.example", title: "T", text: "x", pic_url: None });
        assert_eq!(MessageBody::text(" hi ")?.content(), Content::Text { content: "hi" });
        let native = MessageBody::parse(&json!({"msgtype":"oa","oa":{"message_url":"https://a"}}))?;
        assert!(
            matches!(native.content(), Content::Native { msgtype: "oa", inner } if inner.contains_key("message_url"))
        );
        assert_eq!(native.kind(), BodyKind::Native);
        Ok(())
    }

    #[test]
    fn a_native_body_needs_only_its_envelope() {
        assert!(MessageBody::parse(&json!({"msgtype":"post","post":{"zh_cn":{"content":[]}}})).is_ok());
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"post","post":"x"}))),
            Some(("body.post".into(), "invalid"))
        );
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"Post!","Post!":{}}))),
            Some(("body.msgtype".into(), "invalid"))
        );
        assert_eq!(
            field_of(MessageBody::parse(&json!({"msgtype":"oa","oa":{},"extra":1}))),
            Some(("body.extra".into(), "unknown_field"))
        );
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
            field_of(MessageBody::parse(&json!({"msgtype":"markdown","markdown":{"title":"t"}}))),
            Some(("body.markdown.text".into(), "required"))
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
    fn urls_are_http_or_an_app_link_never_script() {
        let link = |url: &str| json!({"msgtype":"link","link":{"messageUrl":url,"title":"T","text":"x"}});
        for ok in ["https://a.example", "http://a", "myapp://page/1", "app-link+v2://x"] {
            assert!(MessageBody::parse(&link(ok)).is_ok(), "{ok}");
        }
        for bad in ["javascript://x", "JavaScript://x", "data://x", "ftp:/x", "a.example", "1a://x"] {
            assert_eq!(
                field_of(MessageBody::parse(&link(bad))),
                Some(("body.link.messageUrl".into(), "invalid")),
                "{bad}"
            );
        }
        let map = json!({"u": "mail://x"});
        let map = map.as_object().map_or_else(Map::new, Clone::clone);
        assert!(fields::required_url(&map, "u", "p", &["myapp"]).is_err());
        assert!(fields::required_url(&map, "u", "p", &["mail"]).is_ok());
    }

    #[test]
    fn over_32_kib_is_too_large() {
        assert!(MessageBody::text(&"a".repeat(30_000)).is_ok());
        // Under the field's bound in characters, over the body's in bytes with the JSON around it.
        assert_eq!(field_of(MessageBody::text(&"a".repeat(32_750))), Some(("body".into(), "too_large")));
        assert_eq!(field_of(MessageBody::text(&"a".repeat(33_000))), Some(("body.text.content".into(), "too_long")));
        // 11,000 three-byte characters = 33,000 bytes although only 11,000 characters.
        assert_eq!(field_of(MessageBody::text(&"钉".repeat(11_000))), Some(("body".into(), "too_large")));
        let native = json!({"msgtype":"card","card":{"x":"a".repeat(33_000)}});
        assert_eq!(field_of(MessageBody::parse(&native)), Some(("body".into(), "too_large")));
    }
}
