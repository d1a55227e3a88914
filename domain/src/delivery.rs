//! Message records and delivery outcomes.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::{Batch, DeptId, UserId, ValidationError};

/// What a provider returned for one accepted send of a batch, opaque to the core: the adapter
/// that made it reads it back for progress, results and recall (a provider's task id, or the
/// recipients' message ids; each adapter documents its own). Non-empty text without control
/// characters, at most [`DeliveryId::MAX_LEN`] bytes.
///
/// Serialized as a JSON string; a JSON integer is read too (the first provider's task ids were
/// stored, and relayed, as numbers before providers were side by side).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// The longest delivery id accepted, in bytes (room for a hundred recipients' message ids).
    pub const MAX_LEN: usize = 16_384;

    /// Validates `raw`. Errors: `delivery_id` `invalid` when empty, longer than
    /// [`DeliveryId::MAX_LEN`] bytes, or holding a control character.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "delivery_id",
                "invalid",
                format!("delivery_id must be 1 to {} bytes of text without control characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeliveryId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let raw = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        };
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Where a message is in its life (local and cloud records use the same states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Validated and stored in the outbox; not yet acknowledged by the cloud.
    Accepted,
    /// The cloud has recorded it; some batches still wait for the provider (the dispatcher retries).
    Relayed,
    /// Every batch has a delivery id.
    Sent,
    /// The provider reports every delivery done.
    Completed,
    /// The provider refused a batch permanently; see the batch errors.
    Failed,
    /// Recalled with `recall`.
    Recalled,
}

impl MessageState {
    /// Whether the outbox dispatcher still has work to do for a message in this state.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Accepted | Self::Relayed)
    }

    /// Stable lower-case name (`accepted`, `relayed`, `sent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Relayed => "relayed",
            Self::Sent => "sent",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Recalled => "recalled",
        }
    }

    /// Parses [`MessageState::as_str`] output.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Accepted, Self::Relayed, Self::Sent, Self::Completed, Self::Failed, Self::Recalled]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One batch of a message (one send to the provider) and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Recipients of the call.
    pub batch: Batch,
    /// What the provider returned once the send succeeded.
    pub delivery_id: Option<DeliveryId>,
    /// Why the provider refused the send, when it did (`code: message`).
    pub error: Option<String>,
    /// Recipients of the batch the cloud did not send to because the provider would have answered
    /// success and not delivered, with why. Empty until screened.
    pub skipped: Vec<(UserId, SkipReason)>,
}

impl BatchRecord {
    /// A batch not sent yet: no delivery id, no error, nobody skipped.
    pub fn new(batch: Batch) -> Self {
        Self { batch, delivery_id: None, error: None, skipped: Vec::new() }
    }

    /// Whether every recipient of the batch was skipped (named users only, no departments or
    /// everyone), so there is nothing left to send.
    pub fn fully_skipped(&self) -> bool {
        !self.skipped.is_empty()
            && self.batch.dept_ids().is_empty()
            && !self.batch.to_all()
            && self.batch.user_ids().iter().all(|u| self.skipped.iter().any(|(s, _)| s == u))
    }

    /// Whether nothing is left to do for the batch: sent, refused, or every recipient skipped.
    pub fn is_settled(&self) -> bool {
        self.delivery_id.is_some() || self.error.is_some() || self.fully_skipped()
    }
}

/// Why the cloud did not send a message to a recipient: the provider would have answered success
/// and not delivered it (each provider's adapter documents its rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The person already received the provider's daily maximum from this app today.
    DailyLimit,
    /// The person already received this exact content from this app today.
    DuplicateContent,
}

impl SkipReason {
    /// The stable code: `daily_limit` or `duplicate_content`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DailyLimit => "daily_limit",
            Self::DuplicateContent => "duplicate_content",
        }
    }

    /// Parses [`SkipReason::as_str`]'s codes.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::DailyLimit, Self::DuplicateContent].into_iter().find(|r| r.as_str() == code)
    }
}

/// How far the provider got with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendProgress {
    /// `progress_in_percent`, 0–100.
    pub percent: u8,
    /// Whether the provider finished the delivery.
    pub done: bool,
}

/// A user the provider did not deliver to because of a flow-control rule
/// (a daily limit, the same content today …), with the provider's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forbidden {
    /// The user.
    pub userid: UserId,
    /// The provider's code, as a string.
    pub code: String,
}

/// The provider's per-recipient outcome of one delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// Delivered and read.
    pub read: Vec<UserId>,
    /// Delivered, not read yet.
    pub unread: Vec<UserId>,
    /// Not delivered.
    pub failed: Vec<UserId>,
    /// Held back by a flow-control rule (code `""` when the provider gave none).
    pub forbidden: Vec<Forbidden>,
    /// Not valid users of the tenant.
    pub invalid_users: Vec<UserId>,
    /// Departments the provider does not know.
    pub invalid_depts: Vec<DeptId>,
}

