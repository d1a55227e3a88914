//! Adapters that call out: DingTalk, databases, the system.

pub mod dingtalk;
pub mod sqlite;
pub mod system;
