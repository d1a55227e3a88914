//! Wire shapes of the HTTP API (request DTOs validate in two steps:
//! `validator` for shape, then `TryFrom` into the domain command).

use application::ports::MessageRecord;
use application::usecases::local::{MessageView, SendMessageCommand};
use domain::{CorpId, DeptId, MessageBody, Timestamp, User, UserId, ValidationError};
use salvo_oapi::ToSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// RFC 3339 (UTC) rendering of a timestamp, e.g. `2026-11-21T10:36:10.123Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    let nanos = i128::from(ts.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an instant given as RFC 3339 or as epoch milliseconds.
pub fn parse_instant(raw: &str) -> Option<Timestamp> {
    if let Ok(ms) = raw.trim().parse::<i64>() {
        return Some(Timestamp::from_millis(ms));
    }
    let t = time::OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok().map(Timestamp::from_millis)
}

/// A user (member of a corp) as stored locally.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Local id (UUID).
    pub id: String,
    /// The identity provider the member signs in with: `dingtalk` or `feishu`.
    pub provider: String,
    /// The corp (tenant) id: DingTalk's `corpId`, Feishu's `tenant_key`.
    #[salvo(schema(value_type = CorpIdString))]
    pub corp_id: String,
    /// DingTalk `unionId`.
    #[salvo(schema(value_type = DingTalkIdString))]
    pub union_id: String,
    /// DingTalk `userid` in the corp.
    #[salvo(schema(value_type = DingTalkIdString))]
    pub userid: String,
    /// DingTalk `openId`, if known.
    #[salvo(schema(value_type = Option<DingTalkIdString>))]
    pub open_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Enterprise mailbox (the org's word).
    pub org_email: Option<String>,
    /// Email (the org's record, else the person's own claim: never use it to link accounts).
    pub email: Option<String>,
    /// Mobile (same caveat as `email`).
    pub mobile: Option<String>,
    /// Department ids.
    #[salvo(schema(value_type = Vec<DeptIdNumber>))]
    pub dept_ids: Vec<i64>,
    /// Active in the org.
    pub active: bool,
    /// First stored (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub created_at: String,
    /// Last updated (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub updated_at: String,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        let p = user.profile;
        Self {
            id: user.id,
            provider: p.provider.to_string(),
            corp_id: p.corp_id.to_string(),
            union_id: p.union_id.to_string(),
            userid: p.userid.to_string(),
            open_id: p.open_id.map(String::from),
            name: p.name,
            avatar_url: p.avatar_url,
            title: p.title,
            org_email: p.org_email,
            email: p.email,
            mobile: p.mobile,
            dept_ids: p.dept_ids.iter().map(|d| d.get()).collect(),
            active: p.active,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

/// Who a message goes to. At least one list must be non-empty, or `to_all` true.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientsInput {
    /// Local user ids (from `/api/users`).
    #[serde(default)]
    #[validate(length(max = 5000, message = "at most 5000 user ids"))]
    #[salvo(schema(max_items = 5000))]
    pub user_ids: Vec<String>,
    /// DingTalk `userid`s.
    #[serde(default)]
    #[validate(length(max = 5000, message = "at most 5000 userids"))]
    #[salvo(schema(value_type = Vec<DingTalkIdString>, max_items = 5000))]
    pub userids: Vec<String>,
    /// Binding external ids (your system's account ids, see `PUT /api/users/{id}/binding`).
    #[serde(default)]
    #[validate(length(max = 5000, message = "at most 5000 external ids"))]
    #[salvo(schema(value_type = Vec<ExternalIdString>, max_items = 5000))]
    pub external_ids: Vec<String>,
    /// Tenant of `external_ids` (omit for the default tenant).
    #[serde(default)]
    #[salvo(schema(value_type = Option<ExternalIdString>))]
    pub tenant_id: Option<String>,
    /// Department ids (sub-departments included by DingTalk); at most 20.
    #[serde(default)]
    #[validate(length(max = 20, message = "DingTalk accepts at most 20 department ids"))]
    #[salvo(schema(value_type = Vec<DeptIdNumber>, max_items = 20))]
    pub dept_ids: Vec<i64>,
    /// Everyone in the corp.
    #[serde(default)]
    pub to_all: bool,
}

/// `POST /api/messages`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageInput {
    /// The corp (optional when the recipients or the configuration imply it).
    #[salvo(schema(value_type = Option<CorpIdString>))]
    pub corp_id: Option<String>,
    /// Recipients.
    #[validate(nested)]
    pub recipients: RecipientsInput,
    /// DingTalk's own `msg` object (docs/dingtalk-api.md §D.2), e.g. `{"msgtype":"text","text":{"content":"hi"}}`,
    /// or a template send for suite apps (docs/dingtalk-api.md §D.1 `sendbytemplate`):
    /// `{"msgtype":"template","template":{"template_id":"…","data":{"name":"value"}}}`;
    /// at most 2048 bytes as JSON.
    #[salvo(schema(value_type = MessageBodySchema))]
    pub body: serde_json::Value,
}

