//! Sign-in on local: starting a login through the cloud, completing it into a session, the
//! current user, and logout.

use std::sync::Arc;

use domain::{LoginAttempt, LoginFailure, LoginState, ProviderKey, ReturnTo, SessionToken, User};
use tracing::{info, instrument, warn};

use crate::ports::{
    Clock, CloudGateway, GatewayError, LoginAttemptStore, RandomSource, Session, SessionStore, StoreError,
    UserRepository,
};

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
