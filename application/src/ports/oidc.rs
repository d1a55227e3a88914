//! Ports of the OpenID Provider facade (docs/oidc.md): authorization codes, grants with their
//! rotating refresh tokens, and the signing keys.
//!
//! Every secret a client holds (code, refresh token) is stored only as its SHA-256 hex; the
//! signing keys' private halves are stored as PKCS#8 DER and never leave the store and the
//! signer. Every method is one transaction.

use async_trait::async_trait;
use domain::Timestamp;
use secrecy::SecretSlice;

use super::StoreError;

/// An authorization code issued by `authorize` (OpenID Connect Core 1.0 §3.1.2.5), stored under
/// the SHA-256 hex of the code for at most 60 s and redeemable once (RFC 6749 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 hex of the code handed to the client.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The local user who signed in.
    pub user_id: String,
    /// SHA-256 hex of the dingbridge session it was issued under (ending that session revokes
    /// what the code produced).
    pub session_hash: String,
    /// The `redirect_uri` of the request, which the token request must repeat exactly
    /// (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// Granted scopes, e.g. `["openid", "profile"]`, in request order without duplicates.
    pub scopes: Vec<String>,
    /// The request's `nonce`, copied into the ID token (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    /// The PKCE `code_challenge` (RFC 7636 §4.2, method S256 only), when the request had one.
    pub code_challenge: Option<String>,
    /// When the person authenticated (the session's creation): the ID token's `auth_time`.
    pub auth_time: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry (`created_at` + at most 60 s).
    pub expires_at: Timestamp,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use before expiry: the code, now marked used.
    Redeemed(AuthorizationCode),
    /// The code was redeemed before: `grant_id` is what the first use created (if it got that
    /// far), which the caller revokes (RFC 6749 §4.1.2: "SHOULD revoke … all tokens previously
    /// issued based on that authorization code").
    Replayed {
        /// The grant the first redemption created.
        grant_id: Option<String>,
    },
    /// Unknown or expired.
    Invalid,
}

