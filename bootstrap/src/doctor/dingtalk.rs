//! The cloud's (and dev mode's) checks: DingTalk as this deployment's app sees it.
//!
//! Probes, each harmless (docs/dingtalk-api.md): the app token (§B.1); member look-up
//! `topapi/user/getbyunionid` with a union id no one has (§C.1: 60121 means allowed); work
//! notifications `getsendprogress` of task 1 (§D.3: 40035 means allowed — one metered call,
//! §G.3). DingTalk's refusals are mapped by §0.2 and §G.2: bad credentials, permission (60011,
//! 50002, 50004, 403 `AccessTokenPermissionDenied`, or 88 with one of them as `sub_code`), the
//! IP whitelist (60020, 403 `IpNotInWhiteList`), the monthly quota (90020, 403
//! `ApiCountLimitForOrg`, §G.1).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::inbound::dingtalk_events::crypto::CallbackCrypto;
use serde_json::{Value, json};

use super::{Finding, Status};
use crate::config::Config;

/// Skew up to which the clock is `ok`.
const SKEW_OK_SECS: i64 = 30;

/// A DingTalk answer: status, `Date` header, JSON body (or `Null`).
struct Answer {
    status: u16,
    date: Option<String>,
    body: Value,
}

/// What DingTalk's refusal means for the operator.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Credentials(String),
    Permission { code: String, scopes: Vec<String> },
    IpWhitelist { code: String, ip: Option<String> },
    Quota(String),
    Other { code: String, message: String },
}

/// Classifies an answer (docs/dingtalk-api.md §0.2, §0.3, §G.2): `None` for a success or for one
/// of `allowed` (codes that prove the call was permitted, e.g. 60121 "no such user").
fn classify(answer: &Answer, allowed: &[&str]) -> Option<Refusal> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let message = ["errmsg", "message", "sub_msg"]
        .iter()
        .filter_map(|k| answer.body.get(*k).and_then(text))
        .collect::<Vec<_>>()
        .join("; ");
    let code = match answer.body.get("errcode").and_then(text) {
        Some(code) if code == "0" => return None,
        Some(code) if code == "88" => answer.body.get("sub_code").and_then(text).unwrap_or(code),
        Some(code) => code,
        None if (200..300).contains(&answer.status) => return None,
        None => answer.body.get("code").and_then(text).unwrap_or_else(|| format!("HTTP {}", answer.status)),
    };
    if allowed.contains(&code.as_str()) {
        return None;
    }
    Some(match code.as_str() {
        "invalidClientIdOrSecret" | "40096" | "40089" | "invalid.client" => Refusal::Credentials(code),
        "60011" | "50002" | "50004" | "Forbidden.AccessDenied.AccessTokenPermissionDenied" => {
            // `requiredScopes`, when DingTalk names them (its shape is not in docs/dingtalk-api.md).
            let scopes = match answer.body.get("requiredScopes") {
                Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
                Some(Value::String(s)) => s.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
                _ => Vec::new(),
            };
            Refusal::Permission { code, scopes }
        }
        "60020" | "Forbidden.AccessDenied.IpNotInWhiteList" => Refusal::IpWhitelist { code, ip: ipv4_in(&message) },
        "90020" | "Forbidden.AccessDenied.ApiCountLimitForOrg" => Refusal::Quota(code),
        _ => Refusal::Other { code, message },
    })
}

