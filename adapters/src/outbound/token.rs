//! The app access-token cache every provider client shares (DingTalk: docs/dingtalk-api.md
//! §B.1, §B.6, §G.2; Feishu's `tenant_access_token`: docs/feishu-api.md §B.1).
//!
//! One `tokio::sync::Mutex` guards the cached token and is held across a
//! fetch, so at most one fetch is in flight: concurrent callers queue on the
//! lock and, once the fetch finished, find the fresh token and reuse it. Each
//! fetched token gets a generation number so that a caller reporting a
//! refused token only drops it if it is still the cached one (DingTalk returns
//! the *same* string when re-fetched within its validity, docs/dingtalk-api.md §B.1, so the
//! string itself cannot tell two fetches apart).
//!
//! Several cloud instances share their tokens through a [`TokenBook`] (PostgreSQL): a process
//! whose own copy is stale first adopts the book's; only when the book's is stale too (or is the
//! very token DingTalk refused) does it fetch, under a cluster-wide lock of that token, so one
//! instance at a time fetches and the others adopt its token. This matters most for a suite's
//! corp tokens: `corpAccessToken` answers a **new** token on every call (docs/dingtalk-api.md
//! §B.4), so instances refreshing on their own would each hold a different token and fetch once
//! per lifetime each. A refresher that dies mid-fetch holds nothing: the lock is its
//! transaction's, released with its connection.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::ports::{StoreError, UpstreamError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

/// Lifetime assumed when DingTalk answers `expireIn <= 0`: 7200 s (docs/dingtalk-api.md §B.6).
pub(crate) const DEFAULT_LIFETIME_SECS: i64 = 7200;

/// A token as the token endpoint returned it.
pub(crate) struct FreshToken {
    /// `accessToken`.
    pub value: SecretString,
    /// `expireIn`, seconds.
    pub expire_in: i64,
}

/// A cached app token handed to callers.
#[derive(Clone)]
pub(crate) struct AppToken {
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

/// A token as a [`TokenBook`] keeps it.
#[derive(Debug, Clone)]
pub struct SharedToken {
    /// The token.
    pub value: SecretString,
    /// When it expires, epoch ms.
    pub expires_at_ms: i64,
}

/// What a fetch under the book's lock returns: the new token, or why there is none (a refusal of
/// the token endpoint, or the book's own failure).
pub type FetchResult = Result<SharedToken, UpstreamError>;

/// Tokens shared by the instances of a cluster, one per key (`app:<client_id>`,
/// `corp:<suite_key>:<corp_id>`); see the module docs. Implemented by the PostgreSQL store.
#[async_trait::async_trait]
pub trait TokenBook: Send + Sync + std::fmt::Debug {
    /// The token of `key` if one is stored.
    ///
    /// Errors: the book cannot be read.
    async fn read(&self, key: &str) -> Result<Option<SharedToken>, StoreError>;

    /// Under a cluster-wide lock of `key`: the stored token if `usable` says so, else the result
    /// of `fetch`, stored for the others. Of instances calling at once one fetches; the others
    /// wait for the lock and find its token.
    ///
    /// Errors: `fetch`'s error (nothing stored); `Unavailable` when the book fails.
    async fn refresh<'a>(
        &'a self,
        key: &'a str,
        usable: &'a (dyn for<'t> Fn(&'t SharedToken) -> bool + Send + Sync),
        fetch: std::pin::Pin<Box<dyn Future<Output = FetchResult> + Send + 'a>>,
    ) -> FetchResult;
}

/// Single-flight cache of the app token.
pub(crate) struct TokenCache {
    slot: Mutex<Slot>,
    margin: Duration,
    shared: Option<(Arc<dyn TokenBook>, String)>,
}

impl TokenCache {
    /// A cache that refreshes `margin_secs` seconds before expiry (negative → 0).
    pub(crate) fn new(margin_secs: i64) -> Self {
        Self {
            slot: Mutex::new(Slot::default()),
            margin: Duration::from_secs(u64::try_from(margin_secs).unwrap_or(0)),
            shared: None,
        }
    }

    /// Shares the token under `key` through `book` with the other instances.
    pub(crate) fn with_shared(mut self, book: Option<Arc<dyn TokenBook>>, key: String) -> Self {
        self.shared = book.map(|book| (book, key));
        self
    }

    /// The cached token if it is still outside the refresh margin; otherwise
    /// fetches one with `fetch` (while holding the lock) and caches it.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<FreshToken, UpstreamError>> + Send,
    {
        let mut slot = self.slot.lock().await;
        if let Some(entry) = &slot.current
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        let stale = slot.current.take().map(|e| e.token.value);
        self.fill(&mut slot, stale, fetch).await
    }

    /// After DingTalk refused the token of generation `failed`: if that token
    /// is still cached, drops it and fetches a new one; if another caller
    /// already replaced it, returns the replacement (fetching only if that one
    /// is stale too).
    pub(crate) async fn renew<F, Fut>(&self, failed: u64, fetch: F) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<FreshToken, UpstreamError>> + Send,
    {
        let mut slot = self.slot.lock().await;
        if let Some(entry) = &slot.current
            && entry.token.generation != failed
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        let refused = slot.current.take().filter(|e| e.token.generation == failed).map(|e| e.token.value);
        self.fill(&mut slot, refused, fetch).await
    }

