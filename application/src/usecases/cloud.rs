//! Cloud-side use cases: login intents, the provider callback, login results,
//! relayed messages and member look-ups. The cloud holds the providers'
//! credentials; these use cases are the only code that calls a provider.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::{
    AuthCode, Batch, BatchRecord, CorpId, DeliveryReport, LoginFailure, LoginState, MemberProfile, MessageState,
    PkceVerifier, ProviderKey, UserId,
};
use tracing::{info, instrument, warn};

use crate::ports::{
    ClaimedRelay, Clock, DispatchTrigger, IdentityError, LoginIntent, LoginIntentStore, LoginOutcome, LoginResultStore,
    MemberKey, Messenger, MessengerError, Providers, RandomSource, RecipientLimits, RelayClient, RelayMessageRecord,
    RelayMessageStore, RelayReceipt, RelaySendRequest, RelayWaiting, StoreError, UpstreamError, WaitReason,
};

/// How long a login intent lives, in seconds (docs/design.md: 10 minutes).
pub const INTENT_TTL_SECS: i64 = domain::login::LOGIN_TTL_SECS;
/// How long a login result waits for its relay client, in seconds (5 minutes).
pub const RESULT_TTL_SECS: i64 = 300;

/// Errors of the cloud use cases.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The `state` is missing, malformed, unknown, expired or already used.
    #[error("unknown, expired or already used login state")]
    InvalidState,
    /// The relay client may not do this (corp outside its list, `complete_url` outside its origins).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing under that key for this relay client.
    #[error("not found")]
    NotFound,
    /// The cloud serves no identity provider with this key.
    #[error("no identity provider {0:?} is served here")]
    UnknownProvider(String),
    /// The same idempotency key was used with a different message.
    #[error("idempotency key reused with a different message")]
    KeyReused,
    /// The member is not in the corp (the provider says so).
    #[error("not a member of the corp")]
    NotMember,
    /// The provider is unavailable, throttling or refusing the token; retry later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused permanently.
    #[error("provider refused: {0}")]
    Rejected(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UpstreamError> for CloudError {
    fn from(err: UpstreamError) -> Self {
        match err {
            UpstreamError::Rejected { .. } => Self::Rejected(err.to_string()),
            UpstreamError::Unavailable(_)
            | UpstreamError::Throttled(_)
            | UpstreamError::TokenRejected(_)
            | UpstreamError::Unrecognized { .. }
            | UpstreamError::Held { .. } => Self::Unavailable(err.to_string()),
        }
    }
}

impl From<MessengerError> for CloudError {
    fn from(err: MessengerError) -> Self {
        match err {
            MessengerError::CorpNotServed(corp) => Self::Forbidden(format!("no app is configured for corp {corp}")),
            MessengerError::Upstream(up) => up.into(),
        }
    }
}

impl From<IdentityError> for CloudError {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::NotMember => Self::NotMember,
            IdentityError::InvalidCode => Self::Rejected(err.to_string()),
            IdentityError::CorpNotServed(corp) => Self::Forbidden(format!("no app is configured for corp {corp}")),
            IdentityError::Upstream(up) => up.into(),
        }
    }
}

fn ensure_corp(client: &RelayClient, corp_id: &CorpId) -> Result<(), CloudError> {
    if client.corp_ids.contains(corp_id) {
        Ok(())
    } else {
        Err(CloudError::Forbidden(format!("relay client {} may not act for corp {corp_id}", client.id)))
    }
}