fn indexed<T>(
    field: &str,
    items: &[T],
    parse: impl Fn(&T) -> Result<UserId, ValidationError>,
) -> Result<Vec<UserId>, ValidationError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse(item).map_err(|e| ValidationError::new(format!("{field}[{i}]"), e.code, e.message)))
        .collect()
}

impl TryFrom<SendMessageInput> for SendMessageCommand {
    type Error = ValidationError;

    fn try_from(input: SendMessageInput) -> Result<Self, Self::Error> {
        let corp_id = input.corp_id.as_deref().map(CorpId::parse).transpose()?;
        let userids = indexed("recipients.userids", &input.recipients.userids, |s| UserId::parse(s))?;
        let dept_ids = input
            .recipients
            .dept_ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                DeptId::new(*d)
                    .map_err(|e| ValidationError::new(format!("recipients.dept_ids[{i}]"), e.code, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let user_ids = input.recipients.user_ids.iter().map(|s| s.trim().to_owned()).collect();
        Ok(Self {
            corp_id,
            user_ids,
            userids,
            external_ids: input.recipients.external_ids.iter().map(|s| s.trim().to_owned()).collect(),
            tenant_id: input.recipients.tenant_id.clone(),
            dept_ids,
            to_all: input.recipients.to_all,
            body: MessageBody::parse(&input.body)?,
            idempotency_key: None,
        })
    }
}

/// `POST /api/me/messages`: a text notification to the signed-in user (sandbox and smoke tests).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfMessageInput {
    /// The text (1–2000 characters).
    #[validate(length(min = 1, max = 2000, message = "text must be 1 to 2000 characters"))]
    #[salvo(schema(min_length = 1, max_length = 2000))]
    pub text: String,
}

/// One recipient's delivery outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientView {
    /// The member's `userid`.
    #[salvo(schema(value_type = DingTalkIdString))]
    pub userid: String,
    /// `read`, `unread`, `failed`, `forbidden`, `invalid_user` or `pending`.
    #[salvo(schema(value_type = RecipientOutcomeName))]
    pub outcome: String,
    /// The provider's code for `forbidden` (DingTalk: `143105` daily limit, `143106` same content
    /// today; Feishu: `230013` outside the app's availability or resigned, `230053` stopped the
    /// bot), or why the cloud skipped the recipient for `skipped` (`daily_limit`, `duplicate_content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The provider's report on a sent message.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Every task finished.
    pub done: bool,
    /// Progress 0–100.
    #[salvo(schema(maximum = 100))]
    pub percent: u8,
    /// Per-recipient outcome.
    pub recipients: Vec<RecipientView>,
    /// Department ids the provider did not recognise.
    #[salvo(schema(value_type = Vec<DeptIdNumber>))]
    pub invalid_dept_ids: Vec<i64>,
}

/// Recipients as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientsView {
    /// DingTalk userids.
    #[salvo(schema(value_type = Vec<DingTalkIdString>))]
    pub userids: Vec<String>,
    /// Department ids.
    #[salvo(schema(value_type = Vec<DeptIdNumber>))]
    pub dept_ids: Vec<i64>,
    /// Everyone.
    pub to_all: bool,
}

