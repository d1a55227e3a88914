//! The `CloudGateway` over HTTP: local → cloud relay API v1 (`crate::relay_api`), outbound only.
//!
//! [`HttpCloudGateway`] is what local mode wires in as its `Arc<dyn CloudGateway>`; it only ever
//! dials out to [`RelayConfig::base_url`] (docs/design.md rule 1).

mod client;
mod config;
mod retry;

#[cfg(test)]
mod tests;

pub use client::{HttpCloudGateway, REQUEST_ID_HEADER};
pub use config::{DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, RelayConfig, RelayConfigError};