/// Whether `url` lies under one of `origins` (`https://host[:port]`): equal to
/// the origin or continuing with `/`.
pub fn url_in_origins(url: &str, origins: &[String]) -> bool {
    origins.iter().any(|origin| {
        let origin = origin.trim_end_matches('/');
        url.strip_prefix(origin).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Appends `state` to a URL as a query parameter (`?` or `&`). The state is
/// base64url, so it needs no escaping.
pub fn with_state(url: &str, state: &LoginState) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(fragment) => format!("{base}{sep}state={}#{fragment}", state.expose()),
        None => format!("{base}{sep}state={}", state.expose()),
    }
}

/// Registers a login for a relay client and returns the provider's authorize URL.
pub struct CreateLoginIntent {
    intents: Arc<dyn LoginIntentStore>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    public_url: String,
}

impl CreateLoginIntent {
    /// `public_url` is this cloud's public base URL (`https://relay.example.com`, no trailing
    /// `/`); each provider's `redirect_uri` is `{public_url}/auth/{provider}/callback`, the URL
    /// registered in that provider's console.
    pub fn new(
        intents: Arc<dyn LoginIntentStore>,
        providers: Providers,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        public_url: String,
    ) -> Self {
        Self { intents, providers, clock, random, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The `redirect_uri` of `provider`: `{public_url}/auth/{provider}/callback`.
    pub fn callback_url(&self, provider: &ProviderKey) -> String {
        format!("{}/auth/{provider}/callback", self.public_url)
    }

    /// Errors: `UnknownProvider` when the cloud serves no provider `provider`; `Forbidden`
    /// when `complete_url` is not under one of the client's origins; `Store` when the intent
    /// cannot be stored.
    #[instrument(skip_all, fields(client = %client.id, %provider))]
    pub async fn execute(
        &self,
        client: &RelayClient,
        provider: &ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, CloudError> {
        let idp = self.providers.get(provider).ok_or_else(|| CloudError::UnknownProvider(provider.to_string()))?;
        if !url_in_origins(complete_url, &client.complete_url_origins) {
            return Err(CloudError::Forbidden(format!(
                "complete_url {complete_url:?} is outside the origins allowed for relay client {}",
                client.id
            )));
        }
        let verifier = PkceVerifier::from_random_bytes(&self.random.bytes32());
        let intent = LoginIntent {
            state_hash: state.hash(),
            client_id: client.id.clone(),
            provider: provider.clone(),
            code_verifier: Some(verifier.clone()),
            complete_url: complete_url.to_owned(),
            corp_ids: client.corp_ids.clone(),
            expires_at: self.clock.now().plus_secs(INTENT_TTL_SECS),
        };
        self.intents.insert(&intent).await?;
        Ok(idp.authorize_url(state, &self.callback_url(provider), &verifier.challenge_s256()))
    }
}

/// The query a provider sends to the callback (`code` or `authCode`, `state`, `error`; each
/// provider's reference §A.2).
#[derive(Debug, Clone, Default)]
pub struct CallbackQuery {
    /// `state`.
    pub state: Option<String>,
    /// `authCode`, or `code` when `authCode` is absent.
    pub code: Option<String>,
    /// `error`, when the person declined.
    pub error: Option<String>,
}

/// Handles a provider's redirect: resolves the person to a member of one of the relay client's
/// tenants served by that provider, stores the outcome for the relay client, and returns where
/// to send the browser (`complete_url?state=…`: no code and no profile in the URL).
pub struct HandleCallback {
    intents: Arc<dyn LoginIntentStore>,
    results: Arc<dyn LoginResultStore>,
    providers: Providers,
    clock: Arc<dyn Clock>,
}

impl HandleCallback {
    /// Builds the use case.
    pub fn new(
        intents: Arc<dyn LoginIntentStore>,
        results: Arc<dyn LoginResultStore>,
        providers: Providers,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { intents, results, providers, clock }
    }

    /// Handles the redirect that came back on `provider`'s callback path.
    ///
    /// Errors: `InvalidState` when the state is missing, malformed, unknown, expired or used,
    /// or when the login was started with another provider (nothing is stored); `Store`. A
    /// provider failure is not an error here: it becomes a stored [`LoginFailure`] the local
    /// side shows to the person.
    #[instrument(skip_all, fields(%provider))]
    pub async fn execute(&self, provider: &ProviderKey, query: &CallbackQuery) -> Result<String, CloudError> {
        let state =
            LoginState::parse(query.state.as_deref().unwrap_or_default()).map_err(|_| CloudError::InvalidState)?;
        let now = self.clock.now();
        let intent = self.intents.take(&state.hash(), now).await?.ok_or(CloudError::InvalidState)?;
        if &intent.provider != provider {
            warn!(started = %intent.provider, "a login came back on another provider's callback; refused");
            return Err(CloudError::InvalidState);
        }
        let outcome = match (&query.error, &query.code) {
            (Some(error), _) => Err(LoginFailure::ConsentDenied { error: error.chars().take(200).collect() }),
            (None, Some(code)) => match AuthCode::parse(code) {
                Ok(code) => self.resolve(&intent, &code).await,
                Err(_) => Err(LoginFailure::InvalidCode),
            },
            (None, None) => Err(LoginFailure::InvalidCode),
        };
        match &outcome {
            Ok(profile) => {
                info!(client = %intent.client_id, corp_id = %profile.corp_id, userid = %profile.userid, "login resolved")
            }
            Err(failure) => {
                info!(client = %intent.client_id, code = failure.code(), "login refused")
            }
        }
        self.results.insert(&intent.state_hash, &intent.client_id, &outcome, now.plus_secs(RESULT_TTL_SECS)).await?;
        Ok(with_state(&intent.complete_url, &state))
    }

    async fn resolve(&self, intent: &LoginIntent, code: &AuthCode) -> LoginOutcome {
        let Some(idp) = self.providers.get(&intent.provider) else {
            warn!(provider = %intent.provider, "the provider of a stored login is no longer served");
            return Err(LoginFailure::ProviderUnavailable);
        };
        let identity = idp.exchange_code(code, intent.code_verifier.clone()).await.map_err(|err| match err {
            IdentityError::InvalidCode => LoginFailure::InvalidCode,
            IdentityError::NotMember => LoginFailure::NotMember,
            other => {
                warn!(error = %other, "code exchange failed");
                LoginFailure::ProviderUnavailable
            }
        })?;
        // Only the client's tenants this provider serves: a person never lands in a tenant
        // of another provider.
        let candidates: Vec<&CorpId> = intent
            .corp_ids
            .iter()
            .filter(|c| self.providers.for_tenant(c).is_some_and(|e| e.key == intent.provider))
            .filter(|c| identity.corp_id.as_ref().is_none_or(|corp| corp == *c))
            .collect();
        for corp_id in candidates {
            let userid = match idp.find_userid(corp_id, &identity.union_id).await {
                Ok(userid) => userid,
                Err(IdentityError::NotMember | IdentityError::CorpNotServed(_)) => continue,
                Err(err) => {
                    warn!(error = %err, %corp_id, "member look-up failed");
                    return Err(LoginFailure::ProviderUnavailable);
                }
            };
            return match idp.get_member(corp_id, &userid).await {
                Ok(details) if !details.active => {
                    info!(%corp_id, "sign-in refused: the org marks the member inactive");
                    Err(LoginFailure::Inactive)
                }
                Ok(details) => {
                    Ok(MemberProfile::from_details(intent.provider.clone(), corp_id.clone(), details, Some(&identity)))
                }
                Err(IdentityError::NotMember) => Err(LoginFailure::NotMember),
                Err(err) => {
                    warn!(error = %err, %corp_id, "member details failed");
                    Err(LoginFailure::ProviderUnavailable)
                }
            };
        }
        Err(LoginFailure::NotMember)
    }
}

/// Hands a finished login's outcome to the relay client that started it, once.
pub struct TakeLoginResult {
    results: Arc<dyn LoginResultStore>,
    clock: Arc<dyn Clock>,
}

impl TakeLoginResult {
    /// Builds the use case.
    pub fn new(results: Arc<dyn LoginResultStore>, clock: Arc<dyn Clock>) -> Self {
        Self { results, clock }
    }

    /// Errors: `NotFound` when unknown, expired, taken, or another client's.
    #[instrument(skip_all, fields(client = %client.id))]
    pub async fn execute(&self, client: &RelayClient, state: &LoginState) -> Result<LoginOutcome, CloudError> {
        self.results.take(&state.hash(), &client.id, self.clock.now()).await?.ok_or(CloudError::NotFound)
    }
}

fn receipt(record: &RelayMessageRecord) -> RelayReceipt {
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

fn same_message(a: &RelayMessageRecord, b: &RelayMessageRecord) -> bool {
    a.corp_id == b.corp_id
        && a.body == b.body
        && a.batches.len() == b.batches.len()
        && a.batches.iter().zip(&b.batches).all(|(x, y)| x.batch == y.batch)
}

/// Reports a relayed message: the cloud's record plus the provider's progress and
/// per-recipient result of every task.
pub struct RelayStatus {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
}

impl RelayStatus {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, messenger: Arc<dyn Messenger>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, messenger, clock }
    }

    /// Errors: `NotFound` (unknown or another client's); `Unavailable` /
    /// `Rejected` from the provider; `Store`. Marks the message `completed` once
    /// every task is done.
    #[instrument(skip_all, fields(client = %client.id, key))]
    pub async fn execute(&self, client: &RelayClient, key: &str) -> Result<(RelayReceipt, DeliveryReport), CloudError> {
        let mut record = self.messages.get(&client.id, key).await?.ok_or(CloudError::NotFound)?;
        let mut tasks = Vec::new();
        for delivery_id in record.batches.iter().filter_map(|b| b.delivery_id.as_ref()) {
            let progress = self.messenger.progress(&record.corp_id, delivery_id).await?;
            let result = self.messenger.result(&record.corp_id, delivery_id).await?;
            tasks.push((progress, result));
        }
        let skipped: Vec<_> = record.batches.iter().flat_map(|b| b.skipped.iter().cloned()).collect();
        let report = DeliveryReport::merge(&tasks).with_skipped(&skipped, tasks.len());
        if report.done && record.state == MessageState::Sent {
            record.state = MessageState::Completed;
            self.messages.set_state(&client.id, key, record.state, self.clock.now()).await?;
        }
        Ok((receipt(&record), report))
    }
}

/// Recalls every task of a relayed message.
pub struct RelayRecall {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
}

/// A recall is tried only within this many milliseconds of the send (24 h, the providers' window).
pub const RECALL_WINDOW_MS: i64 = 24 * 3600 * 1000;

impl RelayRecall {
    /// Builds the use case.
    pub fn new(messages: Arc<dyn RelayMessageStore>, messenger: Arc<dyn Messenger>, clock: Arc<dyn Clock>) -> Self {
        Self { messages, messenger, clock }
    }

    /// Errors: `NotFound`; `Rejected` when the message was never sent or is
    /// older than 24 h (the provider's limit), or the provider refuses; `Unavailable`; `Store`.
    #[instrument(skip_all, fields(client = %client.id, key))]
    pub async fn execute(&self, client: &RelayClient, key: &str) -> Result<RelayReceipt, CloudError> {
        let mut record = self.messages.get(&client.id, key).await?.ok_or(CloudError::NotFound)?;
        let now = self.clock.now();
        if record.state == MessageState::Recalled {
            return Ok(receipt(&record));
        }
        if now.as_millis() - record.created_at.as_millis() > RECALL_WINDOW_MS {
            return Err(CloudError::Rejected("a message can be recalled only within 24 hours of the send".into()));
        }
        let tasks: Vec<_> = record.batches.iter().filter_map(|b| b.delivery_id.as_ref()).collect();
        if tasks.is_empty() {
            return Err(CloudError::Rejected("the message has not been sent, so there is nothing to recall".into()));
        }
        for delivery_id in tasks {
            self.messenger.recall(&record.corp_id, delivery_id).await?;
        }
        record.state = MessageState::Recalled;
        self.messages.set_state(&client.id, key, record.state, now).await?;
        Ok(receipt(&record))
    }
}

/// Fetches a member's current profile from the provider serving the corp (tenant)
/// (its `find_userid` and `get_member`).
pub struct FetchMember {
    providers: Providers,
}

impl FetchMember {
    /// Builds the use case.
    pub fn new(providers: Providers) -> Self {
        Self { providers }
    }

    /// Errors: `Forbidden` (corp outside the client's list, or served by no provider);
    /// `NotMember`; `Unavailable`/`Rejected` from the provider.
    #[instrument(skip_all, fields(client = %client.id, %corp_id))]
    pub async fn execute(
        &self,
        client: &RelayClient,
        corp_id: &CorpId,
        key: &MemberKey,
    ) -> Result<MemberProfile, CloudError> {
        ensure_corp(client, corp_id)?;
        let entry = self
            .providers
            .for_tenant(corp_id)
            .ok_or_else(|| CloudError::Forbidden(format!("no identity provider serves the corp {corp_id}")))?;
        let idp = &entry.idp;
        let userid = match key {
            MemberKey::UserId(userid) => userid.clone(),
            MemberKey::UnionId(union_id) => idp.find_userid(corp_id, union_id).await?,
        };
        let details = idp.get_member(corp_id, &userid).await?;
        Ok(MemberProfile::from_details(entry.key.clone(), corp_id.clone(), details, None))
    }
}

/// How far back background reconciliation looks, in ms: the provider answers progress queries for
/// 24 hours (the shortest window a provider documents is used).
pub const RECONCILE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Background delivery reconciliation on the cloud: asks the provider for the progress of every task
/// of recently sent messages and marks a message `completed` once all its tasks are
/// done. Per-recipient results are read on demand ([`RelayStatus`]).
///
/// A progress query may be a metered call (the provider's adapter says), so the job runs within
/// a budget: at most `max_rounds` rounds per message, one progress query per delivery each. A message still not done after its rounds stays `sent`;
/// its status is still read on demand.
pub struct ReconcileDeliveries {
    messages: Arc<dyn RelayMessageStore>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
    max_rounds: u32,
}

impl ReconcileDeliveries {
    /// Builds the job with a budget of `max_rounds` rounds per message (at least 1).
    pub fn new(
        messages: Arc<dyn RelayMessageStore>,
        messenger: Arc<dyn Messenger>,
        clock: Arc<dyn Clock>,
        max_rounds: u32,
    ) -> Self {
        Self { messages, messenger, clock, max_rounds: max_rounds.max(1) }
    }

    /// Checks up to `limit` sent messages that have rounds left; returns how many were completed.
    /// Errors: `Store` when listing fails (a provider error on one message is logged, and the round
    /// counts: a failing message cannot spend more than its budget).
    #[instrument(skip_all)]
    pub async fn run_once(&self, limit: u32) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let after = domain::Timestamp::from_millis(now.as_millis() - RECONCILE_WINDOW_MS);
        let mut completed = 0;
        for record in self.messages.list_in_state(MessageState::Sent, after, self.max_rounds, limit).await? {
            let mut done = true;
            for delivery_id in record.batches.iter().filter_map(|b| b.delivery_id.as_ref()) {
                match self.messenger.progress(&record.corp_id, delivery_id).await {
                    Ok(progress) => done &= progress.done,
                    Err(err) => {
                        warn!(key = %record.key, %delivery_id, error = %err, "progress query failed");
                        done = false;
                        break;
                    }
                }
            }
            // Completed, or touched (same state) so the least recently checked goes first next time.
            let state = if done { MessageState::Completed } else { MessageState::Sent };
            self.messages.record_reconcile_round(&record.client_id, &record.key, state, self.clock.now()).await?;
            completed += usize::from(done);
        }
        Ok(completed)
    }
}
