//! The clock and the randomness source, as ports so use cases stay deterministic in tests.

use domain::Timestamp;

/// Wall-clock time.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in epoch milliseconds.
    fn now(&self) -> Timestamp;
}

/// A cryptographically secure random source (the OS CSPRNG in production).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait RandomSource: Send + Sync {
    /// 32 fresh random bytes (for login states and session tokens).
    fn bytes32(&self) -> [u8; 32];
    /// A fresh unique id for a stored record (a UUID v7 string: time-ordered).
    fn new_id(&self) -> String;
}

/// Makes what was written durable before it is acknowledged: a store whose commits are not on
/// disk when they return (SQLite with `synchronous = NORMAL`) waits here for a group sync; a store
/// whose commits are durable (PostgreSQL) returns at once.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait Durability: Send + Sync {
    /// Returns once every commit made before the call is on disk. Errors: `Unavailable` when the
    /// sync failed (the caller must not acknowledge).
    async fn flush(&self) -> Result<(), super::StoreError>;
}

/// Wakes the outbox dispatcher when a message is accepted, so it does not wait
/// for its next poll. Implementations must not block.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait DispatchTrigger: Send + Sync {
    /// Signals that new work is due.
    fn wake(&self);
}
