//! Cloud-side use cases: login intents, the provider callback, login results,
//! relayed messages and member look-ups. The cloud holds the providers'
//! credentials; these use cases are the only code that calls a provider.

use domain::{CorpId, LoginState, ValidationError};

use crate::ports::{IdentityError, MessengerError, RelayClient, StoreError, UpstreamError};

/// How long a login intent lives, in seconds (docs/design.md: 10 minutes).
pub const INTENT_TTL_SECS: i64 = domain::login::LOGIN_TTL_SECS;
/// How long a login result waits for its relay client, in seconds (5 minutes).
pub const RESULT_TTL_SECS: i64 = 300;

/// Errors of the cloud use cases.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The `state` is missing, malformed, unknown, expired or already used.
    #[error("unknown, expired or already used login state")]
    InvalidState,
    /// The relay client may not do this (corp outside its list, `complete_url` outside its origins).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing under that key for this relay client.
    #[error("not found")]
    NotFound,
    /// The cloud serves no identity provider with this key.
    #[error("no identity provider {0:?} is served here")]
    UnknownProvider(String),
    /// The same idempotency key was used with a different message.
    #[error("idempotency key reused with a different message")]
    KeyReused,
    /// The request is invalid for the tenant's provider (e.g. a message body it does not take);
    /// the error names the field.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The member is not in the corp (the provider says so).
    #[error("not a member of the corp")]
    NotMember,
    /// The provider is unavailable, throttling or refusing the token; retry later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused permanently.
    #[error("provider refused: {0}")]
    Rejected(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UpstreamError> for CloudError {
    fn from(err: UpstreamError) -> Self {
        match err {
            UpstreamError::Rejected { .. } => Self::Rejected(err.to_string()),
            UpstreamError::Unavailable(_)
            | UpstreamError::Throttled(_)
            | UpstreamError::TokenRejected(_)
            | UpstreamError::Unrecognized { .. }
            | UpstreamError::Held { .. } => Self::Unavailable(err.to_string()),
        }
    }
}

impl From<MessengerError> for CloudError {
    fn from(err: MessengerError) -> Self {
        match err {
            MessengerError::CorpNotServed(corp) => Self::Forbidden(format!("no app is configured for corp {corp}")),
            MessengerError::Upstream(up) => up.into(),
        }
    }
}

impl From<IdentityError> for CloudError {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::NotMember => Self::NotMember,
            IdentityError::InvalidCode => Self::Rejected(err.to_string()),
            IdentityError::CorpNotServed(corp) => Self::Forbidden(format!("no app is configured for corp {corp}")),
            IdentityError::Upstream(up) => up.into(),
        }
    }
}

fn ensure_corp(client: &RelayClient, corp_id: &CorpId) -> Result<(), CloudError> {
    if client.corp_ids.contains(corp_id) {
        Ok(())
    } else {
        Err(CloudError::Forbidden(format!("relay client {} may not act for corp {corp_id}", client.id)))
    }
}

/// Whether `url` lies under one of `origins` (`https://host[:port]`): equal to
/// the origin or continuing with `/`.
pub fn url_in_origins(url: &str, origins: &[String]) -> bool {
    origins.iter().any(|origin| {
        let origin = origin.trim_end_matches('/');
        url.strip_prefix(origin).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Appends `state` to a URL as a query parameter (`?` or `&`). The state is
/// base64url, so it needs no escaping.
pub fn with_state(url: &str, state: &LoginState) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(fragment) => format!("{base}{sep}state={}#{fragment}", state.expose()),
        None => format!("{base}{sep}state={}", state.expose()),
    }
}

mod login;
mod members;
mod relay_jobs;
mod relay_send;
mod relay_status;

pub use login::{CallbackQuery, CreateLoginIntent, HandleCallback, TakeLoginResult};
pub use members::FetchMember;
pub use relay_jobs::{DEFAULT_SEND_CONCURRENCY, DeliverRelayed, ResolveUncertain};
pub use relay_send::{
    DEFAULT_SEND_LEASE_MS, DEFAULT_UNRECOGNIZED_BUDGET_SECS, DEFAULT_UNRECOGNIZED_MAX_ATTEMPTS, RelaySend,
    SEND_RETRY_BASE_MS, SEND_RETRY_MAX_MS, UNCERTAIN_RECHECK_SECS, UncertainPolicy,
};
pub use relay_status::{RECALL_WINDOW_MS, RECONCILE_WINDOW_MS, ReconcileDeliveries, RelayRecall, RelayStatus};
