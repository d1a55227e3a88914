//! Adapters that are called: the HTTP API.

pub mod feishu_events;
pub mod http;
