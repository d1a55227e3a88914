//! The app access-token cache (docs/dingtalk-api.md §B.1, §B.6, §G.2).
//!
//! One `tokio::sync::Mutex` guards the cached token and is held across a
//! fetch, so at most one fetch is in flight: concurrent callers queue on the
//! lock and, once the fetch finished, find the fresh token and reuse it. Each
//! fetched token gets a generation number so that a caller reporting a
//! refused token only drops it if it is still the cached one (DingTalk returns
//! the *same* string when re-fetched within its validity, docs/dingtalk-api.md §B.1, so the
//! string itself cannot tell two fetches apart).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::ports::UpstreamError;
use secrecy::SecretString;
use tokio::sync::Mutex;

/// Lifetime assumed when DingTalk answers `expireIn <= 0`: 7200 s (docs/dingtalk-api.md §B.6).
pub(super) const DEFAULT_LIFETIME_SECS: i64 = 7200;

/// A token as the token endpoint returned it.
pub(super) struct FreshToken {
    /// `accessToken`.
    pub value: SecretString,
    /// `expireIn`, seconds.
    pub expire_in: i64,
}

/// A cached app token handed to callers.
#[derive(Clone)]
pub(super) struct AppToken {
    /// The token (redacted in `Debug`).
    pub value: Arc<SecretString>,
    /// Which fetch produced it (1, 2, …).
    pub generation: u64,
}

struct Entry {
    token: AppToken,
    /// When callers stop using it: expiry minus the refresh margin.
    refresh_at: Instant,
}

#[derive(Default)]
struct Slot {
    current: Option<Entry>,
    fetches: u64,
}

/// Single-flight cache of the app token.
pub(super) struct TokenCache {
    slot: Mutex<Slot>,
    margin: Duration,
}

impl TokenCache {
    /// A cache that refreshes `margin_secs` seconds before expiry (negative → 0).
    pub(super) fn new(margin_secs: i64) -> Self {
        Self { slot: Mutex::new(Slot::default()), margin: Duration::from_secs(u64::try_from(margin_secs).unwrap_or(0)) }
    }

    /// The cached token if it is still outside the refresh margin; otherwise
    /// fetches one with `fetch` (while holding the lock) and caches it.
    pub(super) async fn get<F, Fut>(&self, fetch: F) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FreshToken, UpstreamError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(entry) = &slot.current
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        self.fill(&mut slot, fetch).await
    }

    /// After DingTalk refused the token of generation `failed`: if that token
    /// is still cached, drops it and fetches a new one; if another caller
    /// already replaced it, returns the replacement (fetching only if that one
    /// is stale too).
    pub(super) async fn renew<F, Fut>(&self, failed: u64, fetch: F) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FreshToken, UpstreamError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(entry) = &slot.current
            && entry.token.generation != failed
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        slot.current = None;
        self.fill(&mut slot, fetch).await
    }

    /// Drops the cached token if it is still generation `failed`.
    pub(super) async fn invalidate(&self, failed: u64) {
        let mut slot = self.slot.lock().await;
        if slot.current.as_ref().is_some_and(|e| e.token.generation == failed) {
            slot.current = None;
        }
    }

    async fn fill<F, Fut>(&self, slot: &mut Slot, fetch: F) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FreshToken, UpstreamError>>,
    {
        let fetched_at = Instant::now();
        let fresh = fetch().await?;
        let lifetime = if fresh.expire_in <= 0 { DEFAULT_LIFETIME_SECS } else { fresh.expire_in };
        let usable = Duration::from_secs(u64::try_from(lifetime).unwrap_or(0)).saturating_sub(self.margin);
        let refresh_at = fetched_at.checked_add(usable).unwrap_or(fetched_at);
        slot.fetches += 1;
        let token = AppToken { value: Arc::new(fresh.value), generation: slot.fetches };
        slot.current = Some(Entry { token: token.clone(), refresh_at });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use secrecy::ExposeSecret;

    use super::*;

    fn fresh(value: &str, expire_in: i64) -> Result<FreshToken, UpstreamError> {
        Ok(FreshToken { value: SecretString::from(value), expire_in })
    }

    #[tokio::test]
    async fn caches_and_renews_only_the_failed_generation() -> Result<(), UpstreamError> {
        let cache = TokenCache::new(300);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            fresh(&format!("t{n}"), 7200)
        };
        let first = cache.get(fetch).await?;
        assert_eq!(cache.get(fetch).await?.generation, first.generation);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let second = cache.renew(first.generation, fetch).await?;
        assert_eq!(second.value.expose_secret(), "t2");
        // A late report about generation 1 does not drop generation 2.
        let again = cache.renew(first.generation, fetch).await?;
        assert_eq!(again.generation, second.generation);
        cache.invalidate(first.generation).await;
        assert_eq!(cache.get(fetch).await?.generation, second.generation);
        cache.invalidate(second.generation).await;
        assert_eq!(cache.get(fetch).await?.value.expose_secret(), "t3");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        Ok(())
    }

    #[tokio::test]
    async fn lifetime_within_margin_is_refetched_and_zero_means_7200() -> Result<(), UpstreamError> {
        let cache = TokenCache::new(300);
        let calls = AtomicUsize::new(0);
        let short = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            fresh("short", 200)
        };
        cache.get(short).await?;
        cache.get(short).await?;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let zero = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            fresh("zero", 0)
        };
        cache.get(zero).await?;
        cache.get(zero).await?;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_fetch_caches_nothing() {
        let cache = TokenCache::new(0);
        let failing = || async { Err(UpstreamError::Unavailable("down".into())) };
        assert!(cache.get(failing).await.is_err());
        let ok = cache.get(|| async { fresh("t", 7200) }).await.map(|t| t.generation);
        assert_eq!(ok, Ok(1));
    }
}
