//! The per-API rate limit of docs/feishu-api.md §0.4 / §G.9: over it a call is answered HTTP 429
//! `{"code":99991400,"msg":"request trigger frequency limit"}` with `x-ogw-ratelimit-limit` and
//! `x-ogw-ratelimit-reset` headers, and does nothing. Off by default ([`FeishuEmulator::set_api_qps`]).
//! The window slides: at most `qps` calls to one API within any 1000 ms of the emulator clock
//! (fixed vs sliding windows is not documented); one app and one tenant, so the key is the API.

use std::collections::{HashMap, VecDeque};

use super::state::FeishuEmulator;
use super::wire::Reply;

/// Calls counted per API in the current one-second window.
#[derive(Debug, Default)]
pub(crate) struct ApiLimits {
    /// Calls allowed per second per API; `None`: unlimited.
    pub(crate) qps: Option<u32>,
    /// API → admission times (epoch ms) within the last second, oldest first.
    windows: HashMap<&'static str, VecDeque<i64>>,
    /// Calls refused so far.
    pub(crate) refused: u64,
}

/// Admits one call to `api` now, or answers the §0.4 throttle reply.
pub(crate) fn admit(emu: &FeishuEmulator, api: &'static str) -> Result<(), Reply> {
    let mut st = emu.lock();
    let now = st.now_ms();
    let limits = &mut st.limits;
    let Some(qps) = limits.qps else {
        return Ok(());
    };
    let window = limits.windows.entry(api).or_default();
    while window.front().is_some_and(|at| now - at >= 1000) {
        window.pop_front();
    }
    if window.len() < usize::try_from(qps).unwrap_or(usize::MAX) {
        window.push_back(now);
        return Ok(());
    }
    limits.refused += 1;
    // §0.4: `x-ogw-ratelimit-reset` = seconds until the window resets (at least 1 here).
    Err(Reply::fail(429, 99991400, "request trigger frequency limit")
        .with_header("x-ogw-ratelimit-limit", qps.to_string())
        .with_header("x-ogw-ratelimit-reset", "1"))
}
