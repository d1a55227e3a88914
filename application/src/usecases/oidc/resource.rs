//! What other parties do with issued tokens: `userinfo` (OIDC Core 1.0 §5.3), introspection
//! (RFC 7662) and revocation (RFC 7009).

use std::sync::Arc;

use domain::{SessionToken, Timestamp, User};
use serde_json::{Map, Value, json};
use tracing::{info, instrument};

use super::claims::claims_for;
use super::clients::{ClientCredentials, ClientRegistry};
use super::{OAuthError, OidcSettings};
use crate::ports::{Clock, Grant, GrantStore, StoreError, TokenSigner, UserRepository};

/// Why `userinfo` refused a token (RFC 6750 §3.1): the HTTP edge answers 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` (or 403 `insufficient_scope`, 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserInfoError {
    /// No token, or not one of ours, expired, or its grant revoked, or the person left.
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// The token lacks the `openid` scope.
    #[error("insufficient_scope: the access token was not granted openid")]
    InsufficientScope,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A verified, active access token.
struct ActiveAccess {
    claims: Map<String, Value>,
    grant: Grant,
}

/// Checks an access token: our signature with `typ: at+jwt`, our `iss`, unexpired, and its grant
/// (`sid`) still active for the same client. `Err` carries why not (for logs and error texts).
async fn active_access_token(
    signer: &dyn TokenSigner,
    grants: &dyn GrantStore,
    settings: &OidcSettings,
    token: &str,
    now: Timestamp,
) -> Result<Result<ActiveAccess, &'static str>, StoreError> {
    let Ok(Value::Object(claims)) = signer.verify(token, Some("at+jwt")) else {
        return Ok(Err("the token is not an access token this server signed"));
    };
    if claims.get("iss").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Ok(Err("the token has another issuer"));
    }
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp * 1000 <= now.as_millis()) {
        return Ok(Err("the token has expired"));
    }
    let Some(grant_id) = claims.get("sid").and_then(Value::as_str) else {
        return Ok(Err("the token names no grant"));
    };
    let Some(grant) = grants.grant(grant_id).await? else { return Ok(Err("the token's grant is gone")) };
    if !grant.is_active(now) {
        return Ok(Err("the token's grant was revoked"));
    }
    if claims.get("client_id").and_then(Value::as_str) != Some(grant.client_id.as_str()) {
        return Ok(Err("the token does not match its grant"));
    }
    Ok(Ok(ActiveAccess { claims, grant }))
}

fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    claims.get("scope").and_then(Value::as_str).unwrap_or_default().split(' ').map(str::to_owned).collect()
}

/// `GET/POST /oidc/userinfo`.
pub struct ReadUserInfo {
    settings: Arc<OidcSettings>,
    grants: Arc<dyn GrantStore>,
    users: Arc<dyn UserRepository>,
    signer: Arc<dyn TokenSigner>,
    clock: Arc<dyn Clock>,
}

impl ReadUserInfo {
    /// Builds the use case.
    pub fn new(
        settings: Arc<OidcSettings>,
        grants: Arc<dyn GrantStore>,
        users: Arc<dyn UserRepository>,
        signer: Arc<dyn TokenSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { settings, grants, users, signer, clock }
    }

    /// The claims the token's scopes release about its person ([`claims_for`]), read fresh from
    /// the user directory. Errors: see [`UserInfoError`].
    #[instrument(skip_all)]
    pub async fn execute(&self, access_token: Option<&str>) -> Result<Map<String, Value>, UserInfoError> {
        let token = access_token.filter(|t| !t.is_empty()).ok_or(UserInfoError::InvalidToken("no access token"))?;
        let now = self.clock.now();
        let access = active_access_token(&*self.signer, &*self.grants, &self.settings, token, now)
            .await?
            .map_err(UserInfoError::InvalidToken)?;
        let scopes = scopes_of(&access.claims);
        if !scopes.iter().any(|s| s == "openid") {
            return Err(UserInfoError::InsufficientScope);
        }
        let user = self.active_user(&access.grant.user_id).await?;
        Ok(claims_for(&user, &scopes, self.settings.subject))
    }

    async fn active_user(&self, user_id: &str) -> Result<User, UserInfoError> {
        self.users
            .find(user_id)
            .await?
            .filter(|u| u.profile.active)
            .ok_or(UserInfoError::InvalidToken("the person is no longer a member of the organization"))
    }
}

/// An introspection answer (RFC 7662 §2.2): `{"active": false}` or the token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection(pub Map<String, Value>);

impl Introspection {
    fn inactive() -> Self {
        let mut map = Map::new();
        map.insert("active".into(), Value::Bool(false));
        Self(map)
    }
}

