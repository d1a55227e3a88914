//! What became of a relayed message (status, recall) and the background reconciliation of
//! its delivery.

use std::sync::Arc;

use domain::{DeliveryReport, MessageState};
use tracing::{instrument, warn};

use crate::ports::{Clock, Messenger, RelayClient, RelayMessageStore, RelayReceipt, StoreError};

use super::relay_send::receipt;
use super::*;

/// Reports a relayed message: the cloud's record plus the provider's progress and
/// per-recipient result of every task.
pub struct RelayStatus {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
}

impl RelayStatus {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, messenger: Arc<dyn Messenger>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, messenger, clock }
    }

    /// Errors: `NotFound` (unknown or another client's); `Unavailable` /
    /// `Rejected` from the provider; `Store`. Marks the message `completed` once
    /// every task is done.
    #[instrument(skip_all, fields(client = %client.id, key))]
    pub async fn execute(&self, client: &RelayClient, key: &str) -> Result<(RelayReceipt, DeliveryReport), CloudError> {
        let mut record = self.messages.get(&client.id, key).await?.ok_or(CloudError::NotFound)?;
        let mut tasks = Vec::new();
        for delivery_id in record.batches.iter().filter_map(|b| b.delivery_id.as_ref()) {
            let progress = self.messenger.progress(&record.corp_id, delivery_id).await?;
            let result = self.messenger.result(&record.corp_id, delivery_id).await?;
            tasks.push((progress, result));
        }
        let skipped: Vec<_> = record.batches.iter().flat_map(|b| b.skipped.iter().cloned()).collect();
        let report = DeliveryReport::merge(&tasks).with_skipped(&skipped, tasks.len());
        if report.done && record.state == MessageState::Sent {
            record.state = MessageState::Completed;
            self.messages.set_state(&client.id, key, record.state, self.clock.now()).await?;
        }
        Ok((receipt(&record), report))
    }
}

/// Recalls every task of a relayed message.
pub struct RelayRecall {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
}

/// A recall is tried only within this many milliseconds of the send (24 h, the providers' window).
pub const RECALL_WINDOW_MS: i64 = 24 * 3600 * 1000;

impl RelayRecall {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, messenger: Arc<dyn Messenger>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, messenger, clock }
    }

    /// Errors: `NotFound`; `Rejected` when the message was never sent or is
    /// older than 24 h (the provider's limit), or the provider refuses; `Unavailable`; `Store`.
    #[instrument(skip_all, fields(client = %client.id, key))]
    pub async fn execute(&self, client: &RelayClient, key: &str) -> Result<RelayReceipt, CloudError> {
        let mut record = self.messages.get(&client.id, key).await?.ok_or(CloudError::NotFound)?;
        let now = self.clock.now();
        if record.state == MessageState::Recalled {
            return Ok(receipt(&record));
        }
        if now.as_millis() - record.created_at.as_millis() > RECALL_WINDOW_MS {
            return Err(CloudError::Rejected("a message can be recalled only within 24 hours of the send".into()));
        }
        let tasks: Vec<_> = record.batches.iter().filter_map(|b| b.delivery_id.as_ref()).collect();
        if tasks.is_empty() {
            return Err(CloudError::Rejected("the message has not been sent, so there is nothing to recall".into()));
        }
        for delivery_id in tasks {
            self.messenger.recall(&record.corp_id, delivery_id).await?;
        }
        record.state = MessageState::Recalled;
        self.messages.set_state(&client.id, key, record.state, now).await?;
        Ok(receipt(&record))
    }
}

/// How far back background reconciliation looks, in ms: the provider answers progress queries for
/// 24 hours (the shortest window a provider documents is used).
pub const RECONCILE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Background delivery reconciliation on the cloud: asks the provider for the progress of every task
/// of recently sent messages and marks a message `completed` once all its tasks are
/// done. Per-recipient results are read on demand ([`RelayStatus`]).
///
/// A progress query may be a metered call (the provider's adapter says), so the job runs within
/// a budget: at most `max_rounds` rounds per message, one progress query per delivery each. A message still not done after its rounds stays `sent`;
/// its status is still read on demand.
pub struct ReconcileDeliveries {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
    max_rounds: u32,
}

impl ReconcileDeliveries {
    /// Builds the job with a budget of `max_rounds` rounds per message (at least 1).
    pub fn new(
        messages: Arc<dyn RelayMessageStore>,
        messenger: Arc<dyn Messenger>,
        clock: Arc<dyn Clock>,
        max_rounds: u32,
    ) -> Self {
        Self { messages, messenger, clock, max_rounds: max_rounds.max(1) }
    }

    /// Checks up to `limit` sent messages that have rounds left; returns how many were completed.
    /// Errors: `Store` when listing fails (a provider error on one message is logged, and the round
    /// counts: a failing message cannot spend more than its budget).
    #[instrument(skip_all)]
    pub async fn run_once(&self, limit: u32) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let after = domain::Timestamp::from_millis(now.as_millis() - RECONCILE_WINDOW_MS);
        let mut completed = 0;
        for record in self.messages.list_in_state(MessageState::Sent, after, self.max_rounds, limit).await? {
            let mut done = true;
            for delivery_id in record.batches.iter().filter_map(|b| b.delivery_id.as_ref()) {
                match self.messenger.progress(&record.corp_id, delivery_id).await {
                    Ok(progress) => done &= progress.done,
                    Err(err) => {
                        warn!(key = %record.key, %delivery_id, error = %err, "progress query failed");
                        done = false;
                        break;
                    }
                }
            }
            // Completed, or touched (same state) so the least recently checked goes first next time.
            let state = if done { MessageState::Completed } else { MessageState::Sent };
            self.messages.record_reconcile_round(&record.client_id, &record.key, state, self.clock.now()).await?;
            completed += usize::from(done);
        }
        Ok(completed)
    }
}