/// The first dotted IPv4 address in `text` (DingTalk may name the refused egress IP in the message).
fn ipv4_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|part| part.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let response = request.send().await.map_err(super::describe)?;
    let status = response.status().as_u16();
    let date = response.headers().get("date").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await.map_err(super::describe)?;
    Ok(Answer { status, date, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The findings of cloud and dev mode.
pub(super) async fn run(config: &Config, http: &reqwest::Client) -> Vec<Finding> {
    let mut out = Vec::new();
    let d = &config.dingtalk;
    let mut refusals = Vec::new();
    let mut date = None;
    match (&d.app_key, &d.app_secret) {
        (Some(app_key), Some(secret)) => {
            let url = join(&d.api_base, "/v1.0/oauth2/accessToken");
            let body = json!({"appKey": app_key, "appSecret": secret.expose()});
            match send(http.post(url).json(&body)).await {
                Err(err) => out.push(Finding::new(
                    "dingtalk.reachable",
                    Status::Fail,
                    format!("DingTalk's API host {} cannot be reached: {err}", d.api_base),
                    "every sign-in, member look-up and message goes through it",
                    "allow outbound HTTPS from this machine to api.dingtalk.com and oapi.dingtalk.com (or fix dingtalk.api_base / dingtalk.oapi_base)",
                )),
                Ok(answer) => {
                    date.clone_from(&answer.date);
                    let token = answer.body.get("accessToken").and_then(Value::as_str).map(str::to_owned);
                    match (classify(&answer, &[]), token) {
                        (None, Some(token)) => {
                            out.push(Finding::ok("dingtalk.app_token", format!("an app token was issued for {app_key}")));
                            probe_permissions(config, http, &token, &mut out, &mut refusals).await;
                        }
                        (Some(Refusal::Credentials(code)), _) => out.push(Finding::new(
                            "dingtalk.app_token",
                            Status::Fail,
                            format!("DingTalk refused dingtalk.app_key {app_key} with dingtalk.app_secret ({code})"),
                            "without an app token no member can be looked up and no message sent",
                            "developer console → your app → 凭证与基础信息 (Credentials): copy Client ID into dingtalk.app_key and Client Secret into dingtalk.app_secret",
                        )),
                        (Some(refusal), _) => refusals.push(("/v1.0/oauth2/accessToken", refusal)),
                        (None, None) => out.push(Finding::new(
                            "dingtalk.app_token",
                            Status::Fail,
                            "the token endpoint answered without an accessToken",
                            "without an app token nothing works",
                            "check dingtalk.api_base points at https://api.dingtalk.com",
                        )),
                    }
                }
            }
        }
        _ => out.push(Finding::new(
            "dingtalk.app_token",
            Status::Skip,
            "no internal app ([dingtalk] app_key and app_secret) is configured",
            "",
            "",
        )),
    }
    if d.app_key.is_some() {
        out.push(Finding::new(
            "dingtalk.permission.Contact.User.Read",
            Status::Skip,
            "users/me needs a signed-in person's user token, so it cannot be probed with the app's",
            "without it every sign-in fails at users/me (403 AccessTokenPermissionDenied, docs/dingtalk-api.md §A.4)",
            "developer console → your app → 权限管理 (Permissions): apply for Contact.User.Read (个人手机号信息: Contact.User.mobile for mobile numbers), then publish a new version",
        ));
    }
    report_refusals(&refusals, &mut out);
    out.push(clock(date.as_deref(), config.events.window_secs));
    out.push(Finding::new(
        "dingtalk.app_published",
        Status::Skip,
        "whether the app's latest version is published cannot be probed (DingTalk's answer for an unpublished version is not in docs/dingtalk-api.md)",
        "changes to permissions and the redirect URL apply only once a version is published",
        "developer console → your app → 版本管理与发布 (Version management): publish the latest version",
    ));
    if !out.iter().any(|f| f.check == "dingtalk.quota") {
        out.push(quota_count(config).await);
    }
    out.push(redirect_url(config, http).await);
    if config.events.is_configured() {
        out.push(callback(config, http).await);
    }
    if config.suite.is_configured() {
        out.push(suite_ticket(config).await);
    }
    out
}

/// Member look-up and work notifications, with the app token.
async fn probe_permissions(
    config: &Config,
    http: &reqwest::Client,
    token: &str,
    out: &mut Vec<Finding>,
    refusals: &mut Vec<(&'static str, Refusal)>,
) {
    let d = &config.dingtalk;
    let probes: [(&'static str, &'static str, Value, &[&str]); 2] = [
        (
            "/topapi/user/getbyunionid",
            "dingtalk.permission.qyapi_get_member",
            json!({"unionid": "dingbridge-doctor-probe"}),
            &["60121"],
        ),
        (
            "/topapi/message/corpconversation/getsendprogress",
            "dingtalk.permission.work_notification",
            json!({"agent_id": d.agent_id.unwrap_or_default(), "task_id": 1}),
            &["40035", "400002"],
        ),
    ];
    for (path, check, body, allowed) in probes {
        let request = http.post(join(&d.oapi_base, path)).query(&[("access_token", token)]).json(&body);
        match send(request).await {
            Err(err) => out.push(Finding::new(
                check,
                Status::Fail,
                format!("{path} could not be called: {err}"),
                "DingTalk's legacy API host must be reachable",
                "allow outbound HTTPS to oapi.dingtalk.com (or fix dingtalk.oapi_base)",
            )),
            Ok(answer) => match classify(&answer, allowed) {
                None => out.push(Finding::ok(check, format!("{path} is permitted"))),
                Some(refusal @ Refusal::Permission { .. }) => out.push(permission(check, path, &refusal)),
                Some(refusal) => refusals.push((path, refusal)),
            },
        }
    }
}

/// The console permission a probe needs (README "Running against real DingTalk").
fn permission(check: &str, path: &str, refusal: &Refusal) -> Finding {
    let Refusal::Permission { code, scopes } = refusal else {
        return Finding::ok(check, "");
    };
    let (name, needed_for) = if check.ends_with("qyapi_get_member") {
        (
            "qyapi_get_member (通讯录 → 成员信息读权限)",
            "every sign-in resolves the member with getbyunionid and topapi/v2/user/get",
        )
    } else {
        (
            "工作通知 (work notifications: 企业消息 → 工作通知消息)",
            "no work notification can be sent, recalled or tracked",
        )
    };
    let scopes = if scopes.is_empty() { String::new() } else { format!("; DingTalk requires {}", scopes.join(", ")) };
    Finding::new(
        check,
        Status::Fail,
        format!("DingTalk refused {path}: the app lacks a permission ({code}{scopes})"),
        needed_for,
        format!("developer console → your app → 权限管理 (Permissions): apply for {name}, then publish a new version"),
    )
}

/// Findings for the refusals that are not about one permission.
fn report_refusals(refusals: &[(&str, Refusal)], out: &mut Vec<Finding>) {
    let mut ip_seen = false;
    for (path, refusal) in refusals {
        match refusal {
            Refusal::IpWhitelist { code, ip } => {
                ip_seen = true;
                let seen = ip.as_ref().map_or(String::new(), |ip| format!("; DingTalk sees this server as {ip}"));
                out.push(Finding::new(
                    "dingtalk.ip_whitelist",
                    Status::Fail,
                    format!("DingTalk refused {path} because the egress IP is not whitelisted ({code}{seen})"),
                    "DingTalk refuses every server-side call from an IP outside the app's whitelist",
                    "developer console → your app → 开发管理 (Development) → 服务器出口IP (server egress IPs): add this server's public egress IP",
                ));
            }
            Refusal::Quota(code) => out.push(Finding::new(
                "dingtalk.quota",
                Status::Fail,
                format!("DingTalk refused {path}: the month's API quota is used up ({code})"),
                "metered calls (every work-notification call) fail until next month (docs/dingtalk-api.md §G.3)",
                "wait for the next month, or buy a larger edition or an add-on pack in the DingTalk admin console",
            )),
            Refusal::Credentials(code) | Refusal::Permission { code, .. } | Refusal::Other { code, .. } => {
                out.push(Finding::new(
                    "dingtalk.call",
                    Status::Warn,
                    format!("DingTalk answered {path} with {code}"),
                    "an unexpected refusal of a harmless call",
                    "see docs/dingtalk-api.md §G.2 for the code",
                ));
            }
        }
    }
    if !ip_seen {
        out.push(Finding::ok("dingtalk.ip_whitelist", "no call was refused for this server's egress IP"));
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) to Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let month = i64::try_from(MONTHS.iter().position(|m| m == month)? + 1).ok()?;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else { return None };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// The clock against DingTalk's `Date`: pushes older than `events.window_secs` are refused.
fn clock(date: Option<&str>, window_secs: i64) -> Finding {
    let Some(theirs) = date.and_then(parse_http_date) else {
        return Finding::new("clock_skew", Status::Skip, "DingTalk's answer carried no readable Date header", "", "");
    };
    let ours = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let skew = ours - theirs;
    let what = format!("this clock is {skew:+} s from DingTalk's");
    let why = "event pushes are signed with DingTalk's timestamp: beyond events.window_secs they are refused (stale_timestamp)";
    let fix = "synchronise the system clock (systemd-timesyncd or chrony: `timedatectl set-ntp true`)";
    if skew.abs() > window_secs {
        Finding::new("clock_skew", Status::Fail, what, why, fix)
    } else if skew.abs() > SKEW_OK_SECS {
        Finding::new("clock_skew", Status::Warn, what, why, fix)
    } else {
        Finding::ok("clock_skew", what)
    }
}

/// `<public_url>/auth/dingtalk/callback` answers (dingbridge's own 400 for a missing state).
async fn redirect_url(config: &Config, http: &reqwest::Client) -> Finding {
    let url = format!("{}/auth/dingtalk/callback", config.public_url);
    let register = format!(
        "developer console → your app → 登录与分享 (Login & Share): the redirect URL must be exactly {url}; DingTalk shows the consent page only with prompt=consent, which dingbridge always sends"
    );
    match http.get(&url).send().await {
        Ok(res) if res.status().as_u16() == 400 => Finding::new(
            "redirect_url",
            Status::Ok,
            format!("{url} answers; whether DingTalk has it registered cannot be probed"),
            "",
            register,
        ),
        Ok(res) => Finding::new(
            "redirect_url",
            Status::Fail,
            format!("{url} answered HTTP {} instead of dingbridge's 400 for a missing state", res.status().as_u16()),
            "DingTalk sends every signing-in browser there",
            format!(
                "make public_url the URL browsers reach this service at (a reverse proxy must forward /auth/dingtalk/callback); {register}"
            ),
        ),
        Err(err) => Finding::new(
            "redirect_url",
            Status::Fail,
            format!("{url} cannot be reached: {}", super::describe(err)),
            "DingTalk sends every signing-in browser there",
            format!("start the service, or fix public_url; {register}"),
        ),
    }
}

/// A `check_url` push to `<public_url>/dingtalk/events`, as DingTalk sends it (docs/dingtalk-api.md
/// §E.2–§E.5), must come back as the encrypted `success`.
async fn callback(config: &Config, http: &reqwest::Client) -> Finding {
    let ev = &config.events;
    let url = format!("{}/dingtalk/events", config.public_url);
    let fix_keys = "developer console → your app → 事件订阅 (Event subscription): the token and EncodingAESKey there must equal events.token and events.aes_key";
    let (Some(token), Some(aes_key), Some(owner)) = (&ev.token, &ev.aes_key, &ev.owner_key) else {
        return Finding::new("callback", Status::Skip, "[events] is incomplete", "", "");
    };
    let crypto = match CallbackCrypto::new(token.expose(), aes_key.expose(), owner) {
        Ok(crypto) => crypto,
        Err(err) => {
            return Finding::new("callback", Status::Fail, format!("[events] is unusable: {err}"), "", fix_keys);
        }
    };
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()).to_string();
    let nonce = uuid_nonce();
    let encrypt = crypto.encrypt(r#"{"EventType":"check_url"}"#);
    let signature = crypto.signature(&timestamp, &nonce, &encrypt);
    let query =
        [("signature", &signature), ("msg_signature", &signature), ("timestamp", &timestamp), ("nonce", &nonce)];
    let why = "DingTalk checks the callback URL when it is saved and pushes suite tickets, authorizations and contact events there";
    let answer = match http
        .post(&url)
        .query(&query)
        .json(&json!({"encrypt": encrypt}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Err(err) => {
            return Finding::new(
                "callback",
                Status::Fail,
                format!("{url} cannot be reached: {}", super::describe(err)),
                why,
                "make <public_url>/dingtalk/events reachable from the internet (port, firewall, reverse proxy), then save the URL in the console",
            );
        }
        Ok(res) => (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null)),
    };
    let (status, body) = answer;
    let decrypted = body.get("encrypt").and_then(Value::as_str).map(|e| crypto.decrypt(e));
    match (status, decrypted) {
        (200, Some(Ok(plain))) if plain == "success" => {
            Finding::ok("callback", format!("{url} answers check_url with the encrypted success"))
        }
        (200, _) => Finding::new(
            "callback",
            Status::Fail,
            format!("{url} answered check_url, but not with a success this configuration can decrypt"),
            why,
            fix_keys,
        ),
        (status, _) => {
            let code = body.get("code").and_then(Value::as_str).unwrap_or("-").to_owned();
            Finding::new(
                "callback",
                Status::Fail,
                format!("{url} refused check_url: HTTP {status} {code}"),
                why,
                if code == "events_not_configured" {
                    "configure [events] on the server at public_url".to_owned()
                } else {
                    fix_keys.to_owned()
                },
            )
        }
    }
}

/// A random nonce: 16 hex characters.
fn uuid_nonce() -> String {
    use application::ports::RandomSource;
    adapters::outbound::system::OsRandom.bytes32()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Suite tickets arrive about every 5 hours (docs/dingtalk-api.md §B.5): none, or one much older,
/// means corp tokens cannot be fetched.
async fn suite_ticket(config: &Config) -> Finding {
    use application::ports::SuiteStore;
    let Some(suite_key) = &config.suite.suite_key else {
        return Finding::new("suite_ticket", Status::Skip, "no suite key", "", "");
    };
    let ticket = if crate::is_postgres(&config.database.url) {
        match adapters::outbound::postgres::PgStore::connect(&config.database.url, 1).await {
            Ok(store) => store.ticket(suite_key).await,
            Err(err) => Err(err),
        }
    } else {
        match adapters::outbound::sqlite::SqliteStore::connect(&config.database.url, 1).await {
            Ok(store) => store.ticket(suite_key).await,
            Err(err) => Err(err),
        }
    };
    let repush = "developer console → your suite → 开发管理: press 重新推送 suite_ticket (re-push), with the cloud running and [events] set";
    match ticket {
        Err(err) => Finding::new(
            "suite_ticket",
            Status::Fail,
            format!("the store could not be read: {err}"),
            "",
            "check database.url",
        ),
        Ok(None) => Finding::new(
            "suite_ticket",
            Status::Fail,
            format!("no suite_ticket has arrived for suite {suite_key}"),
            "without it no corp token can be fetched: every message of the suite's corps waits",
            repush,
        ),
        Ok(Some(ticket)) => {
            let now =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
            let hours = (now - ticket.updated_at.as_millis()) as f64 / 3_600_000.0;
            let what = format!("the latest suite_ticket is {hours:.1} h old");
            if hours > 6.0 {
                Finding::new(
                    "suite_ticket",
                    Status::Warn,
                    what,
                    "DingTalk pushes a new one about every 5 hours; an old one means pushes stopped arriving",
                    repush,
                )
            } else {
                Finding::ok("suite_ticket", what)
            }
        }
    }
}

/// The monthly quota as dingbridge counted it (docs/dingtalk-api.md §G.3), when no probe hit
/// DingTalk's `90020`: a corp marked exhausted blocks, 80 % used warns.
async fn quota_count(config: &Config) -> Finding {
    const CHECK: &str = "dingtalk.quota";
    const WHY: &str = "work notifications are metered (5,000 calls a month on a standard-edition org); past the quota they wait until the month turns";
    let figures = match crate::quota_figures(config).await {
        Ok(figures) => figures,
        Err(err) => {
            return Finding::new(CHECK, Status::Skip, format!("the quota count cannot be read: {err:#}"), WHY, "");
        }
    };
    let summary: Vec<String> = figures
        .iter()
        .map(|f| format!("{} {} of {} metered calls in {}", f.corp_id, f.metered_calls, f.monthly_limit, f.month))
        .collect();
    let summary =
        if summary.is_empty() { "no metered calls counted this month".to_owned() } else { summary.join("; ") };
    if let Some(f) = figures.iter().find(|f| f.exhausted) {
        return Finding::new(
            CHECK,
            Status::Fail,
            format!(
                "DingTalk said the monthly quota of corp {} is exhausted (90020) in {}: {summary}",
                f.corp_id, f.month
            ),
            WHY,
            format!(
                "buy more quota (an add-on pack) and run `dingbridge quota resume --corp-id {}`, or wait for the month to turn; set quota.monthly_limit / quota.corp_limits to the org's real quota",
                f.corp_id
            ),
        );
    }
    if let Some(f) = figures.iter().find(|f| f.metered_calls.saturating_mul(100) >= f.monthly_limit.saturating_mul(80))
    {
        return Finding::new(
            CHECK,
            Status::Warn,
            format!("corp {} has used 80 % or more of its monthly quota: {summary}", f.corp_id),
            WHY,
            "keep delivery.reconcile = \"off\" (status on demand costs nothing in the background); consider an add-on pack",
        );
    }
    Finding::new(CHECK, Status::Ok, summary, WHY, "")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer { status, date: None, body }
    }

    #[test]
    fn refusals_map_to_what_fixes_them() {
        assert_eq!(classify(&answer(200, json!({"errcode": 0})), &[]), None);
        assert_eq!(classify(&answer(200, json!({"errcode": 60121})), &["60121"]), None);
        assert_eq!(
            classify(&answer(400, json!({"code": "invalidClientIdOrSecret", "message": "x"})), &[]),
            Some(Refusal::Credentials("invalidClientIdOrSecret".into()))
        );
        assert_eq!(
            classify(&answer(200, json!({"errcode": 88, "sub_code": "60011", "sub_msg": "no"})), &[]),
            Some(Refusal::Permission { code: "60011".into(), scopes: vec![] })
        );
        assert_eq!(
            classify(
                &answer(
                    403,
                    json!({"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "requiredScopes": ["qyapi_get_member"]})
                ),
                &[]
            ),
            Some(Refusal::Permission {
                code: "Forbidden.AccessDenied.AccessTokenPermissionDenied".into(),
                scopes: vec!["qyapi_get_member".into()]
            })
        );
        assert_eq!(
            classify(
                &answer(200, json!({"errcode": 60020, "errmsg": "访问ip不在白名单之中, request ip=203.0.113.7"})),
                &[]
            ),
            Some(Refusal::IpWhitelist { code: "60020".into(), ip: Some("203.0.113.7".into()) })
        );
        assert_eq!(classify(&answer(200, json!({"errcode": 90020})), &[]), Some(Refusal::Quota("90020".into())));
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
