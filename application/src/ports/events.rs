//! Cloud-side storage for providers' event callbacks: a third-party suite's tickets,
//! corp authorizations of a third-party suite, replay protection, and the
//! ordered per-corp feed of contact events that local deployments pull
//! (`GET /relay/v1/events`), with the [`FeedSignal`] that wakes their long-polls.

use std::time::Duration;

use async_trait::async_trait;
use domain::{AgentId, CorpId, DeptId, Timestamp, UserId};

use super::StoreError;

/// The latest `suite_ticket` the provider pushed for a suite: kept without expiry; a
/// new one replaces the old. One row per suite key — never keyed by corp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteTicket {
    /// The suite's key (SuiteKey / Client ID).
    pub suite_key: String,
    /// The ticket.
    pub ticket: String,
    /// When it arrived.
    pub updated_at: Timestamp,
}

/// A corp's authorization of a third-party suite (the provider's authorization events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpAuthorization {
    /// The suite.
    pub suite_key: String,
    /// The authorizing corp.
    pub corp_id: CorpId,
    /// The suite's agent id in that corp (work notifications are sent as it).
    pub agent_id: Option<AgentId>,
    /// The permanent code, when the provider sent one (a secret: never logged or returned).
    pub permanent_code: Option<String>,
    /// `false` once the corp removed the authorization (`suite_relieve`, `org_suite_relieve`).
    pub active: bool,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What changed in a tenant's directory: each provider's adapter maps its own contact events to
/// these (and names them on the wire and in storage; the core never sees a provider's names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DirectoryChange {
    /// People joined the org.
    MemberJoined,
    /// People's details changed.
    MemberChanged,
    /// People activated their accounts.
    MemberActivated,
    /// People left the org: their local sessions end.
    MemberLeft,
    /// Departments were created.
    DepartmentCreated,
    /// Departments changed.
    DepartmentChanged,
    /// Departments were removed.
    DepartmentRemoved,
    /// Any other change, by the name the provider's adapter gave it: kept in the feed,
    /// acknowledged and not applied.
    Other(String),
}

impl DirectoryChange {
    /// Whether the change is about members (joined, changed, activated, left), so the local
    /// directory applies it per affected person.
    pub fn is_member_change(&self) -> bool {
        matches!(self, Self::MemberJoined | Self::MemberChanged | Self::MemberActivated | Self::MemberLeft)
    }
}

/// A contact change in a corp, as the directory feed carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEvent {
    /// The corp.
    pub corp_id: CorpId,
    /// The provider's event id, or a digest of the payload when absent: the dedup key.
    pub event_id: String,
    /// What changed.
    pub change: DirectoryChange,
    /// Affected members (`UserId` / `userId`).
    pub userids: Vec<UserId>,
    /// Affected departments (`DeptId` / `deptId`).
    pub dept_ids: Vec<DeptId>,
    /// When it arrived at the cloud.
    pub received_at: Timestamp,
}

/// A contact event with its position in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Strictly increasing position across the whole feed (a local's cursor).
    pub cursor: i64,
    /// The event.
    pub event: ContactEvent,
}

/// One page of the contact-event feed as a relay client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFeedPage {
    /// Events with `cursor > after`, in cursor order (only the client's corps).
    pub entries: Vec<FeedEntry>,
    /// Where the next read starts: the last entry's cursor, or `after` when the page is empty.
    pub next: i64,
}

impl ContactFeedPage {
    /// The page read after cursor `after`: `next` is the last entry's cursor, or `after`.
    pub fn new(after: i64, entries: Vec<FeedEntry>) -> Self {
        let next = entries.last().map_or(after, |entry| entry.cursor);
        Self { entries, next }
    }
}

