//! Relayed messages: accepting one (a durable write) and delivering it, batch by batch,
//! through the tenant's messenger.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use domain::{Batch, BatchRecord, MessageState, UserId};
use tracing::{info, instrument, warn};

use crate::ports::{
    ClaimedRelay, Clock, DispatchTrigger, MessageRules, Messenger, MessengerError, RecipientLimits, RelayClient,
    RelayMessageRecord, RelayMessageStore, RelayReceipt, RelaySendRequest, RelayWaiting, UpstreamError, WaitReason,
};

use super::relay_jobs::same_message;
use super::*;

pub(super) fn receipt(record: &RelayMessageRecord) -> RelayReceipt {
    RelayReceipt {
        key: record.key.clone(),
        state: record.state,
        delivery_ids: record.batches.iter().filter_map(|b| b.delivery_id.clone()).collect(),
        errors: record.batches.iter().filter_map(|b| b.error.clone()).collect(),
        waiting: (record.state == MessageState::Accepted).then(|| {
            record.waiting.clone().unwrap_or_else(|| RelayWaiting {
                reason: WaitReason::Queued,
                detail: "accepted; the background sender sends it next, paced by the call governor".to_owned(),
                retry_at: record.created_at,
            })
        }),
    }
}

/// Accepts relayed messages and sends them.
///
/// Accepting ([`RelaySend::accept`]) is one durable write and an answer; the provider calls
/// happen behind it in the cloud's background sender ([`DeliverRelayed`], paced by the call
/// governor), which sends each batch that has no `delivery_id` yet and records each `delivery_id` as
/// soon as the provider returns it. A repeated key never sends a batch twice.
pub struct RelaySend {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
    in_flight: Mutex<HashSet<(String, String)>>,
    unrecognized_budget_ms: i64,
    unrecognized_max_attempts: u32,
    wakeup: Option<Arc<dyn DispatchTrigger>>,
    limits: Option<Arc<dyn RecipientLimits>>,
    rules: Option<MessageRules>,
    uncertain: UncertainPolicy,
    lease_ms: i64,
}

/// What the background sender does with an *uncertain* batch: one whose provider call an
/// instance started and never recorded the answer of (it was killed, or lost its claim, mid-call),
/// so the provider may or may not have sent it (docs/design.md "Several instances").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UncertainPolicy {
    /// Send the batch again (at least once). The person sees the message once when the provider
    /// drops a repeat itself (the provider delivers the same content to a person once a day and
    /// answers success for the repeat); the cloud's own screen never
    /// refuses the resend, because it counts a batch only once its `delivery_id` is recorded.
    #[default]
    Resend,
    /// Hold the message (`accepted`, waiting `uncertain`) until an operator resends or abandons it.
    Hold,
}

impl UncertainPolicy {
    /// The config value: `resend` or `hold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resend => "resend",
            Self::Hold => "hold",
        }
    }
}

/// How often a message held for an uncertain batch is looked at again, in seconds (it stays held
/// until an operator resends or abandons it).
pub const UNCERTAIN_RECHECK_SECS: i64 = 3_600;

/// How long a claim of the background sender holds a message, by default, in milliseconds: the
/// longest a provider call may take (its slot wait plus its timeout) with room to spare. Every
/// batch's start extends it; a sender that dies leaves the message to the others once it ends.
pub const DEFAULT_SEND_LEASE_MS: i64 = 30_000;

/// How long a batch the provider answers with an unrecognised errcode is retried, by default:
/// one hour from the message's first acceptance.
pub const DEFAULT_UNRECOGNIZED_BUDGET_SECS: u32 = 3600;
/// How many attempts a message whose batch the provider answers with an unrecognised errcode gets,
/// by default, before it fails (whichever of this and the age budget is spent first). With the
/// retry delays (0.5 s doubling to 30 s) 20 attempts span about eight minutes.
pub const DEFAULT_UNRECOGNIZED_MAX_ATTEMPTS: u32 = 20;
/// The background sender's first retry delay after a transient failure, in milliseconds
/// (doubling per attempt; a held call waits at least as long as the governor or the provider says).
pub const SEND_RETRY_BASE_MS: i64 = 500;
/// The background sender's longest retry delay, in milliseconds.
pub const SEND_RETRY_MAX_MS: i64 = 30_000;

