//! The call governor: every call to an identity provider's API passes one limiter keyed by
//! (app, API), which paces calls to a configured rate and queues bursts instead of letting the
//! provider refuse them.
//!
//! Why (docs/dingtalk-api.md §G.1, §G.3): DingTalk allows each app at most 20 calls a second to
//! each API (legacy `errcode 90018`, v1.0 HTTP 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`,
//! "window is 1 s"); a global per-API limit answers `90002` (`QpsLimitForApi`, back off
//! exponentially); more than 10,000 calls from one egress IP in 20 s bans that IP for 5 minutes.
//! DingTalk recommends limiting actively on the caller's side rather than retrying refusals.
//!
//! How: each (app, API) pair is a *lane* holding the earliest instant its next call may start.
//! A caller reserves the lane's next slot (`max(now, lane.next)`), moves `lane.next` one interval
//! (1 / rate) further and sleeps until its slot: callers go out in the order they arrived, exactly
//! one interval apart, with no burst allowance — so any 1-second window holds at most
//! `ceil(rate)` calls of a lane. A caller whose slot is further away than
//! [`GovernorConfig::max_wait`] is refused at once ([`Refusal::Busy`], with the wait it would have
//! had) and reserves nothing, so a caller with a deadline (a relay request, a sign-in) fails fast
//! and its retry comes back later.
//!
//! Feedback from the provider ([`Governor::report`]):
//! - [`Signal::AppThrottled`] (90018): the lane pauses 1 s (the provider's window);
//! - [`Signal::ApiThrottled`] (90002): the lane pauses 1, 2, 4 … s (at most 60 s), reset by the
//!   next answer that is not a throttle ([`Governor::settled`]);
//! - [`Signal::IpBanned`]: every lane of this process pauses for the ban's length; calls made
//!   meanwhile are refused at once with [`Refusal::IpBanned`] and never reach the provider.
//!
//! Scope: one process, unless a [`SlotBook`] is shared ([`Governor::with_shared`]): then every
//! slot is reserved in the shared book (PostgreSQL: one row per lane, `next = GREATEST(now,
//! next) + interval`, on the database's clock), so several cloud instances together keep the
//! pace of one. Each process still spaces its own departures one interval apart. Worst case across
//! instances: slots are exactly one interval apart, and a call leaves up to its timer's lateness
//! `L` after its slot, so any 1-second window holds at most `ceil((1 s + L) / interval)` calls —
//! at 18/s, 19 while `L` < 55 ms and 20 while `L` < 111 ms (DingTalk's limit is 20). When the
//! book cannot be reached the process falls back to its own lanes (logged), so a database outage
//! does not stop sending; the cluster may then exceed the pace by the number of instances.
//! Throttle pauses are written to the book too; an IP ban stays per process (each instance has
//! its own egress IP, or finds the shared one banned on its next call).
//! Memory: one small entry per (app, API) pair that was ever called (a bounded set: the
//! configured apps × the provider's APIs).
//!
//! Time is tokio's ([`tokio::time::Instant`]), so tests run on paused time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// DingTalk's documented per-app, per-API limit in calls per second (docs/dingtalk-api.md §G.1).
pub const DINGTALK_LIMIT_PER_SECOND: f64 = 20.0;
/// Default pace per (app, API) in calls per second: just under DingTalk's 20/s, leaving room
/// for the jitter between when a call leaves and when it arrives.
pub const DEFAULT_RATE_PER_SECOND: f64 = 18.0;
/// Default longest wait for a slot before a call is refused as [`Refusal::Busy`]: 5 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);
/// Default number of times a call the provider throttled is tried again (after the pause).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// How long a lane pauses after a per-app throttle (90018): the provider's 1-second window
/// (docs/dingtalk-api.md §G.1 "window is 1 s → sleep 1 s and retry").
pub const APP_THROTTLE_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause after repeated global per-API throttles (90002).
pub const MAX_API_THROTTLE_PAUSE: Duration = Duration::from_secs(60);
/// How long an egress-IP ban lasts when the answer does not say (docs/dingtalk-api.md §G.1: 5 minutes).
pub const DEFAULT_IP_BAN: Duration = Duration::from_secs(300);

