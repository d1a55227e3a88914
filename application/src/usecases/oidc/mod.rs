//! The OpenID Provider facade on local (and dev): dingbridge signs people in with their provider
//! through the cloud, and hands the signed-in person to other applications by OpenID Connect
//! (docs/oidc.md). Authorization code flow only, PKCE S256, rotating refresh tokens.
//!
//! | use case | endpoint | spec |
//! |---|---|---|
//! | [`Authorize`] | `GET /oidc/authorize` | OIDC Core 1.0 §3.1.2, RFC 6749 §4.1.1, RFC 7636, RFC 9207 |
//! | [`ExchangeToken`] | `POST /oidc/token` | RFC 6749 §4.1.3/§6, OIDC Core §3.1.3, RFC 9700 §4.14 |
//! | [`ReadUserInfo`] | `GET/POST /oidc/userinfo` | OIDC Core §5.3, RFC 6750 |
//! | [`IntrospectToken`] | `POST /oidc/introspect` | RFC 7662 |
//! | [`RevokeToken`] | `POST /oidc/revoke` | RFC 7009 |
//! | [`EndSession`] | `GET/POST /oidc/end_session` | OIDC RP-Initiated Logout 1.0 |
//! | [`SigningKeys`] | `GET /oidc/jwks`, `dingbridge oidc rotate-keys` | RFC 7517 |
//!
//! Tokens: the ID token and the access token are JWTs signed by the [`TokenSigner`] (the access
//! token per RFC 9068, `typ: at+jwt`, lifetime [`OidcSettings::access_token_ttl_secs`]); refresh
//! tokens and codes are opaque random strings stored hashed.
//!
//! [`TokenSigner`]: crate::ports::TokenSigner

mod authorize;
mod claims;
mod clients;
mod keys;
mod logout;
mod resource;
mod token;

#[cfg(test)]
mod tests;

pub use authorize::{Authorize, AuthorizeOutcome, AuthorizeRequest, FRESH_AFTER_PARAM};
pub use claims::{SubjectClaim, claims_for};
pub use clients::{ClientAuthMethod, ClientCredentials, ClientRegistry, OidcClient};
pub use keys::{KeyReport, SigningKeys};
pub use logout::{EndSession, EndSessionOutcome, EndSessionRequest};
pub use resource::{IntrospectToken, Introspection, ReadUserInfo, RevokeToken, UserInfoError};
pub use token::{ExchangeToken, TokenRequest, TokenResponse};

use domain::ValidationError;

/// Scopes dingbridge knows (OIDC Core §5.4, plus `groups`). Any other requested scope is dropped
/// from the grant (RFC 6749 §3.3 lets the server grant less than asked).
pub const KNOWN_SCOPES: [&str; 6] = ["openid", "profile", "email", "phone", "groups", "offline_access"];

/// The longest an authorization code lives, in seconds (RFC 6749 §4.1.2 recommends at most 10
/// minutes; dingbridge uses at most 60 s).
pub const MAX_CODE_TTL_SECS: i64 = 60;

/// Lifetimes and behaviour of the provider (config `[oidc]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer: the public URL of local, no trailing slash (OIDC Discovery 1.0 §3: exactly the
    /// `iss` of every token).
    pub issuer: String,
    /// Authorization code lifetime, seconds (1–[`MAX_CODE_TTL_SECS`]).
    pub code_ttl_secs: i64,
    /// Access token lifetime, seconds.
    pub access_token_ttl_secs: i64,
    /// ID token lifetime, seconds.
    pub id_token_ttl_secs: i64,
    /// Lifetime of each refresh token, seconds (each rotation starts a new one).
    pub refresh_token_ttl_secs: i64,
    /// Absolute lifetime of a grant (its refresh-token family), seconds.
    pub grant_ttl_secs: i64,
    /// A refresh re-checks membership through the cloud when the grant's last check is older than
    /// this, seconds.
    pub membership_recheck_secs: i64,
    /// What `sub` is.
    pub subject: SubjectClaim,
}

impl OidcSettings {
    /// The defaults for `issuer`: codes 60 s, access tokens 300 s, ID tokens 300 s, refresh tokens
    /// 30 days, grants 90 days, membership re-check hourly, `sub` = the local user id.
    pub fn with_issuer(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            code_ttl_secs: MAX_CODE_TTL_SECS,
            access_token_ttl_secs: 300,
            id_token_ttl_secs: 300,
            refresh_token_ttl_secs: 30 * 86_400,
            grant_ttl_secs: 90 * 86_400,
            membership_recheck_secs: 3600,
            subject: SubjectClaim::UserId,
        }
    }

    /// The longest lifetime of a signed token (ID or access token), seconds: how long a retired
    /// signing key must stay published (plus a day of JWKS caching).
    pub fn longest_signed_token_secs(&self) -> i64 {
        self.access_token_ttl_secs.max(self.id_token_ttl_secs)
    }

    /// Checks the values. Errors name the `oidc.*` key.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let positive = [
            ("oidc.access_token_ttl_secs", self.access_token_ttl_secs),
            ("oidc.id_token_ttl_secs", self.id_token_ttl_secs),
            ("oidc.refresh_token_ttl_secs", self.refresh_token_ttl_secs),
            ("oidc.grant_ttl_secs", self.grant_ttl_secs),
            ("oidc.membership_recheck_secs", self.membership_recheck_secs),
        ];
        for (field, value) in positive {
            if value <= 0 {
                return Err(ValidationError::new(field, "out_of_range", format!("{field} must be at least 1 second")));
            }
        }
        if !(1..=MAX_CODE_TTL_SECS).contains(&self.code_ttl_secs) {
            return Err(ValidationError::new(
                "oidc.code_ttl_secs",
                "out_of_range",
                format!("oidc.code_ttl_secs must be 1–{MAX_CODE_TTL_SECS} seconds"),
            ));
        }
        if self.refresh_token_ttl_secs > self.grant_ttl_secs {
            return Err(ValidationError::new(
                "oidc.refresh_token_ttl_secs",
                "out_of_range",
                "oidc.refresh_token_ttl_secs must not exceed oidc.grant_ttl_secs",
            ));
        }
        Ok(())
    }
}

/// An OAuth 2.0 error response (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6): `error` is the
/// registered code, `description` a sentence for the developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `unsupported_response_type`, `invalid_scope`, `access_denied`,
    /// `login_required`, `server_error`, `temporarily_unavailable`, …
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

impl OAuthError {
    /// Builds an error.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, description: description.into() }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// `invalid_client`.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    /// `server_error` for a storage or signing failure (details are logged, not returned).
    pub fn server_error() -> Self {
        Self::new("server_error", "the server could not complete the request; try again")
    }
}

impl From<crate::ports::StoreError> for OAuthError {
    fn from(err: crate::ports::StoreError) -> Self {
        tracing::error!(error = %err, "oidc: storage failed");
        Self::server_error()
    }
}

impl From<crate::ports::SignerError> for OAuthError {
    fn from(err: crate::ports::SignerError) -> Self {
        tracing::error!(error = %err, "oidc: signing failed");
        Self::server_error()
    }
}

/// Splits a space-separated `scope` (RFC 6749 §3.3) into the known scopes the client may have, in
/// request order, without duplicates.
pub(crate) fn granted_scopes(requested: &str, allowed: &[String]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if KNOWN_SCOPES.contains(&scope) && allowed.iter().any(|a| a == scope) && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}
