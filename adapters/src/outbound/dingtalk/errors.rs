//! Decoding DingTalk responses and classifying failures into [`UpstreamError`]
//! (docs/dingtalk-api.md §0.2 v1.0 shape, §0.3 legacy shape, §G.2 classification).

use std::time::Duration;

use application::ports::UpstreamError;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::outbound::governor::{DEFAULT_IP_BAN, Signal};

/// How one HTTP exchange with DingTalk failed, before the token retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// The access token was refused (docs/dingtalk-api.md §G.2 "token invalid/expired" row):
    /// the caller may drop its cached token, fetch a new one and retry once.
    Token {
        /// DingTalk's code (`errcode`/`sub_code` as a string, or the v1.0 `code`).
        code: String,
        /// DingTalk's message.
        message: String,
    },
    /// Any other failure, already classified.
    Upstream(UpstreamError),
}

impl From<UpstreamError> for CallError {
    fn from(error: UpstreamError) -> Self {
        Self::Upstream(error)
    }
}

impl CallError {
    /// The error to report when no (further) token refresh is possible.
    pub(super) fn into_upstream(self) -> UpstreamError {
        match self {
            Self::Token { code, message } => UpstreamError::TokenRejected(format!("{code} {message}")),
            Self::Upstream(error) => error,
        }
    }
}

/// Legacy errcodes meaning "bad or expired access token" (docs/dingtalk-api.md §G.2).
const LEGACY_TOKEN_CODES: [i64; 5] = [40014, 42001, 40001, 41001, 33001];
/// `sub_code`s under errcode 88 meaning the same (docs/dingtalk-api.md §0.3, §G.2): the
/// token row plus 40000 "access_token is blank".
const SUB_TOKEN_CODES: [i64; 6] = [40014, 40000, 42001, 40001, 41001, 33001];
/// v1.0 `code`s meaning "bad or expired access token" (docs/dingtalk-api.md §0.2, §G.2).
const V1_TOKEN_CODES: [&str; 3] =
    ["InvalidAuthentication", "AuthenticationFailed.MissingParameter", "accesstoken.expired"];

/// Legacy throttling errcodes (docs/dingtalk-api.md §G.1, §G.2). 90020 (monthly quota) is
/// deliberately absent: it is not retryable this month, so it is `Rejected`.
fn is_throttle_code(code: i64) -> bool {
    matches!(code, 90001..=90014 | 90017 | 90018)
}

/// Legacy "system busy / system error" errcodes (docs/dingtalk-api.md §G.2 "transient / busy"):
/// −1 系统繁忙, 400001 系统错误, 500 系统错误 (listed for `getsendprogress` and recall, §D.3/§D.5: a
/// server-side failure, so transient — classifying it permanent failed messages that a retry
/// delivers), 1430003 OAPI system protection.
fn is_busy_code(code: i64) -> bool {
    matches!(code, -1 | 400001 | 500 | 1430003)
}

/// What an answer says about DingTalk's limits, for the call governor (docs/dingtalk-api.md §G.1):
///
/// - legacy errcode 90018, v1.0 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi` → the app
///   called this API too often ([`Signal::AppThrottled`]);
/// - errcode 90002–90014 and 90017, v1.0 403 `Forbidden.AccessDenied.QpsLimitForApi` and other
///   `Qps*`/`Qpm*` codes → a wider limit ([`Signal::ApiThrottled`], exponential pause);
/// - errcode 90001 ("server IP all APIs banned"), the ban answer `{"status":1111,"wait":N,…}`
///   (N read as minutes — the documented ban is 5 minutes and the sample says `"wait":5`; the unit
///   is UNCONFIRMED, so N outside 1–60 counts as 5), or an HTML page from an API host with a
///   status below 500 (DingTalk's other ban answer; a 5xx HTML page is a gateway error) →
///   [`Signal::IpBanned`].
///
/// 90020 (the month's quota) is no pacing signal: waiting does not help this month.
pub(super) fn throttle_signal(status: StatusCode, body: &[u8]) -> Option<Signal> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let html = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        return (html && !status.is_server_error()).then_some(Signal::IpBanned(DEFAULT_IP_BAN));
    };
    if json.get("status").and_then(as_i64) == Some(1111) {
        let minutes = json.get("wait").and_then(as_i64).filter(|m| (1..=60).contains(m));
        let ban = minutes.map_or(DEFAULT_IP_BAN, |m| Duration::from_secs(u64::try_from(m).unwrap_or(5) * 60));
        return Some(Signal::IpBanned(ban));
    }
    if let Some(env) = envelope(&json) {
        let code = match (&env.sub_code, env.errcode) {
            (Some(sub), 88) => sub.trim().parse().unwrap_or(88),
            (_, code) => code,
        };
        return match code {
            90018 => Some(Signal::AppThrottled),
            90001 => Some(Signal::IpBanned(DEFAULT_IP_BAN)),
            90002..=90014 | 90017 => Some(Signal::ApiThrottled),
            _ => None,
        };
    }
    let code = json.get("code").and_then(as_text)?;
    if status != StatusCode::FORBIDDEN {
        return None;
    }
    if code == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi" {
        Some(Signal::AppThrottled)
    } else if code.starts_with("Forbidden.AccessDenied.Qps") || code.starts_with("Forbidden.AccessDenied.Qpm") {
        Some(Signal::ApiThrottled)
    } else {
        None
    }
}

