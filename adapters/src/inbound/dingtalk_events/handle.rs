//! Cloud-side DingTalk event callbacks (docs/dingtalk-api.md §E, docs/design.md "Events"): after the
//! HTTP adapter has verified and decrypted a push and parsed it into
//! [`DingTalkEvent`]s, [`HandleEvents`] rejects a replayed nonce and applies
//! each event to the [`SuiteStore`] and [`EventStore`].
//!
//! What a push means here:
//!
//! | event | effect |
//! |---|---|
//! | `check_url`, `check_create_suite_url`, `check_update_suite_url` | none (the reply is the answer) |
//! | `suite_ticket` (legacy or SyncHTTP `biz_type` 2) | [`SuiteStore::put_ticket`], replacing the old one |
//! | `tmp_auth_code` | an active authorization, agent id unknown |
//! | SyncHTTP `biz_type` 4 `org_suite_auth` | an active authorization with agent id and permanent code |
//! | `suite_relieve`, `org_suite_relieve` | the authorization becomes inactive |
//! | `change_auth` | logged only |
//! | contact events | appended to the feed, deduplicated by event id |
//! | anything else | logged and acknowledged |
//!
//! Suite tickets and permanent codes are secrets: they are never logged and
//! their `Debug` output is redacted.

use std::fmt;
use std::sync::Arc;

use domain::{AgentId, CorpId, DeptId, Timestamp, UserId};
use tracing::{info, instrument, warn};

use application::ports::{Clock, ContactEvent, CorpAuthorization, EventStore, StoreError, SuiteStore};

/// Default freshness window of a callback's timestamp, in seconds (10 minutes). Nonces are
/// remembered for twice this long.
pub const DEFAULT_WINDOW_SECS: i64 = 600;

/// A secret string from an event (a suite ticket or a permanent code): `Debug` shows
/// `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for storing it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A contact change as DingTalk pushed it (docs/dingtalk-api.md §E.6), before it gets its feed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    /// The corp (`CorpId`).
    pub corp_id: CorpId,
    /// `EventType`, e.g. `user_leave_org`.
    pub event_type: String,
    /// DingTalk's `eventId`, when it sent one (older formats have none).
    pub event_id: Option<String>,
    /// Affected members (`userId` / `UserId`).
    pub userids: Vec<UserId>,
    /// Affected departments (`deptId` / `DeptId`).
    pub dept_ids: Vec<DeptId>,
    /// DingTalk's own time of the event (`timeStamp`, `TimeStamp` or `EventTime`), as sent.
    pub occurred_at: Option<String>,
}

impl ContactChange {
    /// The dedup key: DingTalk's `eventId`, or (when it sent none) a stable SHA-256 digest of
    /// the event type, corp, ids and DingTalk's timestamp, so a re-delivery of the same push
    /// maps to the same key.
    pub fn dedup_key(&self) -> String {
        if let Some(id) = self.event_id.as_deref().filter(|id| !id.trim().is_empty()) {
            return id.to_owned();
        }
        let users: Vec<&str> = self.userids.iter().map(UserId::as_str).collect();
        let depts: Vec<String> = self.dept_ids.iter().map(ToString::to_string).collect();
        let hex = domain::digest::sha256_hex_of_fields(&[
            &self.event_type,
            self.corp_id.as_str(),
            &users.join(","),
            &depts.join(","),
            self.occurred_at.as_deref().unwrap_or_default(),
        ]);
        format!("sha256:{hex}")
    }
}

/// One decrypted DingTalk event (docs/dingtalk-api.md §E.6, §B.5), built by the adapter's parser; the input
/// of [`HandleEvents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DingTalkEvent {
    /// `check_url`, `check_create_suite_url` or `check_update_suite_url`: answer success only.
    CheckUrl {
        /// Which of the three.
        event_type: String,
    },
    /// A new `suite_ticket` (legacy HTTP or SyncHTTP `biz_type` 2).
    SuiteTicket {
        /// The suite.
        suite_key: String,
        /// The ticket.
        ticket: SecretText,
    },
    /// `tmp_auth_code`: a corp authorized the suite. Activation needs the permanent-code API,
    /// which docs/dingtalk-api.md does not document.
    TmpAuthCode {
        /// The suite.
        suite_key: String,
        /// `AuthCorpId`.
        corp_id: CorpId,
    },
    /// SyncHTTP `biz_type` 4, `syncAction: org_suite_auth`: the corp's authorization with its
    /// permanent code and the suite's agent id in that corp.
    OrgSuiteAuth {
        /// The suite.
        suite_key: String,
        /// The authorizing corp.
        corp_id: CorpId,
        /// `auth_info.agent[0].agentid`.
        agent_id: Option<AgentId>,
        /// `permanent_code`.
        permanent_code: Option<SecretText>,
    },
    /// `suite_relieve` or SyncHTTP `org_suite_relieve`: the corp removed the suite.
    Relieve {
        /// The suite.
        suite_key: String,
        /// The corp.
        corp_id: CorpId,
    },
    /// `change_auth`: the corp changed the suite's authorization scope.
    ChangeAuth {
        /// The suite.
        suite_key: String,
        /// The corp.
        corp_id: CorpId,
    },
    /// A contact change (`user_*_org`, `org_dept_*`).
    Contact(ContactChange),
    /// Anything else: logged and acknowledged.
    Unknown {
        /// `EventType` (or `biz_type`/`syncAction` for SyncHTTP items).
        event_type: String,
    },
}

