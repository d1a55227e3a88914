//! DingTalk's event callbacks (docs/dingtalk-api.md §E; docs/design.md "Events"), the DingTalk
//! side of `POST /dingtalk/events`:
//!
//! - [`crypto`]: verifying and decrypting a push, encrypting the reply (§E.2–§E.5);
//! - [`parse`]: the decrypted JSON as [`DingTalkEvent`]s (§E.6, §B.5);
//! - [`handle`]: applying them — suite tickets and corp authorizations to the suite store,
//!   contact changes to the provider-neutral directory feed — after a replay check.
//!
//! None of this is in the core: it is DingTalk's own protocol. What reaches the core is the
//! neutral contact event of the feed ([`application::ports::ContactEvent`]).

pub mod crypto;
pub mod handle;
pub mod parse;

pub use handle::{
    ContactChange, DEFAULT_WINDOW_SECS, DingTalkEvent, EventsError, EventsSummary, HandleEvents, SecretText,
};

#[cfg(test)]
mod handle_tests;
