//! Adapters that call out: DingTalk (paced by the call governor), Feishu/Lark, the cloud relay,
//! databases, the system.

pub mod dingtalk;
pub mod feed;
pub mod feishu;
pub mod governor;
pub mod jose;
pub mod postgres;
pub mod relay;
pub mod sql;
pub mod sqlite;
pub mod system;
pub(crate) mod token;

#[cfg(test)]
pub(crate) mod test_stub;