impl DingTalkEvent {
    /// A short name for logs (never a secret).
    pub fn kind(&self) -> &str {
        match self {
            Self::CheckUrl { event_type } | Self::Unknown { event_type } => event_type,
            Self::SuiteTicket { .. } => "suite_ticket",
            Self::TmpAuthCode { .. } => "tmp_auth_code",
            Self::OrgSuiteAuth { .. } => "org_suite_auth",
            Self::Relieve { .. } => "relieve",
            Self::ChangeAuth { .. } => "change_auth",
            Self::Contact(change) => &change.event_type,
        }
    }
}

/// Why a push was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The nonce was already seen for this owner within the window: nothing was stored.
    #[error("replayed callback nonce")]
    Replayed,
    /// Storage failed; DingTalk retries the push (every effect is idempotent).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a push changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsSummary {
    /// Events that changed stored state (tickets, authorizations, new feed entries).
    pub applied: usize,
    /// Contact events already in the feed.
    pub duplicates: usize,
    /// Events acknowledged without a change (URL checks, `change_auth`, unknown).
    pub ignored: usize,
}

/// Applies a verified push: replay check, then each event.
pub struct HandleEvents {
    suites: Arc<dyn SuiteStore>,
    events: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    window_secs: i64,
}

impl HandleEvents {
    /// `window_secs` is the timestamp freshness window the adapter checks; nonces are kept for
    /// twice as long.
    pub fn new(
        suites: Arc<dyn SuiteStore>,
        events: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        window_secs: i64,
    ) -> Self {
        Self { suites, events, clock, window_secs }
    }

    /// Remembers `nonce` for `owner_key` (the AppKey, corp id or SuiteKey whose crypto verified
    /// the push), then applies `events` in order.
    ///
    /// Errors: [`EventsError::Replayed`] when the nonce was seen within twice the window (nothing
    /// is stored); [`EventsError::Store`] when storage fails (the push should be answered with a
    /// retryable status; every effect is idempotent, so a retry does no harm).
    #[instrument(skip_all, fields(owner = %owner_key, events = events.len()))]
    pub async fn execute(
        &self,
        owner_key: &str,
        nonce: &str,
        events: Vec<DingTalkEvent>,
    ) -> Result<EventsSummary, EventsError> {
        let now = self.clock.now();
        let keep_until = now.plus_secs(self.window_secs.saturating_mul(2));
        if !events.is_empty() && events.iter().all(|event| matches!(event, DingTalkEvent::Contact(_))) {
            return self.contact_push(owner_key, nonce, now, keep_until, events).await;
        }
        if !self.events.remember_nonce(owner_key, nonce, now, keep_until).await? {
            warn!("callback nonce replayed; ignoring the push");
            return Err(EventsError::Replayed);
        }
        let mut summary = EventsSummary::default();
        for event in events {
            if let Err(err) = self.apply(event, now, &mut summary).await {
                // DingTalk retries a failed push, possibly with the same nonce: let it through.
                if let Err(forget) = self.events.forget_nonce(owner_key, nonce).await {
                    warn!(error = %forget, "could not forget the nonce of a failed push");
                }
                return Err(err.into());
            }
        }
        Ok(summary)
    }

    /// A push of contact events only (the common case): the nonce and the events in one write
    /// ([`EventStore::remember_and_append`]), so nothing needs undoing when it fails.
    async fn contact_push(
        &self,
        owner_key: &str,
        nonce: &str,
        now: Timestamp,
        keep_until: Timestamp,
        events: Vec<DingTalkEvent>,
    ) -> Result<EventsSummary, EventsError> {
        let events: Vec<ContactEvent> = events
            .into_iter()
            .filter_map(|event| match event {
                DingTalkEvent::Contact(change) => Some(contact_event(change, now)),
                _ => None,
            })
            .collect();
        let Some(cursors) = self.events.remember_and_append(owner_key, nonce, now, keep_until, &events).await? else {
            warn!("callback nonce replayed; ignoring the push");
            return Err(EventsError::Replayed);
        };
        let mut summary = EventsSummary::default();
        for (event, cursor) in events.iter().zip(cursors) {
            count_contact(event, cursor, &mut summary);
        }
        Ok(summary)
    }

