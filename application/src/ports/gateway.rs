//! What local asks of the cloud (docs/design.md "Ports": `CloudGateway`).

use async_trait::async_trait;
use domain::{
    CorpId, DeliveryId, DeliveryReport, LoginState, MemberProfile, MessageBody, MessageState, ProviderKey, Recipients,
    Timestamp, UnionId, UserId,
};

use super::{ContactFeedPage, GatewayError, LoginOutcome, WaitReason};

/// A local deployment the cloud serves, as configured on the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayClient {
    /// Client id (the HTTP Basic user name).
    pub id: String,
    /// Corps it may act for. Never empty.
    pub corp_ids: Vec<CorpId>,
    /// Origins (`scheme://host[:port]`) its `complete_url`s may use.
    pub complete_url_origins: Vec<String>,
}

/// A message for the cloud to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RelaySendRequest {
    /// Idempotency key: the local message id. The same key never sends twice.
    pub key: String,
    /// The corp.
    pub corp_id: CorpId,
    /// Recipients.
    pub recipients: Recipients,
    /// The body.
    pub body: MessageBody,
}

/// The cloud's record of a relayed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReceipt {
    /// The idempotency key.
    pub key: String,
    /// State on the cloud.
    pub state: MessageState,
    /// Delivery ids of the batches sent so far.
    pub delivery_ids: Vec<DeliveryId>,
    /// Errors of batches the provider refused.
    pub errors: Vec<String>,
    /// Why batches are not sent yet, while the message is `accepted`: queued for the background
    /// sender, or the transient failure that stopped the last attempt (the provider throttled
    /// the call, the corp's monthly quota is exhausted, the egress IP is banned, the provider is
    /// unavailable), with when the next attempt is due. `None` in every other state.
    pub waiting: Option<RelayWaiting>,
}

/// Why an accepted relayed message waits, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayWaiting {
    /// The machine code ([`WaitReason::as_str`]).
    pub reason: WaitReason,
    /// What happened, for people (the provider's code and message when it answered).
    pub detail: String,
    /// When the next attempt is due (epoch ms); the sender does not try before.
    pub retry_at: Timestamp,
}

/// How to name a member when fetching one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKey {
    /// By `userid`.
    UserId(UserId),
    /// By `unionId`.
    UnionId(UnionId),
}

/// Local → cloud. Dev mode calls the cloud use cases in process; local mode
/// calls the cloud's relay API over HTTP (outbound only).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CloudGateway: Send + Sync {
    /// Registers a login intent with `provider` and returns that provider's authorize URL.
    /// `Forbidden` when `complete_url` is outside the client's origins; `Invalid` when the
    /// cloud serves no such provider.
    async fn start_login(
        &self,
        provider: &ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, GatewayError>;
    /// Takes (single use) the outcome of the login with `state`.
    /// `NotFound` when unknown, expired, already taken, or another client's.
    async fn take_login_result(&self, state: &LoginState) -> Result<LoginOutcome, GatewayError>;
    /// Sends a message; idempotent on `request.key`.
    async fn send_message(&self, request: &RelaySendRequest) -> Result<RelayReceipt, GatewayError>;
    /// The cloud's record and the provider's per-recipient report for a message.
    async fn message_status(&self, key: &str) -> Result<(RelayReceipt, DeliveryReport), GatewayError>;
    /// Recalls a message (within 24 h of the send).
    async fn recall_message(&self, key: &str) -> Result<RelayReceipt, GatewayError>;
    /// Fetches a member's current profile. `NotMember` when not in the corp.
    async fn get_member(&self, corp_id: &CorpId, key: &MemberKey) -> Result<MemberProfile, GatewayError>;
    /// Long-polls the contact-event feed of the client's corps: events with `cursor > after`
    /// (`after` ≥ 0), in cursor order; when there are none yet, waits up to `wait_secs` seconds
    /// (0–30) for one and answers an empty page if none arrives. `Invalid` for an out-of-range
    /// argument; `Unavailable` when the cloud cannot be reached.
    async fn contact_events(&self, after: i64, wait_secs: u32) -> Result<ContactFeedPage, GatewayError>;
}
