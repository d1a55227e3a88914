//! DingTalk's per-app, per-API rate limit (docs/dingtalk-api.md §G.1): "Per app per API (standard
//! edition org): ≤20 calls/s → legacy `errcode 90018`, v1.0 HTTP 403
//! `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`; window is 1 s". §G.3 adds that calls refused
//! by QPS throttling are not counted against the quota, so a refused call is not recorded as work
//! done (nothing is sent, no token issued).
//!
//! The emulator counts calls in fixed 1-second windows of its own monotonic clock, per (app, API
//! path). The app is who the call authenticates as: the owner of the access token (query
//! `access_token` on oapi, header `x-acs-dingtalk-access-token` on api), else the credential in the
//! body or query of a token request (`appKey`, `clientId`, `suiteKey`, `appkey`, `accessKey`).
//! Browser pages on the login host are not limited. The limit is on by default (20, as documented)
//! and can be changed or switched off with `POST /_admin/limits` or the binary's `--qps-limit`.
//!
//! The monthly quota (docs/dingtalk-api.md §G.3): a standard-edition org gets 5,000 metered calls
//! a month — every work-notification call (`asyncsend_v2`, `sendbytemplate`, `getsendprogress`,
//! `getsendresult`, `recall`); tokens and contacts are exempt. Past it a metered call answers
//! `90020` (v1.0 `Forbidden.AccessDenied.ApiCountLimitForOrg`) and does nothing. The emulator counts
//! metered calls per corp per month of *its* clock in China Standard Time, so `POST /_admin/clock`
//! turns the month. The quota is off by default (`null`: unlimited, so long test runs are not
//! cut off) and set with `POST /_admin/limits {"monthly_quota": N}`.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use super::state::Emulator;
use super::wire::{Family, Incoming};

/// docs/dingtalk-api.md §G.1: calls per second per app per API.
pub const DEFAULT_QPS_LIMIT: u32 = 20;

/// The limit's state: the setting, the current window of each (app, API), and what was refused.
#[derive(Debug)]
pub(crate) struct QpsLimits {
    /// Calls allowed per window per (app, API); `None`: unlimited.
    pub(crate) limit: Option<u32>,
    started: Instant,
    /// (app, path) → (window index in seconds since `started`, calls counted in it).
    windows: HashMap<(String, String), (u64, u32)>,
    /// Calls answered with a throttle error so far.
    pub(crate) throttled: u64,
    /// The most calls any (app, API) made in one window so far (throttled calls excluded).
    pub(crate) busiest_window: u32,
    /// Metered calls allowed per corp per month; `None`: unlimited.
    pub(crate) monthly_quota: Option<u64>,
    /// (corp_id, `YYYY-MM` of the emulator's clock, China time) → metered calls answered.
    metered: HashMap<(String, String), u64>,
    /// Metered calls refused with 90020 so far.
    pub(crate) over_quota: u64,
    /// The egress-IP ban (docs/dingtalk-api.md §G.1; [`super::ip_ban`]).
    pub(crate) ip_bans: super::ip_ban::IpBans,
}

/// `GET /_admin/limits`.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsReport {
    /// Calls allowed per second per app per API; `null`: unlimited.
    pub qps: Option<u32>,
    /// Calls refused with 90018 / `QpsLimitForAppkeyAndApi` so far.
    pub throttled: u64,
    /// The most calls one app made to one API within one 1-second window (refused calls excluded).
    pub busiest_window: u32,
    /// Metered calls allowed per corp per month; `null`: unlimited.
    pub monthly_quota: Option<u64>,
    /// Metered calls answered per corp in the emulator's current month.
    pub metered_this_month: std::collections::BTreeMap<String, u64>,
    /// Metered calls refused with 90020 so far.
    pub over_quota: u64,
    /// The egress-IP ban rule; `null`: off.
    pub ip_ban: Option<super::ip_ban::IpBanRule>,
    /// Bans started so far.
    pub ip_bans: u64,
    /// Calls refused with the ban answer (`{"status":1111,…}`) so far.
    pub ip_ban_refused: u64,
}

