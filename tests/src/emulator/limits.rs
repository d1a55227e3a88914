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
}

impl QpsLimits {
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self { limit, started: Instant::now(), windows: HashMap::new(), throttled: 0, busiest_window: 0 }
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

    pub(crate) fn report(&self) -> LimitsReport {
        LimitsReport { qps: self.limit, throttled: self.throttled, busiest_window: self.busiest_window }
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