/// Settings of a [`Governor`].
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorConfig {
    /// Calls per second per (app, API) when no override names the API; > 0.
    pub rate_per_second: f64,
    /// Per-API rates in calls per second, keyed by the API's path
    /// (e.g. `/topapi/message/corpconversation/asyncsend_v2`); each > 0.
    pub overrides: HashMap<String, f64>,
    /// The longest a call waits for its slot; a call that would wait longer is refused.
    pub max_wait: Duration,
    /// How often a throttled call is tried again before the throttle is reported to the caller.
    pub max_retries: u32,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            overrides: HashMap::new(),
            max_wait: DEFAULT_MAX_WAIT,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl GovernorConfig {
    /// Checks the values: every rate finite and in `(0, 10000]` calls/s. The error names the
    /// key (`rate_per_second`, or `overrides.<api>`).
    pub fn validate(&self) -> Result<(), String> {
        let check = |key: &str, rate: f64| {
            if rate.is_finite() && rate > 0.0 && rate <= 10_000.0 {
                Ok(())
            } else {
                Err(format!("{key} must be a number of calls per second in (0, 10000], not {rate}"))
            }
        };
        check("rate_per_second", self.rate_per_second)?;
        for (api, rate) in &self.overrides {
            check(&format!("overrides.{api:?}"), *rate)?;
        }
        Ok(())
    }

    /// The pace of `api`: its override, else the default rate.
    fn interval(&self, api: &str) -> Duration {
        let rate = self.overrides.get(api).copied().unwrap_or(self.rate_per_second);
        Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE))
    }
}

/// What a provider's answer says about its limits (the provider adapter decides; see
/// `dingtalk::errors::throttle_signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The app called this API too often (DingTalk 90018 / `QpsLimitForAppkeyAndApi`).
    AppThrottled,
    /// Every caller of this API together called too often (DingTalk 90002 / `QpsLimitForApi`).
    ApiThrottled,
    /// The egress IP is banned for this long.
    IpBanned(Duration),
}

/// What a shared [`SlotBook`] answered for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The call's slot starts after this wait (zero: at once).
    After(Duration),
    /// The lane's next slot is more than `max_wait` away (nothing was reserved); it is this far.
    Busy(Duration),
}

/// Slots shared by several processes (several cloud instances on one database), one lane per
/// (app, API). Implemented by the PostgreSQL store (`outbound::postgres`).
#[async_trait::async_trait]
pub trait SlotBook: Send + Sync {
    /// Reserves the next slot of (`app`, `api`) — `max(now, next)`, moving `next` one `interval`
    /// further — unless it is more than `max_wait` away.
    ///
    /// Errors: the book cannot be reached (the caller falls back to its own lanes).
    async fn reserve(
        &self,
        app: &str,
        api: &str,
        interval: Duration,
        max_wait: Duration,
    ) -> Result<Reservation, application::ports::StoreError>;

    /// Moves the lane's next slot to at least `pause` from now (a throttle reported by the
    /// provider pauses every instance).
    ///
    /// Errors: the book cannot be reached.
    async fn pause(&self, app: &str, api: &str, pause: Duration) -> Result<(), application::ports::StoreError>;
}

/// Why [`Governor::admit`] refused a call without making it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call's slot is further away than `max_wait`; try again after `retry_after`.
    #[error("the call governor's queue for this API is full: next slot in {} ms", retry_after.as_millis())]
    Busy {
        /// How long until the slot the call would have had.
        retry_after: Duration,
    },
    /// The egress IP is banned; nothing is sent until the ban ends.
    #[error("the egress IP is banned by the provider for another {} s", retry_after.as_secs())]
    IpBanned {
        /// How long the ban still lasts.
        retry_after: Duration,
    },
}

impl Refusal {
    /// How long until trying again makes sense.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Busy { retry_after } | Self::IpBanned { retry_after } => *retry_after,
        }
    }

    /// A stable label: `busy` or `ip_banned`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "busy",
            Self::IpBanned { .. } => "ip_banned",
        }
    }
}

/// How much sooner than one interval after the previous departure a call may leave: the timer's
/// own lateness (tokio wakes on millisecond ticks), so reserved slots keep their pace. At 18/s
/// (55.6 ms) departures stay ≥ 53.6 ms apart: at most 19 in any second.
const DEPARTURE_SLACK: Duration = Duration::from_millis(2);

