//! Local-side use cases: sign-in, sessions, the user directory and messages.
//! Local reaches DingTalk only through the [`CloudGateway`].

use std::sync::Arc;

use domain::{
    CorpId, DeliveryReport, DeptId, LoginAttempt, LoginFailure, LoginState, MessageBody, MessageState, Recipients,
    ReturnTo, SessionToken, User, UserId, ValidationError,
};
use tracing::{info, instrument, warn};

use crate::ports::{
    Binding, BindingStore, Clock, CloudGateway, GatewayError, ListUsers, LoginAttemptStore, MemberKey, MessageRecord,
    MessageStore, RandomSource, RelayReceipt, RelaySendRequest, Session, SessionStore, StoreError, UserRepository,
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
    complete_url: String,
}

impl StartLogin {
    /// `complete_url` is this service's public `…/auth/dingtalk/complete`.
    pub fn new(
        attempts: Arc<dyn LoginAttemptStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        complete_url: String,
    ) -> Self {
        Self {
            attempts,
            gateway,
            random,
            clock,
            complete_url,
        }
    }

    /// Returns the state (for the cookie) and the URL to redirect to.
    /// `return_to` that is not a relative path becomes `/`.
    /// Errors: `Refused`/`Unavailable` from the cloud; `Store`.
    #[instrument(skip_all)]
    pub async fn execute(&self, return_to: Option<&str>) -> Result<(LoginState, String), LoginError> {
        let state = LoginState::from_random_bytes(&self.random.bytes32());
        let attempt = LoginAttempt {
            state_hash: state.hash(),
            return_to: ReturnTo::parse_or_root(return_to),
            expires_at: self.clock.now().plus_secs(domain::login::LOGIN_TTL_SECS),
        };
        self.attempts.insert(&attempt).await?;
        let authorize_url = self
            .gateway
            .start_login(&state, &self.complete_url)
            .await
            .map_err(|err| match err {
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
        Self {
            attempts,
            gateway,
            users,
            sessions,
            random,
            clock,
            session_ttl_secs,
        }
    }

    /// `query_state` is the `state` query parameter, `cookie_state` the login
    /// cookie. Errors: `InvalidState` (nothing stored); `Failed` with the
    /// reason (nothing stored); `Unavailable`; `Store`.
    #[instrument(skip_all)]
    pub async fn execute(&self, query_state: Option<&str>, cookie_state: Option<&str>) -> Result<SignedIn, LoginError> {
        let state = LoginState::parse(query_state.unwrap_or_default())
            .map_err(|_| LoginError::InvalidState("the state parameter is missing or malformed"))?;
        let cookie = cookie_state
            .ok_or(LoginError::InvalidState(
                "this browser did not start this login (no login cookie)",
            ))
            .and_then(|c| {
                LoginState::parse(c).map_err(|_| LoginError::InvalidState("the login cookie is malformed"))
            })?;
        if !state.ct_eq(&cookie) {
            return Err(LoginError::InvalidState(
                "this browser did not start this login (cookie mismatch)",
            ));
        }
        let now = self.clock.now();
        let attempt = self
            .attempts
            .take(&state.hash(), now)
            .await?
            .ok_or(LoginError::InvalidState(
                "the login is unknown, expired or already used",
            ))?;
        let profile = match self.gateway.take_login_result(&state).await {
            Ok(Ok(profile)) => profile,
            Ok(Err(failure)) => return Err(LoginError::Failed(failure)),
            Err(GatewayError::NotFound) => {
                return Err(LoginError::InvalidState(
                    "the login is unknown, expired or already used",
                ));
            }
            Err(GatewayError::Unavailable(msg)) => return Err(LoginError::Unavailable(msg)),
            Err(other) => return Err(LoginError::Refused(other.to_string())),
        };
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
        Ok(SignedIn {
            token,
            return_to: attempt.return_to,
            user,
        })
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
        let session = self
            .sessions
            .find(&token.hash(), self.clock.now())
            .await?
            .ok_or(LoginError::NotSignedIn)?;
        self.users.find(&session.user_id).await?.ok_or(LoginError::NotSignedIn)
    }
}

/// Ends a session (deletes it).
pub struct Logout {
    sessions: Arc<dyn SessionStore>,
}

impl Logout {
    /// Builds the use case.
    pub fn new(sessions: Arc<dyn SessionStore>) -> Self {
        Self { sessions }
    }

    /// Deletes the session if the token names one; `Ok(false)` otherwise.
    pub async fn execute(&self, token: Option<&str>) -> Result<bool, LoginError> {
        match token.map(SessionToken::parse) {
            Some(Ok(token)) => Ok(self.sessions.delete(&token.hash()).await?),
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
    /// No such message or user.
    #[error("not found")]
    NotFound,
    /// The cloud or DingTalk refused (e.g. recall after 24 h).
    #[error("refused: {0}")]
    Rejected(String),
    /// The cloud (or DingTalk behind it) could not be reached.
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
    /// Local user ids (resolved to DingTalk userids).
    pub user_ids: Vec<String>,
    /// DingTalk userids.
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
}

/// Accepts a message: resolves recipients, stores it, relays it through the cloud.
pub struct SendMessage {
    users: Arc<dyn UserRepository>,
    bindings: Arc<dyn BindingStore>,
    messages: Arc<dyn MessageStore>,
    gateway: Arc<dyn CloudGateway>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    default_corp: Option<CorpId>,
}

impl SendMessage {
    /// Builds the use case; `default_corp` is used when neither the request
    /// nor its recipients name a corp.
    pub fn new(
        users: Arc<dyn UserRepository>,
        bindings: Arc<dyn BindingStore>,
        messages: Arc<dyn MessageStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        default_corp: Option<CorpId>,
    ) -> Self {
        Self {
            users,
            bindings,
            messages,
            gateway,
            random,
            clock,
            default_corp,
        }
    }

    /// Errors (nothing stored): `Invalid` (field named), `UnknownUsers`,
    /// `Store`. Once stored, the message is returned whatever the cloud
    /// answered: `sent` with task ids, `failed` with the error, or still
    /// `accepted` (with the error) when the cloud was unreachable.
    #[instrument(skip_all, fields(recipients = command.user_ids.len() + command.userids.len() + command.external_ids.len()))]
    pub async fn execute(&self, command: SendMessageCommand) -> Result<MessageRecord, MessageError> {
        let (recipients, corp_id) = self.resolve(&command).await?;
        command.body.check_recipients(&recipients)?;
        let now = self.clock.now();
        let mut record = MessageRecord {
            id: self.random.new_id(),
            corp_id,
            body: command.body,
            recipients,
            state: MessageState::Accepted,
            task_ids: Vec::new(),
            error: None,
            created_at: now,
            updated_at: now,
        };
        self.messages.insert(&record).await?;
        let request = RelaySendRequest {
            key: record.id.clone(),
            corp_id: record.corp_id.clone(),
            recipients: record.recipients.clone(),
            body: record.body.clone(),
        };
        match self.gateway.send_message(&request).await {
            Ok(receipt) => apply_receipt(&mut record, &receipt),
            Err(GatewayError::Unavailable(msg)) => {
                warn!(id = %record.id, error = %msg, "cloud unavailable; message stays accepted");
                record.error = Some(msg);
            }
            Err(other) => {
                record.state = MessageState::Failed;
                record.error = Some(other.to_string());
            }
        }
        record.updated_at = self.clock.now();
        self.messages
            .update(
                &record.id,
                record.state,
                &record.task_ids,
                record.error.clone(),
                record.updated_at,
            )
            .await?;
        info!(id = %record.id, state = record.state.as_str(), tasks = record.task_ids.len(), "message accepted");
        Ok(record)
    }

    async fn resolve(&self, command: &SendMessageCommand) -> Result<(Recipients, CorpId), MessageError> {
        let mut userids = command.userids.clone();
        let mut unknown = Vec::new();
        let mut corp = command.corp_id.clone();
        let mut local_ids = command.user_ids.clone();
        for external_id in &command.external_ids {
            match self
                .bindings
                .find_by_external_id(command.tenant_id.clone(), external_id)
                .await?
            {
                Some(binding) => local_ids.push(binding.user_id),
                None => unknown.push(format!("external:{external_id}")),
            }
        }
        for id in &local_ids {
            match self.users.find(id).await? {
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
        let corp = corp.or_else(|| self.default_corp.clone()).ok_or_else(|| {
            ValidationError::new(
                "corp_id",
                "required",
                "corp_id is required: no recipient or default names a corp",
            )
        })?;
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

fn apply_receipt(record: &mut MessageRecord, receipt: &RelayReceipt) {
    record.state = receipt.state;
    record.task_ids.clone_from(&receipt.task_ids);
    record.error = (!receipt.errors.is_empty()).then(|| receipt.errors.join("; "));
}

/// A message with DingTalk's per-recipient report when it has been sent.
#[derive(Debug, Clone)]
pub struct MessageView {
    /// The local record.
    pub record: MessageRecord,
    /// DingTalk's report (`None` until the cloud has sent it).
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
        Self {
            messages,
            gateway,
            clock,
        }
    }

    /// Errors: `NotFound`; `Store`. When the cloud cannot be reached the
    /// stored record is returned without a report.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<MessageView, MessageError> {
        let mut record = self.messages.get(id).await?.ok_or(MessageError::NotFound)?;
        if record.task_ids.is_empty() {
            return Ok(MessageView { record, report: None });
        }
        match self.gateway.message_status(id).await {
            Ok((receipt, report)) => {
                if receipt.state != record.state {
                    apply_receipt(&mut record, &receipt);
                    record.updated_at = self.clock.now();
                    self.messages
                        .update(
                            id,
                            record.state,
                            &record.task_ids,
                            record.error.clone(),
                            record.updated_at,
                        )
                        .await?;
                }
                Ok(MessageView {
                    record,
                    report: Some(report),
                })
            }
            Err(err) => {
                warn!(error = %err, "delivery report unavailable");
                Ok(MessageView { record, report: None })
            }
        }
    }
}

/// Recalls a message (DingTalk allows 24 h).
pub struct RecallMessage {
    messages: Arc<dyn MessageStore>,
    gateway: Arc<dyn CloudGateway>,
    clock: Arc<dyn Clock>,
}

impl RecallMessage {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn MessageStore>, gateway: Arc<dyn CloudGateway>, clock: Arc<dyn Clock>) -> Self {
        Self {
            messages,
            gateway,
            clock,
        }
    }

    /// Errors: `NotFound`; `Rejected` (not sent yet, older than 24 h, or
    /// DingTalk refused); `Unavailable`; `Store`.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<MessageRecord, MessageError> {
        let mut record = self.messages.get(id).await?.ok_or(MessageError::NotFound)?;
        if record.task_ids.is_empty() {
            return Err(MessageError::Rejected(
                "the message has not been sent, so there is nothing to recall".into(),
            ));
        }
        let receipt = self.gateway.recall_message(id).await?;
        apply_receipt(&mut record, &receipt);
        record.updated_at = self.clock.now();
        self.messages
            .update(
                id,
                record.state,
                &record.task_ids,
                record.error.clone(),
                record.updated_at,
            )
            .await?;
        Ok(record)
    }
}

/// Fetches a member's current profile through the cloud and stores it.
/// A member who left the org is kept and marked inactive.
pub struct RefreshUser {
    users: Arc<dyn UserRepository>,
    gateway: Arc<dyn CloudGateway>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
}

impl RefreshUser {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            gateway,
            random,
            clock,
        }
    }

    /// Errors: `NotFound` (no such local user); `Unavailable` (cloud or DingTalk); `Rejected`; `Store`.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<User, MessageError> {
        let user = self.users.find(id).await?.ok_or(MessageError::NotFound)?;
        let key = MemberKey::UserId(user.profile.userid.clone());
        let profile = match self.gateway.get_member(&user.profile.corp_id, &key).await {
            Ok(profile) => profile,
            Err(GatewayError::NotMember) => {
                info!(user_id = %user.id, "member left the org; marking inactive");
                domain::MemberProfile {
                    active: false,
                    ..user.profile.clone()
                }
            }
            Err(GatewayError::NotFound) => {
                return Err(MessageError::Unavailable("the cloud has no such member".into()));
            }
            Err(other) => return Err(other.into()),
        };
        Ok(self
            .users
            .upsert(&profile, &self.random.new_id(), self.clock.now())
            .await?)
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
        return Err(ValidationError::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ));
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
