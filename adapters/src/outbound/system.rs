//! The system clock and the OS CSPRNG, as the `Clock` and `RandomSource` ports.

use std::time::{SystemTime, UNIX_EPOCH};

use application::ports::{Clock, RandomSource};
use domain::Timestamp;
use rand::TryRng;

/// [`Clock`] reading the system time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

/// [`RandomSource`] drawing from the operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn bytes32(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        // The OS RNG failing is unrecoverable: a login without randomness must not proceed.
        #[allow(clippy::expect_used)]
        rand::rngs::SysRng.try_fill_bytes(&mut bytes).expect("the OS random number generator failed");
        bytes
    }

    fn new_id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ() {
        assert_ne!(OsRandom.bytes32(), OsRandom.bytes32());
        assert_ne!(OsRandom.new_id(), OsRandom.new_id());
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(SystemClock.now().as_millis() > 1_577_836_800_000);
    }
}