/// One (app, API) pair's pacing state.
#[derive(Debug)]
struct Lane {
    /// The earliest instant the next call may start.
    next: Instant,
    /// When the last call actually left (after its wait): a call that wakes late — the process
    /// was busy — still leaves no sooner than one interval after it, so a stall never releases a
    /// bunch of overdue calls at once.
    last_departure: Option<Instant>,
    /// Consecutive global throttles (90002), for the exponential pause.
    strikes: u32,
}

/// Every lane, plus the process-wide ban.
#[derive(Debug, Default)]
struct Lanes {
    lanes: HashMap<(String, String), Lane>,
    banned_until: Option<Instant>,
}

/// The call governor (see the module docs). Share one per process (`Arc<Governor>`).
pub struct Governor {
    config: GovernorConfig,
    state: Mutex<Lanes>,
    waiting: AtomicI64,
    shared: Option<std::sync::Arc<dyn SlotBook>>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("config", &self.config)
            .field("waiting", &self.waiting())
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Governor {
    fn default() -> Self {
        Self::new(GovernorConfig::default())
    }
}

impl Governor {
    /// A governor with `config` (see [`GovernorConfig::validate`]; an invalid rate behaves as
    /// the smallest positive one).
    pub fn new(config: GovernorConfig) -> Self {
        Self { config, state: Mutex::new(Lanes::default()), waiting: AtomicI64::new(0), shared: None }
    }

    /// Reserves every slot in `book`, shared with the other instances (see the module docs).
    #[must_use]
    pub fn with_shared(mut self, book: std::sync::Arc<dyn SlotBook>) -> Self {
        self.shared = Some(book);
        self
    }

    /// The settings.
    pub fn config(&self) -> &GovernorConfig {
        &self.config
    }

