//! The Feishu / Lark (飞书) HTTP client for a self-built app (企业自建应用): implements
//! [`application::ports::IdentityProvider`] — sign-in with OAuth 2.0 and PKCE
//! (docs/feishu-api.md §A), the member directory (§C.1) — and [`application::ports::Messenger`]
//! (bot messages, §D) — with the app's
//! `tenant_access_token` (§B.1) cached by the same single-flight cache the DingTalk client uses.
//!
//! - [`FeishuConfig`]: hosts (Feishu or Lark), the app's credentials, the tenants it serves,
//!   timeout, token refresh margin.
//! - [`FeishuClient`]: the client; cheap to clone.
//! - [`body`]: Feishu's rules for message bodies ([`FeishuBodyRules`]) and how each is rendered (§D.2).
//!
//! Wire shapes stay private to this module (`wire` is not shared with any other client or
//! with the emulator). Nothing here logs a token, the app secret or an authorization code.

pub mod body;
mod client;
mod config;
mod errors;
mod messenger;
mod wire;

pub use body::{FeishuBodyRules, Rendered, render};
pub use client::FeishuClient;
pub use config::{
    DEFAULT_ACCOUNTS_BASE, DEFAULT_OPEN_BASE, DEFAULT_RATE_PER_SECOND, DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_REFRESH_MARGIN_SECS, FeishuConfig, FeishuConfigError, LARK_ACCOUNTS_BASE, LARK_OPEN_BASE,
    TokenEndpoint, default_governor,
};
pub use messenger::{PER_USER_INTERVAL, message_uuid};

/// The provider key of Feishu / Lark: the route segment (`/auth/feishu/…`) and the stored
/// `provider` of its users and logins (docs/design.md "Providers side by side").
pub const PROVIDER: &str = "feishu";

/// [`PROVIDER`] as a [`domain::ProviderKey`].
pub fn provider_key() -> domain::ProviderKey {
    domain::ProviderKey::from_static(PROVIDER)
}

#[cfg(test)]
mod tests;
