//! `GET /oidc/authorize`: the authorization request (OIDC Core 1.0 §3.1.2, RFC 6749 §4.1.1).

use std::sync::Arc;

use domain::{SessionToken, Timestamp, User};
use tracing::{info, instrument};
use url::Url;

use super::clients::{ClientRegistry, OidcClient};
use super::{OAuthError, OidcSettings, granted_scopes};
use crate::ports::{AuthorizationCode, Clock, GrantStore, RandomSource, Session, SessionStore, UserRepository};

/// Longest `state` accepted, in bytes (it is echoed in a URL).
pub const MAX_STATE_BYTES: usize = 1024;
/// Longest `nonce` accepted, in bytes (it is copied into the ID token).
pub const MAX_NONCE_BYTES: usize = 512;

/// The authorization request's parameters, as received (every one optional at this point).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri` (required by OIDC Core §3.1.2.1).
    pub redirect_uri: Option<String>,
    /// `response_type`: only `code`.
    pub response_type: Option<String>,
    /// `response_mode`: only `query` (the default for `code`).
    pub response_mode: Option<String>,
    /// `scope`, space-separated; must include `openid`.
    pub scope: Option<String>,
    /// `state`, echoed back (≤ `MAX_STATE_BYTES`).
    pub state: Option<String>,
    /// `nonce`, copied into the ID token (≤ `MAX_NONCE_BYTES`).
    pub nonce: Option<String>,
    /// `code_challenge` (RFC 7636 §4.2).
    pub code_challenge: Option<String>,
    /// `code_challenge_method`: only `S256` (absent means `plain`, which is refused).
    pub code_challenge_method: Option<String>,
    /// `prompt`: space-separated `none`, `login`, `consent`, `select_account`.
    pub prompt: Option<String>,
    /// `max_age`, seconds.
    pub max_age: Option<String>,
    /// `login_hint`: a `userid`, `unionId`, org email or `sub` the person is expected to be.
    pub login_hint: Option<String>,
    /// `request` (a request object): not supported.
    pub request: Option<String>,
    /// `request_uri`: not supported.
    pub request_uri: Option<String>,
    /// Set by dingbridge itself when it sent the person to sign in again (for `prompt=login`,
    /// `max_age` or a `login_hint` mismatch): only a session created at or after this instant
    /// (epoch ms) counts. Query parameter [`FRESH_AFTER_PARAM`].
    pub fresh_after: Option<Timestamp>,
    /// A parameter the request gave more than once (RFC 6749 §3.1: refused with
    /// `invalid_request`).
    pub repeated: Option<String>,
}

/// The query parameter that carries [`AuthorizeRequest::fresh_after`] through the sign-in.
pub const FRESH_AFTER_PARAM: &str = "dingbridge_fresh_after";

/// What the authorization endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// 302 to the client's `redirect_uri` with `code`, `state` and `iss` (RFC 9207) — or with
    /// `error`, `error_description`, `state` and `iss`.
    Redirect(String),
    /// The person must sign in with a provider first, then come back to this request; with
    /// `fresh_after`, only a sign-in at or after that instant satisfies it.
    SignIn {
        /// Set as [`AuthorizeRequest::fresh_after`] on the way back.
        fresh_after: Option<Timestamp>,
    },
    /// The request names no registered client or redirect URI, so it must not redirect anywhere
    /// (RFC 6749 §4.1.2.1): an error page.
    Refused(OAuthError),
    /// The person is signed in but not allowed to use this client (corp or department): a page.
    Forbidden(OAuthError),
}

/// Handles authorization requests.
pub struct Authorize {
    clients: Arc<ClientRegistry>,
    settings: Arc<OidcSettings>,
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserRepository>,
    grants: Arc<dyn GrantStore>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
}

/// A request that passed every check that does not need the person.
struct Checked<'a> {
    client: &'a OidcClient,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt_none: bool,
    prompt_login: bool,
    max_age_secs: Option<i64>,
}

