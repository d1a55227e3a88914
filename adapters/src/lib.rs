//! dingbridge adapters: implementations of the application ports.
//!
//! - `outbound::dingtalk`: the DingTalk HTTP client (login, api and oapi hosts).
//! - `outbound::sqlite`: the stores on SQLite (diesel-async + bb8).
//! - `outbound::feed`: the in-process signal that wakes the contact feed's long-polls.
//! - `outbound::system`: the system clock and the OS random source.
//! - `inbound::http`: the Salvo HTTP API.
//! - `metrics`: the metric families (README "Operating dingbridge"); `telemetry`: W3C trace context.

pub mod feed_names;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod relay_api;
pub mod telemetry;