    /// How many calls are waiting for their slot right now (all lanes).
    pub fn waiting(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the next slot of (`app`, `api`) and returns when the call may start.
    ///
    /// Errors (nothing is reserved, nothing waits): [`Refusal::IpBanned`] while a ban lasts, also
    /// when it began while this call waited for its slot; [`Refusal::Busy`] when the slot is more
    /// than `max_wait` away. A caller cancelled while
    /// waiting leaves its slot unused (the lane stays paced, never faster).
    pub async fn admit(&self, app: &str, api: &str) -> Result<(), Refusal> {
        self.admit_every(app, api, self.config.interval(api)).await
    }

    /// As [`Governor::admit`], with the lane paced one call per `interval` whatever the
    /// configured rates say: for limits keyed by more than (app, API), e.g. Feishu's 5 messages
    /// a second to one person (docs/feishu-api.md §D.1), where `api` names the person too.
    /// Errors as [`Governor::admit`].
    pub async fn admit_every(&self, app: &str, api: &str, interval: Duration) -> Result<(), Refusal> {
        let now = Instant::now();
        if let Some(book) = &self.shared {
            self.check_ban(now)?;
            match book.reserve(app, api, interval, self.config.max_wait).await {
                Ok(Reservation::After(wait)) => return self.depart(app, api, interval, Instant::now() + wait).await,
                Ok(Reservation::Busy(retry_after)) => {
                    crate::metrics::governor_refused("busy");
                    return Err(Refusal::Busy { retry_after });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the shared call governor cannot be reached; pacing this process alone");
                }
            }
        }
        let now = Instant::now();
        self.check_ban(now)?;
        let slot = {
            let mut state = self.lock();
            let lane = state.lanes.entry((app.to_owned(), api.to_owned())).or_insert_with(|| Lane {
                next: now,
                last_departure: None,
                strikes: 0,
            });
            let slot = lane.next.max(now);
            if slot - now > self.config.max_wait {
                crate::metrics::governor_refused("busy");
                return Err(Refusal::Busy { retry_after: slot - now });
            }
            lane.next = slot + interval;
            slot
        };
        self.depart(app, api, interval, slot).await
    }

    /// Refuses at once while an IP ban lasts (and forgets a ban that ended).
    fn check_ban(&self, now: Instant) -> Result<(), Refusal> {
        let mut state = self.lock();
        if let Some(until) = state.banned_until {
            if until > now {
                crate::metrics::governor_refused("ip_banned");
                return Err(Refusal::IpBanned { retry_after: until - now });
            }
            state.banned_until = None;
        }
        Ok(())
    }

    /// Waits for `slot`, then leaves no sooner than one interval after this process's last
    /// departure of the lane (re-checking the ban).
    async fn depart(&self, app: &str, api: &str, interval: Duration, slot: Instant) -> Result<(), Refusal> {
        let now = Instant::now();
        let wait = slot.saturating_duration_since(now);
        crate::metrics::governor_wait(wait);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        crate::metrics::governor_waiting(self.waiting());
        let _done = Waiting(self);
        if !wait.is_zero() {
            tokio::time::sleep_until(slot).await;
        }
        // Leave at least one interval after the lane's last departure, whenever this task woke.
        loop {
            let earliest = {
                let mut state = self.lock();
                let now = Instant::now();
                // A ban that began while this call waited for its slot holds it too: calls
                // already queued must not reach the provider during the ban either.
                if let Some(until) = state.banned_until.filter(|until| *until > now) {
                    crate::metrics::governor_refused("ip_banned");
                    return Err(Refusal::IpBanned { retry_after: until - now });
                }
                let lane = state.lanes.entry((app.to_owned(), api.to_owned())).or_insert_with(|| Lane {
                    next: now,
                    last_departure: None,
                    strikes: 0,
                });
                // Timers wake up to a millisecond late; within that slack the reserved slot stands,
                // so the pace does not drift. Beyond it, spacing is enforced.
                let spacing = interval.saturating_sub(DEPARTURE_SLACK);
                match lane.last_departure.map(|t| t + spacing).filter(|earliest| *earliest > now) {
                    Some(earliest) => {
                        lane.next = lane.next.max(earliest + spacing);
                        earliest
                    }
                    None => {
                        lane.last_departure = Some(now);
                        lane.next = lane.next.max(now + interval);
                        return Ok(());
                    }
                }
            };
            tokio::time::sleep_until(earliest).await;
        }
    }

    /// Takes the provider's word that (`app`, `api`) was throttled or the IP banned, and paces
    /// accordingly (see the module docs).
    pub fn report(&self, app: &str, api: &str, signal: Signal) {
        let now = Instant::now();
        let mut state = self.lock();
        match signal {
            Signal::IpBanned(length) => {
                let until = now + length;
                state.banned_until = Some(state.banned_until.map_or(until, |u| u.max(until)));
                tracing::warn!(ban_secs = length.as_secs(), "the provider banned this egress IP; every call pauses");
            }
            Signal::AppThrottled | Signal::ApiThrottled => {
                let lane = state.lanes.entry((app.to_owned(), api.to_owned())).or_insert_with(|| Lane {
                    next: now,
                    last_departure: None,
                    strikes: 0,
                });
                let pause = if signal == Signal::AppThrottled {
                    APP_THROTTLE_PAUSE
                } else {
                    lane.strikes = lane.strikes.saturating_add(1);
                    let exponent = lane.strikes.saturating_sub(1).min(6);
                    (APP_THROTTLE_PAUSE * 2u32.pow(exponent)).min(MAX_API_THROTTLE_PAUSE)
                };
                lane.next = lane.next.max(now + pause);
                if let Some(book) = self.shared.clone() {
                    let (app_owned, api_owned) = (app.to_owned(), api.to_owned());
                    tokio::spawn(async move {
                        if let Err(err) = book.pause(&app_owned, &api_owned, pause).await {
                            tracing::warn!(error = %err, "the shared call governor cannot record a pause");
                        }
                    });
                }
                let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(app, api, ?signal, pause_ms, "the provider throttled a call; the lane pauses");
            }
        }
        crate::metrics::governor_throttled(match signal {
            Signal::AppThrottled => "app",
            Signal::ApiThrottled => "api",
            Signal::IpBanned(_) => "ip_ban",
        });
    }

    /// Takes an answer that was not a throttle: the global-throttle backoff of the lane starts
    /// over.
    pub fn settled(&self, app: &str, api: &str) {
        let mut state = self.lock();
        if let Some(lane) = state.lanes.get_mut(&(app.to_owned(), api.to_owned())) {
            lane.strikes = 0;
        }
    }
}

/// Counts a waiting caller down when its wait ends or is cancelled.
struct Waiting<'a>(&'a Governor);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::governor_waiting(self.0.waiting());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const API: &str = "/topapi/message/corpconversation/asyncsend_v2";

