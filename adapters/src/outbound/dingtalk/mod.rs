//! The DingTalk HTTP client (API.md §A–§D, §G): implements
//! [`application::ports::IdentityProvider`] and [`application::ports::Messenger`]
//! for one internal enterprise app serving one corp.
//!
//! - [`DingTalkConfig`]: hosts, app credentials, timeout, token refresh margin.
//! - [`DingTalkClient`]: the client; cheap to clone; caches the app token
//!   (API.md §B.1) with a single fetch in flight and retries a call once after
//!   a token error (API.md §G.2).
//!
//! Wire shapes stay private to this module. Nothing here logs a token, the
//! app secret, or a URL carrying `access_token`.

mod client;
mod config;
pub mod crypto;
mod errors;
pub mod events;
mod identity;
mod messenger;
mod token;
mod wire;

pub use client::DingTalkClient;
pub use config::{
    DEFAULT_API_BASE, DEFAULT_LOGIN_BASE, DEFAULT_OAPI_BASE, DEFAULT_SCOPE, DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_REFRESH_MARGIN_SECS, DingTalkConfig, DingTalkConfigError,
};

#[cfg(test)]
mod stub;
#[cfg(test)]
mod tests;