/// What happened for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecipientOutcome {
    /// Delivered and read.
    Read,
    /// Delivered, not read yet.
    Unread,
    /// The provider failed to deliver.
    Failed,
    /// Blocked by a flow-control rule; `code` is the provider's.
    Forbidden {
        /// The provider's code.
        code: String,
    },
    /// Not a valid user of the corp.
    InvalidUser,
    /// The provider has not reported on this recipient yet.
    Pending,
    /// Not sent: the provider would have answered success without delivering it.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// Per-recipient delivery of a whole message, merged over its tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Whether every task is done.
    pub done: bool,
    /// Progress over all tasks, 0–100.
    pub percent: u8,
    /// One entry per user the provider reported on (depts expanded by the provider).
    pub recipients: Vec<(UserId, RecipientOutcome)>,
    /// Departments the provider did not recognise.
    pub invalid_depts: Vec<DeptId>,
}

impl DeliveryReport {
    /// Merges per-task progress and results into one report.
    pub fn merge(tasks: &[(SendProgress, SendResult)]) -> Self {
        let mut report = Self { done: !tasks.is_empty(), ..Self::default() };
        let mut percent_sum: u32 = 0;
        for (progress, result) in tasks {
            report.done &= progress.done;
            percent_sum += u32::from(progress.percent.min(100));
            let lists = [
                (&result.read, RecipientOutcome::Read),
                (&result.unread, RecipientOutcome::Unread),
                (&result.failed, RecipientOutcome::Failed),
                (&result.invalid_users, RecipientOutcome::InvalidUser),
            ];
            for (users, outcome) in lists {
                report.recipients.extend(users.iter().map(|u| (u.clone(), outcome.clone())));
            }
            report.recipients.extend(
                result
                    .forbidden
                    .iter()
                    .map(|f| (f.userid.clone(), RecipientOutcome::Forbidden { code: f.code.clone() })),
            );
            report.invalid_depts.extend(result.invalid_depts.iter().copied());
        }
        let count = u32::try_from(tasks.len()).unwrap_or(u32::MAX).max(1);
        report.percent = u8::try_from(percent_sum / count).unwrap_or(100);
        report
    }

    /// Adds the recipients the cloud skipped. A message whose every batch was skipped has no
    /// task: it is done (100 %) once something was skipped.
    #[must_use]
    pub fn with_skipped(mut self, skipped: &[(UserId, SkipReason)], tasks: usize) -> Self {
        self.recipients
            .extend(skipped.iter().map(|(u, reason)| (u.clone(), RecipientOutcome::Skipped { reason: *reason })));
        if tasks == 0 && !skipped.is_empty() {
            self.done = true;
            self.percent = 100;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn merge_combines_tasks() {
        let first = (
            SendProgress { percent: 100, done: true },
            SendResult { read: vec![uid("a")], unread: vec![uid("b")], ..SendResult::default() },
        );
        let second = (
            SendProgress { percent: 50, done: false },
            SendResult {
                forbidden: vec![Forbidden { userid: uid("c"), code: "9001".into() }],
                invalid_users: vec![uid("d")],
                ..SendResult::default()
            },
        );
        let report = DeliveryReport::merge(&[first, second]);
        assert!(!report.done);
        assert_eq!(report.percent, 75);
        assert_eq!(report.recipients.len(), 4);
        assert!(report.recipients.contains(&(uid("c"), RecipientOutcome::Forbidden { code: "9001".into() })));
        assert!(report.recipients.contains(&(uid("d"), RecipientOutcome::InvalidUser)));
    }

    #[test]
    fn delivery_ids_read_strings_and_old_numbers_and_refuse_empty() {
        let old: Vec<DeliveryId> = serde_json::from_str("[256271667526]").unwrap_or_default();
        assert_eq!(old.first().map(DeliveryId::as_str), Some("256271667526"));
        let new: DeliveryId = serde_json::from_str(r#""om_1,om_2""#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&new).ok().as_deref(), Some(r#""om_1,om_2""#));
        assert!(serde_json::from_str::<DeliveryId>("\"\"").is_err());
        assert_eq!(DeliveryId::parse("a\nb").err().map(|e| e.field), Some("delivery_id".to_owned()));
    }

    #[test]
    fn merge_of_nothing_is_not_done() {
        assert!(!DeliveryReport::merge(&[]).done);
    }

    #[test]
    fn states_round_trip() {
        for s in [
            MessageState::Accepted,
            MessageState::Relayed,
            MessageState::Sent,
            MessageState::Completed,
            MessageState::Failed,
            MessageState::Recalled,
        ] {
            assert_eq!(MessageState::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageState::parse("nope"), None);
    }
}