/// Legacy errcodes docs/dingtalk-api.md classifies as permanent ("do not retry"): §G.2's bad
/// credentials (40096, 40089, 40088, 40080, 40085), permission (60011, 50002, 50004, 60020) and
/// not found / input rows (60121, 33012, 40035, 400002, 40078, 43004, 43005); the unknown method
/// and path answers of §0.3 and §0.2 (22, 404); the month's quota (90020, §G.1). Any other code
/// that is neither a token, busy nor throttle code is `Unrecognized` and retried within a budget.
pub(super) const PERMANENT_CODES: [i64; 19] = [
    40096, 40089, 40088, 40080, 40085, 60011, 50002, 50004, 60020, 60121, 33012, 40035, 400002, 40078, 43004, 43005,
    22, 404, 90020,
];

/// The legacy envelope `{"errcode":N,"errmsg":"..","sub_code":"..","sub_msg":".."}` (docs/dingtalk-api.md §0.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    pub errcode: i64,
    pub errmsg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
}

/// A JSON number, or a string holding one (tolerated although real captures are typed, docs/dingtalk-api.md §0.3).
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON string, or a number rendered as one.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the legacy envelope; `None` when the body has no numeric `errcode`.
pub(super) fn envelope(value: &Value) -> Option<Envelope> {
    let errcode = as_i64(value.get("errcode")?)?;
    let text = |key: &str| value.get(key).and_then(as_text);
    Some(Envelope {
        errcode,
        errmsg: text("errmsg").unwrap_or_default(),
        sub_code: text("sub_code").filter(|s| !s.is_empty()),
        sub_msg: text("sub_msg"),
    })
}

/// Classifies a legacy errcode ≠ 0 (docs/dingtalk-api.md §0.3, §G.2): token codes → `Token`,
/// busy codes → `Unavailable`, throttle codes → `Throttled`, [`PERMANENT_CODES`] → `Rejected`,
/// anything else → `Unrecognized`. For errcode 88 the `sub_code` decides and becomes the
/// reported code, with `sub_msg` as message.
pub(super) fn classify_legacy(env: &Envelope) -> CallError {
    let (code_text, message, numeric, token_codes): (String, String, Option<i64>, &[i64]) =
        match (&env.sub_code, env.errcode) {
            (Some(sub), 88) => (
                sub.clone(),
                env.sub_msg.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| env.errmsg.clone()),
                sub.trim().parse().ok(),
                &SUB_TOKEN_CODES,
            ),
            (_, code) => (code.to_string(), env.errmsg.clone(), Some(code), &LEGACY_TOKEN_CODES),
        };
    match numeric {
        Some(code) if token_codes.contains(&code) => CallError::Token { code: code_text, message },
        Some(code) if is_busy_code(code) => {
            UpstreamError::Unavailable(format!("errcode {code_text}: {message}")).into()
        }
        Some(code) if is_throttle_code(code) => {
            UpstreamError::Throttled(format!("errcode {code_text}: {message}")).into()
        }
        Some(code) if PERMANENT_CODES.contains(&code) => UpstreamError::Rejected { code: code_text, message }.into(),
        _ => UpstreamError::Unrecognized { code: code_text, message }.into(),
    }
}

