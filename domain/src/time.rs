//! Instants as Unix epoch milliseconds.

use serde::{Deserialize, Serialize};

/// An instant, in milliseconds since the Unix epoch (UTC). Read from a clock
/// port by the application; the domain never reads the time itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Wraps epoch milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Epoch milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `secs` seconds (saturating).
    #[must_use]
    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// Whether `self` is strictly before `other`.
    pub fn is_before(self, other: Timestamp) -> bool {
        self.0 < other.0
    }
}