/// Removes a key from the in-flight set when the send ends (or is cancelled).
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.key);
        }
    }
}

impl RelaySend {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, messenger: Arc<dyn Messenger>, clock: Arc<dyn Clock>) -> Self {
        Self {
            messages,
            messenger,
            clock,
            in_flight: Mutex::new(HashSet::new()),
            unrecognized_budget_ms: i64::from(DEFAULT_UNRECOGNIZED_BUDGET_SECS) * 1000,
            unrecognized_max_attempts: DEFAULT_UNRECOGNIZED_MAX_ATTEMPTS,
            wakeup: None,
            limits: None,
            rules: None,
            uncertain: UncertainPolicy::Resend,
            lease_ms: DEFAULT_SEND_LEASE_MS,
        }
    }

    /// Sets what the background sender does with an uncertain batch ([`UncertainPolicy`]).
    #[must_use]
    pub fn with_uncertain_policy(mut self, policy: UncertainPolicy) -> Self {
        self.uncertain = policy;
        self
    }

    /// Sets how long, in milliseconds, a claim holds a message from its start or its latest
    /// batch's start (at least 1 s); it must outlast one provider call (slot wait + timeout).
    #[must_use]
    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms.max(1_000);
        self
    }

    /// The claim's length in milliseconds ([`RelaySend::with_lease_ms`]).
    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// Sets how long, in seconds from the message's creation, a batch answered with an
    /// unrecognised errcode is retried (as a transient failure) before it is recorded as
    /// refused with the provider's code and message.
    #[must_use]
    pub fn with_unrecognized_budget_secs(mut self, secs: u32) -> Self {
        self.unrecognized_budget_ms = i64::from(secs) * 1000;
        self
    }

    /// Sets how many attempts (counting the first) a message gets while the provider answers one of
    /// its batches with an unrecognised errcode; the attempt that reaches it records the batch as
    /// refused, as the age budget ([`RelaySend::with_unrecognized_budget_secs`]) does. At least 1.
    #[must_use]
    pub fn with_unrecognized_max_attempts(mut self, attempts: u32) -> Self {
        self.unrecognized_max_attempts = attempts.max(1);
        self
    }

    /// Sets what [`RelaySend::accept`] wakes when a message is waiting to be sent (the
    /// background sender, so it does not wait for its next poll).
    #[must_use]
    pub fn with_wakeup(mut self, wakeup: Arc<dyn DispatchTrigger>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Screens every batch against the provider's per-recipient rules before sending
    /// ([`RecipientLimits`]): a recipient the provider would silently drop is not sent to and is
    /// reported as skipped (`daily_limit`, `duplicate_content`) in the message's status.
    #[must_use]
    pub fn with_recipient_limits(mut self, limits: Arc<dyn RecipientLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Checks every message's body by the rules of its tenant's provider before anything is
    /// stored ([`MessageRules`]); a body the provider does not take is `Invalid`. Without it only
    /// the neutral checks of `domain::MessageBody::parse` apply.
    #[must_use]
    pub fn with_body_rules(mut self, rules: MessageRules) -> Self {
        self.rules = Some(rules);
        self
    }

    fn claim(&self, client_id: &str, key: &str) -> Result<InFlight<'_>, CloudError> {
        let entry = (client_id.to_owned(), key.to_owned());
        let mut set = self.in_flight.lock().map_err(|_| CloudError::Unavailable("in-flight set poisoned".into()))?;
        if !set.insert(entry.clone()) {
            return Err(CloudError::Unavailable(format!("a send of message {key} is already in progress")));
        }
        Ok(InFlight { set: &self.in_flight, key: entry })
    }

    /// Stores the message unless its key exists, and returns the stored record.
    async fn store(&self, client: &RelayClient, request: &RelaySendRequest) -> Result<RelayMessageRecord, CloudError> {
        ensure_corp(client, &request.corp_id)?;
        if let Some(rules) = &self.rules {
            rules.check(&request.corp_id, &request.body, &request.recipients)?;
        }
        let now = self.clock.now();
        let fresh = RelayMessageRecord {
            client_id: client.id.clone(),
            key: request.key.clone(),
            corp_id: request.corp_id.clone(),
            body: request.body.clone(),
            batches: request.recipients.batches().into_iter().map(BatchRecord::new).collect(),
            state: MessageState::Accepted,
            created_at: now,
            updated_at: now,
            attempts: 0,
            waiting: None,
        };
        let (record, created) = self.messages.insert_or_get(&fresh).await?;
        if !created && !same_message(&record, &fresh) {
            return Err(CloudError::KeyReused);
        }
        Ok(record)
    }

    /// Accepts a message: one durable write (nothing when the key exists with the same message)
    /// and the record's receipt; no provider call. A message still `accepted` wakes the
    /// background sender. The receipt of a message not sent yet says why it waits
    /// (`queued`, `throttled`, `waiting_quota`, `ip_banned`, `unavailable`) and until when.
    ///
    /// Errors: `Forbidden` (corp outside the client's list); `KeyReused` (same key, different
    /// corp/body/recipients); `Store`.
    #[instrument(skip_all, fields(client = %client.id, key = %request.key))]
    pub async fn accept(&self, client: &RelayClient, request: &RelaySendRequest) -> Result<RelayReceipt, CloudError> {
        let record = self.store(client, request).await?;
        if record.state == MessageState::Accepted
            && let Some(wakeup) = &self.wakeup
        {
            wakeup.wake();
        }
        Ok(receipt(&record))
    }

    /// Accepts a message and sends it in the caller's task (as [`RelaySend::accept`] followed by
    /// [`RelaySend::deliver`]); for tools and tests that want the outcome of one attempt.
    ///
    /// Errors: those of [`RelaySend::accept`] and [`RelaySend::deliver`].
    #[instrument(skip_all, fields(client = %client.id, key = %request.key))]
    pub async fn execute(&self, client: &RelayClient, request: &RelaySendRequest) -> Result<RelayReceipt, CloudError> {
        ensure_corp(client, &request.corp_id)?;
        // One send per key at a time in this process, so a retried request racing the
        // original can never send a batch twice.
        let _guard = self.claim(&client.id, &request.key)?;
        let record = self.store(client, request).await?;
        self.deliver_claimed(record, None).await
    }

    /// One delivery attempt of a stored message: sends each batch that has neither a `delivery_id`
    /// nor an error, recording each outcome as the provider answers. A message not `accepted` is
    /// returned as it is.
    ///
    /// When the provider fails transiently (or the call is held: throttled, quota, IP ban) the
    /// attempt is recorded with why and when the next is due (0.5 s doubling to 30 s, at least
    /// what the governor or the provider asked) and the receipt stays `accepted`: batches sent so far
    /// keep their task ids and the next attempt sends only the rest. Permanent refusals are
    /// recorded on the batch and the message ends `failed`; an unrecognised errcode counts as
    /// transient until the message is older than the budget
    /// ([`RelaySend::with_unrecognized_budget_secs`]) or has had its attempts
    /// ([`RelaySend::with_unrecognized_max_attempts`]), then as permanent.
    ///
    /// Errors: `Unavailable` when another delivery of the same key is in progress; `Store`.
    #[instrument(skip_all, fields(client = %record.client_id, key = %record.key))]
    pub async fn deliver(&self, record: RelayMessageRecord) -> Result<RelayReceipt, CloudError> {
        let _guard = self.claim(&record.client_id, &record.key)?;
        self.deliver_claimed(record, None).await
    }

    /// One delivery attempt of a message the background sender claimed in the store
    /// ([`RelayMessageStore::claim_due`]), as [`RelaySend::deliver`], fenced by the claim: each
    /// batch is marked started (and the claim extended) before its provider call, and the attempt
    /// stops without calling when another instance has taken the message over. Uncertain batches
    /// are resent or the message held, as the [`UncertainPolicy`] says.
    ///
    /// Errors: `Unavailable` when the claim was lost (nothing more is sent) or another delivery
    /// of the key runs in this process; `Store`.
    #[instrument(skip_all, fields(client = %claimed.record.client_id, key = %claimed.record.key))]
    pub async fn deliver_claim(&self, claimed: ClaimedRelay) -> Result<RelayReceipt, CloudError> {
        let _guard = self.claim(&claimed.record.client_id, &claimed.record.key)?;
        let ClaimedRelay { record, claim, uncertain } = claimed;
        if !uncertain.is_empty() && record.state == MessageState::Accepted {
            let batches: Vec<String> =
                uncertain.iter().map(|(i, at)| format!("{i} (started at {} ms)", at.as_millis())).collect();
            if self.uncertain == UncertainPolicy::Hold {
                let waiting = RelayWaiting {
                    reason: WaitReason::Uncertain,
                    detail: format!(
                        "held: the call for batch {} was started by an instance that stopped before the provider's \
                         answer was recorded, so it may have been sent; `dingbridge relay resend` sends it again, \
                         `dingbridge relay abandon` marks it failed",
                        batches.join(", ")
                    ),
                    // Looked at again hourly (and held again: the batches stay uncertain) until an
                    // operator acts.
                    retry_at: self.clock.now().plus_secs(UNCERTAIN_RECHECK_SECS),
                };
                warn!(batches = %batches.join(", "), "uncertain batches: held for an operator (policy hold)");
                self.messages.record_waiting(&record.client_id, &record.key, &waiting, self.clock.now()).await?;
                let mut record = record;
                record.waiting = Some(waiting);
                return Ok(receipt(&record));
            }
            warn!(
                batches = %batches.join(", "),
                "uncertain batches: sending them again (policy resend; the provider drops a same-day repeat of the \
                 same content to a person)"
            );
        }
        self.deliver_claimed(record, Some(&claim)).await
    }

    async fn deliver_claimed(
        &self,
        mut record: RelayMessageRecord,
        claim: Option<&str>,
    ) -> Result<RelayReceipt, CloudError> {
        if record.state != MessageState::Accepted {
            return Ok(receipt(&record));
        }
        let (client_id, key) = (record.client_id.clone(), record.key.clone());
        for index in 0..record.batches.len() {
            if record.batches[index].is_settled() {
                continue;
            }
            let Some(batch) = self.screen(&mut record, index).await? else {
                continue; // every recipient skipped: nothing to send
            };
            if let Some(claim) = claim {
                let now = self.clock.now();
                let lease_until = domain::Timestamp::from_millis(now.as_millis().saturating_add(self.lease_ms));
                if !self.messages.start_batch(&client_id, &key, index, claim, now, lease_until).await? {
                    warn!(batch = index, "the claim on this message was lost to another instance; not sending");
                    return Err(CloudError::Unavailable(format!(
                        "message {key}: the claim was taken over by another instance"
                    )));
                }
            }
            let idempotency_key = format!("{client_id}/{key}/{index}");
            let result = match self.messenger.send(&record.corp_id, &batch, &record.body, &idempotency_key).await {
                // An unrecognised code is retried until the message's budget is spent, then it is
                // a refusal like any other.
                Err(MessengerError::Upstream(UpstreamError::Unrecognized { code, message }))
                    if self.clock.now().as_millis() - record.created_at.as_millis() >= self.unrecognized_budget_ms =>
                {
                    let message =
                        format!("{message} (unrecognised code, retried for {} s)", self.unrecognized_budget_ms / 1000);
                    Err(MessengerError::Upstream(UpstreamError::Rejected { code, message }))
                }
                // `attempts` counts the earlier failed attempts: this one is attempt `attempts + 1`.
                Err(MessengerError::Upstream(UpstreamError::Unrecognized { code, message }))
                    if record.attempts.saturating_add(1) >= self.unrecognized_max_attempts =>
                {
                    let message = format!(
                        "{message} (unrecognised code, given up after {} attempts)",
                        self.unrecognized_max_attempts
                    );
                    Err(MessengerError::Upstream(UpstreamError::Rejected { code, message }))
                }
                other => other,
            };
            match result {
                Ok(delivery_id) => {
                    self.messages
                        .record_batch(&client_id, &key, index, Some(delivery_id.clone()), None, self.clock.now())
                        .await?;
                    record.batches[index].delivery_id = Some(delivery_id);
                    if let Some(limits) = &self.limits
                        && let Err(err) = limits.record(&record.corp_id, batch.user_ids(), &record.body).await
                    {
                        // The send is recorded; an undercount can only let the provider drop one later,
                        // which its per-recipient result still shows (as `forbidden`).
                        warn!(batch = index, error = %err, "cannot count the recipients of a sent batch");
                    }
                }
                Err(
                    err @ (MessengerError::Upstream(UpstreamError::Rejected { .. }) | MessengerError::CorpNotServed(_)),
                ) => {
                    let error = match err {
                        MessengerError::Upstream(UpstreamError::Rejected { code, message }) => {
                            format!("{code}: {message}")
                        }
                        other => other.to_string(),
                    };
                    warn!(batch = index, %error, "the provider refused a batch");
                    self.messages
                        .record_batch(&client_id, &key, index, None, Some(error.clone()), self.clock.now())
                        .await?;
                    record.batches[index].error = Some(error);
                }
                Err(err) => {
                    // Transient (the provider is down, throttled, quota, IP ban, token refused after a
                    // refresh): the batches sent so far keep their task ids; the next attempt,
                    // when due, sends only the rest.
                    record.attempts = record.attempts.saturating_add(1);
                    let waiting = self.waiting_for(&err, record.attempts);
                    warn!(
                        batch = index,
                        reason = waiting.reason.as_str(),
                        attempts = record.attempts,
                        retry_at = waiting.retry_at.as_millis(),
                        error = %err,
                        "batch not sent yet; waiting"
                    );
                    self.messages.record_waiting(&client_id, &key, &waiting, self.clock.now()).await?;
                    record.waiting = Some(waiting);
                    return Ok(receipt(&record));
                }
            }
        }
        record.state =
            if record.batches.iter().all(|b| b.delivery_id.is_some() || (b.error.is_none() && b.fully_skipped())) {
                MessageState::Sent
            } else {
                MessageState::Failed
            };
        self.messages.set_state(&client_id, &key, record.state, self.clock.now()).await?;
        Ok(receipt(&record))
    }

    /// The recipients of batch `index` to send to: all of them without [`RecipientLimits`];
    /// otherwise those the provider would not silently drop, recording the skipped ones (once per
    /// batch) on the record and in the store. `None` when nobody is left.
    async fn screen(&self, record: &mut RelayMessageRecord, index: usize) -> Result<Option<Batch>, CloudError> {
        let batch = record.batches[index].batch.clone();
        let Some(limits) = &self.limits else { return Ok(Some(batch)) };
        if record.batches[index].skipped.is_empty() && !batch.user_ids().is_empty() {
            let skipped = limits.screen(&record.corp_id, batch.user_ids(), &record.body).await?;
            if !skipped.is_empty() {
                info!(
                    key = %record.key,
                    batch = index,
                    skipped = skipped.len(),
                    "recipients skipped: the provider would answer success and not deliver to them"
                );
                self.messages.record_skipped(&record.client_id, &record.key, index, &skipped, self.clock.now()).await?;
                record.batches[index].skipped = skipped;
            }
        }
        let entry = &record.batches[index];
        if entry.fully_skipped() {
            return Ok(None);
        }
        if entry.skipped.is_empty() {
            return Ok(Some(batch));
        }
        let left: Vec<UserId> =
            batch.user_ids().iter().filter(|u| !entry.skipped.iter().any(|(s, _)| s == *u)).cloned().collect();
        Batch::new(left, batch.dept_ids().to_vec(), batch.to_all())
            .map(Some)
            .map_err(|e| CloudError::Rejected(format!("batch {index} without its skipped recipients: {e}")))
    }

    /// Why a transiently failed attempt waits and when the next is due: attempt `attempts`
    /// (1-based) waits `0.5 s · 2^(attempts−1)` capped at 30 s, and a held call at least as long as
    /// the governor or the provider asked.
    fn waiting_for(&self, err: &MessengerError, attempts: u32) -> RelayWaiting {
        let backoff =
            SEND_RETRY_BASE_MS.saturating_mul(1_i64 << attempts.saturating_sub(1).min(16)).min(SEND_RETRY_MAX_MS);
        let (reason, delay) = match err {
            MessengerError::Upstream(UpstreamError::Held { reason, retry_after_ms, .. }) => {
                (*reason, i64::try_from(*retry_after_ms).unwrap_or(i64::MAX).max(SEND_RETRY_BASE_MS))
            }
            MessengerError::Upstream(UpstreamError::Throttled(_)) => (WaitReason::Throttled, backoff),
            _ => (WaitReason::Unavailable, backoff),
        };
        RelayWaiting {
            reason,
            detail: err.to_string(),
            retry_at: domain::Timestamp::from_millis(self.clock.now().as_millis().saturating_add(delay)),
        }
    }
}