/// `POST /oidc/introspect`, for resource servers (any confidential client).
pub struct IntrospectToken {
    clients: Arc<ClientRegistry>,
    settings: Arc<OidcSettings>,
    grants: Arc<dyn GrantStore>,
    signer: Arc<dyn TokenSigner>,
    clock: Arc<dyn Clock>,
}

impl IntrospectToken {
    /// Builds the use case.
    pub fn new(
        clients: Arc<ClientRegistry>,
        settings: Arc<OidcSettings>,
        grants: Arc<dyn GrantStore>,
        signer: Arc<dyn TokenSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { clients, settings, grants, signer, clock }
    }

    /// Introspects `token` (an access or refresh token; `token_type_hint` is only a hint, both are
    /// tried). The caller must authenticate as a confidential client; a refresh token is only
    /// described to the client it was issued to (others get `active: false`, RFC 7662 §4).
    /// Errors: `invalid_client`, `invalid_request` (no token), `server_error`.
    #[instrument(skip_all, fields(client_id = %credentials.client_id))]
    pub async fn execute(
        &self,
        credentials: &ClientCredentials,
        token: Option<&str>,
    ) -> Result<Introspection, OAuthError> {
        let client = self.clients.authenticate(credentials)?;
        if client.is_public() {
            return Err(OAuthError::invalid_client("public clients may not introspect tokens"));
        }
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let now = self.clock.now();
        if let Ok(access) = active_access_token(&*self.signer, &*self.grants, &self.settings, token, now).await? {
            let mut answer = Map::new();
            answer.insert("active".into(), json!(true));
            answer.insert("token_type".into(), json!("Bearer"));
            for key in ["scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "auth_time"] {
                if let Some(value) = access.claims.get(key) {
                    answer.insert(key.into(), value.clone());
                }
            }
            return Ok(Introspection(answer));
        }
        let Ok(refresh) = SessionToken::parse(token) else { return Ok(Introspection::inactive()) };
        match self.grants.find_refresh_token(&refresh.hash(), now).await? {
            Some((record, grant)) if grant.is_active(now) && grant.client_id == client.client_id => {
                let mut answer = Map::new();
                answer.insert("active".into(), json!(true));
                answer.insert("token_type".into(), json!("refresh_token"));
                answer.insert("scope".into(), json!(grant.scopes.join(" ")));
                answer.insert("client_id".into(), json!(grant.client_id));
                answer.insert("iss".into(), json!(self.settings.issuer));
                answer.insert("exp".into(), json!(record.expires_at.as_millis() / 1000));
                answer.insert("iat".into(), json!(record.created_at.as_millis() / 1000));
                Ok(Introspection(answer))
            }
            _ => Ok(Introspection::inactive()),
        }
    }
}

/// `POST /oidc/revoke` (RFC 7009).
pub struct RevokeToken {
    clients: Arc<ClientRegistry>,
    settings: Arc<OidcSettings>,
    grants: Arc<dyn GrantStore>,
    signer: Arc<dyn TokenSigner>,
    clock: Arc<dyn Clock>,
}

impl RevokeToken {
    /// Builds the use case.
    pub fn new(
        clients: Arc<ClientRegistry>,
        settings: Arc<OidcSettings>,
        grants: Arc<dyn GrantStore>,
        signer: Arc<dyn TokenSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { clients, settings, grants, signer, clock }
    }

    /// Revokes the grant behind `token` (a refresh token, or an access token via its `sid`), so
    /// every token of that grant stops working. A token that is unknown, expired, malformed or
    /// another client's changes nothing and still succeeds (RFC 7009 §2.2: "invalid tokens do not
    /// cause an error"; answering alike also tells a prober nothing). Errors: `invalid_client`,
    /// `invalid_request` (no token), `server_error`.
    #[instrument(skip_all, fields(client_id = %credentials.client_id))]
    pub async fn execute(&self, credentials: &ClientCredentials, token: Option<&str>) -> Result<(), OAuthError> {
        let client = self.clients.authenticate(credentials)?;
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let now = self.clock.now();
        let grant = if let Ok(refresh) = SessionToken::parse(token) {
            self.grants.find_refresh_token(&refresh.hash(), now).await?.map(|(_, grant)| grant)
        } else {
            active_access_token(&*self.signer, &*self.grants, &self.settings, token, now).await?.ok().map(|a| a.grant)
        };
        if let Some(grant) = grant.filter(|g| g.client_id == client.client_id)
            && self.grants.revoke_grant(&grant.id, now).await?
        {
            info!(grant_id = %grant.id, "oidc: grant revoked by its client");
        }
        Ok(())
    }
}
