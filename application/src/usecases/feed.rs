//! The contact-event feed (docs/design.md "Events"; README "Event feed"), both ends:
//!
//! - cloud: [`ReadContactFeed`] answers `GET /relay/v1/events?after=&wait=&limit=` — the events
//!   of the relay client's corps after a cursor, long-polling up to `wait` seconds when there are
//!   none yet (woken by the [`FeedSignal`] as soon as an event is appended);
//! - local: [`ApplyContactEvents`] reads the feed through the [`CloudGateway`] after its stored
//!   cursor and applies each event in order — members joined, changed or activated are refreshed
//!   through the cloud, a member who left is marked inactive and their sessions revoked — storing
//!   the cursor after each applied event.
//!
//! Guarantee (local): the stored cursor is the last event whose effects are stored, written right
//! after them. A crash or restart therefore re-applies at most the one event that was in flight,
//! and never skips one. Re-applying is harmless: a refresh stores the member's current profile
//! again and marking inactive / revoking sessions twice changes nothing. The cloud deduplicates
//! pushes on the provider's event id, so a re-delivered push is not a second feed entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{CorpId, UserId, ValidationError};
use tracing::{debug, info, instrument, warn};

use super::cloud::CloudError;
use super::members::{MemberSync, SyncError, Synced};
use crate::ports::{
    Clock, CloudGateway, ContactEvent, ContactFeedPage, DirectoryChange, EventStore, FeedCursorStore, FeedEntry,
    FeedSignal, GatewayError, RandomSource, RelayClient, SessionStore, StoreError, UserRepository,
};

/// Longest long-poll the cloud grants, in seconds.
pub const MAX_WAIT_SECS: i64 = 30;
/// Most events in one page.
pub const MAX_LIMIT: i64 = 500;
/// Events in a page unless the reader asks otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// The name under which local stores its cursor of the cloud's contact-event feed.
pub const CONTACT_FEED: &str = "contact_events";

/// A valid feed read: `after` ≥ 0, `wait` 0–[`MAX_WAIT_SECS`] seconds, `limit` 1–[`MAX_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedQuery {
    after: i64,
    wait: Duration,
    limit: u32,
}

impl FeedQuery {
    /// Checks the three values. Errors name the field (`after`, `wait`, `limit`) with code
    /// `invalid` and the allowed range.
    pub fn new(after: i64, wait_secs: i64, limit: i64) -> Result<Self, ValidationError> {
        if after < 0 {
            return Err(Self::invalid("after"));
        }
        if !(0..=MAX_WAIT_SECS).contains(&wait_secs) {
            return Err(Self::invalid("wait"));
        }
        let limit = u32::try_from(limit)
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(&i64::from(*l)))
            .ok_or_else(|| Self::invalid("limit"))?;
        Ok(Self { after, wait: Duration::from_secs(wait_secs.unsigned_abs()), limit })
    }

    /// The error for an out-of-range or non-numeric `field` (`after`, `wait` or `limit`).
    pub fn invalid(field: &str) -> ValidationError {
        let message = match field {
            "after" => "after must be a whole number ≥ 0 (a cursor: the `next` of the previous page)".to_owned(),
            "wait" => format!("wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"),
            "limit" => format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            other => format!("{other} is invalid"),
        };
        ValidationError::new(field, "invalid", message)
    }

    /// Events after this cursor.
    pub fn after(&self) -> i64 {
        self.after
    }

    /// How long to wait for an event when there is none yet.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Most events to return.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// Cloud: one long-poll read of the contact-event feed for a relay client.
pub struct ReadContactFeed {
    events: Arc<dyn EventStore>,
    signal: Arc<dyn FeedSignal>,
}

impl ReadContactFeed {
    /// Builds the use case; `signal` must be the one appends to `events` notify.
    pub fn new(events: Arc<dyn EventStore>, signal: Arc<dyn FeedSignal>) -> Self {
        Self { events, signal }
    }

