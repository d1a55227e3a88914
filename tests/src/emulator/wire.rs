//! Wire helpers: the parsed request ([`Incoming`]), the answer ([`Reply`]) and the exact error
//! shapes of both API families (docs/dingtalk-api.md §0.2, §0.3).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::state::{random_base36, random_hex, random_request_id_v1};

/// Which DingTalk family a path belongs to (docs/dingtalk-api.md §0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `api.dingtalk.com/v1.0/...`: status codes + `{code,message,requestid}`.
    V1,
    /// `oapi.dingtalk.com/topapi/...`: HTTP 200 + `errcode`, token errors wrapped in 88.
    Topapi,
    /// `oapi.dingtalk.com` outside topapi (`/gettoken`, `/service/...`): HTTP 200 + raw `errcode`,
    /// no `request_id`.
    OapiLegacy,
    /// `login.dingtalk.com/oauth2/...`: HTML pages and redirects.
    Login,
    /// Anything else: answered like a non-`/v1.0` path on api.dingtalk.com (§0.2 last bullet).
    Other,
}

impl Family {
    pub(crate) fn of(path: &str) -> Family {
        if path.starts_with("/v1.0/") || path == "/v1.0" {
            Family::V1
        } else if path.starts_with("/topapi/") {
            Family::Topapi
        } else if path == "/gettoken" || path.starts_with("/service/") {
            Family::OapiLegacy
        } else if path.starts_with("/oauth2/") {
            Family::Login
        } else {
            Family::Other
        }
    }
}

/// A request, fully read, in a form the synchronous handlers can use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Incoming {
    /// Upper-case method.
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query_raw: String,
    pub(crate) query: Vec<(String, String)>,
    /// Lower-case header names.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Incoming {
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Media type without parameters, lower-case ("" when absent).
    pub(crate) fn media_type(&self) -> String {
        self.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let header = self.header("cookie")?;
        header.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// The body as a JSON object, when it is one (any content type).
    pub(crate) fn json_object(&self) -> Option<Map<String, Value>> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// Legacy API parameters: a JSON object body or a form body (docs/dingtalk-api.md §0.3 last bullet).
    /// `None` when the body is neither (an empty body gives an empty map).
    pub(crate) fn params(&self) -> Option<Params> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Some(Params(Map::new()));
        }
        let media = self.media_type();
        if media != "application/x-www-form-urlencoded"
            && let Some(m) = self.json_object()
        {
            return Some(Params(m));
        }
        if media == "application/json" {
            return None;
        }
        let text = std::str::from_utf8(&self.body).ok()?;
        let map = parse_urlencoded(text).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        Some(Params(map))
    }
}

/// Request parameters as a JSON object; accessors are lenient about JSON vs form typing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Map<String, Value>);

impl Params {
    pub(crate) fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string, number or boolean rendered as text; empty strings count as absent.
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `Ok(None)` when absent, `Err(())` when present but not an integer.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, ()> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    /// `Ok(None)` when absent, `Err(())` when present but not a boolean.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, ()> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(()),
        }
    }
}

/// Body of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyBody {
    Json(Value),
    Html(String),
    Empty,
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: ReplyBody,
}

pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: ReplyBody::Json(body) }
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// v1.0 success (docs/dingtalk-api.md §0.2 "Success: HTTP 200, plain JSON object").
    pub(crate) fn v1_ok(body: Value) -> Reply {
        Reply::json(200, body)
            .with_header("x-acs-request-id", random_request_id_v1())
            .with_header("x-acs-trace-id", random_hex(32))
    }

    /// v1.0 error: non-2xx + `{"code","message","requestid"}` + `x-acs-request-id` (docs/dingtalk-api.md §0.2).
    pub(crate) fn v1_err(status: u16, code: &str, message: &str) -> Reply {
        let requestid = random_request_id_v1();
        Reply::json(status, json!({"code": code, "message": message, "requestid": requestid}))
            .with_header("x-acs-request-id", requestid)
            .with_header("x-acs-trace-id", random_hex(32))
    }

    /// topapi success: `errcode 0` (+ `errmsg "ok"` unless `with_errmsg` is false) + fields + `request_id`.
    pub(crate) fn topapi_ok(fields: Value, with_errmsg: bool) -> Reply {
        let mut body = Map::new();
        body.insert("errcode".into(), json!(0));
        if with_errmsg {
            body.insert("errmsg".into(), json!("ok"));
        }
        if let Value::Object(extra) = fields {
            body.extend(extra);
        }
        body.insert("request_id".into(), json!(random_base36(13)));
        Reply::json(200, Value::Object(body))
    }

    /// topapi error: HTTP 200 `{"errcode":N,"errmsg":"...","request_id":"..."}` (docs/dingtalk-api.md §0.3).
    pub(crate) fn topapi_err(errcode: i64, errmsg: &str) -> Reply {
        Reply::json(200, json!({"errcode": errcode, "errmsg": errmsg, "request_id": random_base36(13)}))
    }

    /// topapi gateway token failure wrapped as errcode 88 (docs/dingtalk-api.md §0.3).
    pub(crate) fn topapi_88(sub_code: &str, sub_msg: &str) -> Reply {
        Reply::json(
            200,
            json!({
                "errcode": 88,
                "sub_code": sub_code,
                "sub_msg": sub_msg,
                "errmsg": format!("ding talk error[subcode={sub_code},submsg={sub_msg}]"),
                "request_id": random_base36(13),
            }),
        )
    }

    /// Legacy non-topapi answer (`/gettoken`): HTTP 200, no `request_id` (docs/dingtalk-api.md §0.3, §B.2).
    pub(crate) fn legacy(body: Value) -> Reply {
        Reply::json(200, body)
    }

    /// A non-`/v1.0` path on api.dingtalk.com (docs/dingtalk-api.md §0.2 last bullet).
    pub(crate) fn other_not_found() -> Reply {
        Reply::json(200, json!({"errcode": 404, "errmsg": "请求的URI地址不存在"}))
    }

    pub(crate) fn html(status: u16, title: &str, body_html: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Html(format!(
                "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
                 <title>{t}</title></head>\n<body>\n<h1>{t}</h1>\n{body_html}\n</body></html>\n",
                t = html_escape(title)
            )),
        }
    }

    pub(crate) fn redirect(location: &str) -> Reply {
        Reply { status: 302, headers: vec![("location".to_owned(), location.to_owned())], body: ReplyBody::Empty }
    }

    /// Plain JSON for the admin API.
    pub(crate) fn admin(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }
}

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

/// Decodes `application/x-www-form-urlencoded` text (also used for query strings).
pub(crate) fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Appends query parameters to a URL (`?` or `&` as needed), URL-encoding the values.
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    let (base, fragment) = match out.find('#') {
        Some(i) => {
            let frag = out.split_off(i);
            (out, frag)
        }
        None => (out, String::new()),
    };
    let mut out = base;
    for (k, v) in params {
        let sep = if out.contains('?') { if out.ends_with('?') || out.ends_with('&') { "" } else { "&" } } else { "?" };
        out.push_str(sep);
        out.push_str(&url_encode(k));
        out.push('=');
        out.push_str(&url_encode(v));
    }
    out.push_str(&fragment);
    out
}

/// JSON with object keys sorted recursively and no whitespace (for duplicate-content detection).
pub(crate) fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}
