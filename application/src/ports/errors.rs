//! One error enum per port family, with the variants a caller acts on.

use domain::CorpId;

/// How a call to an identity provider failed, after the adapter's own handling (one token
/// refresh on a token error; each provider's adapter classifies its codes, citing its
/// reference).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Transient: network error, timeout, HTTP 5xx, the provider's "busy" codes. Retrying
    /// later may succeed.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// Throttled: the provider's rate-limit answers (its codes, or HTTP 429/403 for rate).
    /// Retry after at least a second.
    #[error("the provider throttled the call: {0}")]
    Throttled(String),
    /// The access token was refused even after fetching a fresh one.
    #[error("the provider rejected the access token: {0}")]
    TokenRejected(String),
    /// A permanent refusal (bad credentials, missing permission, invalid
    /// input): retrying will not help. `code` is the provider's own, kept for display.
    #[error("the provider refused the call: {code} {message}")]
    Rejected {
        /// The provider's code (as a string), or a stable code of the adapter's.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// A code the adapter's classification does not know: it may
    /// be transient or permanent. Retried within a bounded budget before it counts as a refusal
    /// (a message fails with this code and message once its budget is spent).
    #[error("the provider answered an unrecognised code: {code} {message}")]
    Unrecognized {
        /// The provider's code (as a string).
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The call was held back before it reached the provider, or the provider said to wait for a
    /// known time: the call governor's queue is full, the egress IP is banned, or the tenant's
    /// monthly quota of metered calls is exhausted. Transient;
    /// retry at the earliest after `retry_after_ms`.
    #[error("provider call held back ({}): {detail}", reason.as_str())]
    Held {
        /// Why the call waits.
        reason: WaitReason,
        /// The earliest useful retry, in milliseconds from now.
        retry_after_ms: u64,
        /// What happened, for people.
        detail: String,
    },
}

/// Why a message waits before (more of) it is sent: the stable machine codes the relay API and
/// local's message view report (docs/design.md "Living within the providers' limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// Accepted and queued for the background sender; not attempted yet.
    Queued,
    /// The provider throttled the calls (90018 / 90002 / HTTP 403 `Forbidden.AccessDenied.Qps*`),
    /// or the call governor's queue for that API is full.
    Throttled,
    /// The tenant's monthly quota of metered calls is exhausted (90020 / `ApiCountLimitForOrg`):
    /// held until the month turns or an operator resumes it.
    WaitingQuota,
    /// The egress IP is banned (status 1111 / an HTML answer): every call waits for the ban's end.
    IpBanned,
    /// The provider is unavailable (network, 5xx, system busy, a refused token, an unrecognised code).
    Unavailable,
    /// Held for an operator: a call for one of its batches was started by an instance that
    /// stopped before the provider's answer was recorded, so the batch may or may not have been
    /// sent, and the deployment's policy for such uncertain batches is `hold`
    /// (docs/design.md "Several instances"). `dingbridge relay resend` or `relay abandon` ends it.
    Uncertain,
}

impl WaitReason {
    /// The stable code: `queued`, `throttled`, `waiting_quota`, `ip_banned`, `unavailable`,
    /// `uncertain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Throttled => "throttled",
            Self::WaitingQuota => "waiting_quota",
            Self::IpBanned => "ip_banned",
            Self::Unavailable => "unavailable",
            Self::Uncertain => "uncertain",
        }
    }

    /// Parses [`WaitReason::as_str`]'s codes; `None` for anything else.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Queued, Self::Throttled, Self::WaitingQuota, Self::IpBanned, Self::Unavailable, Self::Uncertain]
            .into_iter()
            .find(|reason| reason.as_str() == code)
    }
}

/// Errors of [`crate::ports::IdentityProvider`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The person is not a member of the corp: `find_userid` and `get_member` MUST return this
    /// when the provider says so (each adapter names the codes).
    #[error("not a member of the corp")]
    NotMember,
    /// The authorization code was refused (unknown, used or expired).
    /// `exchange_code` MUST return this for a refusal of the code that is not a
    /// credentials error.
    #[error("the authorization code was refused")]
    InvalidCode,
    /// This provider has no credentials for the corp.
    #[error("no app is configured for corp {0}")]
    CorpNotServed(CorpId),
    /// Any other failure of the provider.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Errors of [`crate::ports::Messenger`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessengerError {
    /// This messenger has no app (agent id) for the corp.
    #[error("no app is configured for corp {0}")]
    CorpNotServed(CorpId),
    /// Any failure of the provider (a recall after its window is a permanent `Rejected`).
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
    /// The cloud, or the provider behind it, could not be reached or failed
    /// transiently; retrying later may succeed.
    #[error("cloud unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the operation permanently.
    #[error("the provider refused: {0}")]
    Rejected(String),
}