    /// The events of the client's corps with `cursor > query.after()`, in cursor order, at most
    /// `query.limit()`. When there are none, waits until one is appended (woken by the signal,
    /// no polling) or `query.wait()` passes, and then answers what there is (possibly nothing).
    /// Appends for other clients' corps wake the wait but are never returned.
    ///
    /// Errors: `Store` when the feed cannot be read.
    #[instrument(skip_all, fields(client = %client.id, after = query.after(), wait_ms = query.wait().as_millis()))]
    pub async fn execute(&self, client: &RelayClient, query: &FeedQuery) -> Result<ContactFeedPage, CloudError> {
        let deadline = Instant::now() + query.wait();
        loop {
            // Read the version first: an append after it makes `wait_past` return at once.
            let seen = self.signal.version();
            let entries = self.events.read_after(&client.corp_ids, query.after(), query.limit()).await?;
            if !entries.is_empty() {
                return Ok(ContactFeedPage::new(query.after(), entries));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.signal.wait_past(seen, left).await {
                return Ok(ContactFeedPage::new(query.after(), Vec::new()));
            }
        }
    }
}

/// Why a round of [`ApplyContactEvents`] stopped before the end of the page.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cloud (or the provider behind it) could not be reached: retry later; the event that
    /// failed was not applied and the cursor stays before it.
    #[error("the cloud is unavailable: {0}")]
    Unavailable(String),
    /// The cloud refused the feed request itself (bad relay credentials, an invalid request):
    /// a configuration problem; retrying later is still safe.
    #[error("the cloud refused the feed request: {0}")]
    Refused(String),
    /// Local storage failed; the cursor stays before the event that failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one round applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedProgress {
    /// Events applied (and acknowledged) in this round.
    pub applied: usize,
    /// The stored cursor after the round.
    pub cursor: i64,
}

/// Local: follows the cloud's contact-event feed and applies it to the user directory.
pub struct ApplyContactEvents {
    gateway: Arc<dyn CloudGateway>,
    users: Arc<dyn UserRepository>,
    cursors: Arc<dyn FeedCursorStore>,
    sync: MemberSync,
    clock: Arc<dyn Clock>,
}

impl ApplyContactEvents {
    /// Builds the use case.
    pub fn new(
        gateway: Arc<dyn CloudGateway>,
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        cursors: Arc<dyn FeedCursorStore>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let sync = MemberSync::new(users.clone(), sessions, gateway.clone(), random, clock.clone());
        Self { gateway, users, cursors, sync, clock }
    }

    /// Also revokes the OIDC grants of a member who left (when the OpenID Provider runs).
    #[must_use]
    pub fn with_grants(mut self, grants: Arc<dyn crate::ports::GrantStore>) -> Self {
        self.sync.set_grants(grants);
        self
    }

    /// One round: reads the stored cursor (0 before the first event), long-polls the cloud for
    /// up to `wait_secs` seconds for the events after it and applies them in order (see
    /// [`ApplyContactEvents::apply`]).
    ///
    /// Errors: `Unavailable` (cloud unreachable, or a member refresh failed transiently),
    /// `Refused` (the cloud refused the feed request), `Store`. Events applied before the error
    /// keep their stored cursor.
    #[instrument(skip_all)]
    pub async fn run_once(&self, wait_secs: u32) -> Result<FeedProgress, FeedError> {
        let after = self.cursors.cursor(CONTACT_FEED).await?.unwrap_or(0);
        let page = self.gateway.contact_events(after, wait_secs).await.map_err(|err| match err {
            GatewayError::Unavailable(reason) => FeedError::Unavailable(reason),
            other => FeedError::Refused(other.to_string()),
        })?;
        self.apply(after, page.entries).await
    }

