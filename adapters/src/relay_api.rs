//! Relay API v1: the bodies local and cloud exchange over `/relay/v1/...`.
//!
//! Shared by the cloud's routes (`inbound::http::relay`) and local's client
//! (`outbound::relay`): this is dingbridge's own protocol, and the cloud's
//! OpenAPI document (`/openapi.json`) is its contract. Every call is made by
//! local, outbound, authenticated as a relay client with HTTP Basic.
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /relay/v1/logins` | [`LoginIntentRequest`] | 201 [`LoginIntentResponse`] |
//! | `GET /relay/v1/logins/{state}` (single use) | — | 200 [`LoginResultResponse`] |
//! | `POST /relay/v1/messages` (idempotent on `key`) | [`RelayMessageRequest`] | 200 [`RelayReceiptDto`] |
//! | `GET /relay/v1/messages/{key}` | — | 200 [`RelayStatusDto`] |
//! | `POST /relay/v1/messages/{key}/recall` | — | 200 [`RelayReceiptDto`] |
//! | `GET /relay/v1/members?corp_id=&userid=` or `&union_id=` | — | 200 [`MemberDto`] |
//! | `GET /relay/v1/events?after=&wait=&limit=` (long-poll) | — | 200 [`ContactFeedDto`] |
//!
//! Errors use the [`crate::inbound::http::error::ErrorBody`] shape with a stable `code`.

use application::ports::{
    ContactEvent, ContactFeedPage, FeedEntry, LoginOutcome, RelayReceipt, RelayWaiting, WaitReason,
};
use domain::{
    CorpId, DeliveryId, DeliveryReport, DeptId, LoginFailure, MemberProfile, MessageState, OpenId, ProviderKey,
    RecipientOutcome, Recipients, SkipReason, Timestamp, UnionId, UserId, ValidationError,
};
use salvo_oapi::ToSchema;
use serde::{Deserialize, Serialize};

/// `POST /relay/v1/logins`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIntentRequest {
    /// The login `state` local generated (43 base64url characters).
    #[salvo(schema(value_type = crate::inbound::http::dto::LoginStateString))]
    pub state: String,
    /// The identity provider to sign in with (`dingtalk`, `feishu`); absent means `dingtalk`
    /// (what every cloud before providers side by side served).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Where the cloud sends the browser after the provider's callback; must be under one of the
    /// relay client's allowed origins. The cloud appends `?state=`.
    #[salvo(schema(format = "uri"))]
    pub complete_url: String,
}

/// Answer to [`LoginIntentRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginIntentResponse {
    /// The provider's authorize URL to redirect the browser to.
    #[salvo(schema(format = "uri"))]
    pub authorize_url: String,
}

/// The provider of a request or profile that names none: DingTalk, the only provider of
/// earlier versions.
fn default_provider() -> String {
    crate::outbound::dingtalk::PROVIDER.to_owned()
}

/// A member's profile on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberDto {
    /// The identity provider of the corp (tenant); absent (an older cloud) means `dingtalk`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Corp id.
    #[salvo(schema(value_type = crate::inbound::http::dto::CorpIdString))]
    pub corp_id: String,
    /// `unionId`.
    #[salvo(schema(value_type = crate::inbound::http::dto::DingTalkIdString))]
    pub union_id: String,
    /// `userid`.
    #[salvo(schema(value_type = crate::inbound::http::dto::DingTalkIdString))]
    pub userid: String,
    /// `openId`.
    #[salvo(schema(value_type = Option<crate::inbound::http::dto::DingTalkIdString>))]
    pub open_id: Option<String>,
    /// Name.
    pub name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Enterprise mailbox.
    pub org_email: Option<String>,
    /// Email (org record, else the person's claim).
    pub email: Option<String>,
    /// Mobile (org record, else the person's claim).
    pub mobile: Option<String>,
    /// Department ids.
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DeptIdNumber>))]
    pub dept_ids: Vec<i64>,
    /// Active in the org.
    pub active: bool,
}