/// Suite tickets and corp authorizations.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SuiteStore: Send + Sync {
    /// Stores the suite's latest ticket, replacing any previous one.
    async fn put_ticket(&self, suite_key: &str, ticket: &str, now: Timestamp) -> Result<(), StoreError>;
    /// The suite's latest ticket.
    async fn ticket(&self, suite_key: &str) -> Result<Option<SuiteTicket>, StoreError>;
    /// Creates or replaces the authorization of `(suite_key, corp_id)`.
    async fn put_authorization(&self, authorization: &CorpAuthorization) -> Result<(), StoreError>;
    /// The authorization of `(suite_key, corp_id)`, active or not.
    async fn authorization(&self, suite_key: &str, corp_id: &CorpId) -> Result<Option<CorpAuthorization>, StoreError>;
    /// Every authorization of the suite.
    async fn authorizations(&self, suite_key: &str) -> Result<Vec<CorpAuthorization>, StoreError>;
}

/// Replay protection and the contact-event feed.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records that a callback with `nonce` for `owner` (AppKey, corp id or SuiteKey) was seen,
    /// to be remembered until `keep_until`. Returns `false` when it was already seen and is still
    /// remembered (a replay: `keep_until >= now`). An expired copy of the same nonce is renewed in
    /// place; other expired nonces are left to [`EventStore::purge_expired_nonces`], so the cost of
    /// a callback never depends on how many nonces have expired.
    async fn remember_nonce(
        &self,
        owner: &str,
        nonce: &str,
        now: Timestamp,
        keep_until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Forgets a remembered nonce (when handling its push failed, so the provider's retry with the
    /// same nonce is not mistaken for a replay).
    async fn forget_nonce(&self, owner: &str, nonce: &str) -> Result<(), StoreError>;
    /// Deletes nonces whose `keep_until` is before `now`, about `limit` at a time (the oldest
    /// first; rows sharing the boundary `keep_until` go together, so a batch may exceed `limit`
    /// slightly). Returns how many were deleted; fewer than `limit` means none are left. Run in
    /// the background in a loop, never inside a request.
    async fn purge_expired_nonces(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError>;
    /// Appends a contact event unless an event with the same `(corp_id, event_id)` exists.
    /// Returns its cursor, or `None` for a duplicate.
    async fn append(&self, event: &ContactEvent) -> Result<Option<i64>, StoreError>;
    /// A push of contact events as one write: remembers `nonce` (as
    /// [`EventStore::remember_nonce`]) and appends `events` in order (as [`EventStore::append`]),
    /// all or nothing. Returns `None` when the nonce is a replay (nothing is written), else each
    /// event's cursor, `None` for a duplicate. On an error nothing is written, so the provider's retry
    /// of the push (same nonce) is not mistaken for a replay.
    async fn remember_and_append(
        &self,
        owner: &str,
        nonce: &str,
        now: Timestamp,
        keep_until: Timestamp,
        events: &[ContactEvent],
    ) -> Result<Option<Vec<Option<i64>>>, StoreError>;
    /// Up to `limit` events of `corp_ids` with `cursor > after`, in cursor order.
    async fn read_after(&self, corp_ids: &[CorpId], after: i64, limit: u32) -> Result<Vec<FeedEntry>, StoreError>;
}

/// Wakes long-polling readers of the contact-event feed when it grows (cloud side). Appends made
/// through the same store in this process signal it; a reader that misses a signal (another
/// process appended) still finds the event on its next read, at the latest after its wait.
///
/// Race-free use: read [`FeedSignal::version`] *before* reading the feed, then wait with
/// [`FeedSignal::wait_past`] on that version, so an append between the read and the wait is
/// not missed.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait FeedSignal: Send + Sync {
    /// A counter that changes on every append (only changes matter, not the value).
    fn version(&self) -> u64;
    /// Resolves `true` as soon as the counter differs from `seen` (at once if it already does),
    /// or `false` when `timeout` passes first or the signal was closed (shutdown: every wait
    /// ends at once, so long-polls answer and the server can stop).
    async fn wait_past(&self, seen: u64, timeout: Duration) -> bool;
    /// Ends every current and future wait (they return `false` at once). Called at shutdown.
    fn close(&self);
}
