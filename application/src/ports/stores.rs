//! Storage ports. Each has a SQLite adapter (dev and cloud modes) and, where
//! the local mode needs it, a PostgreSQL adapter. Every method is one
//! transaction: it either happens completely or not at all.

use async_trait::async_trait;
use domain::{
    BatchRecord, CorpId, DeliveryId, LoginAttempt, LoginFailure, MemberProfile, MessageBody, MessageState,
    PkceVerifier, ProviderKey, Recipients, SkipReason, Timestamp, User, UserId,
};

use super::{RelayWaiting, StoreError, WaitReason};

/// What a finished login produced: the member, or why not.
pub type LoginOutcome = Result<MemberProfile, LoginFailure>;

/// Local side: logins in progress, keyed by the SHA-256 of their `state`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Stores a new attempt. `Conflict` if the hash exists (a state collision).
    async fn insert(&self, attempt: &LoginAttempt) -> Result<(), StoreError>;
    /// Removes the attempt and returns it if it was unexpired at `now`
    /// (`expires_at > now`); single use. An expired one is removed and `None`
    /// returned; an unknown hash gives `None`.
    async fn take(&self, state_hash: &str, now: Timestamp) -> Result<Option<LoginAttempt>, StoreError>;
    /// Deletes attempts with `expires_at <= now`; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Cloud side: a login a relay client started (docs/design.md "Login").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginIntent {
    /// SHA-256 hex of the `state`.
    pub state_hash: String,
    /// The relay client that started it.
    pub client_id: String,
    /// The identity provider the person signs in with; its callback must come back on the
    /// same provider's path.
    pub provider: ProviderKey,
    /// The PKCE `code_verifier` whose challenge went into the authorize URL (RFC 7636); `None`
    /// only for intents stored before PKCE was added.
    pub code_verifier: Option<PkceVerifier>,
    /// Where the browser goes after the callback (gets `?state=` appended).
    pub complete_url: String,
    /// The corps this client may sign members of in to.
    pub corp_ids: Vec<CorpId>,
    /// Expiry (10 minutes after creation).
    pub expires_at: Timestamp,
}