impl From<&MemberProfile> for MemberDto {
    fn from(p: &MemberProfile) -> Self {
        Self {
            provider: p.provider.to_string(),
            corp_id: p.corp_id.to_string(),
            union_id: p.union_id.to_string(),
            userid: p.userid.to_string(),
            open_id: p.open_id.as_ref().map(ToString::to_string),
            name: p.name.clone(),
            avatar_url: p.avatar_url.clone(),
            title: p.title.clone(),
            org_email: p.org_email.clone(),
            email: p.email.clone(),
            mobile: p.mobile.clone(),
            dept_ids: p.dept_ids.iter().map(|d| d.get()).collect(),
            active: p.active,
        }
    }
}

impl TryFrom<MemberDto> for MemberProfile {
    type Error = ValidationError;

    fn try_from(m: MemberDto) -> Result<Self, Self::Error> {
        Ok(Self {
            provider: ProviderKey::parse(&m.provider)?,
            corp_id: CorpId::parse(&m.corp_id)?,
            union_id: UnionId::parse(&m.union_id)?,
            userid: UserId::parse(&m.userid)?,
            open_id: m.open_id.as_deref().map(OpenId::parse).transpose()?,
            name: m.name,
            avatar_url: m.avatar_url,
            title: m.title,
            org_email: m.org_email,
            email: m.email,
            mobile: m.mobile,
            dept_ids: m.dept_ids.into_iter().map(DeptId::new).collect::<Result<_, _>>()?,
            active: m.active,
        })
    }
}

/// `GET /relay/v1/logins/{state}`: the outcome of a finished login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResultResponse {
    /// The member, when the login succeeded.
    pub member: Option<MemberDto>,
    /// Why not, when it failed: `consent_denied`, `not_member`, `inactive_member`, `invalid_code`, `provider_unavailable`.
    #[salvo(schema(value_type = Option<crate::inbound::http::dto::LoginFailureName>))]
    pub failure: Option<String>,
    /// DingTalk's `error` value for `consent_denied`.
    pub error: Option<String>,
}

impl From<&LoginOutcome> for LoginResultResponse {
    fn from(outcome: &LoginOutcome) -> Self {
        match outcome {
            Ok(profile) => Self { member: Some(profile.into()), failure: None, error: None },
            Err(failure) => Self {
                member: None,
                failure: Some(failure.code().to_owned()),
                error: match failure {
                    LoginFailure::ConsentDenied { error } => Some(error.clone()),
                    _ => None,
                },
            },
        }
    }
}

impl TryFrom<LoginResultResponse> for LoginOutcome {
    type Error = ValidationError;

    fn try_from(r: LoginResultResponse) -> Result<Self, Self::Error> {
        match (r.member, r.failure.as_deref()) {
            (Some(member), None) => Ok(Ok(MemberProfile::try_from(member)?)),
            (None, Some("consent_denied")) => {
                Ok(Err(LoginFailure::ConsentDenied { error: r.error.unwrap_or_default() }))
            }
            (None, Some("not_member")) => Ok(Err(LoginFailure::NotMember)),
            (None, Some("inactive_member")) => Ok(Err(LoginFailure::Inactive)),
            (None, Some("invalid_code")) => Ok(Err(LoginFailure::InvalidCode)),
            (None, Some("provider_unavailable")) => Ok(Err(LoginFailure::ProviderUnavailable)),
            _ => {
                Err(ValidationError::new("failure", "invalid", "a login result has either a member or a known failure"))
            }
        }
    }
}

/// Recipients on the wire (DingTalk ids only: local resolved its own ids).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayRecipients {
    /// DingTalk userids (≤ 5000).
    #[serde(default)]
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DingTalkIdString>, max_items = 5000))]
    pub userids: Vec<String>,
    /// Department ids (≤ 20).
    #[serde(default)]
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DeptIdNumber>, max_items = 20))]
    pub dept_ids: Vec<i64>,
    /// Everyone in the corp.
    #[serde(default)]
    pub to_all: bool,
}

impl From<&Recipients> for RelayRecipients {
    fn from(r: &Recipients) -> Self {
        Self {
            userids: r.user_ids().iter().map(ToString::to_string).collect(),
            dept_ids: r.dept_ids().iter().map(|d| d.get()).collect(),
            to_all: r.to_all(),
        }
    }
}

impl TryFrom<RelayRecipients> for Recipients {
    type Error = ValidationError;