/// A message of local's outbox and, once sent, the provider's per-recipient report.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxMessageView {
    /// Message id.
    pub id: String,
    /// Corp.
    #[salvo(schema(value_type = CorpIdString))]
    pub corp_id: String,
    /// `accepted` (in the outbox), `relayed` (the cloud has it; DingTalk has not taken every batch
    /// yet), `sent`, `completed`, `failed` or `recalled`.
    #[salvo(schema(value_type = MessageStateName))]
    pub state: String,
    /// What the provider returned for each batch sent (DingTalk: the `task_id` of one call of
    /// ≤100 userids, in decimal; Feishu: the recipients' message ids, comma-joined).
    pub delivery_ids: Vec<String>,
    /// The DingTalk `task_id`s among `delivery_ids`, as numbers (kept for clients written
    /// before delivery ids).
    pub task_ids: Vec<i64>,
    /// Why it failed, or why the last relay attempt did not finish.
    pub error: Option<String>,
    /// While pending and the cloud holds it back: why — `queued`, `throttled`, `waiting_quota`
    /// (the corp's monthly DingTalk quota is exhausted), `ip_banned`, `unavailable` or
    /// `uncertain` (held for an operator after a cloud instance died mid-call).
    #[salvo(schema(value_type = Option<crate::relay_api::WaitReasonName>))]
    pub waiting: Option<String>,
    /// While pending: when local next relays it or asks the cloud about it (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub next_attempt_at: Option<String>,
    /// Relay attempts so far.
    pub attempts: u32,
    /// When the cloud acknowledged it (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub relayed_at: Option<String>,
    /// When every batch had a task id (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub sent_at: Option<String>,
    /// When it completed, failed or was recalled (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub finished_at: Option<String>,
    /// Recipients.
    pub recipients: RecipientsView,
    /// The `msg` sent.
    #[salvo(schema(value_type = MessageBodySchema))]
    pub body: serde_json::Value,
    /// Created (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub created_at: String,
    /// Last changed (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub updated_at: String,
    /// The provider's report (absent until sent, or when the provider cannot be asked right now).
    pub delivery: Option<DeliveryView>,
}

impl From<MessageRecord> for OutboxMessageView {
    fn from(record: MessageRecord) -> Self {
        Self {
            id: record.id,
            corp_id: record.corp_id.to_string(),
            state: record.state.as_str().to_owned(),
            delivery_ids: record.delivery_ids.iter().map(|d| d.as_str().to_owned()).collect(),
            task_ids: crate::relay_api::dingtalk_task_ids(&record.delivery_ids),
            waiting: record
                .state
                .is_pending()
                .then(|| record.error.as_deref().and_then(application::usecases::local::waiting_reason))
                .flatten()
                .map(|reason| reason.as_str().to_owned()),
            next_attempt_at: record.state.is_pending().then(|| rfc3339(record.next_attempt_at)),
            error: record.error,
            attempts: record.attempts,
            relayed_at: record.relayed_at.map(rfc3339),
            sent_at: record.sent_at.map(rfc3339),
            finished_at: record.finished_at.map(rfc3339),
            recipients: RecipientsView {
                userids: record.recipients.user_ids().iter().map(ToString::to_string).collect(),
                dept_ids: record.recipients.dept_ids().iter().map(|d| d.get()).collect(),
                to_all: record.recipients.to_all(),
            },
            body: record.body.as_json().clone(),
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            delivery: None,
        }
    }
}

impl From<MessageView> for OutboxMessageView {
    fn from(view: MessageView) -> Self {
        let mut out = Self::from(view.record);
        out.delivery = view.report.map(|report| DeliveryView {
            done: report.done,
            percent: report.percent,
            recipients: report
                .recipients
                .into_iter()
                .map(|(userid, outcome)| {
                    let (outcome, code) = crate::relay_api::outcome_name(&outcome);
                    RecipientView { userid: userid.to_string(), outcome: outcome.to_owned(), code }
                })
                .collect(),
            invalid_dept_ids: report.invalid_depts.iter().map(|d| d.get()).collect(),
        });
        out
    }
}

