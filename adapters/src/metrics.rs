//! The metric families dingbridge records, through the `metrics` facade. Without an installed
//! recorder (tests, `check-config`) recording does nothing; `bootstrap` installs the Prometheus
//! recorder and serves `/metrics` (README "Operating dingbridge").
//!
//! Names follow the Prometheus conventions: a `dingbridge_` prefix, base units (`_seconds`),
//! `_total` for counters, and labels with bounded values only — route templates, never paths;
//! DingTalk API paths from a fixed list and DingTalk's result codes, never ids or tokens.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Counter: HTTP requests answered, by `route` (the template with `:name` parameters, e.g.
/// `/api/users/:id`, or `unmatched`), `method` and `status`.
pub const HTTP_REQUESTS: &str = "dingbridge_http_requests_total";
/// Histogram (seconds): HTTP request latency, by `route` and `method`.
pub const HTTP_DURATION: &str = "dingbridge_http_request_duration_seconds";
/// Counter: DingTalk API calls, by `api` (the endpoint path, e.g. `/topapi/v2/user/get`) and
/// `result` (`ok`, DingTalk's error code — v1.0 `code` or legacy `errcode`, `88/<sub_code>` for
/// a wrapped gateway error, docs/dingtalk-api.md §0.2, §0.3 — `http_<status>`, `timeout` or
/// `transport_error`).
pub const DINGTALK_CALLS: &str = "dingbridge_dingtalk_calls_total";
/// Histogram (seconds): DingTalk API call latency, by `api`.
pub const DINGTALK_DURATION: &str = "dingbridge_dingtalk_call_duration_seconds";
/// Counter: access tokens fetched (docs/dingtalk-api.md §B), by `kind` (`app`, `corp`).
pub const TOKEN_REFRESHES: &str = "dingbridge_token_refreshes_total";
/// Counter: access-token fetches that failed, by `kind` and `reason` (`rejected`, `unavailable`).
pub const TOKEN_REFRESH_FAILURES: &str = "dingbridge_token_refresh_failures_total";
/// Counter: relay API calls local made to the cloud, by `route` (template) and `outcome`
/// (`ok`, `refused`, `unavailable`).
pub const RELAY_CALLS: &str = "dingbridge_relay_calls_total";
/// Histogram (seconds): relay call latency including retries, by `route`.
pub const RELAY_DURATION: &str = "dingbridge_relay_call_duration_seconds";
/// Gauge: messages in the outbox not yet relayed to the cloud (`accepted`), read at each scrape.
pub const OUTBOX_DEPTH: &str = "dingbridge_outbox_depth";
/// Gauge (seconds): age of the oldest message not yet relayed (0 when none).
pub const OUTBOX_OLDEST_AGE: &str = "dingbridge_outbox_oldest_pending_age_seconds";
/// Counter: relay attempts made for outbox messages (the sum of their `attempts`).
pub const OUTBOX_ATTEMPTS: &str = "dingbridge_outbox_attempts_total";
/// Counter: outbox messages that failed for good (state `failed`): the dead letters.
pub const OUTBOX_DEAD_LETTERS: &str = "dingbridge_outbox_dead_letters_total";
/// Gauge (seconds): how far local's contact-feed cursor is behind the cloud: the time between the
/// cloud receiving the last applied event and local applying it (0 before any event).
pub const FEED_LAG: &str = "dingbridge_feed_cursor_lag_seconds";
/// Gauge: local's contact-feed cursor (the last applied event's cursor).
pub const FEED_CURSOR: &str = "dingbridge_feed_cursor";
/// Counter: contact events applied from the feed.
pub const FEED_APPLIED: &str = "dingbridge_feed_events_applied_total";
/// Counter: finished sign-ins by `outcome`: `success`, or the error code that ended it
/// (`not_member`, `inactive_member`, `consent_denied`, `invalid_login_state`, `unavailable`, …;
/// README "Errors").
pub const LOGINS: &str = "dingbridge_logins_total";
/// Counter: DingTalk event pushes received at `/dingtalk/events`, by `type` (the event type from
/// a fixed list, else `other`; `unknown` when it could not be read) and `outcome` (`ok`, or the
/// refusal code: `invalid_signature`, `stale_timestamp`, `replayed_nonce`, …).
pub const EVENT_PUSHES: &str = "dingbridge_event_pushes_total";