impl Authorize {
    /// Builds the use case.
    pub fn new(
        clients: Arc<ClientRegistry>,
        settings: Arc<OidcSettings>,
        sessions: Arc<dyn SessionStore>,
        users: Arc<dyn UserRepository>,
        grants: Arc<dyn GrantStore>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { clients, settings, sessions, users, grants, random, clock }
    }

    /// Decides the request for the browser holding `session_token` (the session cookie, if any).
    /// Never fails: storage errors become a `server_error` redirect (the redirect URI is trusted
    /// by then) or page.
    #[instrument(skip_all, fields(client_id = request.client_id.as_deref().unwrap_or("")))]
    pub async fn execute(&self, request: AuthorizeRequest, session_token: Option<&str>) -> AuthorizeOutcome {
        let (client, redirect_uri) = match self.trusted_redirect(&request) {
            Ok(found) => found,
            Err(err) => return AuthorizeOutcome::Refused(err),
        };
        let state = request.state.clone().filter(|s| !s.is_empty());
        let fail =
            |err: OAuthError| AuthorizeOutcome::Redirect(self.error_redirect(&redirect_uri, state.as_deref(), &err));
        let checked = match self.check(client, redirect_uri.clone(), &request) {
            Ok(checked) => checked,
            Err(err) => return fail(err),
        };
        match self.decide(&checked, &request, session_token).await {
            Ok(outcome) => outcome,
            Err(err) => fail(err),
        }
    }

    /// The client and its redirect URI, or why the request may not redirect at all.
    fn trusted_redirect(&self, request: &AuthorizeRequest) -> Result<(&OidcClient, String), OAuthError> {
        let client_id = request
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
        let client = self.clients.get(client_id).ok_or_else(|| {
            OAuthError::new("unauthorized_client", format!("client_id {client_id:?} is not registered"))
        })?;
        let redirect_uri = request
            .redirect_uri
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;
        if !client.redirect_uri_allowed(redirect_uri) {
            return Err(OAuthError::invalid_request(format!(
                "redirect_uri {redirect_uri:?} is not registered for client {client_id:?} (exact match required)"
            )));
        }
        Ok((client, redirect_uri.to_owned()))
    }