/// Converts `validator` errors into `(field, code, message)` triples with dotted paths.
pub fn validation_problems(errors: &validator::ValidationErrors, prefix: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            validator::ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| format!("{path}: {m}"))
                        .unwrap_or_else(|| format!("{path} is invalid"));
                    out.push((path.clone(), e.code.to_string(), message));
                }
            }
            validator::ValidationErrorsKind::Struct(inner) => out.extend(validation_problems(inner, &path)),
            validator::ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    out.extend(validation_problems(inner, &format!("{path}[{i}]")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_renders_utc_millis() {
        assert_eq!(rfc3339(Timestamp::from_millis(1_445_827_045_067)), "2015-10-26T02:37:25.067Z");
    }

    #[test]
    fn an_outbox_error_written_before_providers_were_side_by_side_still_reads_its_reason() {
        // The text earlier versions stored while the cloud waited (still in outbox rows).
        let stored = "waiting for DingTalk (throttled): code 90018: slow down";
        let reason = application::usecases::local::waiting_reason(stored);
        assert_eq!(reason, Some(application::ports::WaitReason::Throttled));
    }

    #[test]
    fn send_input_maps_field_errors_with_indexes() {
        let input: SendMessageInput = serde_json::from_value(serde_json::json!({
            "recipients": {"userids": ["ok", "bad,id"]},
            "body": {"msgtype": "text", "text": {"content": "hi"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = SendMessageCommand::try_from(input).err().map(|e| e.field);
        assert_eq!(err.as_deref(), Some("recipients.userids[1]"));
    }

    #[test]
    fn validator_errors_become_dotted_paths() {
        let input = SendMessageInput {
            corp_id: None,
            recipients: RecipientsInput { dept_ids: (1..=21).collect(), ..RecipientsInput::default() },
            body: serde_json::json!({}),
        };
        let problems = input.validate().err().map(|e| validation_problems(&e, "")).unwrap_or_default();
        assert_eq!(problems.first().map(|p| p.0.as_str()), Some("recipients.dept_ids"));
    }
}

/// `PUT /api/users/{id}/binding`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingInput {
    /// Your system's account id for this member (the seed's `staff_id`), 1–128 characters.
    #[salvo(schema(value_type = ExternalIdString))]
    pub external_id: String,
    /// Your system's tenant (the seed's `tenant_id`), when it has several.
    #[salvo(schema(value_type = Option<ExternalIdString>))]
    pub tenant_id: Option<String>,
}

/// A member's binding to an account of the enterprise system.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingView {
    /// Local user id.
    pub user_id: String,
    /// Your system's account id.
    pub external_id: String,
    /// Your system's tenant.
    pub tenant_id: Option<String>,
    /// Last change (RFC 3339).
    #[salvo(schema(format = DateTime))]
    pub updated_at: String,
}

impl From<application::ports::Binding> for BindingView {
    fn from(b: application::ports::Binding) -> Self {
        Self {
            user_id: b.user_id,
            external_id: b.external_id,
            tenant_id: b.tenant_id,
            updated_at: rfc3339(b.updated_at),
        }
    }
}

// Schema-only types: what the OpenAPI document says about values the wire carries as plain
// strings or numbers (each field keeps its Rust type and names one of these as `value_type`).

/// A DingTalk string id (`userid`, `unionId`, `openId`): 1–64 printable ASCII characters, no space
/// and no comma (`domain::ids`).
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "DingTalkId", pattern = r"^[\x21-\x2B\x2D-\x7E]{1,64}$", min_length = 1, max_length = 64))]
pub struct DingTalkIdString(pub String);

/// A DingTalk `corpId`: 1–64 letters, digits, `_` or `-` (`domain::CorpId`).
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "CorpId", pattern = r"^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64))]
pub struct CorpIdString(pub String);

/// An idempotency key (the `Idempotency-Key` header, the relay's `key`): 1–128 printable ASCII
/// characters, no space.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "IdempotencyKey", pattern = r"^[\x21-\x7E]{1,128}$", min_length = 1, max_length = 128))]
pub struct KeyString(pub String);

/// A login `state`: 43 base64url characters encoding 32 random bytes.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(
    name = "LoginState",
    pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$",
    min_length = 43,
    max_length = 43
))]
pub struct LoginStateString(pub String);