    fn try_from(r: RelayRecipients) -> Result<Self, Self::Error> {
        if r.to_all {
            if !r.userids.is_empty() || !r.dept_ids.is_empty() {
                return Err(ValidationError::new(
                    "recipients.to_all",
                    "invalid",
                    "to_all excludes user and department ids",
                ));
            }
            return Ok(Recipients::everyone());
        }
        let userids = r
            .userids
            .iter()
            .enumerate()
            .map(|(i, u)| {
                UserId::parse(u)
                    .map_err(|e| ValidationError::new(format!("recipients.userids[{i}]"), e.code, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dept_ids = r
            .dept_ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                DeptId::new(*d)
                    .map_err(|e| ValidationError::new(format!("recipients.dept_ids[{i}]"), e.code, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Recipients::new(userids, dept_ids)
    }
}

/// `POST /relay/v1/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayMessageRequest {
    /// Idempotency key (local's message id, 1–128 characters). The same key never sends twice;
    /// the same key with a different message is 409 `idempotency_key_reused`.
    #[salvo(schema(value_type = crate::inbound::http::dto::KeyString))]
    pub key: String,
    /// The corp; must be in the relay client's list.
    #[salvo(schema(value_type = crate::inbound::http::dto::CorpIdString))]
    pub corp_id: String,
    /// Recipients.
    pub recipients: RelayRecipients,
    /// DingTalk's `msg` object (docs/dingtalk-api.md §D.2) or a `template` body (`sendbytemplate`, §D.1), ≤ 2048 bytes.
    #[salvo(schema(value_type = crate::inbound::http::dto::MessageBodySchema))]
    pub body: serde_json::Value,
}

/// The cloud's record of a relayed message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayReceiptDto {
    /// The idempotency key.
    #[salvo(schema(value_type = crate::inbound::http::dto::KeyString))]
    pub key: String,
    /// `accepted`, `sent`, `completed`, `failed` or `recalled`.
    #[salvo(schema(value_type = crate::inbound::http::dto::MessageStateName))]
    pub state: String,
    /// What the provider returned for each batch sent (DingTalk: its `task_id` in decimal;
    /// Feishu: the recipients' message ids). Absent from a cloud written before delivery ids:
    /// then `task_ids` is read.
    #[serde(default)]
    pub delivery_ids: Vec<String>,
    /// The DingTalk `task_id`s among `delivery_ids`, as numbers (kept for relay clients
    /// written before delivery ids; read only when `delivery_ids` is absent).
    #[serde(default)]
    pub task_ids: Vec<i64>,
    /// Errors of batches DingTalk refused.
    pub errors: Vec<String>,
    /// While the message is `accepted`: why its batches are not sent yet — `queued` (accepted,
    /// the cloud's sender sends it next), `throttled`, `waiting_quota` (the corp's monthly quota
    /// is exhausted), `ip_banned` or `unavailable`. The cloud sends it by itself when due; the
    /// relay client asks again with the same key to learn the outcome. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Option<WaitReasonName>))]
    pub waiting: Option<String>,
    /// With `waiting`: what happened, for people (DingTalk's code and message when it answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_detail: Option<String>,
    /// With `waiting`: when the cloud's next attempt is due, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
}

/// The delivery ids that are DingTalk `task_id`s (positive integers), as numbers: the
/// `task_ids` field kept beside `delivery_ids` for clients written before delivery ids.
pub fn dingtalk_task_ids(delivery_ids: &[DeliveryId]) -> Vec<i64> {
    delivery_ids.iter().filter_map(|d| d.as_str().parse::<i64>().ok()).filter(|t| *t > 0).collect()
}

/// Why an accepted message waits (the `waiting` field).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitReasonName {
    /// Accepted; the cloud's background sender sends it next.
    Queued,
    /// DingTalk throttled the calls, or the call governor's queue is full.
    Throttled,
    /// The corp's monthly quota of metered calls is exhausted.
    WaitingQuota,
    /// DingTalk banned the cloud's egress IP for a while.
    IpBanned,
    /// DingTalk is unavailable.
    Unavailable,
    /// Held for an operator: a cloud instance stopped during one of its DingTalk calls, and the
    /// policy for such uncertain batches is `hold` (`dingbridge relay resend` / `relay abandon`).
    Uncertain,
}

impl From<&RelayReceipt> for RelayReceiptDto {
    fn from(r: &RelayReceipt) -> Self {
        Self {
            key: r.key.clone(),
            state: r.state.as_str().to_owned(),
            delivery_ids: r.delivery_ids.iter().map(|d| d.as_str().to_owned()).collect(),
            task_ids: dingtalk_task_ids(&r.delivery_ids),
            errors: r.errors.clone(),
            waiting: r.waiting.as_ref().map(|w| w.reason.as_str().to_owned()),
            waiting_detail: r.waiting.as_ref().map(|w| w.detail.clone()),
            retry_at: r.waiting.as_ref().map(|w| w.retry_at.as_millis()),
        }
    }
}

impl TryFrom<RelayReceiptDto> for RelayReceipt {
    type Error = ValidationError;

    fn try_from(r: RelayReceiptDto) -> Result<Self, Self::Error> {
        Ok(Self {
            key: r.key,
            state: MessageState::parse(&r.state).ok_or_else(|| {
                ValidationError::new("state", "invalid", format!("unknown message state {:?}", r.state))
            })?,
            delivery_ids: if r.delivery_ids.is_empty() {
                r.task_ids.iter().map(|t| DeliveryId::parse(&t.to_string())).collect::<Result<_, _>>()?
            } else {
                r.delivery_ids.iter().map(|d| DeliveryId::parse(d)).collect::<Result<_, _>>()?
            },
            errors: r.errors,
            // An unknown code (a newer cloud) still says the message waits.
            waiting: r.waiting.map(|code| RelayWaiting {
                reason: WaitReason::parse(&code).unwrap_or(WaitReason::Unavailable),
                detail: r.waiting_detail.unwrap_or(code),
                retry_at: Timestamp::from_millis(r.retry_at.unwrap_or(0)),
            }),
        })
    }
}

/// One recipient's outcome on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayRecipientOutcome {
    /// DingTalk userid.
    #[salvo(schema(value_type = crate::inbound::http::dto::DingTalkIdString))]
    pub userid: String,
    /// `read`, `unread`, `failed`, `forbidden`, `invalid_user`, `pending`.
    #[salvo(schema(value_type = crate::inbound::http::dto::RecipientOutcomeName))]
    pub outcome: String,
    /// DingTalk's code for `forbidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `GET /relay/v1/messages/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayStatusDto {
    /// The record.
    pub receipt: RelayReceiptDto,
    /// Every task done.
    pub done: bool,
    /// Progress 0–100.
    #[salvo(schema(maximum = 100))]
    pub percent: u8,
    /// Per-recipient outcomes.
    pub recipients: Vec<RelayRecipientOutcome>,
    /// Department ids DingTalk did not recognise.
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DeptIdNumber>))]
    pub invalid_dept_ids: Vec<i64>,
}