    fn governor(rate: f64, max_wait: Duration) -> Arc<Governor> {
        Arc::new(Governor::new(GovernorConfig { rate_per_second: rate, max_wait, ..GovernorConfig::default() }))
    }

    /// Starts `n` callers of one lane at once; returns when each was admitted, relative to the start.
    async fn burst(governor: &Arc<Governor>, app: &str, api: &str, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (governor, app, api) = (governor.clone(), app.to_owned(), api.to_owned());
                tokio::spawn(async move { governor.admit(&app, &api).await.map(|()| start.elapsed()) })
            })
            .collect();
        let mut admitted = Vec::new();
        for task in tasks {
            admitted.push(task.await.expect("task").expect("admitted"));
        }
        admitted.sort();
        admitted
    }

    /// The most calls in any window `[t, t + 1 s)`.
    fn busiest_second(times: &[Duration]) -> usize {
        times
            .iter()
            .map(|t| times.iter().filter(|u| *u >= t && **u < *t + Duration::from_secs(1)).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_queued_and_paced_never_refused() {
        let governor = governor(18.0, Duration::from_secs(60));
        let admitted = burst(&governor, "app", API, 90).await;
        assert_eq!(admitted.len(), 90);
        assert_eq!(admitted[0], Duration::ZERO, "the first call goes at once");
        assert!(busiest_second(&admitted) <= 18, "{} calls in one second", busiest_second(&admitted));
        let last = admitted[89];
        let expected = Duration::from_secs_f64(89.0 / 18.0);
        assert!(last >= expected && last < expected + Duration::from_millis(5), "last admitted at {last:?}");
        assert_eq!(governor.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_that_wake_late_still_leave_one_interval_apart() {
        // Five calls reserve their slots (0, 100, 200, 300, 400 ms at 10/s), then the process is
        // busy for 600 ms: every slot is overdue when the tasks run again. They leave an interval
        // (less the timer's 2 ms slack) apart from then on, not at once (DingTalk counts arrivals).
        let governor = Arc::new(governor(10.0, Duration::from_secs(60)));
        let started = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let governor = governor.clone();
                tokio::spawn(async move {
                    governor.admit("app", API).await.expect("admitted");
                    Instant::now() - started
                })
            })
            .collect();
        tokio::task::yield_now().await; // every task reserves its slot
        tokio::time::advance(Duration::from_millis(600)).await;
        let mut left = Vec::new();
        for task in tasks {
            left.push(task.await.expect("task"));
        }
        left.sort();
        for pair in left.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100) - DEPARTURE_SLACK, "departures {left:?}");
        }
        assert!(busiest_second(&left) <= 10, "{left:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn lanes_are_independent_per_app_and_per_api() {
        let governor = governor(10.0, Duration::from_secs(60));
        let (a, b, c) = tokio::join!(
            burst(&governor, "app-a", API, 10),
            burst(&governor, "app-b", API, 10),
            burst(&governor, "app-a", "/topapi/v2/user/get", 10),
        );
        for lane in [a, b, c] {
            assert!(lane[9] < Duration::from_secs(1), "each lane paces on its own: {lane:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_override_sets_one_apis_pace() {
        let mut config = GovernorConfig { max_wait: Duration::from_secs(60), ..GovernorConfig::default() };
        config.overrides.insert(API.to_owned(), 2.0);
        let governor = Arc::new(Governor::new(config));
        let slow = burst(&governor, "app", API, 4).await;
        assert_eq!(slow[3], Duration::from_millis(1500));
        let fast = burst(&governor, "app", "/topapi/v2/user/get", 4).await;
        assert!(fast[3] < Duration::from_millis(200), "{fast:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_past_max_wait_is_refused_at_once_and_reserves_nothing() {
        let governor = governor(10.0, Duration::from_millis(250));
        // Slots at 0, 100, 200 ms fit; the fourth (300 ms) is past the 250 ms limit.
        for _ in 0..3 {
            let started = Instant::now();
            tokio::spawn({
                let governor = governor.clone();
                async move { governor.admit("app", API).await }
            });
            tokio::task::yield_now().await;
            assert_eq!(started.elapsed(), Duration::ZERO);
        }
        let refused = governor.admit("app", API).await;
        assert_eq!(refused, Err(Refusal::Busy { retry_after: Duration::from_millis(300) }));
        tokio::time::advance(Duration::from_millis(300)).await;
        // Nothing was reserved by the refusal: the next slot is now.
        let started = Instant::now();
        governor.admit("app", API).await.expect("admitted");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_app_throttle_pauses_the_lane_one_second() {
        let governor = governor(18.0, Duration::from_secs(60));
        governor.admit("app", API).await.expect("admitted");
        governor.report("app", API, Signal::AppThrottled);
        let started = Instant::now();
        governor.admit("app", API).await.expect("admitted");
        assert_eq!(started.elapsed(), APP_THROTTLE_PAUSE);
        // Another lane is not paused.
        let started = Instant::now();
        governor.admit("other-app", API).await.expect("admitted");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn global_throttles_back_off_exponentially_until_an_answer_settles() {
        let governor = governor(1000.0, Duration::from_secs(120));
        let mut pauses = Vec::new();
        for _ in 0..4 {
            governor.report("app", API, Signal::ApiThrottled);
            let started = Instant::now();
            governor.admit("app", API).await.expect("admitted");
            pauses.push(started.elapsed().as_secs());
        }
        assert_eq!(pauses, [1, 2, 4, 8]);
        governor.settled("app", API);
        governor.report("app", API, Signal::ApiThrottled);
        let started = Instant::now();
        governor.admit("app", API).await.expect("admitted");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ip_ban_refuses_every_call_until_it_ends() {
        let governor = governor(18.0, Duration::from_secs(5));
        governor.report("app", API, Signal::IpBanned(Duration::from_secs(300)));
        for (app, api) in [("app", API), ("other", "/v1.0/oauth2/accessToken")] {
            assert_eq!(
                governor.admit(app, api).await,
                Err(Refusal::IpBanned { retry_after: Duration::from_secs(300) })
            );
        }
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(matches!(governor.admit("app", API).await, Err(Refusal::IpBanned { .. })));
        tokio::time::advance(Duration::from_secs(1)).await;
        governor.admit("app", API).await.expect("the ban is over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ban_that_begins_while_calls_wait_for_their_slots_holds_them_too() {
        // At 2 calls/s, three calls queue: now, +0.5 s, +1 s. The first is answered with a ban.
        let governor = governor(2.0, Duration::from_secs(5));
        governor.admit("app", API).await.expect("the first call leaves at once");
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let governor = governor.clone();
                tokio::spawn(async move { governor.admit("app", API).await })
            })
            .collect();
        tokio::task::yield_now().await;
        governor.report("app", API, Signal::IpBanned(Duration::from_secs(60)));
        for call in queued {
            let refused = call.await.expect("joined");
            assert!(matches!(refused, Err(Refusal::IpBanned { .. })), "a queued call left during the ban: {refused:?}");
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        governor.admit("app", API).await.expect("the ban is over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_is_counted_out() {
        let governor = governor(1.0, Duration::from_secs(60));
        governor.admit("app", API).await.expect("admitted");
        let waiter = tokio::spawn({
            let governor = governor.clone();
            async move { governor.admit("app", API).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(governor.waiting(), 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(governor.waiting(), 0);
    }

    #[test]
    fn validate_names_the_key() {
        assert!(GovernorConfig::default().validate().is_ok());
        let zero = GovernorConfig { rate_per_second: 0.0, ..GovernorConfig::default() };
        assert!(zero.validate().expect_err("zero").starts_with("rate_per_second"));
        let mut bad = GovernorConfig::default();
        bad.overrides.insert(API.to_owned(), f64::NAN);
        assert!(bad.validate().expect_err("NaN").starts_with("overrides."));
    }
}
