//! Messages on local: accepting one into the outbox, its status and recall through the cloud,
//! listing them, and the waiting errors the dispatcher writes.

use std::sync::Arc;

use domain::{
    CorpId, DeliveryReport, DeptId, MessageBody, MessageState, Recipients, Timestamp, UserId, ValidationError,
};
use tracing::{info, instrument, warn};

use crate::ports::{
    BindingStore, Clock, CloudGateway, DispatchTrigger, GatewayError, ListMessages, MessageRecord, MessageRules,
    MessageStore, RandomSource, RelayReceipt, RelayWaiting, StoreError, UserRepository, WaitReason,
};

/// Errors of the directory and message use cases.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The request is invalid; the error names the field.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Some local user ids (or `external:<id>` binding ids) are unknown; nothing was stored.
    #[error("unknown recipients: {}", .0.join(", "))]
    UnknownUsers(Vec<String>),
    /// The binding's external id already belongs to another user.
    #[error("{0}")]
    Conflict(String),
    /// The `Idempotency-Key` was used before with a different message.
    #[error("the idempotency key was used with a different message")]
    KeyReused,
    /// No such message or user.
    #[error("not found")]
    NotFound,
    /// The cloud or the provider refused (e.g. recall after 24 h).
    #[error("refused: {0}")]
    Rejected(String),
    /// The cloud (or the provider behind it) could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GatewayError> for MessageError {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::NotFound => Self::NotFound,
            GatewayError::Unavailable(msg) => Self::Unavailable(msg),
            other => Self::Rejected(other.to_string()),
        }
    }
}

/// A request to send a work notification, already parsed at the edge.
#[derive(Debug, Clone)]
pub struct SendMessageCommand {
    /// The corp; defaults to the recipients' corp, then the configured default corp.
    pub corp_id: Option<CorpId>,
    /// Local user ids (resolved to the members' userids).
    pub user_ids: Vec<String>,
    /// The members' userids.
    pub userids: Vec<UserId>,
    /// Binding external ids (the enterprise system's account ids), resolved within `tenant_id`.
    pub external_ids: Vec<String>,
    /// Tenant of `external_ids` (none: the default tenant).
    pub tenant_id: Option<String>,
    /// Department ids (≤20).
    pub dept_ids: Vec<DeptId>,
    /// Everyone in the corp (the lists must then be empty).
    pub to_all: bool,
    /// The body.
    pub body: MessageBody,
    /// The caller's `Idempotency-Key` (1–128 printable ASCII characters): the same key with the
    /// same message returns the first message; with a different one, `KeyReused`.
    pub idempotency_key: Option<String>,
}

/// Accepts a message into the outbox: resolves recipients and stores the message with them in one
/// transaction; the [`DispatchOutbox`](super::DispatchOutbox) relays it to the cloud afterwards.
pub struct SendMessage {
    users: Arc<dyn UserRepository>,
    bindings: Arc<dyn BindingStore>,
    messages: Arc<dyn MessageStore>,
    trigger: Arc<dyn DispatchTrigger>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    corps: Vec<CorpId>,
    rules: Option<MessageRules>,
}

impl SendMessage {
    /// Builds the use case. `corps` are the corps this deployment serves (its relay client's):
    /// a message for any other corp is refused before anything is stored; the first is the
    /// default when neither the request nor its recipients name a corp. Empty: not known here
    /// (a seed configuration names none), so only the cloud refuses a foreign corp.
    pub fn new(
        users: Arc<dyn UserRepository>,
        bindings: Arc<dyn BindingStore>,
        messages: Arc<dyn MessageStore>,
        trigger: Arc<dyn DispatchTrigger>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        corps: Vec<CorpId>,
    ) -> Self {
        Self { users, bindings, messages, trigger, random, clock, corps, rules: None }
    }

