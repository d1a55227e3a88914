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

/// The token endpoint's budget per (client, address) pair (RFC 9700 §4.10: slows down guessing a
/// client secret, a code or a refresh token): `per_minute` requests, a burst of as many, then
/// spread evenly.
pub struct TokenLimiter {
    per_pair: RateLimiter<(String, IpAddr), DefaultKeyedStateStore<(String, IpAddr)>, DefaultClock>,
}

impl std::fmt::Debug for TokenLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLimiter").field("pairs", &self.per_pair.len()).finish()
    }
}

impl TokenLimiter {
    /// Longest client id tracked; a longer one is counted under its first 128 bytes' worth.
    const MAX_KEY_CHARS: usize = 128;

    /// A limiter allowing `per_minute` requests per pair (a zero is taken as 1).
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self { per_pair: RateLimiter::keyed(quota) }
    }

    /// `Ok` when `client_id` at `address` may make one more token request now (and counts it);
    /// otherwise `Err` with the seconds to wait (≥ 1).
    pub fn check(&self, client_id: &str, address: IpAddr) -> Result<(), u64> {
        if self.per_pair.len() > FORGET_IDLE_ABOVE {
            self.per_pair.retain_recent();
        }
        let client: String = client_id.chars().take(Self::MAX_KEY_CHARS).collect();
        let clock = DefaultClock::default();
        self.per_pair
            .check_key(&(client, address))
            .map_err(|not_until| not_until.wait_time_from(clock.now()).as_secs().max(1))
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

    #[test]
    fn token_budget_is_per_client_and_address() {
        let limiter = TokenLimiter::new(2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(limiter.check("grafana", a), Ok(()));
        assert_eq!(limiter.check("grafana", a), Ok(()));
        assert!(limiter.check("grafana", a).is_err());
        assert_eq!(limiter.check("gitlab", a), Ok(()), "another client from the same address");
        assert_eq!(limiter.check("grafana", b), Ok(()), "the same client from another address");
    }
}
