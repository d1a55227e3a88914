//! The cloud's background jobs over relayed messages: the sender, and the operator's
//! resolution of uncertain batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::MessageState;
use tracing::{info, instrument, warn};

use crate::ports::{Clock, RelayMessageRecord, RelayMessageStore, RelayReceipt, StoreError, WaitReason};

use super::relay_send::receipt;
use super::*;

/// The cloud's background sender: delivers `accepted` relayed messages whose next attempt is due
/// ([`RelaySend::deliver`]), several at a time, each call paced by the call governor. The relay
/// API only records messages; this job makes every provider call for them.
pub struct DeliverRelayed {
    send: Arc<RelaySend>,
    messages: Arc<dyn RelayMessageStore>,
    clock: Arc<dyn Clock>,
    concurrency: usize,
    instance: String,
    claims: AtomicU64,
}

/// How many relayed messages the background sender delivers at once, by default. Calls for one
/// app and API still leave at the governor's pace; more in flight only helps several apps (and
/// the provider's latency) overlap.
pub const DEFAULT_SEND_CONCURRENCY: usize = 16;

impl DeliverRelayed {
    /// Builds the job around the use case the relay API accepts with.
    pub fn new(send: Arc<RelaySend>, messages: Arc<dyn RelayMessageStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            send,
            messages,
            clock,
            concurrency: DEFAULT_SEND_CONCURRENCY,
            instance: "sender".to_owned(),
            claims: AtomicU64::new(0),
        }
    }

    /// Sets how many messages are delivered at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Names this sender among the instances sharing the store (a random id per process, so no
    /// two instances' claims are alike); claims are `<instance>:<n>`.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = instance.into();
        self
    }

    /// Claims up to `limit` due messages and delivers them; returns how many it attempted.
    /// Errors: `Store` when claiming fails (a failure on one message is logged; the message keeps
    /// its state and is attempted again when due, by this instance or, once the claim's lease
    /// ends, by another).
    #[instrument(skip_all)]
    pub async fn run_once(&self, limit: u32) -> Result<usize, StoreError> {
        use futures_util::StreamExt as _;
        let claim = format!("{}:{}", self.instance, self.claims.fetch_add(1, Ordering::Relaxed));
        let now = self.clock.now();
        let lease_until = domain::Timestamp::from_millis(now.as_millis().saturating_add(self.send.lease_ms()));
        let due = self.messages.claim_due(&claim, now, lease_until, limit).await?;
        let count = due.len();
        futures_util::stream::iter(due)
            .for_each_concurrent(self.concurrency, |claimed| async move {
                let key = claimed.record.key.clone();
                if let Err(err) = self.send.deliver_claim(claimed).await {
                    warn!(%key, error = %err, "delivering a relayed message failed; it is attempted again when due");
                }
            })
            .await;
        Ok(count)
    }
}

/// An operator's decision on a message held for an uncertain batch ([`UncertainPolicy::Hold`]):
/// send it again, or give it up (the CLI's `dingbridge relay resend` / `relay abandon`).
pub struct ResolveUncertain {
    messages: Arc<dyn RelayMessageStore>,
    clock: Arc<dyn Clock>,
}

impl ResolveUncertain {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, clock }
    }

    /// Makes the held message due now with its batches no longer uncertain: the background
    /// sender sends every batch without a `delivery_id` (once more for the uncertain ones).
    ///
    /// Errors: `NotFound` when the client has no message under `key`; `Rejected` when it is not
    /// held for an uncertain batch (its state and reason are named); `Store`.
    pub async fn resend(&self, client_id: &str, key: &str) -> Result<RelayReceipt, CloudError> {
        let record = self.held(client_id, key).await?;
        if !self.messages.release_one(client_id, key, WaitReason::Uncertain, self.clock.now()).await? {
            return Err(CloudError::Rejected(format!("message {key} changed meanwhile; look at it again")));
        }
        info!(client = client_id, key, "an operator resends a message held for an uncertain batch");
        Ok(receipt(&RelayMessageRecord { waiting: None, ..record }))
    }

    /// Gives the held message up: every batch without a `delivery_id` is recorded as refused
    /// (`abandoned by an operator: …`) and the message ends `failed`; nothing more is sent.
    ///
    /// Errors: as [`ResolveUncertain::resend`].
    pub async fn abandon(&self, client_id: &str, key: &str) -> Result<RelayReceipt, CloudError> {
        let mut record = self.held(client_id, key).await?;
        let error = "abandoned by an operator: a cloud instance stopped during this batch's call, so it may or may \
                     not have been delivered"
            .to_owned();
        for index in 0..record.batches.len() {
            if record.batches[index].is_settled() {
                continue;
            }
            self.messages.record_batch(client_id, key, index, None, Some(error.clone()), self.clock.now()).await?;
            record.batches[index].error = Some(error.clone());
        }
        self.messages.set_state(client_id, key, MessageState::Failed, self.clock.now()).await?;
        record.state = MessageState::Failed;
        warn!(client = client_id, key, "an operator abandoned a message held for an uncertain batch");
        Ok(receipt(&record))
    }

    async fn held(&self, client_id: &str, key: &str) -> Result<RelayMessageRecord, CloudError> {
        let record = self.messages.get(client_id, key).await?.ok_or(CloudError::NotFound)?;
        let reason = record.waiting.as_ref().map(|w| w.reason);
        if record.state != MessageState::Accepted || reason != Some(WaitReason::Uncertain) {
            return Err(CloudError::Rejected(format!(
                "message {key} is not held for an uncertain batch (state {}, waiting {})",
                record.state.as_str(),
                reason.map_or("nothing", WaitReason::as_str)
            )));
        }
        Ok(record)
    }
}

pub(super) fn same_message(a: &RelayMessageRecord, b: &RelayMessageRecord) -> bool {
    a.corp_id == b.corp_id
        && a.body == b.body
        && a.batches.len() == b.batches.len()
        && a.batches.iter().zip(&b.batches).all(|(x, y)| x.batch == y.batch)
}
