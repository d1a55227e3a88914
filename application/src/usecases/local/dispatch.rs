//! The outbox dispatcher: relays accepted messages to the cloud and asks about relayed ones,
//! with leases, back-off and the cloud's waiting reasons.

use std::sync::Arc;

use domain::{MessageState, Timestamp};
use tracing::{info, instrument, warn};

use crate::ports::{
    Clock, CloudGateway, GatewayError, MessageRecord, MessageStore, RandomSource, RelaySendRequest, StoreError,
};

use super::messages::apply_receipt;
use super::*;

/// How long a claimed message is reserved for one dispatcher, in seconds. Longer than one relay
/// call with its retries, so two dispatchers never relay the same message at once.
pub const DISPATCH_LEASE_SECS: i64 = 60;
/// First retry delay after a failed relay, in milliseconds (doubles per attempt).
pub const RETRY_BASE_MS: i64 = 500;
/// Longest retry delay, in milliseconds.
pub const RETRY_MAX_MS: i64 = 30_000;

/// Relays accepted messages from the outbox to the cloud: claims due messages, sends each with its
/// id as the idempotency key, records the outcome, and reschedules transient failures with
/// exponential backoff and jitter. Nothing is lost: a message stays pending until the cloud
/// answers `sent` or refuses it permanently, across restarts (claims expire after
/// [`DISPATCH_LEASE_SECS`]).
pub struct DispatchOutbox {
    messages: Arc<dyn MessageStore>,
    gateway: Arc<dyn CloudGateway>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    lease_secs: i64,
}

impl DispatchOutbox {
    /// Builds the dispatcher.
    pub fn new(
        messages: Arc<dyn MessageStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { messages, gateway, random, clock, lease_secs: DISPATCH_LEASE_SECS }
    }

    /// Sets the claim lease in seconds (default [`DISPATCH_LEASE_SECS`]); it must exceed the
    /// longest relay call with its retries, or two dispatchers could relay one message at once
    /// (harmless — the cloud is idempotent on the key — but wasted work).
    #[must_use]
    pub fn with_lease_secs(mut self, lease_secs: i64) -> Self {
        self.lease_secs = lease_secs.max(1);
        self
    }

    /// Delay before retry number `attempts` (1-based), in ms: `500 · 2^(attempts−1)` capped at
    /// 30 s, then scaled by a jitter factor in [0.5, 1.0] drawn from `jitter_byte`.
    pub fn backoff_ms(attempts: u32, jitter_byte: u8) -> i64 {
        let exp = RETRY_BASE_MS.saturating_mul(1_i64 << attempts.saturating_sub(1).min(16));
        let capped = exp.min(RETRY_MAX_MS);
        capped / 2 + capped * i64::from(jitter_byte) / 510
    }

    /// Claims and relays up to `limit` due messages; returns how many it handled.
    /// Errors: `Store` when claiming fails (per-message store errors are logged and the message
    /// is retried after its lease).
    #[instrument(skip_all)]
    pub async fn run_once(&self, limit: u32) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let claimed = self.messages.claim_due(now, now.plus_secs(self.lease_secs), limit).await?;
        let count = claimed.len();
        for record in claimed {
            if let Err(err) = self.relay(record).await {
                warn!(error = %err, "recording a relay outcome failed; the message is retried after its lease");
            }
        }
        Ok(count)
    }

    async fn relay(&self, mut record: MessageRecord) -> Result<(), StoreError> {
        let request = RelaySendRequest {
            key: record.id.clone(),
            corp_id: record.corp_id.clone(),
            recipients: record.recipients.clone(),
            body: record.body.clone(),
        };
        match self.gateway.send_message(&request).await {
            Ok(receipt) => {
                apply_receipt(&mut record, &receipt);
                let now = self.clock.now();
                self.messages.update(&record.id, record.state, &record.delivery_ids, record.error.clone(), now).await?;
                if record.state.is_pending() {
                    // Ask the cloud again after the backoff, or when its next attempt is due if
                    // that is later (at most the longest backoff away).
                    let delay = Self::backoff_ms(record.attempts, self.random.bytes32()[0]);
                    let due = receipt.waiting.as_ref().map_or(0, |w| w.retry_at.as_millis() - now.as_millis());
                    let delay = delay.max(due.min(RETRY_MAX_MS));
                    self.messages
                        .reschedule(
                            &record.id,
                            Timestamp::from_millis(now.as_millis() + delay),
                            Some(receipt.waiting.as_ref().map_or_else(
                                || "waiting for the provider to accept every batch".to_owned(),
                                waiting_error,
                            )),
                        )
                        .await?;
                }
                info!(id = %record.id, state = record.state.as_str(), tasks = record.delivery_ids.len(), attempts = record.attempts, "relayed");
            }
            Err(GatewayError::Unavailable(reason)) => {
                let delay = Self::backoff_ms(record.attempts, self.random.bytes32()[0]);
                warn!(id = %record.id, attempts = record.attempts, retry_in_ms = delay, %reason, "cloud unavailable; will retry");
                let next = Timestamp::from_millis(self.clock.now().as_millis() + delay);
                self.messages.reschedule(&record.id, next, Some(reason)).await?;
            }
            Err(other) => {
                warn!(id = %record.id, error = %other, "the cloud refused the message");
                self.messages
                    .update(
                        &record.id,
                        MessageState::Failed,
                        &record.delivery_ids,
                        Some(other.to_string()),
                        self.clock.now(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