impl QpsLimits {
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            started: Instant::now(),
            windows: HashMap::new(),
            throttled: 0,
            busiest_window: 0,
            monthly_quota: None,
            metered: HashMap::new(),
            over_quota: 0,
            ip_bans: super::ip_ban::IpBans::default(),
        }
    }

    /// Counts one call of `app` to `path`; `false` when it is over the limit (then it is not counted).
    fn admit(&mut self, app: String, path: String) -> bool {
        let window = self.started.elapsed().as_secs();
        let entry = self.windows.entry((app, path)).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if self.limit.is_some_and(|limit| entry.1 >= limit) {
            self.throttled += 1;
            return false;
        }
        entry.1 += 1;
        self.busiest_window = self.busiest_window.max(entry.1);
        true
    }

    /// Counts one metered call of `corp_id` in `month`; `false` when the month's quota is gone
    /// (then it is not counted).
    fn admit_metered(&mut self, corp_id: String, month: String) -> bool {
        let used = self.metered.entry((corp_id, month)).or_insert(0);
        if self.monthly_quota.is_some_and(|quota| *used >= quota) {
            self.over_quota += 1;
            return false;
        }
        *used += 1;
        true
    }

    pub(crate) fn report(&self, month: &str) -> LimitsReport {
        LimitsReport {
            qps: self.limit,
            throttled: self.throttled,
            busiest_window: self.busiest_window,
            monthly_quota: self.monthly_quota,
            metered_this_month: self
                .metered
                .iter()
                .filter(|((_, m), _)| m == month)
                .map(|((corp, _), used)| (corp.clone(), *used))
                .collect(),
            over_quota: self.over_quota,
            ip_ban: self.ip_bans.rule(),
            ip_bans: self.ip_bans.bans,
            ip_ban_refused: self.ip_bans.refused,
        }
    }
}

/// Who `req` authenticates as, for the limit; `None` for calls that are not limited.
fn caller(emu: &Emulator, req: &Incoming) -> Option<String> {
    if matches!(Family::of(&req.path), Family::Login) {
        return None;
    }
    let token = req
        .query("access_token")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| req.header("x-acs-dingtalk-access-token").filter(|t| !t.is_empty()).map(str::to_owned));
    if let Some(token) = token {
        if let Some(app) = emu.app_token(&token) {
            return Some(app.app_key);
        }
        if let Some((corp, _)) = emu.corp_token(&token) {
            return Some(corp.suite_key);
        }
        if let Some(user) = emu.user_token(&token) {
            return Some(user.app_key);
        }
        // An unknown token is refused by the endpoint itself; count it under the token.
        return Some(format!("token:{token}"));
    }
    for key in ["appkey", "accessKey"] {
        if let Some(value) = req.query(key).filter(|v| !v.is_empty()) {
            return Some(value.to_owned());
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    ["appKey", "clientId", "suiteKey"]
        .iter()
        .find_map(|key| body.get(*key).and_then(serde_json::Value::as_str).filter(|v| !v.is_empty()))
        .map(str::to_owned)
}

/// Whether `req` is within the limit (and counts it); `false` means answer with a throttle error.
pub(crate) fn admit(emu: &Emulator, req: &Incoming) -> bool {
    let Some(app) = caller(emu, req) else {
        return true;
    };
    emu.limits().admit(app, req.path.clone())
}

/// Whether `req`, from `ip`, may pass the egress-IP ban (and counts it); `Err(minutes)` means
/// answer with the ban (docs/dingtalk-api.md §G.1). Browser pages on the login host pass.
pub(crate) fn admit_ip(emu: &Emulator, req: &Incoming, ip: Option<std::net::IpAddr>) -> Result<(), u64> {
    match ip {
        Some(ip) if !matches!(Family::of(&req.path), Family::Login) => emu.limits().ip_bans.admit(ip, Instant::now()),
        _ => Ok(()),
    }
}

/// docs/dingtalk-api.md §G.3 "Metered": the work-notification calls.
const METERED_PATHS: [&str; 5] = [
    "/topapi/message/corpconversation/asyncsend_v2",
    "/topapi/message/corpconversation/sendbytemplate",
    "/topapi/message/corpconversation/getsendprogress",
    "/topapi/message/corpconversation/getsendresult",
    "/topapi/message/corpconversation/recall",
];

/// `YYYY-MM` of `ms` (epoch ms) in China Standard Time (UTC+8), DingTalk's billing month.
pub(crate) fn china_month(ms: i64) -> String {
    let china = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(china);
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// Whether a metered call is within its corp's monthly quota (and counts it); `false` means
/// answer 90020. Calls that are not metered, or whose token names no corp, always pass.
pub(crate) fn admit_metered(emu: &Emulator, req: &Incoming) -> bool {
    if !METERED_PATHS.contains(&req.path.as_str()) {
        return true;
    }
    let Some(token) = req.query("access_token").filter(|t| !t.is_empty()) else {
        return true;
    };
    let corp_id = if emu.app_token(token).is_some() {
        emu.org().corp().corp_id.clone()
    } else if let Some((corp, _)) = emu.corp_token(token) {
        corp.corp_id
    } else {
        return true;
    };
    let month = china_month(emu.now_ms());
    emu.limits().admit_metered(corp_id, month)
}
