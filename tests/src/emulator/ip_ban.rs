//! DingTalk's egress-IP ban (docs/dingtalk-api.md §G.1): "Per egress IP: >10000 calls / 20 s ⇒
//! all calls from that IP blocked 5 min; no standard error — an HTML page or
//! `{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"xxx"}`".
//!
//! The emulator counts the API calls of each client IP over a sliding window of its monotonic
//! clock (the login host's browser pages are not counted: in production they come from the
//! users' browsers, not the server's egress IP). The call that goes past the limit starts the ban
//! and is refused like every call from that IP until the ban ends: HTTP 200 with the JSON answer
//! above (`wait` in minutes, as in the documented sample) and nothing done. A refused call is not
//! counted toward the next window.
//!
//! Off by default (`null`), like the monthly quota, so long test runs are not cut off; set with
//! `POST /_admin/limits {"ip_ban": {"calls": 10000, "window_secs": 20, "ban_minutes": 5}}`
//! (the documented rule) or smaller numbers for a test.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::wire::Reply;

/// The rule: more than `calls` calls within `window_secs` bans the IP for `ban_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBanRule {
    /// Calls allowed per window (documented: 10,000).
    pub calls: u32,
    /// The window, seconds (documented: 20).
    pub window_secs: u64,
    /// How long a ban lasts, minutes (documented: 5); at least 1.
    pub ban_minutes: u64,
}

impl IpBanRule {
    /// docs/dingtalk-api.md §G.1.
    pub const DOCUMENTED: IpBanRule = IpBanRule { calls: 10_000, window_secs: 20, ban_minutes: 5 };

    /// Why the rule cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.calls == 0 {
            Some("ip_ban.calls must be at least 1")
        } else if !(1..=3600).contains(&self.window_secs) {
            Some("ip_ban.window_secs must be between 1 and 3600")
        } else if !(1..=60).contains(&self.ban_minutes) {
            Some("ip_ban.ban_minutes must be between 1 and 60")
        } else {
            None
        }
    }
}

/// The ban's state: the rule, each IP's recent calls, the bans in force, and counts.
#[derive(Debug, Default)]
pub(crate) struct IpBans {
    rule: Option<IpBanRule>,
    recent: HashMap<IpAddr, VecDeque<Instant>>,
    banned_until: HashMap<IpAddr, Instant>,
    /// Bans started so far.
    pub(crate) bans: u64,
    /// Calls refused with the ban answer so far.
    pub(crate) refused: u64,
}

impl IpBans {
    pub(crate) fn rule(&self) -> Option<IpBanRule> {
        self.rule
    }

    /// Sets (or with `None` lifts) the rule; bans in force and counted calls are forgotten.
    pub(crate) fn set_rule(&mut self, rule: Option<IpBanRule>) {
        self.rule = rule;
        self.recent.clear();
        self.banned_until.clear();
    }

    /// Counts a call from `ip` at `now`. `Err(minutes)` when the IP is banned (this call started
    /// the ban or came during it): the minutes left, rounded up, for the answer's `wait`.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Some(rule) = self.rule else { return Ok(()) };
        if let Some(until) = self.banned_until.get(&ip).copied() {
            if now < until {
                self.refused += 1;
                return Err(minutes_left(until - now));
            }
            self.banned_until.remove(&ip);
        }
        let window = Duration::from_secs(rule.window_secs);
        let calls = self.recent.entry(ip).or_default();
        while calls.front().is_some_and(|at| now.duration_since(*at) >= window) {
            calls.pop_front();
        }
        if calls.len() >= usize::try_from(rule.calls).unwrap_or(usize::MAX) {
            // This call would be call `calls + 1` within the window: the ban starts.
            calls.clear();
            let ban = Duration::from_secs(rule.ban_minutes * 60);
            self.banned_until.insert(ip, now + ban);
            self.bans += 1;
            self.refused += 1;
            tracing::info!(%ip, minutes = rule.ban_minutes, "emulator: egress IP banned (docs/dingtalk-api.md §G.1)");
            return Err(rule.ban_minutes);
        }
        calls.push_back(now);
        Ok(())
    }
}

fn minutes_left(left: Duration) -> u64 {
    left.as_secs().div_ceil(60).max(1)
}

/// The ban answer of §G.1 (HTTP 200, JSON), with `wait` minutes.
pub(crate) fn reply(wait_minutes: u64) -> Reply {
    Reply::legacy(json!({
        "status": 1111,
        "wait": wait_minutes,
        "source": "x5",
        "punish": "deny",
        "uuid": super::state::random_hex(32),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn past_the_limit_within_the_window_the_ip_is_banned_for_the_ban_then_counted_afresh() {
        let mut bans = IpBans::default();
        let t0 = Instant::now();
        assert_eq!(bans.admit(IP, t0), Ok(()), "off by default");
        bans.set_rule(Some(IpBanRule { calls: 3, window_secs: 20, ban_minutes: 2 }));
        for i in 0..3 {
            assert_eq!(bans.admit(IP, t0 + Duration::from_secs(i)), Ok(()));
        }
        // The 4th call within 20 s starts a 2-minute ban; calls during it are refused.
        assert_eq!(bans.admit(IP, t0 + Duration::from_secs(5)), Err(2));
        assert_eq!(bans.admit(IP, t0 + Duration::from_secs(66)), Err(1));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(bans.admit(other, t0 + Duration::from_secs(66)), Ok(()), "per IP");
        assert_eq!((bans.bans, bans.refused), (1, 2));
        // After the ban, a fresh window.
        assert_eq!(bans.admit(IP, t0 + Duration::from_secs(125)), Ok(()));
        // Calls spread wider than the window never ban.
        let mut spread = IpBans::default();
        spread.set_rule(Some(IpBanRule { calls: 2, window_secs: 1, ban_minutes: 1 }));
        for i in 0..10 {
            assert_eq!(spread.admit(IP, t0 + Duration::from_millis(600 * i)), Ok(()));
        }
    }

    #[test]
    fn the_answer_is_the_documented_shape() {
        let reply = reply(5);
        assert_eq!(reply.status, 200);
        let super::super::wire::ReplyBody::Json(body) = reply.body else { panic!("not JSON") };
        assert_eq!((body["status"].as_i64(), body["wait"].as_i64()), (Some(1111), Some(5)));
        assert_eq!((body["source"].as_str(), body["punish"].as_str()), (Some("x5"), Some("deny")));
    }
}