/// Cloud side: login intents, keyed by state hash.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LoginIntentStore: Send + Sync {
    /// Stores a new intent. `Conflict` if the hash exists.
    async fn insert(&self, intent: &LoginIntent) -> Result<(), StoreError>;
    /// Removes and returns the intent if unexpired at `now`; single use (as [`LoginAttemptStore::take`]).
    async fn take(&self, state_hash: &str, now: Timestamp) -> Result<Option<LoginIntent>, StoreError>;
    /// Deletes expired intents; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Cloud side: finished logins waiting for their relay client (5 minutes, single use).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LoginResultStore: Send + Sync {
    /// Stores the outcome of the login with `state_hash`, for `client_id` only.
    /// `Conflict` if one is stored already.
    async fn insert(
        &self,
        state_hash: &str,
        client_id: &str,
        outcome: &LoginOutcome,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Removes and returns the outcome if it belongs to `client_id` and is
    /// unexpired at `now`. Another client's result is neither returned nor removed.
    async fn take(&self, state_hash: &str, client_id: &str, now: Timestamp)
    -> Result<Option<LoginOutcome>, StoreError>;
    /// Deletes expired results; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// A signed-in browser session. Only the token's hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 hex of the session token.
    pub token_hash: String,
    /// Local user id.
    pub user_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// Local side: sessions.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session. `Conflict` if the hash exists.
    async fn insert(&self, session: &Session) -> Result<(), StoreError>;
    /// The session if it exists and `expires_at > now`.
    async fn find(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError>;
    /// Deletes one session; `true` if it existed.
    async fn delete(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Deletes every session of a user (when they leave the org); returns how many.
    async fn delete_for_user(&self, user_id: &str) -> Result<u64, StoreError>;
}

/// A page of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUsers {
    /// Only this corp, when set.
    pub corp_id: Option<CorpId>,
    /// Page size, 1–500.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// Local side: users keyed by `(corp_id, union_id)`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts or updates the user with the profile's `(provider, corp_id, union_id)`:
    /// a new user gets `new_id` and `created_at = now`; an existing one keeps
    /// its id and `created_at` and gets every profile field and `updated_at = now`.
    /// Returns the stored user.
    async fn upsert(&self, profile: &MemberProfile, new_id: &str, now: Timestamp) -> Result<User, StoreError>;
    /// By local id.
    async fn find(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// By `userid` within a corp.
    async fn find_by_userid(&self, corp_id: &CorpId, userid: &UserId) -> Result<Option<User>, StoreError>;
    /// A page ordered by `created_at`, then id.
    async fn list(&self, query: &ListUsers) -> Result<Vec<User>, StoreError>;
}

/// Local side: a message a caller asked to send.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Local message id (also the relay idempotency key).
    pub id: String,
    /// The corp it is sent in.
    pub corp_id: CorpId,
    /// The body.
    pub body: MessageBody,
    /// Resolved recipients.
    pub recipients: Recipients,
    /// Current state.
    pub state: MessageState,
    /// Delivery ids, one per batch sent so far.
    pub delivery_ids: Vec<DeliveryId>,
    /// Why the message failed, or why the last relay attempt failed.
    pub error: Option<String>,
    /// The caller's `Idempotency-Key`, unique when present.
    pub idempotency_key: Option<String>,
    /// Relay attempts made so far.
    pub attempts: u32,
    /// When the dispatcher may try (again); a claim pushes it forward as a lease.
    pub next_attempt_at: Timestamp,
    /// When the cloud first acknowledged it.
    pub relayed_at: Option<Timestamp>,
    /// When every batch had a task id.
    pub sent_at: Option<Timestamp>,
    /// When it reached `completed`, `failed` or `recalled`.
    pub finished_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMessages {
    /// Only this state.
    pub state: Option<MessageState>,
    /// Only messages created at or after this instant.
    pub since: Option<Timestamp>,
    /// Page size, 1–500.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// Local side: messages (the outbox).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a new message with its recipients (one transaction). `Conflict` if the id or the
    /// idempotency key exists.
    async fn insert(&self, record: &MessageRecord) -> Result<(), StoreError>;
    /// By id.
    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// By the caller's idempotency key.
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// Sets state, task ids, error and `updated_at`; stamps `relayed_at` / `sent_at` /
    /// `finished_at` (`completed`, `failed`, `recalled`) the first time the state reaches them.
    /// `Other` if the id is unknown.
    async fn update(
        &self,
        id: &str,
        state: MessageState,
        delivery_ids: &[DeliveryId],
        error: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Claims up to `limit` pending messages (`accepted` or `relayed`) with
    /// `next_attempt_at <= now`, oldest first, by setting their `next_attempt_at` to
    /// `lease_until` and incrementing `attempts`, and returns them (as updated). Safe with
    /// several dispatchers at once: a message is claimed by one (the update re-checks the due conditions on
    /// each row, so a dispatcher that loses a race simply gets fewer messages).
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Sets when the dispatcher may try again, and the last error.
    async fn reschedule(&self, id: &str, next_attempt_at: Timestamp, error: Option<String>) -> Result<(), StoreError>;
    /// A page of messages, newest first.
    async fn list(&self, query: &ListMessages) -> Result<Vec<MessageRecord>, StoreError>;
}

/// Cloud side: a message a relay client asked to send, recorded before any
/// provider call, with one [`BatchRecord`] per batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayMessageRecord {
    /// The relay client.
    pub client_id: String,
    /// The client's idempotency key (its message id).
    pub key: String,
    /// The corp.
    pub corp_id: CorpId,
    /// The body.
    pub body: MessageBody,
    /// The batches, in order, with their task ids once sent.
    pub batches: Vec<BatchRecord>,
    /// Current state.
    pub state: MessageState,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Delivery attempts by the sender that ended waiting (throttled, quota, unavailable…); 0 for
    /// a message sent on its first attempt.
    pub attempts: u32,
    /// Why the message waits and when its next attempt is due, while it is `accepted` and an
    /// attempt ended transiently; `None` before the first attempt and once it left `accepted`.
    pub waiting: Option<RelayWaiting>,
}

/// A relayed message the background sender claimed ([`RelayMessageStore::claim_due`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRelay {
    /// The message as stored.
    pub record: RelayMessageRecord,
    /// The claim's token (fences every call made for the message under this claim).
    pub claim: String,
    /// Batches (0-based index, when their call started) whose call an earlier claim started and
    /// whose outcome was never recorded: the claimer died or lost its lease mid-call, so the
    /// provider may or may not have sent them.
    pub uncertain: Vec<(usize, Timestamp)>,
}

/// Cloud side: relayed messages keyed by `(client_id, key)`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RelayMessageStore: Send + Sync {
    /// Inserts the record unless `(client_id, key)` exists. Returns the stored
    /// record (the existing one when it existed) and whether it was created.
    async fn insert_or_get(&self, record: &RelayMessageRecord) -> Result<(RelayMessageRecord, bool), StoreError>;
    /// By client and key.
    async fn get(&self, client_id: &str, key: &str) -> Result<Option<RelayMessageRecord>, StoreError>;
    /// Records the outcome of batch `index` (0-based): its `delivery_id` or its error.
    async fn record_batch(
        &self,
        client_id: &str,
        key: &str,
        index: usize,
        delivery_id: Option<DeliveryId>,
        error: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Records the recipients of batch `index` (0-based) the cloud skipped, with why.
    async fn record_skipped(
        &self,
        client_id: &str,
        key: &str,
        index: usize,
        skipped: &[(UserId, SkipReason)],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Sets the state and releases any claim.
    async fn set_state(
        &self,
        client_id: &str,
        key: &str,
        state: MessageState,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Up to `limit` messages (of every client) in `state` created at or after `created_after`
    /// and reconciled fewer than `max_rounds` times, least recently updated first (for background
    /// reconciliation within its budget).
    async fn list_in_state(
        &self,
        state: MessageState,
        created_after: Timestamp,
        max_rounds: u32,
        limit: u32,
    ) -> Result<Vec<RelayMessageRecord>, StoreError>;
    /// Records one reconciliation round of a message: sets its state (as
    /// [`RelayMessageStore::set_state`]) and counts the round.
    async fn record_reconcile_round(
        &self,
        client_id: &str,
        key: &str,
        state: MessageState,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Claims up to `limit` `accepted` messages (of every client) whose next attempt is due at
    /// `now` (never attempted, or `waiting.retry_at <= now`) and that no unexpired claim holds,
    /// the oldest first — the background sender's queue. Each is claimed for `claim` (the
    /// claimer's token) until `lease_until`; of instances claiming at once each message goes to
    /// one (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: its single writer), and a claimer that
    /// dies leaves it to others once the lease ends. Each claimed message lists its *uncertain*
    /// batches: started under an earlier claim ([`RelayMessageStore::start_batch`]) with neither
    /// a `delivery_id` nor an error recorded.
    async fn claim_due(
        &self,
        claim: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRelay>, StoreError>;
    /// Marks batch `index` (0-based) as handed to the provider at `now` and extends the claim to
    /// `lease_until`, if `claim` still holds the message (and it is still `accepted`). `false`
    /// when it does not: another instance took the message over after the lease ended, and this
    /// one must not call the provider for it.
    async fn start_batch(
        &self,
        client_id: &str,
        key: &str,
        index: usize,
        claim: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Makes one `accepted` message held for `reason` due at `now` and forgets that its batches
    /// were started (an operator resends an uncertain message); `false` when no such message waits.
    async fn release_one(
        &self,
        client_id: &str,
        key: &str,
        reason: WaitReason,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Records a delivery attempt that ended waiting: counts the attempt and stores `waiting`
    /// (reason, detail, `retry_at`) and `updated_at = now`, and releases the claim. Unless the
    /// reason is `uncertain` it also forgets that its batches were started (the attempt saw their
    /// outcome: not sent). A message that does not exist is an error.
    async fn record_waiting(
        &self,
        client_id: &str,
        key: &str,
        waiting: &RelayWaiting,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Makes every `accepted` message of `corp_id` waiting for `reason` due at `now` (an operator
    /// resumed the quota); returns how many.
    async fn release_waiting(&self, corp_id: &CorpId, reason: WaitReason, now: Timestamp) -> Result<u64, StoreError>;
}

/// A member bound to an account of the enterprise system (the seed's
/// `staff_id` + `tenant_id`), so callers can address people by their own ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Local user id.
    pub user_id: String,
    /// The enterprise system's account id (1–128 characters).
    pub external_id: String,
    /// The enterprise system's tenant, when it has several (1–128 characters).
    pub tenant_id: Option<String>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Local side: bindings, one per user; `(tenant_id, external_id)` is unique
/// (a missing tenant counts as one tenant).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait BindingStore: Send + Sync {
    /// Creates or replaces the user's binding. `Conflict` when another user
    /// already has that `(tenant_id, external_id)`; `Other` when the user does not exist.
    async fn put(&self, binding: &Binding) -> Result<(), StoreError>;
    /// The user's binding.
    async fn get(&self, user_id: &str) -> Result<Option<Binding>, StoreError>;
    /// The binding with that external id in that tenant.
    async fn find_by_external_id(
        &self,
        tenant_id: Option<String>,
        external_id: &str,
    ) -> Result<Option<Binding>, StoreError>;
}

/// Local side: how far this deployment has applied a feed it follows (the cloud's contact-event
/// feed), so a restart neither skips nor re-applies events. One row per feed name.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait FeedCursorStore: Send + Sync {
    /// The stored cursor of feed `name`; `None` before the first [`FeedCursorStore::save_cursor`].
    async fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError>;
    /// Stores `cursor` (the last applied event's) for feed `name` with `updated_at = now`, unless
    /// a larger cursor is stored already: the stored cursor never moves back, even with several
    /// pollers on one database.
    async fn save_cursor(&self, name: &str, cursor: i64, now: Timestamp) -> Result<(), StoreError>;
}

/// One tenant's metered provider API calls in one month (see [`QuotaStore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The tenant (`corp_id`) whose quota the calls count against.
    pub tenant: String,
    /// The month, `YYYY-MM` in the provider's billing time zone.
    pub month: String,
    /// Metered calls this service made in that month.
    pub metered_calls: u64,
    /// Whether the provider refused a call because the month's quota is gone,
    /// and no operator has resumed sending since.
    pub exhausted: bool,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// Cloud side: the quota accounting of metered provider API calls, per tenant per month
/// (a provider may meter some APIs per month; its adapter documents which and how many). One row
/// per (tenant, month);
/// rows of past months stay as history.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Adds `calls` to `tenant`'s count for `month` (creating the row) and returns the new count.
    /// Concurrent adds never lose a call (one atomic upsert).
    async fn add_metered_calls(&self, tenant: &str, month: &str, calls: u64, now: Timestamp)
    -> Result<u64, StoreError>;
    /// Marks `tenant`'s `month` exhausted (the provider refused a call for quota) or not (an
    /// operator resumed sending), creating the row if needed.
    async fn set_exhausted(&self, tenant: &str, month: &str, exhausted: bool, now: Timestamp)
    -> Result<(), StoreError>;
    /// `tenant`'s row for `month`; `None` before its first metered call or mark.
    async fn quota_usage(&self, tenant: &str, month: &str) -> Result<Option<QuotaUsage>, StoreError>;
    /// Every tenant's row for `month`, ordered by tenant.
    async fn quota_month(&self, month: &str) -> Result<Vec<QuotaUsage>, StoreError>;
}

/// Cloud side: what each person received per tenant and day, so the cloud knows before sending
/// whether the provider would silently drop a message (see [`crate::ports::RecipientLimits`]).
/// `day` is the provider's calendar day (`YYYY-MM-DD`, in its time zone); `content` a digest of
/// the message body. Rows of past days are purged.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RecipientLedgerStore: Send + Sync {
    /// How many messages each of `userids` received in `tenant` on `day` (users with none are absent).
    async fn received_on(&self, tenant: &str, day: &str, userids: &[String]) -> Result<Vec<(String, u64)>, StoreError>;
    /// Which of `userids` received `content` in `tenant` on `day`.
    async fn received_content(
        &self,
        tenant: &str,
        day: &str,
        content: &str,
        userids: &[String],
    ) -> Result<Vec<String>, StoreError>;
    /// Counts one message with `content` for each of `userids` in `tenant` on `day`, atomically.
    async fn record_received(
        &self,
        tenant: &str,
        day: &str,
        content: &str,
        userids: &[String],
    ) -> Result<(), StoreError>;
    /// Deletes the rows of days before `day`; returns how many.
    async fn purge_days_before(&self, day: &str) -> Result<u64, StoreError>;
}
