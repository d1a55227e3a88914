//! `POST /oidc/token`: the authorization-code and refresh-token grants (RFC 6749 §4.1.3 and §6,
//! OIDC Core 1.0 §3.1.3 and §12), with PKCE (RFC 7636 §4.6) and refresh-token rotation with reuse
//! detection (RFC 9700 §4.14.2).

use std::sync::Arc;

use domain::digest::{at_hash, sha256_base64url};
use domain::{SessionToken, Timestamp, User};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::{info, instrument, warn};

use super::claims::claims_for;
use super::clients::{ClientCredentials, ClientRegistry, OidcClient};
use super::{OAuthError, OidcSettings};
use crate::ports::{
    Clock, CloudGateway, CodeRedemption, Grant, GrantStore, RandomSource, RefreshRotation, RefreshToken, SessionStore,
    SigningAlgorithm, TokenSigner, UserRepository,
};
use crate::usecases::members::{MemberSync, SyncError, Synced};

/// The token request's form parameters, as received.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `grant_type`: `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// `code` (authorization_code).
    pub code: Option<String>,
    /// `redirect_uri` (authorization_code): the authorization request's, exactly.
    pub redirect_uri: Option<String>,
    /// `code_verifier` (authorization_code, PKCE).
    pub code_verifier: Option<String>,
    /// `refresh_token` (refresh_token).
    pub refresh_token: Option<String>,
    /// `scope` (refresh_token): a subset of the grant's, for the new access token.
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// The ID token, when `openid` was granted.
    pub id_token: Option<String>,
    /// The next refresh token, when `offline_access` was granted.
    pub refresh_token: Option<String>,
    /// The scopes of the access token, space-separated.
    pub scope: String,
}

/// The token endpoint.
pub struct ExchangeToken {
    clients: Arc<ClientRegistry>,
    settings: Arc<OidcSettings>,
    grants: Arc<dyn GrantStore>,
    users: Arc<dyn UserRepository>,
    signer: Arc<dyn TokenSigner>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    sync: MemberSync,
}

