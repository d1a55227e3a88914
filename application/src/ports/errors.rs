//! One error enum per port family, with the variants a caller acts on.

use domain::CorpId;

/// How a DingTalk call failed, after the adapter's own handling (one token
/// refresh on a token error; see docs/dingtalk-api.md §G.2 for the classification).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Transient: network error, timeout, errcode −1/400001/500/1430003, HTTP 5xx, 429
    /// `system.busy`. Retrying later may succeed.
    #[error("DingTalk is unavailable: {0}")]
    Unavailable(String),
    /// Throttled: errcode 90018/90002/… or HTTP 403 `Forbidden.AccessDenied.Qps*`.
    /// Retry after at least a second.
    #[error("DingTalk throttled the call: {0}")]
    Throttled(String),
    /// The access token was refused even after fetching a fresh one
    /// (40014/42001/40001, 88 + `sub_code` 40014/40000, 400 `InvalidAuthentication`).
    #[error("DingTalk rejected the access token: {0}")]
    TokenRejected(String),
    /// A permanent refusal (bad credentials, missing permission, invalid
    /// input): retrying will not help. `code` is DingTalk's (`errcode` or v1.0 `code`).
    #[error("DingTalk refused the call: {code} {message}")]
    Rejected {
        /// DingTalk's errcode (as a string) or v1.0 `code`.
        code: String,
        /// DingTalk's message.
        message: String,
    },
    /// An errcode the client's classification (docs/dingtalk-api.md §G.2) does not know: it may
    /// be transient or permanent. Retried within a bounded budget before it counts as a refusal
    /// (a message fails with this code and message once its budget is spent).
    #[error("DingTalk answered an unrecognised code: {code} {message}")]
    Unrecognized {
        /// DingTalk's errcode (as a string; the `sub_code` under errcode 88).
        code: String,
        /// DingTalk's message.
        message: String,
    },
}

/// Errors of [`crate::ports::IdentityProvider`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The person is not a member of the corp (errcode 60121, docs/dingtalk-api.md §C.1/§C.2).
    /// `find_userid` and `get_member` MUST return this for 60121.
    #[error("not a member of the corp")]
    NotMember,
    /// The authorization code was refused (unknown, used or expired).
    /// `exchange_code` MUST return this for a 4xx on `userAccessToken` that is
    /// not a credentials error.
    #[error("the authorization code was refused")]
    InvalidCode,
    /// This provider has no credentials for the corp.
    #[error("no app is configured for corp {0}")]
    CorpNotServed(CorpId),
    /// Any other DingTalk failure.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Errors of [`crate::ports::Messenger`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessengerError {
    /// This messenger has no app (agent id) for the corp.
    #[error("no app is configured for corp {0}")]
    CorpNotServed(CorpId),
    /// Any DingTalk failure (for recall after 24 h DingTalk answers a permanent error).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Errors of every store port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (the constraint or key is named).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or the pool timed out.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a query failed, a stored row no longer parses).
    #[error("storage error: {0}")]
    Other(String),
}

/// Errors of [`crate::ports::CloudGateway`] (what local sees of the cloud).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Nothing under that key for this relay client (unknown, expired, taken,
    /// or another client's).
    #[error("not found")]
    NotFound,
    /// The cloud refused the request as not allowed for this relay client
    /// (corp outside its list, `complete_url` outside its origins, bad credentials).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The cloud refused the request's content (with its field and message).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The member does not exist in the corp.
    #[error("not a member of the corp")]
    NotMember,
    /// The cloud, or DingTalk behind it, could not be reached or failed
    /// transiently; retrying later may succeed.
    #[error("cloud unavailable: {0}")]
    Unavailable(String),
    /// DingTalk refused the operation permanently.
    #[error("DingTalk refused: {0}")]
    Rejected(String),
}