/// An account or tenant id of your system: 1–128 characters, no control character, not only
/// whitespace (surrounding whitespace is trimmed).
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(
    name = "ExternalId",
    pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
    min_length = 1,
    max_length = 128
))]
pub struct ExternalIdString(pub String);

/// A DingTalk department id: a positive 64-bit integer (`domain::DeptId`).
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "DeptId", minimum = 1, format = Int64))]
pub struct DeptIdNumber(pub i64);

/// An instant (the `since` query parameter): RFC 3339 (`2026-11-21T10:00:00Z`) or epoch
/// milliseconds.
#[derive(Debug)]
pub struct InstantParam;

impl ToSchema for InstantParam {
    fn to_schema(_components: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        use salvo_oapi::schema::OneOf;
        use salvo_oapi::{BasicType, KnownFormat, Object, SchemaFormat};
        OneOf::new()
            .item(
                Object::with_type(BasicType::String)
                    .format(SchemaFormat::KnownFormat(KnownFormat::DateTime))
                    .description("RFC 3339"),
            )
            .item(
                Object::with_type(BasicType::Integer)
                    .format(SchemaFormat::KnownFormat(KnownFormat::Int64))
                    .description("Epoch milliseconds"),
            )
            .description("RFC 3339 (`2026-11-21T10:00:00Z`) or epoch milliseconds")
            .into()
    }
}

/// Where a message is in its life (`domain::MessageState`); local and cloud records share it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "MessageState"))]
pub enum MessageStateName {
    /// Stored in the outbox; not yet acknowledged by the cloud.
    Accepted,
    /// The cloud has it; DingTalk has not taken every batch yet.
    Relayed,
    /// Every batch has a DingTalk task id.
    Sent,
    /// DingTalk reports every task done.
    Completed,
    /// DingTalk refused a batch permanently.
    Failed,
    /// Recalled.
    Recalled,
}

/// One recipient's delivery outcome (`domain::RecipientOutcome`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "RecipientOutcome"))]
pub enum RecipientOutcomeName {
    /// Delivered and read.
    Read,
    /// Delivered, not read yet.
    Unread,
    /// Not delivered.
    Failed,
    /// Held back by DingTalk's flow control (`code` says which rule).
    Forbidden,
    /// DingTalk does not know the userid.
    InvalidUser,
    /// Not reported yet.
    Pending,
    /// Not sent by the cloud: DingTalk would have answered success and not delivered it (`code`
    /// says why: `daily_limit` or `duplicate_content`).
    Skipped,
}

/// Why a login failed (`domain::LoginFailure::code`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "LoginFailure"))]
pub enum LoginFailureName {
    /// The person declined (DingTalk's `error` is in `error`).
    ConsentDenied,
    /// The person is not a member of the corp.
    NotMember,
    /// The org marks the person inactive (`inactive_member`).
    #[serde(rename = "inactive_member")]
    Inactive,
    /// DingTalk refused the authorization code.
    InvalidCode,
    /// DingTalk could not be reached.
    ProviderUnavailable,
}

/// A contact event's DingTalk `EventType` (docs/dingtalk-api.md §E.6): only these enter the feed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "ContactEventType"))]
pub enum ContactEventTypeName {
    /// A member joined.
    UserAddOrg,
    /// A member's profile changed.
    UserModifyOrg,
    /// A member left.
    UserLeaveOrg,
    /// A member activated their account.
    UserActiveOrg,
    /// A department was created.
    OrgDeptCreate,
    /// A department changed.
    OrgDeptModify,
    /// A department was removed.
    OrgDeptRemove,
}

/// A message body, `msgtype` naming the member that holds the content (docs/design.md "Message
/// bodies"): the neutral `text`, `markdown` and `link` every provider renders, or a provider's own
/// — DingTalk's `action_card`, `oa`, `image`, `file`, `voice`, `template` (docs/dingtalk-api.md
/// §D.2), Feishu's `post`, `interactive` (docs/feishu-api.md §D.2) — checked by the rules of the
/// message's tenant's provider.
#[derive(Debug)]
pub struct MessageBodySchema;