/// Classifies a non-2xx HTTP answer (docs/dingtalk-api.md §0.2, §G.2): 401 → token; 429 and
/// 5xx → `Unavailable`; a non-JSON body → `Unavailable`; 400 with a token
/// code → token; 403 `Forbidden.AccessDenied.Qps*`/`Qpm*` → `Throttled`;
/// any other 4xx → `Rejected{code, message}`; anything else → `Unavailable`.
pub(super) fn classify_http(status: StatusCode, body: &[u8]) -> CallError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok().filter(Value::is_object);
    let field = |key: &str| parsed.as_ref().and_then(|v| v.get(key)).and_then(as_text).filter(|s| !s.is_empty());
    let code = field("code");
    let message = field("message").unwrap_or_default();
    let status_u16 = status.as_u16();
    let label = format!("HTTP {status_u16} {} {message}", code.as_deref().unwrap_or("-"));
    if status == StatusCode::UNAUTHORIZED {
        return CallError::Token { code: code.unwrap_or_else(|| "401".to_owned()), message };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return UpstreamError::Unavailable(label.trim_end().to_owned()).into();
    }
    let Some(json) = parsed else {
        return UpstreamError::Unavailable(format!("HTTP {status_u16} with a non-JSON body")).into();
    };
    if !status.is_client_error() {
        return UpstreamError::Unavailable(format!("unexpected HTTP status {status_u16}")).into();
    }
    // A legacy-shaped error under a 4xx status (not documented, but classify it the legacy way).
    if code.is_none()
        && let Some(env) = envelope(&json)
        && env.errcode != 0
    {
        return classify_legacy(&env);
    }
    let code = code.unwrap_or_else(|| status_u16.to_string());
    if V1_TOKEN_CODES.contains(&code.as_str()) {
        return CallError::Token { code, message };
    }
    if status == StatusCode::FORBIDDEN
        && (code.starts_with("Forbidden.AccessDenied.Qps") || code.starts_with("Forbidden.AccessDenied.Qpm"))
    {
        return UpstreamError::Throttled(format!("{code} {message}").trim_end().to_owned()).into();
    }
    UpstreamError::Rejected { code, message }.into()
}

/// Parses a success body as JSON; anything else is `Unavailable`.
fn json_body(body: &[u8]) -> Result<Value, CallError> {
    serde_json::from_slice(body)
        .map_err(|_| UpstreamError::Unavailable("the response body is not JSON".to_owned()).into())
}

/// Builds `T` from a JSON success body; a wrong shape is `Unavailable`.
/// `detail` says whether serde's message (field names, never token values for
/// our DTOs except on the token endpoint) may be included.
fn shape<T: DeserializeOwned>(value: Value, detail: bool) -> Result<T, CallError> {
    serde_json::from_value(value).map_err(|e| {
        let message =
            if detail { format!("unexpected response shape: {e}") } else { "unexpected response shape".to_owned() };
        UpstreamError::Unavailable(message).into()
    })
}

/// Decodes a v1.0 answer (docs/dingtalk-api.md §0.2): non-2xx → [`classify_http`]; a 2xx
/// body carrying a legacy `errcode` ≠ 0 (e.g. an unknown path, §0.2 last
/// bullet) → [`classify_legacy`]; otherwise `T`.
pub(super) fn decode_v1<T: DeserializeOwned>(status: StatusCode, body: &[u8], detail: bool) -> Result<T, CallError> {
    if !status.is_success() {
        return Err(classify_http(status, body));
    }
    let value = json_body(body)?;
    if let Some(env) = envelope(&value)
        && env.errcode != 0
    {
        return Err(classify_legacy(&env));
    }
    shape(value, detail)
}