impl ExchangeToken {
    /// Builds the use case; `gateway` and `sessions` serve the membership re-check on refresh (a
    /// leaver is marked inactive and loses sessions and grants, as the event feed would do).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clients: Arc<ClientRegistry>,
        settings: Arc<OidcSettings>,
        grants: Arc<dyn GrantStore>,
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        gateway: Arc<dyn CloudGateway>,
        signer: Arc<dyn TokenSigner>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut sync = MemberSync::new(users.clone(), sessions, gateway, random.clone(), clock.clone());
        sync.set_grants(grants.clone());
        Self { clients, settings, grants, users, signer, random, clock, sync }
    }

    /// Authenticates the client and runs the grant. Errors (RFC 6749 §5.2): `invalid_client`,
    /// `invalid_request` (a parameter missing), `unsupported_grant_type`, `invalid_grant` (code or
    /// refresh token unknown, expired, used, another client's, wrong `redirect_uri`, PKCE failed,
    /// member left), `invalid_scope`, `temporarily_unavailable` (the membership re-check could not
    /// reach the cloud), `server_error`.
    #[instrument(skip_all, fields(client_id = %credentials.client_id))]
    pub async fn execute(
        &self,
        credentials: &ClientCredentials,
        request: TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.clients.authenticate(credentials)?;
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.code_grant(client, request).await,
            Some("refresh_token") => self.refresh_grant(client, request).await,
            None | Some("") => Err(OAuthError::invalid_request("grant_type is missing")),
            Some(other) => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use authorization_code or refresh_token"),
            )),
        }
    }

    async fn code_grant(&self, client: &OidcClient, request: TokenRequest) -> Result<TokenResponse, OAuthError> {
        let raw = required(request.code.as_deref(), "code")?;
        let redirect_uri = required(request.redirect_uri.as_deref(), "redirect_uri")?;
        let code = SessionToken::parse(raw)
            .map_err(|_| OAuthError::invalid_grant("the code is not one this server issued"))?;
        let now = self.clock.now();
        let code = match self.grants.redeem_code(&code.hash(), now).await? {
            CodeRedemption::Redeemed(code) => code,
            CodeRedemption::Replayed { grant_id } => {
                if let Some(grant_id) = grant_id {
                    self.grants.revoke_grant(&grant_id, now).await?;
                }
                warn!(client_id = %client.client_id, "oidc: an authorization code was used twice; what it issued is revoked");
                return Err(OAuthError::invalid_grant("the code was already used; the tokens it produced are revoked"));
            }
            CodeRedemption::Invalid => return Err(OAuthError::invalid_grant("the code is unknown or expired")),
        };
        if code.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("the code was issued to another client"));
        }
        if code.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        check_verifier(code.code_challenge.as_deref(), request.code_verifier.as_deref())?;
        let user = self.active_user(&code.user_id).await?;
        let grant = Grant {
            id: self.random.new_id(),
            client_id: client.client_id.clone(),
            user_id: user.id.clone(),
            session_hash: code.session_hash.clone(),
            scopes: code.scopes.clone(),
            auth_time: code.auth_time,
            created_at: now,
            expires_at: now.plus_secs(self.settings.grant_ttl_secs),
            membership_checked_at: now,
            revoked_at: None,
        };
        let refresh = self.next_refresh_token(&grant, now);
        let stored = refresh.as_ref().map(|(_, record)| record);
        self.grants.create_grant(&grant, stored, Some(&code.code_hash)).await?;
        info!(user_id = %user.id, client_id = %client.client_id, grant_id = %grant.id, "oidc: tokens issued for a code");
        self.respond(client, &grant, &user, &grant.scopes, code.nonce.as_deref(), refresh.map(|(token, _)| token), now)
    }

    async fn refresh_grant(&self, client: &OidcClient, request: TokenRequest) -> Result<TokenResponse, OAuthError> {
        let raw = required(request.refresh_token.as_deref(), "refresh_token")?;
        let presented = SessionToken::parse(raw)
            .map_err(|_| OAuthError::invalid_grant("the refresh token is not one this server issued"))?
            .hash();
        let now = self.clock.now();
        let Some((_, grant)) = self.grants.find_refresh_token(&presented, now).await? else {
            // Used before (reuse: the grant is revoked now), unknown or expired.
            let placeholder = RefreshToken {
                token_hash: SessionToken::from_random_bytes(&self.random.bytes32()).hash(),
                grant_id: String::new(),
                created_at: now,
                expires_at: now,
            };
            return match self.grants.rotate_refresh_token(&presented, &placeholder, now).await? {
                RefreshRotation::Reused { grant_id } => {
                    warn!(%grant_id, client_id = %client.client_id, "oidc: a used refresh token was presented again; the grant is revoked");
                    Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"))
                }
                RefreshRotation::Rotated(grant) => {
                    // Cannot happen (the token was not current a moment ago); never leave it usable.
                    self.grants.revoke_grant(&grant.id, now).await?;
                    Err(OAuthError::invalid_grant("the refresh token is unknown or expired"))
                }
                RefreshRotation::Invalid => Err(OAuthError::invalid_grant("the refresh token is unknown or expired")),
            };
        };
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
        }
        if !grant.is_active(now) {
            return Err(OAuthError::invalid_grant("the grant was revoked or has expired"));
        }
        let scopes = match request.scope.as_deref().filter(|s| !s.is_empty()) {
            None => grant.scopes.clone(),
            Some(requested) => {
                let asked: Vec<String> = requested.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
                if let Some(extra) = asked.iter().find(|s| !grant.scopes.contains(s)) {
                    return Err(OAuthError::new("invalid_scope", format!("scope {extra:?} was not granted")));
                }
                asked
            }
        };
        let user = self.member_now(&grant, now).await?;
        let refresh = self.next_refresh_token(&grant, now);
        let Some((token, record)) = refresh else {
            return Err(OAuthError::invalid_grant("the grant has no refresh token"));
        };
        let grant = match self.grants.rotate_refresh_token(&presented, &record, now).await? {
            RefreshRotation::Rotated(grant) => grant,
            RefreshRotation::Reused { grant_id } => {
                warn!(%grant_id, client_id = %client.client_id, "oidc: a refresh token was used twice at once; the grant is revoked");
                return Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"));
            }
            RefreshRotation::Invalid => {
                return Err(OAuthError::invalid_grant("the refresh token is unknown or expired"));
            }
        };
        info!(user_id = %user.id, client_id = %client.client_id, grant_id = %grant.id, "oidc: tokens refreshed");
        self.respond(client, &grant, &user, &scopes, None, Some(token), now)
    }

    /// The grant's user, re-checked with the org (through the cloud) when the last check is older
    /// than `membership_recheck_secs`. A leaver loses every session and grant here.
    async fn member_now(&self, grant: &Grant, now: Timestamp) -> Result<User, OAuthError> {
        let user = self.active_user(&grant.user_id).await?;
        if grant.membership_checked_at.plus_secs(self.settings.membership_recheck_secs) > now {
            return Ok(user);
        }
        let (corp_id, userid) = (user.profile.corp_id.clone(), user.profile.userid.clone());
        match self.sync.refresh(&corp_id, &userid, Some(user)).await {
            Ok(Synced::Refreshed(user)) if user.profile.active => {
                self.grants.mark_membership_checked(&grant.id, now).await?;
                Ok(user)
            }
            Ok(Synced::Refreshed(user)) => {
                self.grants.revoke_grants_for_user(&user.id, now).await?;
                Err(OAuthError::invalid_grant("the person is no longer active in the organization"))
            }
            Ok(Synced::Deactivated { .. } | Synced::Unknown) => {
                info!(user_id = %grant.user_id, "oidc: refresh found the member gone; sessions and grants revoked");
                Err(OAuthError::invalid_grant("the person is no longer a member of the organization"))
            }
            Err(SyncError::Store(err)) => Err(err.into()),
            Err(SyncError::Gateway(err)) => {
                warn!(error = %err, "oidc: membership re-check failed; the refresh is refused for now");
                Err(OAuthError::new(
                    "temporarily_unavailable",
                    "membership could not be confirmed with the organization right now; try again shortly",
                ))
            }
        }
    }

    async fn active_user(&self, user_id: &str) -> Result<User, OAuthError> {
        self.users
            .find(user_id)
            .await?
            .filter(|u| u.profile.active)
            .ok_or_else(|| OAuthError::invalid_grant("the person is no longer a member of the organization"))
    }

    /// A fresh refresh token for `grant` when it has `offline_access` (OIDC Core §11).
    fn next_refresh_token(&self, grant: &Grant, now: Timestamp) -> Option<(String, RefreshToken)> {
        if !grant.scopes.iter().any(|s| s == "offline_access") {
            return None;
        }
        let token = SessionToken::from_random_bytes(&self.random.bytes32());
        let expires_at = now.plus_secs(self.settings.refresh_token_ttl_secs).min(grant.expires_at);
        let record = RefreshToken { token_hash: token.hash(), grant_id: grant.id.clone(), created_at: now, expires_at };
        Some((token.expose().to_owned(), record))
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        client: &OidcClient,
        grant: &Grant,
        user: &User,
        scopes: &[String],
        nonce: Option<&str>,
        refresh_token: Option<String>,
        now: Timestamp,
    ) -> Result<TokenResponse, OAuthError> {
        let settings = &self.settings;
        let (iat, sub) = (now.as_millis() / 1000, settings.subject.of(user));
        let scope = scopes.join(" ");
        let access_claims = json!({
            "iss": settings.issuer,
            "sub": sub,
            "aud": settings.issuer,
            "client_id": client.client_id,
            "iat": iat,
            "exp": iat + settings.access_token_ttl_secs,
            "jti": self.random.new_id(),
            "scope": scope,
            "sid": grant.id,
            "auth_time": grant.auth_time.as_millis() / 1000,
        });
        let access_token = self.signer.sign(SigningAlgorithm::Rs256, "at+jwt", &access_claims)?;
        let id_token = if scopes.iter().any(|s| s == "openid") {
            let mut claims = claims_for(user, scopes, settings.subject);
            let standard = [
                ("iss", json!(settings.issuer)),
                ("aud", json!(client.client_id)),
                ("azp", json!(client.client_id)),
                ("iat", json!(iat)),
                ("exp", json!(iat + settings.id_token_ttl_secs)),
                ("auth_time", json!(grant.auth_time.as_millis() / 1000)),
                ("at_hash", json!(at_hash(&access_token))),
                ("sid", json!(grant.id)),
            ];
            claims.extend(standard.into_iter().map(|(k, v)| (k.to_owned(), v)));
            if let Some(nonce) = nonce {
                claims.insert("nonce".into(), json!(nonce));
            }
            Some(self.signer.sign(client.id_token_alg, "JWT", &Value::Object(claims))?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: settings.access_token_ttl_secs,
            id_token,
            refresh_token,
            scope,
        })
    }
}

fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, OAuthError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

/// PKCE at the token endpoint (RFC 7636 §4.6): a code issued with a challenge needs the verifier
/// whose S256 is the challenge; a code issued without one must not get a verifier (RFC 9700
/// §2.1.1: that would be a downgrade).
fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    let verifier = verifier.filter(|v| !v.is_empty());
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            Err(OAuthError::invalid_grant("code_verifier sent, but the authorization request had no code_challenge"))
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is missing")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if !well_formed {
                return Err(OAuthError::invalid_grant("code_verifier must be 43–128 unreserved characters"));
            }
            let computed = sha256_base64url(verifier.as_bytes());
            if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant("code_verifier does not match code_challenge"))
            }
        }
    }
}