    /// Applies `entries` (read after cursor `after`) in order, storing each entry's cursor right
    /// after its effects. Entries at or before the cursor reached so far are ignored (a cloud
    /// answering out of order cannot move the cursor back).
    ///
    /// Per member: a permanent failure (the cloud refuses the look-up, a conflicting stored row)
    /// is logged and the member skipped; a transient one (cloud or provider unavailable, storage
    /// unavailable) stops the round with the failed event not applied, so it is retried.
    pub async fn apply(&self, after: i64, entries: Vec<FeedEntry>) -> Result<FeedProgress, FeedError> {
        let mut progress = FeedProgress { applied: 0, cursor: after };
        for FeedEntry { cursor, event } in entries {
            if cursor <= progress.cursor {
                warn!(cursor, after = progress.cursor, "feed entry at or before the cursor; ignored");
                continue;
            }
            self.apply_event(&event).await?;
            self.cursors.save_cursor(CONTACT_FEED, cursor, self.clock.now()).await?;
            progress = FeedProgress { applied: progress.applied + 1, cursor };
            info!(
                corp_id = %event.corp_id,
                change = ?event.change,
                event_id = %event.event_id,
                cursor,
                "contact event applied"
            );
        }
        Ok(progress)
    }

    async fn apply_event(&self, event: &ContactEvent) -> Result<(), FeedError> {
        let leave = match &event.change {
            DirectoryChange::MemberJoined | DirectoryChange::MemberChanged | DirectoryChange::MemberActivated => false,
            DirectoryChange::MemberLeft => true,
            other => {
                debug!(
                    corp_id = %event.corp_id,
                    change = ?other,
                    event_id = %event.event_id,
                    "contact event acknowledged (nothing to apply)"
                );
                return Ok(());
            }
        };
        for userid in &event.userids {
            let outcome = if leave {
                self.leave(&event.corp_id, userid).await
            } else {
                self.refresh(&event.corp_id, userid).await
            };
            match outcome {
                Ok(Synced::Refreshed(_)) => debug!(corp_id = %event.corp_id, %userid, "member refreshed"),
                Ok(Synced::Deactivated { sessions, grants, .. }) => {
                    let what = "member is no longer in the org: inactive, sessions and grants revoked";
                    info!(corp_id = %event.corp_id, %userid, sessions, grants, "{what}");
                }
                Ok(Synced::Unknown) => debug!(corp_id = %event.corp_id, %userid, "member not known locally; skipped"),
                Err(FeedError::Store(StoreError::Conflict(detail) | StoreError::Other(detail))) => {
                    warn!(
                        corp_id = %event.corp_id,
                        %userid,
                        event_id = %event.event_id,
                        error = %detail,
                        "member not updated (permanent storage error); skipped"
                    );
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Refreshes `userid` through the cloud ([`MemberSync::refresh`]). A look-up the cloud
    /// refuses is logged and the member skipped; an unavailable cloud stops the round.
    async fn refresh(&self, corp_id: &CorpId, userid: &UserId) -> Result<Synced, FeedError> {
        let known = self.users.find_by_userid(corp_id, userid).await?;
        match self.sync.refresh(corp_id, userid, known).await {
            Ok(synced) => Ok(synced),
            Err(SyncError::Store(err)) => Err(err.into()),
            Err(SyncError::Gateway(GatewayError::Unavailable(reason))) => Err(FeedError::Unavailable(reason)),
            Err(SyncError::Gateway(other)) => {
                warn!(%corp_id, %userid, error = %other, "member refresh refused; skipped");
                Ok(Synced::Unknown)
            }
        }
    }

    /// Marks a known `userid` inactive and revokes their sessions; an unknown one is skipped.
    async fn leave(&self, corp_id: &CorpId, userid: &UserId) -> Result<Synced, FeedError> {
        match self.users.find_by_userid(corp_id, userid).await? {
            Some(user) => Ok(self.sync.deactivate(user).await?),
            None => Ok(Synced::Unknown),
        }
    }
}