/// Gauge: calls waiting for their slot in the call governor (all lanes).
pub const GOVERNOR_WAITING: &str = "dingbridge_governor_waiting_calls";
/// Histogram (seconds): how long calls waited for their slot in the call governor.
pub const GOVERNOR_WAIT: &str = "dingbridge_governor_wait_seconds";
/// Counter: throttle answers from the provider, by `kind` (`app` 90018, `api` 90002, `ip_ban`).
pub const GOVERNOR_THROTTLED: &str = "dingbridge_governor_throttled_total";
/// Counter: calls the governor refused without making them, by `reason` (`busy`, `ip_banned`).
pub const GOVERNOR_REFUSED: &str = "dingbridge_governor_refused_total";

/// Gauge: metered DingTalk calls this month, by `corp_id` (docs/dingtalk-api.md §G.3).
pub const QUOTA_USED: &str = "dingbridge_quota_metered_calls";
/// Gauge: metered calls left this month (`quota.monthly_limit` minus used, at least 0), by `corp_id`.
pub const QUOTA_REMAINING: &str = "dingbridge_quota_remaining_calls";
/// Gauge: 1 while DingTalk says the corp's monthly quota is gone (90020), by `corp_id`.
pub const QUOTA_EXHAUSTED: &str = "dingbridge_quota_exhausted";

/// Every family this module records: what `/metrics` carries once each has been recorded (a
/// family appears at its first sample).
pub const FAMILIES: [&str; 26] = [
    HTTP_REQUESTS,
    HTTP_DURATION,
    DINGTALK_CALLS,
    DINGTALK_DURATION,
    TOKEN_REFRESHES,
    TOKEN_REFRESH_FAILURES,
    RELAY_CALLS,
    RELAY_DURATION,
    OUTBOX_DEPTH,
    OUTBOX_OLDEST_AGE,
    OUTBOX_ATTEMPTS,
    OUTBOX_DEAD_LETTERS,
    FEED_LAG,
    FEED_CURSOR,
    FEED_APPLIED,
    LOGINS,
    EVENT_PUSHES,
    GOVERNOR_WAITING,
    GOVERNOR_WAIT,
    GOVERNOR_THROTTLED,
    GOVERNOR_REFUSED,
    QUOTA_USED,
    QUOTA_REMAINING,
    QUOTA_EXHAUSTED,
    BUILD_INFO,
    UP_SINCE,
];

/// Gauge: always 1, with the `version` label.
pub const BUILD_INFO: &str = "dingbridge_build_info";
/// Gauge (seconds since the Unix epoch): when this process started.
pub const UP_SINCE: &str = "dingbridge_start_time_seconds";

/// Describes every family (HELP and unit lines). Call once after installing a recorder.
pub fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency, by route template and method.");
    describe_counter!(DINGTALK_CALLS, "DingTalk API calls, by API path and result code.");
    describe_histogram!(DINGTALK_DURATION, Unit::Seconds, "DingTalk API call latency, by API path.");
    describe_counter!(TOKEN_REFRESHES, "DingTalk access tokens fetched, by kind (app, corp).");
    describe_counter!(TOKEN_REFRESH_FAILURES, "DingTalk access-token fetches that failed, by kind and reason.");
    describe_counter!(RELAY_CALLS, "Relay API calls to the cloud, by route template and outcome.");
    describe_histogram!(RELAY_DURATION, Unit::Seconds, "Relay API call latency including retries, by route.");
    describe_gauge!(OUTBOX_DEPTH, "Messages in the outbox not yet relayed to the cloud.");
    describe_gauge!(OUTBOX_OLDEST_AGE, Unit::Seconds, "Age of the oldest message not yet relayed.");
    describe_counter!(OUTBOX_ATTEMPTS, "Relay attempts made for outbox messages.");
    describe_counter!(OUTBOX_DEAD_LETTERS, "Outbox messages that failed for good.");
    describe_gauge!(
        FEED_LAG,
        Unit::Seconds,
        "Delay between the cloud receiving a contact event and local applying it."
    );
    describe_gauge!(FEED_CURSOR, "The last applied contact-feed cursor.");
    describe_counter!(FEED_APPLIED, "Contact events applied from the cloud's feed.");
    describe_counter!(LOGINS, "Finished sign-ins, by outcome.");
    describe_counter!(EVENT_PUSHES, "DingTalk event pushes received, by event type and outcome.");
    describe_gauge!(GOVERNOR_WAITING, "Calls waiting for their slot in the call governor.");
    describe_histogram!(GOVERNOR_WAIT, Unit::Seconds, "How long calls waited for their slot in the call governor.");
    describe_counter!(GOVERNOR_THROTTLED, "Throttle answers from the provider, by kind (app, api, ip_ban).");
    describe_counter!(GOVERNOR_REFUSED, "Calls refused without making them, by reason (busy, ip_banned, quota).");
    describe_gauge!(QUOTA_USED, "Metered DingTalk calls made this month, by corp.");
    describe_gauge!(QUOTA_REMAINING, "Metered DingTalk calls left this month under quota.monthly_limit, by corp.");
    describe_gauge!(QUOTA_EXHAUSTED, "1 while DingTalk says the corp's monthly quota is gone (90020), by corp.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the build.");
    describe_gauge!(UP_SINCE, Unit::Seconds, "When this process started, in seconds since the Unix epoch.");
}