impl MessageBodySchema {
    /// One `msgtype`'s object: `{"msgtype": name, name: inner}`.
    fn variant(name: &str, inner: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "required": ["msgtype", name],
            "properties": {"msgtype": {"type": "string", "enum": [name]}, name: inner},
            "additionalProperties": false,
        })
    }

    /// The JSON Schema (every string is trimmed and must not be empty; lengths in characters).
    fn json() -> serde_json::Value {
        use serde_json::json;
        let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"});
        let url = json!({"type": "string", "maxLength": 1024, "pattern": "^\\s*[A-Za-z][A-Za-z0-9+.-]*://"});
        let strict = |required: &[&str], properties: serde_json::Value| json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false});
        json!({
            "description": "The neutral `text`, `markdown`, `link` (every provider), or a provider's own: DingTalk's \
                `action_card`, `oa`, `image`, `file`, `voice`, `template` (docs/dingtalk-api.md §D.2; at most 2048 bytes as \
                JSON), Feishu's `post`, `interactive` (docs/feishu-api.md §D.2). Checked by the rules of the tenant's \
                provider; at most 32 KiB as JSON. E.g. `{\"msgtype\":\"text\",\"text\":{\"content\":\"hi\"}}`.",
            "oneOf": [
                Self::variant("text", strict(&["content"], json!({"content": text(32 * 1024)}))),
                Self::variant("markdown", strict(&["title", "text"], json!({"title": text(256), "text": text(32 * 1024)}))),
                Self::variant("link", strict(
                    &["messageUrl", "title", "text"],
                    json!({"messageUrl": url, "picUrl": text(1024), "title": text(256), "text": text(32 * 1024)}),
                )),
                Self::variant("action_card", json!({
                    "type": "object",
                    "description": "`title` and `markdown`, then `single_title` + `single_url`, or `btn_orientation` + `btn_json_list` (docs/dingtalk-api.md §D.2)",
                    "required": ["title", "markdown"],
                    "properties": {"title": text(256), "markdown": text(2048)},
                })),
                Self::variant("oa", json!({
                    "type": "object",
                    "description": "`message_url`, `head` {`bgcolor`, `text`}, `body`, optional `pc_message_url` and `status_bar` (docs/dingtalk-api.md §D.2)",
                    "required": ["message_url", "head", "body"],
                    "properties": {"message_url": url, "head": {"type": "object", "required": ["bgcolor", "text"]}, "body": {"type": "object"}},
                })),
                Self::variant("image", strict(&["media_id"], json!({"media_id": text(256)}))),
                Self::variant("file", strict(&["media_id"], json!({"media_id": text(256)}))),
                Self::variant("voice", strict(
                    &["media_id", "duration"],
                    json!({"media_id": text(256), "duration": {"type": "string", "pattern": "^\\s*([1-9]|[1-5][0-9])\\s*$", "description": "Seconds, 1–59, as a string"}}),
                )),
                Self::variant("template", json!({
                    "type": "object",
                    "description": "`template_id` and optional `data` (variable name → value) for `sendbytemplate`",
                    "required": ["template_id"],
                    "properties": {"template_id": text(64), "data": {"type": "object"}},
                })),
                Self::variant("post", json!({
                    "type": "object",
                    "description": "Feishu's rich text: locale keys (`zh_cn`, `en_us`, …), each `{title?, content: [[{tag, …}]]}` (docs/feishu-api.md §D.2)",
                    "minProperties": 1,
                })),
                Self::variant("interactive", json!({
                    "type": "object",
                    "description": "A Feishu card JSON or card template `{type: \"template\", data}` (docs/feishu-api.md §D.2)",
                    "minProperties": 1,
                })),
            ],
        })
    }
}

impl ToSchema for MessageBodySchema {
    fn to_schema(components: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        const NAME: &str = "MessageBody";
        if !components.schemas.contains_key(NAME) {
            let schema = serde_json::from_value::<salvo_oapi::schema::Schema>(Self::json())
                .unwrap_or_else(|_| salvo_oapi::Object::new().into());
            components.schemas.insert(NAME, schema);
        }
        salvo_oapi::Ref::from_schema_name(NAME).into()
    }
}
