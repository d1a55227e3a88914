//! Fault injection: per-path error answers, latency and dropped connections.

use serde::{Deserialize, Serialize};

use super::wire::{Family, Reply};

/// One fault rule (`POST /_admin/faults`).
///
/// With probability `rate` a request to `path` is answered with `error` in its family's exact
/// shape instead of doing the work (nothing is recorded as sent), or — when `drop_connection` is
/// true — the connection is aborted without any response. `latency_ms` delays every answer on the
/// path (whether or not the fault fires).
///
/// A dropped connection is made by unwinding out of the request handler (`resume_unwind`, so no
/// panic message is printed): hyper never writes a response byte and the socket is closed, so the
/// client sees "connection closed before message completed". The call is recorded with status 0;
/// the server keeps serving other connections. (In-process `salvo::test::TestClient` callers would
/// see the unwind as a panic — use a real server for drop tests.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Exact request path; `None` (or `"*"`) matches every non-admin path.
    #[serde(default)]
    pub path: Option<String>,
    /// Which error to answer; see `FaultRule::reply` for the vocabulary.
    #[serde(default)]
    pub error: Option<String>,
    /// Probability in `0.0..=1.0` that the fault fires (default 1).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Delay before every answer on the path.
    #[serde(default)]
    pub latency_ms: u64,
    /// Abort the connection instead of answering (when the fault fires).
    #[serde(default)]
    pub drop_connection: bool,
}

fn default_rate() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule that always answers `error` on `path`.
    pub fn error(path: &str, error: &str) -> FaultRule {
        FaultRule {
            path: Some(path.to_owned()),
            error: Some(error.to_owned()),
            rate: 1.0,
            latency_ms: 0,
            drop_connection: false,
        }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        match self.path.as_deref() {
            None | Some("*") => true,
            Some(p) => p == path,
        }
    }

    /// Whether `error` is a known vocabulary word.
    pub(crate) fn is_valid_error(error: &str) -> bool {
        matches!(error, "-1" | "88/40014" | "90018" | "500" | "429" | "403qps" | "403perm" | "403ip" | "403quota")
            || error.parse::<i64>().is_ok()
            || error.strip_prefix("88/").is_some_and(|sub| !sub.is_empty() && sub.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The answer for `error` in the shape of `family`:
    ///
    /// | error | `/v1.0` (§0.2, §G) | `/topapi` (§0.3, §G) | `/gettoken` | login pages |
    /// |---|---|---|---|---|
    /// | `-1` | 503 `serviceBusy` | errcode -1 系统繁忙 | same as topapi without `request_id` | HTML 503 |
    /// | `88/40014` | 400 `InvalidAuthentication` | 88 + `sub_code` 40014 | errcode 40014 | HTML 400 |
    /// | `90018` / `403qps` | 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi` | errcode 90018 | errcode 90018 | HTML 403 |
    /// | `429` | 429 `system.busy` | errcode 90018 (the legacy family has no 429) | errcode 90018 | HTML 429 |
    /// | `500` | 500 `unknownError` 未知错误 | errcode 500 系统错误 (§D.3/§D.5 list "500") | errcode 500 | HTML 500 |
    /// | `88/N` (other N) | 500 `unknownError` (v1.0 does not wrap) | 88 + `sub_code` N (§0.3's wrapping, e.g. `88/60011`) | errcode N | HTML 500 |
    /// | `403perm` | 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` 没有调用该接口的权限 | errcode 60011 | errcode 60011 | HTML 403 |
    /// | `403ip` | 403 `Forbidden.AccessDenied.IpNotInWhiteList` 访问ip不在白名单之中 | errcode 60020 | errcode 60020 | HTML 403 |
    /// | `403quota` | 403 `Forbidden.AccessDenied.ApiCountLimitForOrg` | errcode 90020 | errcode 90020 | HTML 403 |
    /// | other integer N | status N if 400..=599 else 500, code `unknownError` | errcode N | errcode N | HTML 500 |
    ///
    /// The permission, IP-whitelist and monthly-quota words are docs/dingtalk-api.md §0.2's v1.0
    /// gateway errors and their legacy codes in §G.1/§G.2 (60011, 60020, 90020); `dingbridge
    /// doctor` is tested against them.
    pub(crate) fn reply(error: &str, family: Family) -> Reply {
        let (legacy_code, legacy_msg): (i64, String) = match error {
            "-1" => (-1, "系统繁忙".to_owned()),
            "88/40014" => (40014, "不合法的access_token".to_owned()),
            "90018" | "403qps" | "429" => (90018, "当前应用调用该接口的并发量超过限制，请稍后重试".to_owned()),
            "500" => (500, "系统错误".to_owned()),
            "403perm" => (60011, "没有调用该接口的权限".to_owned()),
            "403ip" => (60020, "访问ip不在白名单之中".to_owned()),
            "403quota" => (90020, "当前企业的调用次数已达到上限".to_owned()),
            other => match other.strip_prefix("88/") {
                Some(sub) => (sub.parse().unwrap_or(-1), "没有调用该接口的权限".to_owned()),
                None => (other.parse().unwrap_or(-1), "系统错误".to_owned()),
            },
        };
        match family {
            Family::V1 | Family::Other => match error {
                "-1" => Reply::v1_err(503, "serviceBusy", "服务繁忙"),
                "88/40014" => Reply::v1_err(400, "InvalidAuthentication", "不合法的access_token"),
                "90018" | "403qps" => {
                    Reply::v1_err(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "应用调用该接口的QPS超过限制")
                }
                "429" => Reply::v1_err(429, "system.busy", "system busy, request too frequest"),
                "500" => Reply::v1_err(500, "unknownError", "未知错误"),
                "403perm" => {
                    Reply::v1_err(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied", "没有调用该接口的权限")
                }
                "403ip" => Reply::v1_err(403, "Forbidden.AccessDenied.IpNotInWhiteList", "访问ip不在白名单之中"),
                "403quota" => {
                    Reply::v1_err(403, "Forbidden.AccessDenied.ApiCountLimitForOrg", "当前企业的调用次数已达到上限")
                }
                other => {
                    let status = other.parse::<u16>().ok().filter(|s| (400..=599).contains(s)).unwrap_or(500);
                    Reply::v1_err(status, "unknownError", "未知错误")
                }
            },
            Family::Topapi => {
                if error == "88/40014" {
                    Reply::topapi_88("40014", "不合法的access_token")
                } else if let Some(sub) = error.strip_prefix("88/") {
                    Reply::topapi_88(sub, "没有调用该接口的权限")
                } else {
                    Reply::topapi_err(legacy_code, &legacy_msg)
                }
            }
            Family::OapiLegacy => Reply::legacy(serde_json::json!({
                "errcode": legacy_code,
                "errmsg": legacy_msg,
            })),
            Family::Login => {
                let status = match error {
                    "-1" => 503,
                    "88/40014" => 400,
                    "90018" | "403qps" | "403perm" | "403ip" | "403quota" => 403,
                    "429" => 429,
                    other => other.parse::<u16>().ok().filter(|s| (400..=599).contains(s)).unwrap_or(500),
                };
                Reply::html(status, "系统繁忙 — DingTalk emulator", "<p>injected fault</p>")
            }
        }
    }
}