/// Encodes a [`RecipientOutcome`] as `(outcome, code)`.
pub fn outcome_name(outcome: &RecipientOutcome) -> (&'static str, Option<String>) {
    match outcome {
        RecipientOutcome::Read => ("read", None),
        RecipientOutcome::Unread => ("unread", None),
        RecipientOutcome::Failed => ("failed", None),
        RecipientOutcome::Forbidden { code } => ("forbidden", Some(code.clone())),
        RecipientOutcome::InvalidUser => ("invalid_user", None),
        RecipientOutcome::Pending => ("pending", None),
        RecipientOutcome::Skipped { reason } => ("skipped", Some(reason.as_str().to_owned())),
    }
}

fn outcome_from_name(name: &str, code: Option<String>) -> RecipientOutcome {
    match name {
        "read" => RecipientOutcome::Read,
        "unread" => RecipientOutcome::Unread,
        "failed" => RecipientOutcome::Failed,
        "forbidden" => RecipientOutcome::Forbidden { code: code.unwrap_or_default() },
        "invalid_user" => RecipientOutcome::InvalidUser,
        "skipped" => match code.as_deref().and_then(SkipReason::parse) {
            Some(reason) => RecipientOutcome::Skipped { reason },
            None => RecipientOutcome::Pending,
        },
        _ => RecipientOutcome::Pending,
    }
}

