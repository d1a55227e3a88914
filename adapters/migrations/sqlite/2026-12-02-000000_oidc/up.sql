-- Local side: the OpenID Provider facade (GrantStore, SigningKeyStore).
-- Timestamps are INTEGER epoch milliseconds; scope lists are JSON arrays in TEXT.
-- Codes and refresh tokens are stored only as the SHA-256 hex of what the client holds.
-- user_id refers to users (id) as in sessions; session_hash is no foreign key: a grant
-- outlives the session it was issued under (ending the session revokes the grant, which
-- stays until purged).

-- Grants: one client's standing authorization for one user; revoked_at once revoked.
CREATE TABLE oidc_grants (
    id                    TEXT PRIMARY KEY NOT NULL,
    client_id             TEXT NOT NULL,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash          TEXT NOT NULL,     -- SHA-256 hex of the dingbridge session
    scopes                TEXT NOT NULL,     -- JSON array of scope strings
    auth_time             INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    membership_checked_at INTEGER NOT NULL,
    revoked_at            INTEGER NULL
);
CREATE INDEX oidc_grants_user_id ON oidc_grants (user_id);
CREATE INDEX oidc_grants_session_hash ON oidc_grants (session_hash);
CREATE INDEX oidc_grants_expires_at ON oidc_grants (expires_at);

-- Authorization codes (at most 60 s), redeemable once: used_at is set by the redemption,
-- grant_id by the grant it produced (so that a replay can revoke that grant).
CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash   TEXT NOT NULL,            -- SHA-256 hex of the dingbridge session
    redirect_uri   TEXT NOT NULL,
    scopes         TEXT NOT NULL,            -- JSON array of scope strings
    nonce          TEXT NULL,
    code_challenge TEXT NULL,                -- PKCE S256 challenge
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NULL,
    grant_id       TEXT NULL REFERENCES oidc_grants (id) ON DELETE SET NULL
);
CREATE INDEX oidc_codes_expires_at ON oidc_codes (expires_at);

-- Refresh tokens of a grant; a used one (used_at set) is kept until the grant goes, so
-- that presenting it again is recognised as reuse.
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NULL
);
CREATE INDEX oidc_refresh_tokens_grant_id ON oidc_refresh_tokens (grant_id);

-- Signing keys: the newest unretired key of each algorithm signs; all are published.
CREATE TABLE oidc_signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    algorithm     TEXT NOT NULL,             -- JOSE name: 'RS256', 'ES256'
    private_pkcs8 BLOB NOT NULL,             -- PKCS#8 DER (a secret)
    public_jwk    TEXT NOT NULL,             -- JWK JSON object
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER NULL
);