    /// Drops the cached token if it is still generation `failed`.
    pub(crate) async fn invalidate(&self, failed: u64) {
        let mut slot = self.slot.lock().await;
        if slot.current.as_ref().is_some_and(|e| e.token.generation == failed) {
            slot.current = None;
        }
    }

    /// Caches a new token: fetched with `fetch`, or — with a book — the book's unless it is
    /// stale or `refused` (the token DingTalk just refused, or this process's stale copy), else
    /// fetched under the book's lock and stored there.
    async fn fill<F, Fut>(
        &self,
        slot: &mut Slot,
        refused: Option<Arc<SecretString>>,
        fetch: F,
    ) -> Result<AppToken, UpstreamError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<FreshToken, UpstreamError>> + Send,
    {
        let Some((book, key)) = &self.shared else {
            let fetched_at = Instant::now();
            let fresh = fetch().await?;
            let usable =
                Duration::from_secs(u64::try_from(lifetime(fresh.expire_in)).unwrap_or(0)).saturating_sub(self.margin);
            return Ok(self.keep(slot, fresh.value, fetched_at.checked_add(usable).unwrap_or(fetched_at)));
        };
        let margin_ms = i64::try_from(self.margin.as_millis()).unwrap_or(i64::MAX);
        let usable = |token: &SharedToken| {
            token.expires_at_ms.saturating_sub(margin_ms) > now_ms()
                && refused.as_ref().is_none_or(|r| r.expose_secret() != token.value.expose_secret())
        };
        // Most often another instance already refreshed it: adopt it without the lock.
        let stored = match book.read(key).await {
            Ok(stored) => stored.filter(|t| usable(t)),
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "the shared token book cannot be read; fetching a token alone");
                None
            }
        };
        let token = match stored {
            Some(token) => token,
            None => {
                let fetch = Box::pin(async move {
                    let fresh = fetch().await?;
                    Ok(SharedToken {
                        value: fresh.value,
                        expires_at_ms: now_ms().saturating_add(lifetime(fresh.expire_in).saturating_mul(1000)),
                    })
                });
                book.refresh(key, &usable, fetch).await?
            }
        };
        let left_ms = token.expires_at_ms.saturating_sub(margin_ms).saturating_sub(now_ms());
        let refresh_at = Instant::now() + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        Ok(self.keep(slot, token.value, refresh_at))
    }

    fn keep(&self, slot: &mut Slot, value: SecretString, refresh_at: Instant) -> AppToken {
        slot.fetches += 1;
        let token = AppToken { value: Arc::new(value), generation: slot.fetches };
        slot.current = Some(Entry { token: token.clone(), refresh_at });
        token
    }
}

/// `expireIn` in seconds, `<= 0` read as [`DEFAULT_LIFETIME_SECS`] (docs/dingtalk-api.md §B.6).
fn lifetime(expire_in: i64) -> i64 {
    if expire_in <= 0 { DEFAULT_LIFETIME_SECS } else { expire_in }
}

/// The wall clock in epoch ms (the book's expiries are wall-clock: instances share them).
fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos().div_euclid(1_000_000).try_into().unwrap_or(i64::MAX)
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

    /// An in-memory book: one lock per process, as PostgreSQL's advisory lock is per cluster.
    #[derive(Debug, Default)]
    struct MemoryBook {
        tokens: std::sync::Mutex<std::collections::HashMap<String, SharedToken>>,
        lock: tokio::sync::Mutex<()>,
    }

    #[async_trait::async_trait]
    impl TokenBook for MemoryBook {
        async fn read(&self, key: &str) -> Result<Option<SharedToken>, StoreError> {
            Ok(self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned())
        }

        async fn refresh<'a>(
            &'a self,
            key: &'a str,
            usable: &'a (dyn for<'t> Fn(&'t SharedToken) -> bool + Send + Sync),
            fetch: std::pin::Pin<Box<dyn Future<Output = FetchResult> + Send + 'a>>,
        ) -> FetchResult {
            let _held = self.lock.lock().await;
            if let Some(stored) = self.read(key).await.ok().flatten().filter(|t| usable(t)) {
                return Ok(stored);
            }
            let fresh = fetch.await?;
            self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.to_owned(), fresh.clone());
            Ok(fresh)
        }
    }

    #[tokio::test]
    async fn caches_sharing_a_book_fetch_once_and_a_refused_token_is_replaced_once_for_all() -> Result<(), UpstreamError>
    {
        let book: Arc<dyn TokenBook> = Arc::new(MemoryBook::default());
        let one = TokenCache::new(300).with_shared(Some(book.clone()), "corp:s:c".into());
        let two = TokenCache::new(300).with_shared(Some(book.clone()), "corp:s:c".into());
        let calls = AtomicUsize::new(0);
        let fetch = |value: &'static str| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                fresh(value, 7200)
            }
        };
        let (a, b) = tokio::join!(one.get(fetch("first")), two.get(fetch("second")));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second instance adopted the first's token");
        assert_eq!((a?.value.expose_secret(), b?.value.expose_secret()), ("first", "first"));
        // DingTalk refused it on instance one: one fetch, and instance two adopts the new token
        // when it is refused there too.
        let renewed = one.renew(1, fetch("renewed")).await?;
        assert_eq!(renewed.value.expose_secret(), "renewed");
        let adopted = two.renew(1, fetch("again")).await?;
        assert_eq!(adopted.value.expose_secret(), "renewed");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        Ok(())
    }
}