impl RelayStatusDto {
    /// Builds the wire form.
    pub fn new(receipt: &RelayReceipt, report: &DeliveryReport) -> Self {
        Self {
            receipt: receipt.into(),
            done: report.done,
            percent: report.percent,
            recipients: report
                .recipients
                .iter()
                .map(|(userid, outcome)| {
                    let (name, code) = outcome_name(outcome);
                    RelayRecipientOutcome { userid: userid.to_string(), outcome: name.to_owned(), code }
                })
                .collect(),
            invalid_dept_ids: report.invalid_depts.iter().map(|d| d.get()).collect(),
        }
    }

    /// Back to the domain (recipients with unparsable ids are skipped).
    pub fn into_domain(self) -> Result<(RelayReceipt, DeliveryReport), ValidationError> {
        let receipt = RelayReceipt::try_from(self.receipt)?;
        let report = DeliveryReport {
            done: self.done,
            percent: self.percent.min(100),
            recipients: self
                .recipients
                .into_iter()
                .filter_map(|r| UserId::parse(&r.userid).ok().map(|u| (u, outcome_from_name(&r.outcome, r.code))))
                .collect(),
            invalid_depts: self.invalid_dept_ids.into_iter().filter_map(|d| DeptId::new(d).ok()).collect(),
        };
        Ok((receipt, report))
    }
}

/// One contact event of the feed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactEventDto {
    /// Position in the feed (strictly increasing); pass the last one back as `after`.
    pub cursor: i64,
    /// The corp (always one of the relay client's).
    #[salvo(schema(value_type = crate::inbound::http::dto::CorpIdString))]
    pub corp_id: String,
    /// DingTalk's event id (or a digest of the push when DingTalk sent none): unique per corp.
    pub event_id: String,
    /// DingTalk's `EventType`: `user_add_org`, `user_modify_org`, `user_leave_org`,
    /// `user_active_org`, `org_dept_create`, `org_dept_modify`, `org_dept_remove`.
    #[salvo(schema(value_type = crate::inbound::http::dto::ContactEventTypeName))]
    pub event_type: String,
    /// Affected members' userids.
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DingTalkIdString>))]
    pub userids: Vec<String>,
    /// Affected department ids.
    #[salvo(schema(value_type = Vec<crate::inbound::http::dto::DeptIdNumber>))]
    pub dept_ids: Vec<i64>,
    /// When the cloud received it, epoch milliseconds.
    pub received_at: i64,
}

/// `GET /relay/v1/events`: a page of the contact-event feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactFeedDto {
    /// Events after `after`, in cursor order (empty when none arrived within `wait`).
    pub events: Vec<ContactEventDto>,
    /// The cursor to ask after next: the last event's cursor, or `after` when there are none.
    pub next: i64,
}

impl From<&FeedEntry> for ContactEventDto {
    fn from(entry: &FeedEntry) -> Self {
        let e = &entry.event;
        Self {
            cursor: entry.cursor,
            corp_id: e.corp_id.to_string(),
            event_id: e.event_id.clone(),
            event_type: crate::feed_names::name(&e.change).to_owned(),
            userids: e.userids.iter().map(ToString::to_string).collect(),
            dept_ids: e.dept_ids.iter().map(|d| d.get()).collect(),
            received_at: e.received_at.as_millis(),
        }
    }
}

impl From<&ContactFeedPage> for ContactFeedDto {
    fn from(page: &ContactFeedPage) -> Self {
        Self { events: page.entries.iter().map(ContactEventDto::from).collect(), next: page.next }
    }
}

impl TryFrom<ContactEventDto> for FeedEntry {
    type Error = ValidationError;

    fn try_from(e: ContactEventDto) -> Result<Self, Self::Error> {
        Ok(Self {
            cursor: e.cursor,
            event: ContactEvent {
                corp_id: CorpId::parse(&e.corp_id)?,
                event_id: e.event_id,
                change: crate::feed_names::parse(&e.event_type),
                userids: e.userids.iter().map(|u| UserId::parse(u)).collect::<Result<_, _>>()?,
                dept_ids: e.dept_ids.into_iter().map(DeptId::new).collect::<Result<_, _>>()?,
                received_at: Timestamp::from_millis(e.received_at),
            },
        })
    }
}