/// Decodes a legacy answer (docs/dingtalk-api.md §0.3): non-2xx → [`classify_http`]; a body
/// without a numeric `errcode` → `Unavailable`; `errcode` ≠ 0 →
/// [`classify_legacy`]; otherwise `T` (extra fields ignored).
pub(super) fn decode_legacy<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, CallError> {
    if !status.is_success() {
        return Err(classify_http(status, body));
    }
    let value = json_body(body)?;
    match envelope(&value) {
        None => Err(UpstreamError::Unavailable("the response has no errcode".to_owned()).into()),
        Some(env) if env.errcode != 0 => Err(classify_legacy(&env)),
        Some(_) => shape(value, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(body: &str) -> CallError {
        match decode_legacy::<Value>(StatusCode::OK, body.as_bytes()) {
            Ok(v) => UpstreamError::Rejected { code: "ok".into(), message: v.to_string() }.into(),
            Err(e) => e,
        }
    }

    fn v1(status: u16, body: &str) -> CallError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
        match decode_v1::<Value>(status, body.as_bytes(), true) {
            Ok(v) => UpstreamError::Rejected { code: "ok".into(), message: v.to_string() }.into(),
            Err(e) => e,
        }
    }

    fn is_unavailable(e: &CallError) -> bool {
        matches!(e, CallError::Upstream(UpstreamError::Unavailable(_)))
    }

    fn is_throttled(e: &CallError) -> bool {
        matches!(e, CallError::Upstream(UpstreamError::Throttled(_)))
    }

    #[test]
    fn permanent_codes_are_rejected_and_unknown_ones_unrecognised() {
        for code in PERMANENT_CODES {
            let body = format!(r#"{{"errcode":{code},"errmsg":"m"}}"#);
            assert!(matches!(legacy(&body), CallError::Upstream(UpstreamError::Rejected { .. })), "{code}");
            let wrapped = format!(r#"{{"errcode":88,"sub_code":"{code}","sub_msg":"m"}}"#);
            assert!(matches!(legacy(&wrapped), CallError::Upstream(UpstreamError::Rejected { .. })), "88/{code}");
        }
        assert_eq!(
            legacy(r#"{"errcode":71001,"errmsg":"新的错误"}"#),
            CallError::Upstream(UpstreamError::Unrecognized { code: "71001".into(), message: "新的错误".into() })
        );
        assert_eq!(
            legacy(r#"{"errcode":88,"sub_code":"71002","sub_msg":"包装的新错误"}"#),
            CallError::Upstream(UpstreamError::Unrecognized {
                code: "71002".into(), message: "包装的新错误".into()
            })
        );
    }

    #[test]
    fn throttle_signals_follow_section_g1() {
        let signal = |status: u16, body: &str| {
            throttle_signal(StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT), body.as_bytes())
        };
        assert_eq!(signal(200, r#"{"errcode":90018,"errmsg":"当前请求过多"}"#), Some(Signal::AppThrottled));
        assert_eq!(signal(200, r#"{"errcode":88,"sub_code":"90018","errmsg":"x"}"#), Some(Signal::AppThrottled));
        assert_eq!(
            signal(403, r#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"qps"}"#),
            Some(Signal::AppThrottled)
        );
        for body in [r#"{"errcode":90002,"errmsg":"x"}"#, r#"{"errcode":90006,"errmsg":"x"}"#, r#"{"errcode":90017}"#] {
            assert_eq!(signal(200, body), Some(Signal::ApiThrottled), "{body}");
        }
        assert_eq!(signal(403, r#"{"code":"Forbidden.AccessDenied.QpsLimitForApi"}"#), Some(Signal::ApiThrottled));
        assert_eq!(signal(403, r#"{"code":"Forbidden.AccessDenied.QpmLimitForAppkey"}"#), Some(Signal::ApiThrottled));
        assert_eq!(signal(200, r#"{"errcode":90001,"errmsg":"x"}"#), Some(Signal::IpBanned(DEFAULT_IP_BAN)));
        assert_eq!(
            signal(200, r#"{"status":1111,"wait":5,"source":"x5","punish":"deny"}"#),
            Some(Signal::IpBanned(Duration::from_secs(300)))
        );
        assert_eq!(signal(200, r#"{"status":1111,"wait":2}"#), Some(Signal::IpBanned(Duration::from_secs(120))));
        assert_eq!(signal(200, r#"{"status":1111,"wait":9999}"#), Some(Signal::IpBanned(DEFAULT_IP_BAN)));
        assert_eq!(signal(200, "  <html>blocked</html>"), Some(Signal::IpBanned(DEFAULT_IP_BAN)));
        assert_eq!(signal(403, "<!DOCTYPE html>"), Some(Signal::IpBanned(DEFAULT_IP_BAN)));
        // Not pacing signals: a gateway's HTML error, the month's quota, a permission, success, garbage.
        assert_eq!(signal(502, "<html>Bad Gateway</html>"), None);
        assert_eq!(signal(200, r#"{"errcode":90020,"errmsg":"x"}"#), None);
        assert_eq!(signal(403, r#"{"code":"Forbidden.AccessDenied.ApiCountLimitForOrg"}"#), None);
        assert_eq!(signal(403, r#"{"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied"}"#), None);
        assert_eq!(signal(200, r#"{"errcode":0,"errmsg":"ok"}"#), None);
        assert_eq!(signal(200, r#"{"accessToken":"t","expireIn":7200}"#), None);
        assert_eq!(signal(200, ""), None);
        assert_eq!(signal(429, r#"{"code":"Forbidden.AccessDenied.QpsLimitForApi"}"#), None);
    }

    #[test]
    fn legacy_token_codes_raw_and_wrapped() {
        for body in [
            r#"{"errcode":40014,"errmsg":"不合法的access_token"}"#,
            r#"{"errcode":42001,"errmsg":"access_token超时"}"#,
            r#"{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token","errmsg":"ding talk error[subcode=40014,submsg=不合法的access_token]","request_id":"16l4ew3d47pdp"}"#,
            r#"{"errcode":88,"sub_code":"40000","sub_msg":"access_token is blank","errmsg":"x"}"#,
        ] {
            assert!(matches!(legacy(body), CallError::Token { .. }), "{body}");
        }
    }

    #[test]
    fn legacy_busy_throttle_and_rejected() {
        assert!(is_unavailable(&legacy(r#"{"errcode":-1,"errmsg":"系统繁忙"}"#)));
        assert!(is_unavailable(&legacy(r#"{"errcode":400001,"errmsg":"系统错误"}"#)));
        // A message that met `500: 系统错误` once used to end `failed` after one attempt.
        assert!(is_unavailable(&legacy(r#"{"errcode":500,"errmsg":"系统错误"}"#)));
        assert!(is_unavailable(&legacy(r#"{"errcode":1430003,"errmsg":"OAPI system protection"}"#)));
        assert!(is_unavailable(&legacy(r#"{"errcode":88,"sub_code":"500","sub_msg":"系统错误","errmsg":"x"}"#)));
        for code in [90018, 90002, 90001, 90005, 90007, 90014, 90017] {
            assert!(is_throttled(&legacy(&format!(r#"{{"errcode":{code},"errmsg":"x"}}"#))), "{code}");
        }
        assert_eq!(
            legacy(r#"{"errcode":90020,"errmsg":"quota"}"#),
            CallError::Upstream(UpstreamError::Rejected { code: "90020".into(), message: "quota".into() })
        );
        assert_eq!(
            legacy(r#"{"errcode":88,"sub_code":"60121","sub_msg":"找不到该用户","errmsg":"ding talk error"}"#),
            CallError::Upstream(UpstreamError::Rejected { code: "60121".into(), message: "找不到该用户".into() })
        );
        assert_eq!(
            legacy(r#"{"errcode":"60121","errmsg":"找不到该用户"}"#),
            CallError::Upstream(UpstreamError::Rejected { code: "60121".into(), message: "找不到该用户".into() })
        );
    }

    #[test]
    fn legacy_without_errcode_or_json_is_unavailable() {
        assert!(is_unavailable(&legacy(r#"{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"xxx"}"#)));
        assert!(is_unavailable(&legacy("<html>blocked</html>")));
        assert!(is_unavailable(&legacy("")));
        assert!(is_unavailable(&legacy("[1,2]")));
    }

    #[test]
    fn v1_classification() {
        assert!(matches!(
            v1(400, r#"{"code":"InvalidAuthentication","requestid":"x","message":"不合法的access_token"}"#),
            CallError::Token { .. }
        ));
        assert!(matches!(
            v1(400, r#"{"code":"AuthenticationFailed.MissingParameter","message":"m"}"#),
            CallError::Token { .. }
        ));
        assert!(matches!(v1(401, ""), CallError::Token { .. }));
        assert!(is_throttled(&v1(403, r#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"m"}"#)));
        assert!(is_throttled(&v1(403, r#"{"code":"Forbidden.AccessDenied.QpmLimitForAppkeyAndApi","message":"m"}"#)));
        assert_eq!(
            v1(
                403,
                r#"{"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied","message":"没有调用该接口的权限"}"#
            ),
            CallError::Upstream(UpstreamError::Rejected {
                code: "Forbidden.AccessDenied.AccessTokenPermissionDenied".into(),
                message: "没有调用该接口的权限".into()
            })
        );
        for status in [500, 502, 503, 504, 429] {
            assert!(is_unavailable(&v1(status, r#"{"code":"serviceBusy","message":"m"}"#)), "{status}");
        }
        assert!(is_unavailable(&v1(503, "Service Unavailable")));
        assert!(is_unavailable(&v1(404, "<html>not found</html>")));
        assert!(is_unavailable(&v1(200, "not json")));
        assert!(is_unavailable(&v1(302, "{}")));
        assert_eq!(
            v1(200, r#"{"errcode":404,"errmsg":"请求的URI地址不存在"}"#),
            CallError::Upstream(UpstreamError::Rejected {
                code: "404".into(), message: "请求的URI地址不存在".into()
            })
        );
    }

    #[test]
    fn token_error_reports_as_token_rejected() {
        let e = CallError::Token { code: "40014".into(), message: "bad".into() };
        assert_eq!(e.into_upstream(), UpstreamError::TokenRejected("40014 bad".into()));
    }
}
