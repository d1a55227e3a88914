//! Wire helpers of the Feishu emulator: the fully read request ([`Incoming`]), the answer
//! ([`Reply`]) and the envelopes of `docs/feishu-api.md` §0.2 (OpenAPI `{code,msg,data}`),
//! §B.1 (auth/v3 top-level fields) and §A.3 (RFC 6749 body plus `code`).
//! Nothing here is shared with the DingTalk emulator or with any client.

use serde_json::{Map, Value, json};

/// A request, fully read, for the synchronous handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Incoming {
    /// Upper-case method.
    pub(crate) method: String,
    /// Path without the query.
    pub(crate) path: String,
    /// The raw query string ("" when none).
    pub(crate) query_raw: String,
    /// Decoded query pairs, in order.
    pub(crate) query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub(crate) headers: Vec<(String, String)>,
    /// The body bytes.
    pub(crate) body: Vec<u8>,
}

impl Incoming {
    /// First value of query parameter `key`.
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// First value of header `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The media type without parameters, lower-case ("" when absent).
    fn media_type(&self) -> String {
        self.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
    }

    /// The body as a JSON object (any content type), `None` otherwise.
    pub(crate) fn json_object(&self) -> Option<Map<String, Value>> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// Parameters from a JSON object body or an `application/x-www-form-urlencoded` body
    /// (docs/feishu-api.md §A.3 "Request encodings actually accepted"); `None` when the body is
    /// neither. An empty body gives an empty map.
    pub(crate) fn params(&self) -> Option<Map<String, Value>> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Some(Map::new());
        }
        if self.media_type() != "application/x-www-form-urlencoded"
            && let Some(m) = self.json_object()
        {
            return Some(m);
        }
        if self.media_type() == "application/json" {
            return None;
        }
        let text = std::str::from_utf8(&self.body).ok()?;
        if text.trim_start().starts_with('{') {
            return None;
        }
        Some(
            url::form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    }
}

/// A non-empty string parameter of a JSON/form map (numbers are rendered as text).
pub(crate) fn text(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Body of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyBody {
    /// `application/json; charset=utf-8`.
    Json(Value),
    /// `text/html; charset=utf-8`.
    Html(String),
    /// `text/plain; charset=utf-8`.
    Text(String),
    /// No body.
    Empty,
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// HTTP status.
    pub(crate) status: u16,
    /// Extra headers (lower-case names).
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: ReplyBody,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: ReplyBody::Json(body) }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// docs/feishu-api.md §0.2 success: HTTP 200 `{"code":0,"msg":"success","data":{...}}` + `x-tt-logid`.
    pub(crate) fn ok(data: Value) -> Reply {
        Reply::json(200, json!({"code": 0, "msg": "success", "data": data})).with_header("x-tt-logid", log_id())
    }

    /// docs/feishu-api.md §0.2 failure: `{"code":N,"msg":"...","error":{"log_id":"..."}}` with the
    /// same id in `x-tt-logid`; `status` is 400 for gateway/IM/contact errors (§G.2).
    pub(crate) fn fail(status: u16, code: i64, msg: &str) -> Reply {
        let id = log_id();
        Reply::json(status, json!({"code": code, "msg": msg, "error": {"log_id": id}})).with_header("x-tt-logid", id)
    }

    /// docs/feishu-api.md §B.1: the auth/v3 endpoints answer HTTP 200 with top-level fields (no `data`),
    /// failures included.
    pub(crate) fn auth_v3(body: Value) -> Reply {
        Reply::json(200, body).with_header("x-tt-logid", log_id())
    }

    /// docs/feishu-api.md §A.3 token success: HTTP 200, RFC 6749 fields plus `code: 0`.
    pub(crate) fn oauth_ok(body: Value) -> Reply {
        Reply::json(200, body).with_header("x-tt-logid", log_id())
    }

    /// docs/feishu-api.md §A.3 token failure: `{"code","error","error_description"}`, HTTP 400
    /// (500 for 20050, 503 for 20072).
    pub(crate) fn oauth_err(code: i64, error: &str, description: &str) -> Reply {
        let status = match code {
            20050 => 500,
            20072 => 503,
            _ => 400,
        };
        Reply::json(status, json!({"code": code, "error": error, "error_description": description}))
            .with_header("x-tt-logid", log_id())
    }

    /// docs/feishu-api.md §0.2 last bullet: unknown path or wrong method → HTTP 404 `text/plain`
    /// `404 page not found`.
    pub(crate) fn not_found() -> Reply {
        Reply { status: 404, headers: Vec::new(), body: ReplyBody::Text("404 page not found".to_owned()) }
    }

    /// An HTML page (the emulator's consent and error pages).
    pub(crate) fn html(status: u16, title: &str, body_html: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Html(format!(
                "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
                 <body>\n<h1>{t}</h1>\n{body_html}\n</body></html>\n",
                t = html_escape(title)
            )),
        }
    }

    /// `302 Found` to `location`.
    pub(crate) fn redirect(location: &str) -> Reply {
        Reply { status: 302, headers: vec![("location".to_owned(), location.to_owned())], body: ReplyBody::Empty }
    }

    /// Plain JSON for the admin API.
    pub(crate) fn admin(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }
}

/// A log id shaped like docs/feishu-api.md §0.2's `202407260711088FB107A76E0100002087`: the
/// China-time timestamp `YYYYMMDDhhmmss` followed by 20 upper-case hex digits.
pub(crate) fn log_id() -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(8);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        random_from(b"0123456789ABCDEF", 20)
    )
}

/// `len` characters drawn uniformly from `alphabet`.
pub(crate) fn random_from(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .filter_map(|_| alphabet.get(rand::random_range(0..alphabet.len().max(1))).copied().map(char::from))
        .collect()
}

/// Random lower-case hex of `len` characters.
pub(crate) fn random_hex(len: usize) -> String {
    random_from(b"0123456789abcdef", len)
}

/// The base64url alphabet `[A-Za-z0-9_-]` (docs/feishu-api.md §A.2 code charset).
pub(crate) const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HTML-escapes text for element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Appends `params` to `url`'s query; a `#fragment` stays at the very end (docs/feishu-api.md §A.2
/// last bullet: `...callback?code=...&state=...#/login`).
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let mut out = base.to_owned();
    for (k, v) in params {
        let sep = match out.find('?') {
            None => "?",
            Some(_) if out.ends_with('?') || out.ends_with('&') => "",
            Some(_) => "&",
        };
        out.push_str(sep);
        out.push_str(&url_encode(k));
        out.push('=');
        out.push_str(&url_encode(v));
    }
    out.push_str(fragment);
    out
}