    fn check<'a>(
        &self,
        client: &'a OidcClient,
        redirect_uri: String,
        request: &AuthorizeRequest,
    ) -> Result<Checked<'a>, OAuthError> {
        if let Some(name) = &request.repeated {
            return Err(OAuthError::invalid_request(format!("{name} is given more than once")));
        }
        if request.request.is_some() {
            return Err(OAuthError::new("request_not_supported", "request objects are not supported"));
        }
        if request.request_uri.is_some() {
            return Err(OAuthError::new("request_uri_not_supported", "request_uri is not supported"));
        }
        match request.response_type.as_deref() {
            Some("code") => {}
            None | Some("") => return Err(OAuthError::invalid_request("response_type is missing")),
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_response_type",
                    format!("response_type {other:?} is not supported; only \"code\""),
                ));
            }
        }
        if let Some(mode) = request.response_mode.as_deref().filter(|m| *m != "query") {
            return Err(OAuthError::invalid_request(format!(
                "response_mode {mode:?} is not supported; only \"query\""
            )));
        }
        let requested = request.scope.as_deref().unwrap_or_default();
        if !requested.split(' ').any(|s| s == "openid") {
            return Err(OAuthError::new("invalid_scope", "scope must include \"openid\""));
        }
        let scopes = granted_scopes(requested, &client.scopes);
        if let Some(state) = &request.state
            && state.len() > MAX_STATE_BYTES
        {
            return Err(OAuthError::invalid_request(format!("state is longer than {MAX_STATE_BYTES} bytes")));
        }
        let nonce = request.nonce.clone().filter(|n| !n.is_empty());
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
            return Err(OAuthError::invalid_request(format!("nonce is longer than {MAX_NONCE_BYTES} bytes")));
        }
        let code_challenge = check_pkce(client, request)?;
        let (prompt_none, prompt_login) = check_prompt(request.prompt.as_deref())?;
        let max_age_secs = match request.max_age.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                raw.parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| OAuthError::invalid_request("max_age must be a non-negative integer (seconds)"))?,
            ),
        };
        let state = request.state.clone().filter(|s| !s.is_empty());
        Ok(Checked {
            client,
            redirect_uri,
            state,
            scopes,
            nonce,
            code_challenge,
            prompt_none,
            prompt_login,
            max_age_secs,
        })
    }

    async fn decide(
        &self,
        checked: &Checked<'_>,
        request: &AuthorizeRequest,
        session_token: Option<&str>,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        let now = self.clock.now();
        if request.fresh_after.is_some_and(|after| now.is_before(after)) {
            return Err(OAuthError::invalid_request(format!("{FRESH_AFTER_PARAM} lies in the future")));
        }
        let fresh_login = |checked: &Checked<'_>| {
            if checked.prompt_none {
                Err(OAuthError::new("login_required", "the person must sign in again, and prompt=none forbids it"))
            } else {
                Ok(AuthorizeOutcome::SignIn { fresh_after: Some(now) })
            }
        };
        // `prompt=login` on the first pass: always a fresh sign-in.
        if checked.prompt_login && request.fresh_after.is_none() {
            return fresh_login(checked);
        }
        let Some((session, user)) = self.signed_in(session_token, now).await? else {
            if checked.prompt_none {
                return Err(OAuthError::new("login_required", "nobody is signed in, and prompt=none forbids asking"));
            }
            return Ok(AuthorizeOutcome::SignIn { fresh_after: request.fresh_after });
        };
        if request.fresh_after.is_some_and(|after| session.created_at < after) {
            return fresh_login(checked);
        }
        if let Some(max_age) = checked.max_age_secs
            && session.created_at.plus_secs(max_age) < now
        {
            return fresh_login(checked);
        }
        // A hint naming someone else asks for a sign-in; after that sign-in, whoever signed in counts.
        if let Some(hint) = request.login_hint.as_deref().filter(|h| !h.is_empty())
            && request.fresh_after.is_none()
            && !matches_hint(&user, hint, &self.settings)
        {
            return fresh_login(checked);
        }
        if let Some(reason) = not_allowed(checked.client, &user) {
            info!(user_id = %user.id, client_id = %checked.client.client_id, "oidc: person not allowed for this client");
            return Ok(AuthorizeOutcome::Forbidden(OAuthError::new("access_denied", reason)));
        }
        let code = SessionToken::from_random_bytes(&self.random.bytes32());
        let record = AuthorizationCode {
            code_hash: code.hash(),
            client_id: checked.client.client_id.clone(),
            user_id: user.id.clone(),
            session_hash: session.token_hash.clone(),
            redirect_uri: checked.redirect_uri.clone(),
            scopes: checked.scopes.clone(),
            nonce: checked.nonce.clone(),
            code_challenge: checked.code_challenge.clone(),
            auth_time: session.created_at,
            created_at: now,
            expires_at: now.plus_secs(self.settings.code_ttl_secs),
        };
        self.grants.insert_code(&record).await?;
        info!(user_id = %user.id, client_id = %checked.client.client_id, "oidc: code issued");
        let mut pairs = vec![("code", code.expose().to_owned())];
        if let Some(state) = &checked.state {
            pairs.push(("state", state.clone()));
        }
        pairs.push(("iss", self.settings.issuer.clone()));
        Ok(AuthorizeOutcome::Redirect(with_query(&checked.redirect_uri, &pairs)))
    }

    /// The unexpired session of `token` and its active user.
    async fn signed_in(&self, token: Option<&str>, now: Timestamp) -> Result<Option<(Session, User)>, OAuthError> {
        let Some(token) = token.and_then(|t| SessionToken::parse(t).ok()) else { return Ok(None) };
        let Some(session) = self.sessions.find(&token.hash(), now).await? else { return Ok(None) };
        let user = self.users.find(&session.user_id).await?.filter(|u| u.profile.active);
        Ok(user.map(|user| (session, user)))
    }

    fn error_redirect(&self, redirect_uri: &str, state: Option<&str>, err: &OAuthError) -> String {
        let mut pairs = vec![("error", err.error.to_owned()), ("error_description", err.description.clone())];
        if let Some(state) = state {
            pairs.push(("state", state.to_owned()));
        }
        pairs.push(("iss", self.settings.issuer.clone()));
        with_query(redirect_uri, &pairs)
    }
}

