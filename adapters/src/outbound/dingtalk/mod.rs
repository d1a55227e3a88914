//! The DingTalk HTTP client (docs/dingtalk-api.md §A–§D, §G): implements
//! [`application::ports::IdentityProvider`] and [`application::ports::Messenger`]
//! for an internal enterprise app (one corp) or a third-party suite (every
//! corp that authorized it).
//!
//! - [`DingTalkConfig`]: hosts, the app's client credentials, timeout, token refresh margin.
//! - [`DingTalkApp`]: internal app (agent id, corp) or suite (suite store, corp-token endpoint).
//! - [`DingTalkClient`]: the client; cheap to clone; caches the app token
//!   (docs/dingtalk-api.md §B.1) or each corp's suite token (§B.4) with a single fetch in
//!   flight and retries a call once after a token error (docs/dingtalk-api.md §G.2).
//! - [`body`]: DingTalk's rules for message bodies (its `msg` types and limits, docs/dingtalk-api.md §D.2).
//! - [`quota`]: the monthly quota accounting of metered calls (docs/dingtalk-api.md §G.3).
//! - [`DingTalkApps`]: several clients as one: the first signs people in,
//!   each corp is served by the first client that serves it.
//!
//! Wire shapes stay private to this module. Nothing here logs a token, the
//! app secret, or a URL carrying `access_token`.

mod apps;
pub mod body;
mod client;
mod config;
mod errors;
mod identity;
mod messenger;
pub mod quota;
pub mod recipients;
mod wire;

pub use crate::outbound::token::{FetchResult, SharedToken, TokenBook};
pub use apps::DingTalkApps;
pub use client::DingTalkClient;
pub use config::{
    CorpTokenApi, DEFAULT_API_BASE, DEFAULT_LOGIN_BASE, DEFAULT_OAPI_BASE, DEFAULT_SCOPE, DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_REFRESH_MARGIN_SECS, DingTalkApp, DingTalkConfig, DingTalkConfigError,
};

/// The provider key of DingTalk: the route segment (`/auth/dingtalk/…`) and the stored
/// `provider` of its users and logins (docs/design.md "Providers side by side").
pub const PROVIDER: &str = "dingtalk";

/// [`PROVIDER`] as a [`domain::ProviderKey`].
pub fn provider_key() -> domain::ProviderKey {
    domain::ProviderKey::from_static(PROVIDER)
}

#[cfg(test)]
mod stub;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod tests;