/// One client's standing authorization for one person: what a code produced, and the family of
/// refresh tokens rotated from it (RFC 9700 §4.14.2). Revoking it ends every token of the family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Grant id (a UUID v7); access tokens carry it in their `sid` claim, so revoking the grant
    /// makes them inactive at `userinfo` and `introspect`.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The local user.
    pub user_id: String,
    /// SHA-256 hex of the dingbridge session the grant was issued under.
    pub session_hash: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the person authenticated.
    pub auth_time: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Absolute end of the grant (no refresh token outlives it).
    pub expires_at: Timestamp,
    /// When membership in the org was last confirmed (through the cloud) for this grant.
    pub membership_checked_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl Grant {
    /// Whether tokens of this grant are still good at `now`: not revoked and `expires_at > now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A refresh token of a grant, stored under its SHA-256 hex. A used one is kept (marked) until the
/// grant ends, so that presenting it again is recognised as reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// Its grant.
    pub grant_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry (never after the grant's).
    pub expires_at: Timestamp,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was the grant's current one, unexpired, and its grant active: it is now marked
    /// used and the next token stored, in one transaction. Carries the grant.
    Rotated(Grant),
    /// The token had been used before (a stolen or replayed token, RFC 9700 §4.14.2): the grant
    /// and every token of it are revoked now.
    Reused {
        /// The revoked grant.
        grant_id: String,
    },
    /// Unknown, expired, or its grant is revoked or expired. Nothing changed.
    Invalid,
}

/// Authorization codes, grants and refresh tokens (local side; SQLite in dev mode, PostgreSQL in
/// local mode).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new code. `Conflict` if the hash exists.
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;

    /// Marks the code used and returns it if it is unused and `expires_at > now`; otherwise says
    /// whether it was used before (with the grant it produced) or is unknown/expired. Of
    /// concurrent redemptions of one code exactly one gets `Redeemed`.
    async fn redeem_code(&self, code_hash: &str, now: Timestamp) -> Result<CodeRedemption, StoreError>;

    /// Stores `grant`, its first refresh token (when one is issued) and, when `code_hash` is
    /// given, links that code to the grant (so a replay of the code can revoke it); one
    /// transaction. `Conflict` if the grant id or token hash exists.
    async fn create_grant<'a>(
        &self,
        grant: &Grant,
        refresh: Option<&'a RefreshToken>,
        code_hash: Option<&'a str>,
    ) -> Result<(), StoreError>;

    /// Rotates a refresh token: see [`RefreshRotation`]. `next` must belong to the same grant
    /// (`next.grant_id` is ignored and replaced by the presented token's grant id). Of concurrent
    /// rotations of one token exactly one gets `Rotated`; the others get `Reused` (and so revoke
    /// the grant, as RFC 9700 §4.14.2 asks).
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next: &RefreshToken,
        now: Timestamp,
    ) -> Result<RefreshRotation, StoreError>;

    /// The refresh token with that hash and its grant, if the token is unused and unexpired at
    /// `now` (for introspection and revocation).
    async fn find_refresh_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<(RefreshToken, Grant)>, StoreError>;

    /// A grant by id (active or not).
    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError>;

    /// Revokes a grant (sets `revoked_at = now` if unset); `true` if it was active.
    async fn revoke_grant(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Revokes every active grant of a user (who left the org); returns how many.
    async fn revoke_grants_for_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Revokes every active grant issued under a dingbridge session (signed out); returns how many.
    async fn revoke_grants_for_session(&self, session_hash: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Records that membership was confirmed for the grant at `now`.
    async fn mark_membership_checked(&self, grant_id: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Deletes codes with `expires_at <= now` and grants (with their refresh tokens) whose
    /// `expires_at <= now` or that were revoked more than a day before `now`; returns how many rows.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// A JWS algorithm dingbridge signs with (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys: required by OpenID Connect Discovery 1.0 §3
    /// (`id_token_signing_alg_values_supported` MUST include it).
    Rs256,
    /// ECDSA P-256 with SHA-256 (optional).
    Es256,
}

impl SigningAlgorithm {
    /// The JOSE name (`RS256`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

/// A signing key pair. Signs tokens from `created_at` until `retired_at`; stays published in the
/// JWKS until it is deleted (retention decided by the key use case).
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// Key id (`kid` of every token it signs; unique).
    pub kid: String,
    /// Algorithm.
    pub algorithm: SigningAlgorithm,
    /// The private key, PKCS#8 DER. Never logged.
    pub private_pkcs8: SecretSlice<u8>,
    /// The public key as a JWK JSON object (RFC 7517 §4) with `kty`, `kid`, `alg`, `use` and the
    /// key's parameters (`n`/`e` or `crv`/`x`/`y`).
    pub public_jwk: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it stopped signing (a newer key took over), if it has.
    pub retired_at: Option<Timestamp>,
}

/// Signing keys (local side).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every stored key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    /// Stores a new key and retires (sets `retired_at = now` on) every unretired key of the same
    /// algorithm, in one transaction. `Conflict` if the kid exists.
    async fn insert_signing_key(&self, key: &SigningKey, now: Timestamp) -> Result<(), StoreError>;
    /// Deletes keys retired at or before `retired_before`; returns how many.
    async fn delete_retired_signing_keys(&self, retired_before: Timestamp) -> Result<u64, StoreError>;
}

/// Why signing or verifying a token failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// No usable key for the algorithm (none installed yet, or the algorithm is not enabled).
    #[error("no signing key for {0}")]
    NoKey(&'static str),
    /// The token is malformed, names an unknown `kid`, has the wrong `typ` or `alg`, or its
    /// signature does not verify.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key material could not be generated or parsed.
    #[error("key error: {0}")]
    Key(String),
}

/// Signs and verifies JWTs with the installed [`SigningKey`]s (an adapter over a JOSE library;
/// RFC 7515 compact serialization, RFC 7519 claims).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait TokenSigner: Send + Sync {
    /// Generates a fresh key pair for `algorithm` (RSA 2048 for RS256, P-256 for ES256) with id
    /// `kid`, created at `now`. Errors: `Key`.
    fn generate_key(&self, algorithm: SigningAlgorithm, kid: &str, now: Timestamp) -> Result<SigningKey, SignerError>;

    /// Replaces the installed keys: the newest unretired key of each algorithm signs; every key
    /// given verifies and is published. Errors: `Key` when a key cannot be parsed (nothing
    /// changes then).
    fn install(&self, keys: &[SigningKey]) -> Result<(), SignerError>;

    /// Signs `claims` (a JSON object) with the current key of `algorithm`; the header carries
    /// `alg`, `kid` and `typ` (`JWT` for ID tokens, `at+jwt` for access tokens, RFC 9068 §2.1).
    /// Errors: `NoKey`.
    fn sign(&self, algorithm: SigningAlgorithm, typ: &str, claims: &serde_json::Value) -> Result<String, SignerError>;

    /// Verifies a token signed by any installed key: the signature, that the header's `alg`
    /// matches the key's and, when `typ` is given, that the header's `typ` equals it (case
    /// insensitively). Returns the claims; time claims (`exp`, `nbf`) are the caller's to check.
    /// Errors: `Invalid`.
    #[allow(clippy::needless_lifetimes)] // mockall needs the named lifetime
    fn verify<'a>(&self, token: &str, typ: Option<&'a str>) -> Result<serde_json::Value, SignerError>;

    /// The JWK Set of every installed key's public half (RFC 7517 §5): `{"keys": [...]}`.
    fn jwks(&self) -> serde_json::Value;
}