    async fn apply(&self, event: DingTalkEvent, now: Timestamp, summary: &mut EventsSummary) -> Result<(), StoreError> {
        match event {
            DingTalkEvent::CheckUrl { event_type } => {
                info!(%event_type, "callback URL check");
                summary.ignored += 1;
            }
            DingTalkEvent::SuiteTicket { suite_key, ticket } => {
                self.suites.put_ticket(&suite_key, ticket.expose(), now).await?;
                info!(%suite_key, "suite_ticket stored");
                summary.applied += 1;
            }
            DingTalkEvent::TmpAuthCode { suite_key, corp_id } => {
                // Keep an agent id / permanent code an earlier org_suite_auth delivered.
                let previous = self.suites.authorization(&suite_key, &corp_id).await?;
                let authorization = match previous {
                    Some(previous) => CorpAuthorization { active: true, updated_at: now, ..previous },
                    None => CorpAuthorization {
                        suite_key,
                        corp_id,
                        agent_id: None,
                        permanent_code: None,
                        active: true,
                        updated_at: now,
                    },
                };
                self.suites.put_authorization(&authorization).await?;
                info!(
                    suite_key = %authorization.suite_key,
                    corp_id = %authorization.corp_id,
                    "tmp_auth_code: corp authorized the suite; activating it needs the permanent-code API, which docs/dingtalk-api.md does not document"
                );
                summary.applied += 1;
            }
            DingTalkEvent::OrgSuiteAuth { suite_key, corp_id, agent_id, permanent_code } => {
                let authorization = CorpAuthorization {
                    suite_key,
                    corp_id,
                    agent_id,
                    permanent_code: permanent_code.map(|code| code.expose().to_owned()),
                    active: true,
                    updated_at: now,
                };
                self.suites.put_authorization(&authorization).await?;
                info!(
                    suite_key = %authorization.suite_key,
                    corp_id = %authorization.corp_id,
                    agent_id = ?authorization.agent_id.map(AgentId::get),
                    "org_suite_auth stored"
                );
                summary.applied += 1;
            }
            DingTalkEvent::Relieve { suite_key, corp_id } => {
                let previous = self.suites.authorization(&suite_key, &corp_id).await?;
                let authorization = match previous {
                    Some(previous) => CorpAuthorization { active: false, updated_at: now, ..previous },
                    None => CorpAuthorization {
                        suite_key,
                        corp_id,
                        agent_id: None,
                        permanent_code: None,
                        active: false,
                        updated_at: now,
                    },
                };
                self.suites.put_authorization(&authorization).await?;
                info!(suite_key = %authorization.suite_key, corp_id = %authorization.corp_id, "suite authorization relieved");
                summary.applied += 1;
            }
            DingTalkEvent::ChangeAuth { suite_key, corp_id } => {
                info!(%suite_key, %corp_id, "change_auth: authorization scope changed (nothing refreshed)");
                summary.ignored += 1;
            }
            DingTalkEvent::Contact(change) => {
                let event = contact_event(change, now);
                let cursor = self.events.append(&event).await?;
                count_contact(&event, cursor, summary);
            }
            DingTalkEvent::Unknown { event_type } => {
                info!(%event_type, "unhandled event type; acknowledged");
                summary.ignored += 1;
            }
        }
        Ok(())
    }
}

/// The feed entry of a contact change received at `now` (its id: DingTalk's, or a stable digest).
fn contact_event(change: ContactChange, now: Timestamp) -> ContactEvent {
    ContactEvent {
        event_id: change.dedup_key(),
        corp_id: change.corp_id,
        change: crate::feed_names::parse(&change.event_type),
        userids: change.userids,
        dept_ids: change.dept_ids,
        received_at: now,
    }
}

/// Logs and counts a contact event's outcome: stored at `cursor`, or a duplicate (`None`).
fn count_contact(event: &ContactEvent, cursor: Option<i64>, summary: &mut EventsSummary) {
    match cursor {
        Some(cursor) => {
            info!(corp_id = %event.corp_id, change = ?event.change, cursor, "contact event stored");
            summary.applied += 1;
        }
        None => {
            info!(corp_id = %event.corp_id, change = ?event.change, "duplicate contact event");
            summary.duplicates += 1;
        }
    }
}