impl ContactFeedDto {
    /// Back to the domain for a read after cursor `after`, checking the page is coherent: every
    /// cursor greater than `after` and than the one before it, and `next` the last cursor (or
    /// `after` for an empty page). Errors name the offending field.
    pub fn into_domain(self, after: i64) -> Result<ContactFeedPage, ValidationError> {
        let mut previous = after;
        let mut entries = Vec::with_capacity(self.events.len());
        for (i, event) in self.events.into_iter().enumerate() {
            if event.cursor <= previous {
                return Err(ValidationError::new(
                    format!("events[{i}].cursor"),
                    "invalid",
                    format!("cursor {} does not follow {previous}", event.cursor),
                ));
            }
            previous = event.cursor;
            entries.push(FeedEntry::try_from(event).map_err(|e| e.under(&format!("events[{i}]")))?);
        }
        let page = ContactFeedPage::new(after, entries);
        if self.next != page.next {
            return Err(ValidationError::new(
                "next",
                "invalid",
                format!("next is {} but the page ends at {}", self.next, page.next),
            ));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_carry_delivery_ids_and_dingtalk_task_ids_and_read_an_older_clouds_numbers() {
        let id = |raw: &str| DeliveryId::parse(raw).unwrap_or_else(|e| panic!("{e}"));
        let receipt = RelayReceipt {
            key: "k".into(),
            state: MessageState::Sent,
            delivery_ids: vec![id("256271667526"), id("u1=om_a,u2=om_b")],
            errors: vec![],
            waiting: None,
        };
        let wire = serde_json::to_value(RelayReceiptDto::from(&receipt)).unwrap_or_default();
        assert_eq!(wire["delivery_ids"], serde_json::json!(["256271667526", "u1=om_a,u2=om_b"]));
        assert_eq!(wire["task_ids"], serde_json::json!([256_271_667_526_i64]), "only DingTalk's are numbers");
        let back: RelayReceiptDto = serde_json::from_value(wire).unwrap_or_else(|_| unreachable!());
        assert_eq!(RelayReceipt::try_from(back).ok(), Some(receipt));
        let older: RelayReceiptDto =
            serde_json::from_str(r#"{"key":"k","state":"sent","task_ids":[7001,7002],"errors":[]}"#)
                .unwrap_or_else(|_| unreachable!());
        let ids = RelayReceipt::try_from(older).map(|r| r.delivery_ids).unwrap_or_default();
        assert_eq!(ids, vec![id("7001"), id("7002")]);
    }

    #[test]
    fn a_receipts_waiting_reason_round_trips_and_is_absent_when_none() {
        let receipt = RelayReceipt {
            key: "k".into(),
            state: MessageState::Accepted,
            delivery_ids: vec![],
            errors: vec![],
            waiting: Some(RelayWaiting {
                reason: WaitReason::WaitingQuota,
                detail: "DingTalk 90020: the monthly quota is exhausted".into(),
                retry_at: Timestamp::from_millis(1_750_000_060_000),
            }),
        };
        let wire = serde_json::to_value(RelayReceiptDto::from(&receipt)).unwrap_or_default();
        assert_eq!(wire["waiting"], "waiting_quota");
        assert_eq!(wire["waiting_detail"], "DingTalk 90020: the monthly quota is exhausted");
        assert_eq!(wire["retry_at"], 1_750_000_060_000_i64);
        let back: RelayReceiptDto = serde_json::from_value(wire).unwrap_or_else(|_| unreachable!());
        assert_eq!(RelayReceipt::try_from(back).ok(), Some(receipt.clone()));
        // A code this client does not know still says the message waits.
        let newer: RelayReceiptDto = serde_json::from_value(serde_json::json!({
            "key": "k", "state": "accepted", "task_ids": [], "errors": [], "waiting": "something_new"
        }))
        .unwrap_or_else(|_| unreachable!());
        let waiting = RelayReceipt::try_from(newer).ok().and_then(|r| r.waiting);
        assert_eq!(waiting.map(|w| (w.reason, w.detail)), Some((WaitReason::Unavailable, "something_new".into())));
        let sent = RelayReceipt { waiting: None, state: MessageState::Sent, ..receipt };
        let wire = serde_json::to_value(RelayReceiptDto::from(&sent)).unwrap_or_default();
        assert!(wire.get("waiting").is_none(), "{wire}");
        // An older cloud sends no `waiting` key.
        let old: RelayReceiptDto = serde_json::from_str(r#"{"key":"k","state":"sent","task_ids":[],"errors":[]}"#)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(old.waiting, None);
    }

    fn profile() -> MemberProfile {
        MemberProfile {
            provider: crate::outbound::dingtalk::provider_key(),
            corp_id: CorpId::parse("dingcorp").unwrap_or_else(|_| unreachable!()),
            union_id: UnionId::parse("u1").unwrap_or_else(|_| unreachable!()),
            userid: UserId::parse("manager4220").unwrap_or_else(|_| unreachable!()),
            open_id: None,
            name: "张三".into(),
            avatar_url: None,
            title: Some("t".into()),
            org_email: None,
            email: None,
            mobile: None,
            dept_ids: vec![DeptId::new(1).unwrap_or_else(|_| unreachable!())],
            active: true,
        }
    }

    #[test]
    fn login_outcomes_round_trip() {
        let outcomes: Vec<LoginOutcome> = vec![
            Ok(profile()),
            Err(LoginFailure::NotMember),
            Err(LoginFailure::ConsentDenied { error: "access_denied".into() }),
            Err(LoginFailure::InvalidCode),
            Err(LoginFailure::ProviderUnavailable),
        ];
        for outcome in outcomes {
            let wire = serde_json::to_string(&LoginResultResponse::from(&outcome)).unwrap_or_default();
            let back: LoginResultResponse = serde_json::from_str(&wire).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(LoginOutcome::try_from(back).ok(), Some(outcome));
        }
    }

    #[test]
    fn a_result_with_neither_member_nor_failure_is_invalid() {
        let empty = LoginResultResponse { member: None, failure: None, error: None };
        assert!(LoginOutcome::try_from(empty).is_err());
    }

    #[test]
    fn recipients_round_trip_and_validate() {
        let r = Recipients::new(vec![UserId::parse("a").unwrap_or_else(|_| unreachable!())], vec![])
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(Recipients::try_from(RelayRecipients::from(&r)).ok(), Some(r));
        let bad = RelayRecipients { userids: vec!["a,b".into()], ..RelayRecipients::default() };
        assert_eq!(Recipients::try_from(bad).err().map(|e| e.field), Some("recipients.userids[0]".into()));
        let both = RelayRecipients { userids: vec!["a".into()], to_all: true, ..RelayRecipients::default() };
        assert!(Recipients::try_from(both).is_err());
    }

    #[test]
    fn a_feed_page_round_trips_and_incoherent_pages_are_refused() {
        let entry = |cursor: i64| FeedEntry {
            cursor,
            event: ContactEvent {
                corp_id: CorpId::parse("dingcorp").unwrap_or_else(|_| unreachable!()),
                event_id: format!("ev{cursor}"),
                change: application::ports::DirectoryChange::MemberLeft,
                userids: vec![UserId::parse("manager4220").unwrap_or_else(|_| unreachable!())],
                dept_ids: vec![DeptId::new(2).unwrap_or_else(|_| unreachable!())],
                received_at: Timestamp::from_millis(1_750_000_000_000),
            },
        };
        let page = ContactFeedPage::new(3, vec![entry(4), entry(9)]);
        let wire = serde_json::to_value(ContactFeedDto::from(&page)).unwrap_or_default();
        assert_eq!(wire["next"], 9);
        assert_eq!(wire["events"][0]["received_at"], 1_750_000_000_000_i64);
        assert_eq!(wire["events"][1]["userids"][0], "manager4220");
        let back: ContactFeedDto = serde_json::from_value(wire).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.clone().into_domain(3).ok(), Some(page));
        assert_eq!(back.clone().into_domain(4).err().map(|e| e.field), Some("events[0].cursor".into()));
        let mut wrong_next = back.clone();
        wrong_next.next = 4;
        assert_eq!(wrong_next.into_domain(3).err().map(|e| e.field), Some("next".into()));
        let mut bad_user = back;
        bad_user.events[1].userids = vec!["a,b".into()];
        assert_eq!(bad_user.into_domain(3).err().map(|e| e.field), Some("events[1].userid".into()));
        let empty = ContactFeedDto { events: vec![], next: 7 };
        assert_eq!(empty.into_domain(7).ok(), Some(ContactFeedPage::new(7, vec![])));
    }
}
