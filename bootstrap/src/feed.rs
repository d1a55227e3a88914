//! The contact-feed poller (local and dev modes): one loop that long-polls the cloud's
//! contact-event feed and applies it ([`ApplyContactEvents::run_once`]), backing off with
//! exponential delays and jitter while the cloud or the database is unavailable. It runs until
//! aborted at shutdown; an abort mid-round loses nothing (the cursor is stored after each
//! applied event, so at most the event in flight is applied again on the next start).

use std::sync::Arc;
use std::time::{Duration, Instant};

use application::ports::RandomSource;
use application::usecases::feed::{ApplyContactEvents, FeedError};
use tracing::{debug, error, info, warn};

/// First delay after a failed round.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest delay between failed rounds.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// An empty page that came back faster than this (the cloud is shutting down and ends its
/// long-polls at once) is followed by a pause of [`RETRY_MIN`], so the loop never spins.
const EARLY_EMPTY: Duration = Duration::from_millis(200);

/// Delay before the next round after `failures` consecutive failed rounds (≥ 1): 1 s doubling
/// per failure up to 30 s, scaled by a jitter factor in [0.5, 1.0] drawn from `jitter_byte`.
pub(crate) fn retry_delay(failures: u32, jitter_byte: u8) -> Duration {
    let doubled = RETRY_MIN.saturating_mul(1_u32 << failures.saturating_sub(1).min(5));
    let capped = doubled.min(RETRY_MAX);
    capped / 2 + capped * u32::from(jitter_byte) / 510
}

/// The poller job.
pub(crate) struct FeedPoller {
    apply: ApplyContactEvents,
    wait_secs: u32,
    random: Arc<dyn RandomSource>,
    /// The gateway `apply` reads through, for the feed gauges.
    watch: Arc<crate::telemetry::FeedWatch>,
}

impl FeedPoller {
    /// A poller whose long-polls wait up to `wait_secs` on the cloud.
    pub(crate) fn new(
        apply: ApplyContactEvents,
        wait_secs: u32,
        random: Arc<dyn RandomSource>,
        watch: Arc<crate::telemetry::FeedWatch>,
    ) -> Self {
        Self { apply, wait_secs, random, watch }
    }

    /// Runs rounds forever, while `leader` (several local instances on one database) says this
    /// instance leads: one poller per cluster; another instance's poller takes over within seconds
    /// of this one's death (adapters::outbound::postgres::leader). Without a leader, forever.
    pub(crate) async fn run_led(self, leader: Option<adapters::outbound::postgres::leader::Leader>) {
        let Some(leader) = leader else { return self.run().await };
        loop {
            leader.until_leading().await;
            info!("following the contact feed: this instance leads the feed poller");
            tokio::select! {
                () = self.run() => {}
                () = leader.until_not_leading() => {
                    warn!("stopped following the contact feed: this instance no longer leads the feed poller");
                }
            }
        }
    }

    /// Runs rounds forever (until the task is aborted).
    async fn run(&self) {
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            match self.apply.run_once(self.wait_secs).await {
                Ok(progress) => {
                    failures = 0;
                    debug!(applied = progress.applied, cursor = progress.cursor, "contact feed round");
                    if progress.applied > 0 {
                        self.watch.applied(progress.cursor);
                    }
                    if progress.applied == 0 && started.elapsed() < EARLY_EMPTY {
                        tokio::time::sleep(RETRY_MIN).await;
                    }
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(failures, self.random.bytes32()[0]);
                    let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    match &err {
                        FeedError::Refused(_) => {
                            error!(
                                error = %err,
                                failures,
                                retry_in_ms,
                                "the cloud refused the feed request; check cloud.client_id and cloud.client_secret"
                            );
                        }
                        _ => warn!(error = %err, failures, retry_in_ms, "contact feed round failed; retrying"),
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_from_one_second_to_thirty_with_jitter() {
        assert_eq!(retry_delay(1, 255), Duration::from_secs(1));
        assert_eq!(retry_delay(1, 0), Duration::from_millis(500));
        assert_eq!(retry_delay(2, 255), Duration::from_secs(2));
        assert_eq!(retry_delay(3, 255), Duration::from_secs(4));
        assert_eq!(retry_delay(5, 255), Duration::from_secs(16));
        assert_eq!(retry_delay(6, 255), Duration::from_secs(30));
        assert_eq!(retry_delay(60, 255), Duration::from_secs(30));
        assert_eq!(retry_delay(60, 0), Duration::from_secs(15));
        for failures in 1..40 {
            for jitter in [0, 1, 127, 128, 254, 255] {
                let delay = retry_delay(failures, jitter);
                assert!(delay >= Duration::from_millis(500) && delay <= RETRY_MAX, "{failures} {jitter} {delay:?}");
            }
        }
    }
}
