//! Rate limits on unauthenticated routes that write: starting a sign-in stores a login attempt
//! (and registers an intent on the cloud), so anyone could otherwise fill the database with
//! `GET /auth/dingtalk/login`. GCRA limiters from the `governor` crate.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Tracked addresses before idle ones are forgotten (their state is full again anyway).
const FORGET_IDLE_ABOVE: usize = 10_000;

/// How many sign-ins may start: per client address and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Sign-ins one address may start per minute (a burst of as many, then spread evenly).
    pub per_address_per_minute: u32,
    /// Sign-ins all addresses together may start per second. With login attempts living
    /// 10 minutes (`domain::login::LOGIN_TTL_SECS`) and purged every minute, at most
    /// `600 × total_per_second` attempts are ever pending.
    pub total_per_second: u32,
}

impl Default for LoginLimit {
    /// 30 per address per minute, 50 per second in total (≤ 30,000 pending attempts).
    fn default() -> Self {
        Self { per_address_per_minute: 30, total_per_second: 50 }
    }
}

/// Decides whether one more sign-in may start now.
pub struct LoginLimiter {
    per_address: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    total: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter").field("addresses", &self.per_address.len()).finish()
    }
}

impl LoginLimiter {
    /// A limiter for `limit` (a zero is taken as 1).
    pub fn new(limit: LoginLimit) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            per_address: RateLimiter::keyed(Quota::per_minute(nonzero(limit.per_address_per_minute))),
            total: RateLimiter::direct(Quota::per_second(nonzero(limit.total_per_second))),
        }
    }

    /// `Ok` when `address` may start a sign-in now (and counts it); otherwise `Err` with how long
    /// to wait, in whole seconds (≥ 1), for a `Retry-After` header.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.per_address.len() > FORGET_IDLE_ABOVE {
            self.per_address.retain_recent();
        }
        let clock = DefaultClock::default();
        let wait = |not_until: governor::NotUntil<_>| {
            let wait: Duration = not_until.wait_time_from(clock.now());
            wait.as_secs().max(1)
        };
        self.per_address.check_key(&address).map_err(wait)?;
        self.total.check().map_err(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_budget_and_the_total_caps_them_all() {
        let limiter = LoginLimiter::new(LoginLimit { per_address_per_minute: 2, total_per_second: 3 });
        let (a, b, c) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 3]));
        assert_eq!(limiter.check(a), Ok(()));
        assert_eq!(limiter.check(a), Ok(()));
        let wait = limiter.check(a).err();
        assert!(wait.is_some_and(|s| (1..=60).contains(&s)), "{wait:?}");
        assert_eq!(limiter.check(b), Ok(()), "another address is not held back by a");
        assert!(limiter.check(c).is_err(), "the fourth sign-in this second exceeds the total");
    }
}