/// Records the families that exist in every mode from the start, so a scrape shows them before
/// any traffic: build info, start time, the governor's waiting calls (0).
pub fn touch_all(version: &'static str, started_unix_secs: f64) {
    gauge!(BUILD_INFO, "version" => version).set(1.0);
    gauge!(UP_SINCE).set(started_unix_secs);
    gauge!(GOVERNOR_WAITING).set(0.0);
}

/// A route template as a label value: each `{name}` parameter as `:name`
/// (`/api/users/{id}` → `/api/users/:id`), since some Prometheus text parsers do not accept `}`
/// inside a label value.
pub fn route_label(route: &str) -> String {
    route.replace('{', ":").replace('}', "")
}

/// One answered HTTP request (`route` a template as the logs show it, `/api/users/{id}`).
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let (route, method) = (route_label(route), method.to_owned());
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

/// One DingTalk call to `api` (a static endpoint path) that ended with `result`.
pub fn dingtalk_call(api: &'static str, result: String, elapsed: Duration) {
    counter!(DINGTALK_CALLS, "api" => api, "result" => result).increment(1);
    histogram!(DINGTALK_DURATION, "api" => api).record(elapsed.as_secs_f64());
}

/// The `result` label of a DingTalk answer (docs/dingtalk-api.md §0.2, §0.3): legacy `errcode`
/// 0 → `ok`, 88 → `88/<sub_code>`, other errcodes as is; a 2xx v1.0 answer → `ok`; a v1.0 error
/// → its `code`; anything else → `http_<status>`. Codes that are not short
/// `[A-Za-z0-9._/-]` text are `other`, so the label set stays bounded.
pub fn dingtalk_result(status: u16, body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let code = match json.as_ref().and_then(|j| j.get("errcode")).and_then(text) {
        Some(errcode) if errcode == "0" => "ok".to_owned(),
        Some(errcode) if errcode == "88" => match json.as_ref().and_then(|j| j.get("sub_code")).and_then(text) {
            Some(sub) => format!("88/{sub}"),
            None => errcode,
        },
        Some(errcode) => errcode,
        None if (200..300).contains(&status) => "ok".to_owned(),
        None => match json.as_ref().and_then(|j| j.get("code")).and_then(text) {
            Some(code) => code,
            None => format!("http_{status}"),
        },
    };
    bounded(code)
}

/// `code` when it is 1–64 characters of `[A-Za-z0-9._/-]`, else `other`.
fn bounded(code: String) -> String {
    if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)) {
        code
    } else {
        "other".to_owned()
    }
}

/// One token fetch of `kind` (`app`, `corp`): `failure` is `None` on success, else the reason.
pub fn token_refresh(kind: &'static str, failure: Option<&'static str>) {
    match failure {
        None => counter!(TOKEN_REFRESHES, "kind" => kind).increment(1),
        Some(reason) => counter!(TOKEN_REFRESH_FAILURES, "kind" => kind, "reason" => reason).increment(1),
    }
}

/// One relay call (all its attempts) to `route` with `outcome`.
pub fn relay_call(route: &'static str, outcome: &'static str, elapsed: Duration) {
    let route = route_label(route);
    counter!(RELAY_CALLS, "route" => route.clone(), "outcome" => outcome).increment(1);
    histogram!(RELAY_DURATION, "route" => route).record(elapsed.as_secs_f64());
}

/// The outbox as read at a scrape: `depth` messages not yet relayed, the oldest `oldest_age_secs`
/// old, `attempts` made in all, `dead_letters` failed for good.
pub fn outbox(depth: u64, oldest_age_secs: f64, attempts: u64, dead_letters: u64) {
    #[allow(clippy::cast_precision_loss)]
    gauge!(OUTBOX_DEPTH).set(depth as f64);
    gauge!(OUTBOX_OLDEST_AGE).set(oldest_age_secs.max(0.0));
    counter!(OUTBOX_ATTEMPTS).absolute(attempts);
    counter!(OUTBOX_DEAD_LETTERS).absolute(dead_letters);
}

