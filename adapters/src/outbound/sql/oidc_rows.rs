//! Row structs of the OpenID Provider tables of [`super::schema`] (`oidc_*`) and their
//! conversions to and from the types of `application::ports::oidc`, shared by both backends
//! like [`super::rows`]. A stored row that no longer parses (scopes that are not a JSON array of
//! strings, an unknown algorithm name) gives `StoreError::Other("corrupt row ...")`.

use application::ports::{AuthorizationCode, Grant, RefreshToken, SigningAlgorithm, SigningKey, StoreError};
use diesel::prelude::*;
use domain::Timestamp;
use secrecy::{ExposeSecret, SecretSlice};

use super::rows::{corrupt, from_json, to_json};
use super::schema::{oidc_codes, oidc_grants, oidc_refresh_tokens, oidc_signing_keys};

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A row of `oidc_codes`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_codes)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub session_hash: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: Option<String>,
}

impl CodeRow {
    /// A fresh (unused, unlinked) code.
    pub fn from_domain(code: &AuthorizationCode) -> Result<Self, StoreError> {
        Ok(Self {
            code_hash: code.code_hash.clone(),
            client_id: code.client_id.clone(),
            user_id: code.user_id.clone(),
            session_hash: code.session_hash.clone(),
            redirect_uri: code.redirect_uri.clone(),
            scopes: to_json(&code.scopes, "code scopes")?,
            nonce: code.nonce.clone(),
            code_challenge: code.code_challenge.clone(),
            auth_time: code.auth_time.as_millis(),
            created_at: code.created_at.as_millis(),
            expires_at: code.expires_at.as_millis(),
            used_at: None,
            grant_id: None,
        })
    }

    pub fn into_domain(self) -> Result<AuthorizationCode, StoreError> {
        let scopes = from_json("oidc_codes", &self.code_hash, "scopes", &self.scopes)?;
        Ok(AuthorizationCode {
            code_hash: self.code_hash,
            client_id: self.client_id,
            user_id: self.user_id,
            session_hash: self.session_hash,
            redirect_uri: self.redirect_uri,
            scopes,
            nonce: self.nonce,
            code_challenge: self.code_challenge,
            auth_time: ts(self.auth_time),
            created_at: ts(self.created_at),
            expires_at: ts(self.expires_at),
        })
    }
}

/// A row of `oidc_grants`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_grants)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_hash: String,
    pub scopes: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub membership_checked_at: i64,
    pub revoked_at: Option<i64>,
}

impl GrantRow {
    pub fn from_domain(grant: &Grant) -> Result<Self, StoreError> {
        Ok(Self {
            id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            user_id: grant.user_id.clone(),
            session_hash: grant.session_hash.clone(),
            scopes: to_json(&grant.scopes, "grant scopes")?,
            auth_time: grant.auth_time.as_millis(),
            created_at: grant.created_at.as_millis(),
            expires_at: grant.expires_at.as_millis(),
            membership_checked_at: grant.membership_checked_at.as_millis(),
            revoked_at: grant.revoked_at.map(Timestamp::as_millis),
        })
    }

    pub fn into_domain(self) -> Result<Grant, StoreError> {
        let scopes = from_json("oidc_grants", &self.id, "scopes", &self.scopes)?;
        Ok(Grant {
            id: self.id,
            client_id: self.client_id,
            user_id: self.user_id,
            session_hash: self.session_hash,
            scopes,
            auth_time: ts(self.auth_time),
            created_at: ts(self.created_at),
            expires_at: ts(self.expires_at),
            membership_checked_at: ts(self.membership_checked_at),
            revoked_at: self.revoked_at.map(ts),
        })
    }
}

/// A row of `oidc_refresh_tokens`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_refresh_tokens)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct RefreshTokenRow {
    pub token_hash: String,
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl RefreshTokenRow {
    /// A fresh (unused) token of the grant `grant_id`.
    pub fn new(token: &RefreshToken, grant_id: &str) -> Self {
        Self {
            token_hash: token.token_hash.clone(),
            grant_id: grant_id.to_owned(),
            created_at: token.created_at.as_millis(),
            expires_at: token.expires_at.as_millis(),
            used_at: None,
        }
    }

    pub fn into_domain(self) -> RefreshToken {
        RefreshToken {
            token_hash: self.token_hash,
            grant_id: self.grant_id,
            created_at: ts(self.created_at),
            expires_at: ts(self.expires_at),
        }
    }
}

/// A new row of `oidc_signing_keys`, borrowing the key (the private half is not copied).
#[derive(Insertable)]
#[diesel(table_name = oidc_signing_keys)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct NewSigningKeyRow<'a> {
    pub kid: &'a str,
    pub algorithm: &'static str,
    pub private_pkcs8: &'a [u8],
    pub public_jwk: &'a str,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl<'a> NewSigningKeyRow<'a> {
    pub fn from_domain(key: &'a SigningKey) -> Self {
        Self {
            kid: &key.kid,
            algorithm: key.algorithm.as_str(),
            private_pkcs8: key.private_pkcs8.expose_secret(),
            public_jwk: &key.public_jwk,
            created_at: key.created_at.as_millis(),
            retired_at: key.retired_at.map(Timestamp::as_millis),
        }
    }
}

/// A row of `oidc_signing_keys` as read back. Its `Debug` leaves the private key out.
#[derive(Queryable, Selectable)]
#[diesel(table_name = oidc_signing_keys)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub private_pkcs8: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_pkcs8", &"[REDACTED]")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl SigningKeyRow {
    pub fn into_domain(self) -> Result<SigningKey, StoreError> {
        let algorithm = SigningAlgorithm::parse(&self.algorithm).ok_or_else(|| {
            corrupt("oidc_signing_keys", &self.kid, format_args!("algorithm: unknown algorithm {:?}", self.algorithm))
        })?;
        Ok(SigningKey {
            kid: self.kid,
            algorithm,
            private_pkcs8: SecretSlice::from(self.private_pkcs8),
            public_jwk: self.public_jwk,
            created_at: ts(self.created_at),
            retired_at: self.retired_at.map(ts),
        })
    }
}