/// The S256 challenge, if any. A public client must send one; `plain` (or no method with a
/// challenge, which means plain) is refused (RFC 9700 §2.1.1); the challenge must be 43
/// base64url characters (the S256 output, RFC 7636 §4.2).
fn check_pkce(client: &OidcClient, request: &AuthorizeRequest) -> Result<Option<String>, OAuthError> {
    let challenge = request.code_challenge.as_deref().filter(|c| !c.is_empty());
    let method = request.code_challenge_method.as_deref().filter(|m| !m.is_empty());
    match (challenge, method) {
        (None, None) if client.is_public() => {
            Err(OAuthError::invalid_request("a public client must send code_challenge with code_challenge_method=S256"))
        }
        (None, None) => Ok(None),
        (None, Some(_)) => Err(OAuthError::invalid_request("code_challenge_method without code_challenge")),
        (Some(_), None | Some("plain")) => {
            Err(OAuthError::invalid_request("code_challenge_method must be S256 (plain is not accepted)"))
        }
        (Some(_), Some(other)) if other != "S256" => {
            Err(OAuthError::invalid_request(format!("code_challenge_method {other:?} is not supported; only S256")))
        }
        (Some(challenge), Some(_)) => {
            let well_formed =
                challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if well_formed {
                Ok(Some(challenge.to_owned()))
            } else {
                Err(OAuthError::invalid_request(
                    "code_challenge must be the 43-character base64url SHA-256 of the verifier",
                ))
            }
        }
    }
}

/// `(none, login)` from `prompt` (OIDC Core §3.1.2.1); `none` with anything else is refused.
fn check_prompt(prompt: Option<&str>) -> Result<(bool, bool), OAuthError> {
    let values: Vec<&str> = prompt.unwrap_or_default().split(' ').filter(|v| !v.is_empty()).collect();
    if let Some(unknown) = values.iter().find(|v| !matches!(**v, "none" | "login" | "consent" | "select_account")) {
        return Err(OAuthError::invalid_request(format!("prompt value {unknown:?} is not supported")));
    }
    let none = values.contains(&"none");
    if none && values.len() > 1 {
        return Err(OAuthError::invalid_request("prompt=none cannot be combined with other values"));
    }
    Ok((none, values.contains(&"login") || values.contains(&"select_account")))
}

/// Whether the signed-in `user` is the person `hint` names: their `sub`, `userid`, `unionId` or
/// org email.
fn matches_hint(user: &User, hint: &str, settings: &OidcSettings) -> bool {
    let profile = &user.profile;
    hint == settings.subject.of(user)
        || hint == profile.userid.as_str()
        || hint == profile.union_id.as_str()
        || profile.org_email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(hint))
}

/// Why `user` may not use `client`, if they may not.
fn not_allowed(client: &OidcClient, user: &User) -> Option<String> {
    let profile = &user.profile;
    if !client.corp_ids.is_empty() && !client.corp_ids.contains(&profile.corp_id) {
        return Some(format!("{} is open to members of other organizations only", client.client_id));
    }
    if !client.dept_ids.is_empty() && !profile.dept_ids.iter().any(|d| client.dept_ids.contains(d)) {
        return Some(format!("{} is open to members of other departments only", client.client_id));
    }
    None
}

/// `uri` with `pairs` appended to its query (form-encoded), keeping what it had.
pub(crate) fn with_query(uri: &str, pairs: &[(&str, String)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            url.to_string()
        }
        // Registered URIs are validated at start, so this is unreachable in practice; fall back
        // to appending by hand rather than failing the request.
        Err(_) => {
            let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            let separator = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{separator}{encoded}")
        }
    }
}