    /// Checks every body by the rules of its tenant's provider ([`MessageRules`]) before it is
    /// stored, so a body the provider would refuse is a 4xx now rather than a failed message
    /// later. Without it only the neutral checks of `domain::MessageBody::parse` apply (the cloud
    /// still checks).
    #[must_use]
    pub fn with_body_rules(mut self, rules: MessageRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Errors (nothing stored): `Invalid` (field named), `UnknownUsers` (unknown or inactive
    /// local users, unknown bindings), `KeyReused`, `Store`. Returns the stored message in state
    /// `accepted` (or, for a repeated idempotency key, the message first stored under it).
    #[instrument(skip_all, fields(recipients = command.user_ids.len() + command.userids.len() + command.external_ids.len()))]
    pub async fn execute(&self, command: SendMessageCommand) -> Result<MessageRecord, MessageError> {
        let key = command.idempotency_key.as_deref().map(idempotency_key).transpose()?;
        let (recipients, corp_id) = self.resolve(&command).await?;
        if let Some(rules) = &self.rules {
            rules.check(&corp_id, &command.body, &recipients)?;
        }
        if let Some(key) = &key
            && let Some(existing) = self.messages.find_by_idempotency_key(key).await?
        {
            return same_request(existing, &corp_id, &recipients, &command.body);
        }
        let now = self.clock.now();
        let record = MessageRecord {
            id: self.random.new_id(),
            corp_id,
            body: command.body,
            recipients,
            state: MessageState::Accepted,
            delivery_ids: Vec::new(),
            error: None,
            idempotency_key: key.clone(),
            attempts: 0,
            next_attempt_at: now,
            relayed_at: None,
            sent_at: None,
            finished_at: None,
            created_at: now,
            updated_at: now,
        };
        match self.messages.insert(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict(detail)) if key.is_some() => {
                // A concurrent request with the same key won the race.
                let existing = self
                    .messages
                    .find_by_idempotency_key(key.as_deref().unwrap_or_default())
                    .await?
                    .ok_or(StoreError::Conflict(detail))?;
                return same_request(existing, &record.corp_id, &record.recipients, &record.body);
            }
            Err(other) => return Err(other.into()),
        }
        self.trigger.wake();
        info!(id = %record.id, batches = record.recipients.batches().len(), "message accepted");
        Ok(record)
    }

    async fn resolve(&self, command: &SendMessageCommand) -> Result<(Recipients, CorpId), MessageError> {
        let mut userids = command.userids.clone();
        let mut unknown = Vec::new();
        let mut corp = command.corp_id.clone();
        let mut local_ids = command.user_ids.clone();
        for external_id in &command.external_ids {
            match self.bindings.find_by_external_id(command.tenant_id.clone(), external_id).await? {
                Some(binding) => local_ids.push(binding.user_id),
                None => unknown.push(format!("external:{external_id}")),
            }
        }
        for id in &local_ids {
            match self.users.find(id).await? {
                Some(user) if !user.profile.active => unknown.push(format!("inactive:{id}")),
                Some(user) => {
                    let user_corp = &user.profile.corp_id;
                    match &corp {
                        Some(c) if c != user_corp => {
                            return Err(ValidationError::new(
                                "recipients.user_ids",
                                "invalid",
                                format!("user {id} belongs to corp {user_corp}, not {c}"),
                            )
                            .into());
                        }
                        _ => corp = Some(user_corp.clone()),
                    }
                    userids.push(user.profile.userid);
                }
                None => unknown.push(id.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(MessageError::UnknownUsers(unknown));
        }
        let corp = corp.or_else(|| self.corps.first().cloned()).ok_or_else(|| {
            ValidationError::new("corp_id", "required", "corp_id is required: no recipient or default names a corp")
        })?;
        if !self.corps.is_empty() && !self.corps.contains(&corp) {
            let served = self.corps.iter().map(CorpId::as_str).collect::<Vec<_>>().join(", ");
            return Err(ValidationError::new(
                "corp_id",
                "not_served",
                format!("corp {corp} is not served by this deployment (it serves: {served})"),
            )
            .into());
        }
        let recipients = if command.to_all {
            if !userids.is_empty() || !command.dept_ids.is_empty() {
                return Err(ValidationError::new(
                    "recipients.to_all",
                    "invalid",
                    "recipients.to_all cannot be combined with user or department ids",
                )
                .into());
            }
            Recipients::everyone()
        } else {
            Recipients::new(userids, command.dept_ids.clone())?
        };
        Ok((recipients, corp))
    }
}

fn idempotency_key(raw: &str) -> Result<String, ValidationError> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "Idempotency-Key",
            "invalid",
            "the Idempotency-Key header must be 1–128 printable ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

fn same_request(
    existing: MessageRecord,
    corp_id: &CorpId,
    recipients: &Recipients,
    body: &MessageBody,
) -> Result<MessageRecord, MessageError> {
    if &existing.corp_id == corp_id && &existing.recipients == recipients && &existing.body == body {
        Ok(existing)
    } else {
        Err(MessageError::KeyReused)
    }
}

/// Local state for a cloud receipt: the cloud's `accepted` (recorded, batches still waiting for
/// the provider) is local's `relayed`.
fn local_state(receipt: &RelayReceipt) -> MessageState {
    match receipt.state {
        MessageState::Accepted => MessageState::Relayed,
        other => other,
    }
}

/// Sets `updated_at` and, the first time the state reaches them, `relayed_at` / `sent_at` /
/// `finished_at` — the same rule [`MessageStore::update`] applies in storage.
fn stamp(record: &mut MessageRecord, now: Timestamp) {
    use MessageState::{Completed, Failed, Recalled, Relayed, Sent};
    record.updated_at = now;
    if matches!(record.state, Relayed | Sent | Completed | Recalled) {
        record.relayed_at.get_or_insert(now);
    }
    if matches!(record.state, Sent | Completed | Recalled) {
        record.sent_at.get_or_insert(now);
    }
    if matches!(record.state, Completed | Failed | Recalled) {
        record.finished_at.get_or_insert(now);
    }
}

pub(super) fn apply_receipt(record: &mut MessageRecord, receipt: &RelayReceipt) {
    record.state = local_state(receipt);
    record.delivery_ids.clone_from(&receipt.delivery_ids);
    record.error = (!receipt.errors.is_empty()).then(|| receipt.errors.join("; "));
}

/// A message with the provider's per-recipient report when it has been sent.
#[derive(Debug, Clone)]
pub struct MessageView {
    /// The local record.
    pub record: MessageRecord,
    /// The provider's report (`None` until the cloud has sent it).
    pub report: Option<DeliveryReport>,
}

/// Reports a message's state and per-recipient outcome.
pub struct MessageStatus {
    messages: Arc<dyn MessageStore>,
    gateway: Arc<dyn CloudGateway>,
    clock: Arc<dyn Clock>,
}

impl MessageStatus {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn MessageStore>, gateway: Arc<dyn CloudGateway>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, gateway, clock }
    }

    /// Errors: `NotFound`; `Store`. When the cloud cannot be reached the
    /// stored record is returned without a report.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<MessageView, MessageError> {
        let mut record = self.messages.get(id).await?.ok_or(MessageError::NotFound)?;
        // Not sent yet: nothing to report. (A sent message can have no task: every recipient
        // skipped because the provider would have dropped it; the cloud's report says so.)
        if record.delivery_ids.is_empty() && record.state.is_pending() {
            return Ok(MessageView { record, report: None });
        }
        match self.gateway.message_status(id).await {
            Ok((receipt, report)) => {
                if local_state(&receipt) != record.state {
                    apply_receipt(&mut record, &receipt);
                    stamp(&mut record, self.clock.now());
                    self.messages
                        .update(id, record.state, &record.delivery_ids, record.error.clone(), record.updated_at)
                        .await?;
                }
                Ok(MessageView { record, report: Some(report) })
            }
            Err(err) => {
                warn!(error = %err, "delivery report unavailable");
                Ok(MessageView { record, report: None })
            }
        }
    }
}