/// One contact event applied: its `cursor`, `lag` after the cloud received it.
pub fn feed_applied(cursor: i64, lag: Duration) {
    #[allow(clippy::cast_precision_loss)]
    gauge!(FEED_CURSOR).set(cursor as f64);
    gauge!(FEED_LAG).set(lag.as_secs_f64());
    counter!(FEED_APPLIED).increment(1);
}

/// One finished sign-in with `outcome` (`success` or an error code).
pub fn login(outcome: &str) {
    counter!(LOGINS, "outcome" => bounded(outcome.to_owned())).increment(1);
}

/// Calls now waiting in the call governor.
pub fn governor_waiting(waiting: i64) {
    #[allow(clippy::cast_precision_loss)]
    gauge!(GOVERNOR_WAITING).set(waiting.max(0) as f64);
}

/// One call admitted by the call governor after `wait`.
pub fn governor_wait(wait: Duration) {
    histogram!(GOVERNOR_WAIT).record(wait.as_secs_f64());
}

/// One throttle answer of `kind` (`app`, `api`, `ip_ban`).
pub fn governor_throttled(kind: &'static str) {
    counter!(GOVERNOR_THROTTLED, "kind" => kind).increment(1);
}

/// One call refused by the governor for `reason` (`busy`, `ip_banned`).
pub fn governor_refused(reason: &'static str) {
    counter!(GOVERNOR_REFUSED, "reason" => reason).increment(1);
}

/// A corp's metered calls this month after one more: `used` of `limit`.
pub fn quota(corp_id: &str, used: u64, limit: u64) {
    #[allow(clippy::cast_precision_loss)]
    {
        gauge!(QUOTA_USED, "corp_id" => bounded(corp_id.to_owned())).set(used as f64);
        gauge!(QUOTA_REMAINING, "corp_id" => bounded(corp_id.to_owned())).set(limit.saturating_sub(used) as f64);
    }
}

/// A corp's quota marked exhausted (`true`) or resumed.
pub fn quota_exhausted(corp_id: &str, exhausted: bool) {
    gauge!(QUOTA_EXHAUSTED, "corp_id" => bounded(corp_id.to_owned())).set(if exhausted { 1.0 } else { 0.0 });
}

/// Event types counted by name in [`EVENT_PUSHES`] (docs/dingtalk-api.md §E.6); others are `other`.
const EVENT_TYPES: [&str; 19] = [
    "check_url",
    "relieve",
    "check_create_suite_url",
    "check_update_suite_url",
    "suite_ticket",
    "tmp_auth_code",
    "org_suite_auth",
    "change_auth",
    "suite_relieve",
    "user_add_org",
    "user_modify_org",
    "user_leave_org",
    "user_active_org",
    "org_dept_create",
    "org_dept_modify",
    "org_dept_remove",
    "SYNC_HTTP_PUSH_HIGH",
    "SYNC_HTTP_PUSH_MEDIUM",
    "org_change",
];

/// One event push of `event_type` (`None`: not readable) with `outcome` (`ok` or a refusal code).
pub fn event_push(event_type: Option<&str>, outcome: &str) {
    let kind = match event_type {
        None => "unknown",
        Some(t) => EVENT_TYPES.iter().find(|known| **known == t).copied().unwrap_or("other"),
    };
    counter!(EVENT_PUSHES, "type" => kind, "outcome" => bounded(outcome.to_owned())).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_name_parameters_without_braces() {
        assert_eq!(route_label("/api/users/{id}/refresh"), "/api/users/:id/refresh");
        assert_eq!(route_label("unmatched"), "unmatched");
    }

    #[test]
    fn result_codes_come_from_either_family_and_stay_bounded() {
        assert_eq!(dingtalk_result(200, br#"{"errcode":0,"errmsg":"ok"}"#), "ok");
        assert_eq!(dingtalk_result(200, br#"{"errcode":60121,"errmsg":"x"}"#), "60121");
        assert_eq!(dingtalk_result(200, br#"{"errcode":88,"sub_code":"40014"}"#), "88/40014");
        assert_eq!(dingtalk_result(200, br#"{"accessToken":"t","expireIn":7200}"#), "ok");
        assert_eq!(
            dingtalk_result(403, br#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList","message":"m"}"#),
            "Forbidden.AccessDenied.IpNotInWhiteList"
        );
        assert_eq!(dingtalk_result(502, b"<html>"), "http_502");
        assert_eq!(dingtalk_result(400, br#"{"code":"has space"}"#), "other");
    }
}
