//! Adapters that are called: the HTTP API.

pub mod dingtalk_events;
pub mod feishu_events;
pub mod http;