/// Recalls a message (within 24 h of the send).
pub struct RecallMessage {
    messages: Arc<dyn MessageStore>,
    gateway: Arc<dyn CloudGateway>,
    clock: Arc<dyn Clock>,
}

impl RecallMessage {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn MessageStore>, gateway: Arc<dyn CloudGateway>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, gateway, clock }
    }

    /// Errors: `NotFound`; `Rejected` (not sent yet, older than 24 h, or
    /// the provider refused); `Unavailable`; `Store`.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<MessageRecord, MessageError> {
        let mut record = self.messages.get(id).await?.ok_or(MessageError::NotFound)?;
        if record.delivery_ids.is_empty() {
            return Err(MessageError::Rejected("the message has not been sent, so there is nothing to recall".into()));
        }
        let receipt = self.gateway.recall_message(id).await?;
        apply_receipt(&mut record, &receipt);
        stamp(&mut record, self.clock.now());
        self.messages.update(id, record.state, &record.delivery_ids, record.error.clone(), record.updated_at).await?;
        Ok(record)
    }
}

/// Lists messages, newest first.
pub struct ListMessagesQuery {
    messages: Arc<dyn MessageStore>,
}

impl ListMessagesQuery {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn MessageStore>) -> Self {
        Self { messages }
    }

    /// A page (`limit` clamped to 1–500). Errors: `Store`.
    pub async fn execute(&self, mut query: ListMessages) -> Result<Vec<MessageRecord>, MessageError> {
        query.limit = query.limit.clamp(1, 500);
        Ok(self.messages.list(&query).await?)
    }
}

/// The error a pending message carries while the cloud waits: `waiting for the provider
/// (<code>): <detail>` ([`waiting_reason`] reads the code back).
pub fn waiting_error(waiting: &RelayWaiting) -> String {
    format!("{WAITING_PREFIX}{}): {}", waiting.reason.as_str(), waiting.detail)
}

/// How [`waiting_error`] begins.
const WAITING_PREFIX: &str = "waiting for the provider (";

/// The reason code in an error written by [`waiting_error`] — or written before providers were
/// side by side, when the provider's name stood in place of `the provider` (such rows may still
/// be stored); `None` for any other error.
pub fn waiting_reason(error: &str) -> Option<WaitReason> {
    let rest = error.strip_prefix(WAITING_PREFIX).or_else(|| {
        let (name, rest) = error.strip_prefix("waiting for ")?.split_once(" (")?;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic())).then_some(rest)
    })?;
    WaitReason::parse(rest.split_once(')')?.0)
}
