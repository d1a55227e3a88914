//! Local-side use cases: sign-in, sessions, the user directory and messages.
//! Local reaches the providers only through the [`CloudGateway`].

use std::sync::Arc;

use domain::{
    CorpId, DeliveryReport, DeptId, LoginAttempt, LoginFailure, LoginState, MessageBody, MessageState, ProviderKey,
    Recipients, ReturnTo, SessionToken, Timestamp, User, UserId, ValidationError,
};
use tracing::{info, instrument, warn};

use super::members::{MemberSync, SyncError, Synced};
use crate::ports::{
    Binding, BindingStore, Clock, CloudGateway, DispatchTrigger, GatewayError, ListMessages, ListUsers,
    LoginAttemptStore, MessageRecord, MessageStore, RandomSource, RelayReceipt, RelaySendRequest, RelayWaiting,
    Session, SessionStore, StoreError, UserRepository, WaitReason,
};

/// How long a session lasts, in seconds, unless configured otherwise (7 days).
pub const DEFAULT_SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

/// Errors of the sign-in use cases.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The `state` is missing or malformed, has no matching cookie, does not
    /// match the cookie, or is unknown, expired or used. Nothing was stored.
    #[error("invalid login state: {0}")]
    InvalidState(&'static str),
    /// The login finished without a member (declined, not a member, …).
    #[error("login failed: {}", .0.code())]
    Failed(LoginFailure),
    /// The cloud refused to start the login (misconfiguration).
    #[error("the cloud refused the login: {0}")]
    Refused(String),
    /// The cloud could not be reached.
    #[error("the cloud is unavailable: {0}")]
    Unavailable(String),
    /// No valid session.
    #[error("not signed in")]
    NotSignedIn,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a login: a fresh `state` bound to the browser (the caller sets it
/// as a cookie), an attempt stored under its hash, and the authorize URL from
/// the cloud.
pub struct StartLogin {
    attempts: Arc<dyn LoginAttemptStore>,
    gateway: Arc<dyn CloudGateway>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    public_url: String,
    return_origins: Vec<String>,
}

impl StartLogin {
    /// `public_url` is this service's public base URL (no trailing `/`); a login with provider
    /// `p` completes at `{public_url}/auth/{p}/complete`.
    pub fn new(
        attempts: Arc<dyn LoginAttemptStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        public_url: String,
    ) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self { attempts, gateway, random, clock, public_url, return_origins: Vec::new() }
    }

    /// Also accepts an absolute `return_to` on these origins (`https://app.example.com`): the
    /// applications behind a reverse proxy that asks `/auth/verify` (forward-auth).
    #[must_use]
    pub fn with_return_origins(mut self, origins: Vec<String>) -> Self {
        self.return_origins = origins;
        self
    }

    /// Starts a login with `provider`; returns the state (for the cookie) and the URL to
    /// redirect to. `return_to` that is neither a relative path nor on a trusted origin
    /// becomes `/`. Errors: `Refused`/`Unavailable` from the cloud; `Store`.
    #[instrument(skip_all, fields(%provider))]
    pub async fn execute(
        &self,
        provider: &ProviderKey,
        return_to: Option<&str>,
    ) -> Result<(LoginState, String), LoginError> {
        let state = LoginState::from_random_bytes(&self.random.bytes32());
        let attempt = LoginAttempt {
            state_hash: state.hash(),
            provider: provider.clone(),
            return_to: ReturnTo::parse_with_origins(return_to, &self.return_origins),
            expires_at: self.clock.now().plus_secs(domain::login::LOGIN_TTL_SECS),
        };
        self.attempts.insert(&attempt).await?;
        let complete_url = format!("{}/auth/{provider}/complete", self.public_url);
        let authorize_url =
            self.gateway.start_login(provider, &state, &complete_url).await.map_err(|err| match err {
                GatewayError::Unavailable(msg) => LoginError::Unavailable(msg),
                other => LoginError::Refused(other.to_string()),
            })?;
        Ok((state, authorize_url))
    }
}

/// Completes a login: checks the `state` against the cookie, takes the
/// attempt (single use), takes the result from the cloud, stores the member
/// and opens a session.
pub struct CompleteLogin {
    attempts: Arc<dyn LoginAttemptStore>,
    gateway: Arc<dyn CloudGateway>,
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionStore>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    session_ttl_secs: i64,
}

/// What a completed login produced.
#[derive(Debug)]
pub struct SignedIn {
    /// The session token for the cookie.
    pub token: SessionToken,
    /// Where to send the browser.
    pub return_to: ReturnTo,
    /// The stored user.
    pub user: User,
}

impl CompleteLogin {
    /// Builds the use case; sessions last `session_ttl_secs` seconds.
    pub fn new(
        attempts: Arc<dyn LoginAttemptStore>,
        gateway: Arc<dyn CloudGateway>,
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        session_ttl_secs: i64,
    ) -> Self {
        Self { attempts, gateway, users, sessions, random, clock, session_ttl_secs }
    }

    /// `query_state` is the `state` query parameter, `cookie_state` the login
    /// cookie. Errors: `InvalidState` (nothing stored); `Failed` with the
    /// reason (nothing stored); `Unavailable`; `Store`.
    #[instrument(skip_all)]
    pub async fn execute(&self, query_state: Option<&str>, cookie_state: Option<&str>) -> Result<SignedIn, LoginError> {
        let state = LoginState::parse(query_state.unwrap_or_default())
            .map_err(|_| LoginError::InvalidState("the state parameter is missing or malformed"))?;
        let cookie = cookie_state
            .ok_or(LoginError::InvalidState("this browser did not start this login (no login cookie)"))
            .and_then(|c| {
                LoginState::parse(c).map_err(|_| LoginError::InvalidState("the login cookie is malformed"))
            })?;
        if !state.ct_eq(&cookie) {
            return Err(LoginError::InvalidState("this browser did not start this login (cookie mismatch)"));
        }
        let now = self.clock.now();
        let attempt = self
            .attempts
            .take(&state.hash(), now)
            .await?
            .ok_or(LoginError::InvalidState("the login is unknown, expired or already used"))?;
        let profile = match self.gateway.take_login_result(&state).await {
            // An inactive member is refused even if the cloud let them through (an older cloud).
            Ok(Ok(profile)) if !profile.active => return Err(LoginError::Failed(LoginFailure::Inactive)),
            Ok(Ok(profile)) => profile,
            Ok(Err(failure)) => return Err(LoginError::Failed(failure)),
            Err(GatewayError::NotFound) => {
                return Err(LoginError::InvalidState("the login is unknown, expired or already used"));
            }
            Err(GatewayError::Unavailable(msg)) => return Err(LoginError::Unavailable(msg)),
            Err(other) => return Err(LoginError::Refused(other.to_string())),
        };
        if profile.provider != attempt.provider {
            warn!(started = %attempt.provider, answered = %profile.provider, "the cloud answered a login with another provider's member");
            return Err(LoginError::Refused("the cloud answered with a member of another identity provider".into()));
        }
        let user = self.users.upsert(&profile, &self.random.new_id(), now).await?;
        let token = SessionToken::from_random_bytes(&self.random.bytes32());
        let session = Session {
            token_hash: token.hash(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now.plus_secs(self.session_ttl_secs),
        };
        self.sessions.insert(&session).await?;
        info!(user_id = %user.id, corp_id = %user.profile.corp_id, "signed in");
        Ok(SignedIn { token, return_to: attempt.return_to, user })
    }
}

/// The signed-in user of a session token.
pub struct CurrentUser {
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserRepository>,
    clock: Arc<dyn Clock>,
}

impl CurrentUser {
    /// Builds the use case.
    pub fn new(sessions: Arc<dyn SessionStore>, users: Arc<dyn UserRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { sessions, users, clock }
    }

    /// Errors: `NotSignedIn` when the token is missing, malformed, unknown or
    /// expired, or the user is gone; `Store`.
    pub async fn execute(&self, token: Option<&str>) -> Result<User, LoginError> {
        let token = SessionToken::parse(token.unwrap_or_default()).map_err(|_| LoginError::NotSignedIn)?;
        let session = self.sessions.find(&token.hash(), self.clock.now()).await?.ok_or(LoginError::NotSignedIn)?;
        self.users.find(&session.user_id).await?.ok_or(LoginError::NotSignedIn)
    }
}

/// Ends a session (deletes it, and revokes the OIDC grants issued under it).
pub struct Logout {
    sessions: Arc<dyn SessionStore>,
    grants: Option<Arc<dyn crate::ports::GrantStore>>,
    clock: Option<Arc<dyn Clock>>,
}

impl Logout {
    /// Builds the use case.
    pub fn new(sessions: Arc<dyn SessionStore>) -> Self {
        Self { sessions, grants: None, clock: None }
    }

    /// Also revokes the grants (refresh tokens) that OIDC clients got under the session: signing
    /// out of dingbridge signs out of every application that signed in through it.
    #[must_use]
    pub fn with_grants(mut self, grants: Arc<dyn crate::ports::GrantStore>, clock: Arc<dyn Clock>) -> Self {
        self.grants = Some(grants);
        self.clock = Some(clock);
        self
    }

    /// Deletes the session if the token names one; `Ok(false)` otherwise.
    pub async fn execute(&self, token: Option<&str>) -> Result<bool, LoginError> {
        match token.map(SessionToken::parse) {
            Some(Ok(token)) => {
                let hash = token.hash();
                let existed = self.sessions.delete(&hash).await?;
                if let (Some(grants), Some(clock)) = (&self.grants, &self.clock) {
                    let revoked = grants.revoke_grants_for_session(&hash, clock.now()).await?;
                    if revoked > 0 {
                        info!(grants = revoked, "signed out: OIDC grants of the session revoked");
                    }
                }
                Ok(existed)
            }
            _ => Ok(false),
        }
    }
}

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

/// Lists users.
pub struct ListUsersQuery {
    users: Arc<dyn UserRepository>,
}

impl ListUsersQuery {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }

    /// A page of users (`limit` clamped to 1–500).
    pub async fn execute(&self, mut query: ListUsers) -> Result<Vec<User>, MessageError> {
        query.limit = query.limit.clamp(1, 500);
        Ok(self.users.list(&query).await?)
    }
}

/// One user by local id.
pub struct GetUser {
    users: Arc<dyn UserRepository>,
}

impl GetUser {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }

    /// Errors: `NotFound`; `Store`.
    pub async fn execute(&self, id: &str) -> Result<User, MessageError> {
        self.users.find(id).await?.ok_or(MessageError::NotFound)
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
/// transaction; the [`DispatchOutbox`] relays it to the cloud afterwards.
pub struct SendMessage {
    users: Arc<dyn UserRepository>,
    bindings: Arc<dyn BindingStore>,
    messages: Arc<dyn MessageStore>,
    trigger: Arc<dyn DispatchTrigger>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    corps: Vec<CorpId>,
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
        Self { users, bindings, messages, trigger, random, clock, corps }
    }

    /// Errors (nothing stored): `Invalid` (field named), `UnknownUsers` (unknown or inactive
    /// local users, unknown bindings), `KeyReused`, `Store`. Returns the stored message in state
    /// `accepted` (or, for a repeated idempotency key, the message first stored under it).
    #[instrument(skip_all, fields(recipients = command.user_ids.len() + command.userids.len() + command.external_ids.len()))]
    pub async fn execute(&self, command: SendMessageCommand) -> Result<MessageRecord, MessageError> {
        let key = command.idempotency_key.as_deref().map(idempotency_key).transpose()?;
        let (recipients, corp_id) = self.resolve(&command).await?;
        command.body.check_recipients(&recipients)?;
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

fn apply_receipt(record: &mut MessageRecord, receipt: &RelayReceipt) {
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

/// Fetches a member's current profile through the cloud and stores it.
/// A member who left the org is kept and marked inactive.
pub struct RefreshUser {
    users: Arc<dyn UserRepository>,
    sync: MemberSync,
}

impl RefreshUser {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { sync: MemberSync::new(users.clone(), sessions, gateway, random, clock), users }
    }

    /// Also revokes the OIDC grants of a member found to have left (when the OpenID Provider runs).
    #[must_use]
    pub fn with_grants(mut self, grants: Arc<dyn crate::ports::GrantStore>) -> Self {
        self.sync.set_grants(grants);
        self
    }

    /// Re-reads the member through the cloud and stores the org's current
    /// profile. A member who left the org (`NotMember`) is stored with
    /// `active: false` and their sessions are revoked, as the event feed does
    /// for a member who left.
    ///
    /// Errors: `NotFound` (no such local user); `Unavailable` (cloud or provider); `Rejected`; `Store`.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<User, MessageError> {
        let user = self.users.find(id).await?.ok_or(MessageError::NotFound)?;
        let (corp_id, userid) = (user.profile.corp_id.clone(), user.profile.userid.clone());
        match self.sync.refresh(&corp_id, &userid, Some(user)).await {
            Ok(Synced::Refreshed(user)) => Ok(user),
            Ok(Synced::Deactivated { user, sessions, grants }) => {
                info!(user_id = %user.id, sessions, grants, "member left the org; marked inactive, sessions and grants revoked");
                Ok(user)
            }
            Ok(Synced::Unknown) => Err(MessageError::NotFound),
            Err(SyncError::Gateway(GatewayError::NotFound)) => {
                Err(MessageError::Unavailable("the cloud has no such member".into()))
            }
            Err(SyncError::Gateway(other)) => Err(other.into()),
            Err(SyncError::Store(err)) => Err(err.into()),
        }
    }
}

/// Binds a user to an account of the enterprise system, and reads it back.
pub struct Bindings {
    users: Arc<dyn UserRepository>,
    bindings: Arc<dyn BindingStore>,
    clock: Arc<dyn Clock>,
}

/// Longest external or tenant id, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

fn external_id(field: &str, raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "required", format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_EXTERNAL_ID_CHARS || value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "invalid",
            format!("{field} must be 1–{MAX_EXTERNAL_ID_CHARS} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

impl Bindings {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>, bindings: Arc<dyn BindingStore>, clock: Arc<dyn Clock>) -> Self {
        Self { users, bindings, clock }
    }

    /// Creates or replaces the binding of user `id`. Errors: `Invalid` (field named); `NotFound`;
    /// `Conflict` when another user holds that external id in that tenant; `Store`.
    pub async fn put(&self, id: &str, external: &str, tenant: Option<&str>) -> Result<Binding, MessageError> {
        let binding = Binding {
            user_id: id.to_owned(),
            external_id: external_id("external_id", external)?,
            tenant_id: tenant.map(|t| external_id("tenant_id", t)).transpose()?,
            updated_at: self.clock.now(),
        };
        self.users.find(id).await?.ok_or(MessageError::NotFound)?;
        match self.bindings.put(&binding).await {
            Ok(()) => Ok(binding),
            Err(StoreError::Conflict(_)) => Err(MessageError::Conflict(format!(
                "external_id {} is already bound to another user in this tenant",
                binding.external_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// The binding of user `id`, if any. Errors: `Store`.
    pub async fn get(&self, id: &str) -> Result<Option<Binding>, MessageError> {
        Ok(self.bindings.get(id).await?)
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
/// How it began before providers were side by side (still in stored rows).
const WAITING_PREFIX_BEFORE: &str = "waiting for dingtalk (";

/// The reason code in an error written by [`waiting_error`] (now or before providers were side
/// by side); `None` for any other error.
pub fn waiting_reason(error: &str) -> Option<WaitReason> {
    let rest = error.strip_prefix(WAITING_PREFIX).or_else(|| {
        let before = error.get(..WAITING_PREFIX_BEFORE.len())?;
        before.eq_ignore_ascii_case(WAITING_PREFIX_BEFORE).then(|| &error[WAITING_PREFIX_BEFORE.len()..])
    })?;
    WaitReason::parse(rest.split_once(')')?.0)
}

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
