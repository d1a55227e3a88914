//! Row structs of [`super::schema`] and their conversions to and from domain
//! types, in one place. Nothing here is SQLite-specific (the derives are
//! checked against both backends), so the PostgreSQL adapter on the same schema
//! reuses this module as it is.
//!
//! Reading a row back is fallible: a row that no longer parses into domain
//! types gives `StoreError::Other("corrupt row ...")`, never a panic.

use std::fmt::Display;

use application::ports::{
    Binding, ContactEvent, CorpAuthorization, FeedEntry, LoginIntent, LoginOutcome, MessageRecord, RelayMessageRecord,
    RelayWaiting, Session, StoreError, SuiteTicket, WaitReason,
};
use diesel::prelude::*;
use domain::{
    AgentId, Batch, BatchRecord, CorpId, DeliveryId, DeptId, LoginAttempt, MemberProfile, MessageBody, MessageState,
    OpenId, PkceVerifier, ProviderKey, Recipients, ReturnTo, SkipReason, Timestamp, UnionId, User, UserId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::schema::{
    bindings, callback_nonces, contact_events, corp_authorizations, login_attempts, login_intents, login_results,
    messages, relay_batches, relay_messages, sessions, suite_tickets, users,
};

/// `StoreError::Other` for a stored row that does not parse back.
pub(crate) fn corrupt(table: &str, key: &str, what: impl Display) -> StoreError {
    StoreError::Other(format!("corrupt row in {table} ({key}): {what}"))
}

/// Serializes a value for a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(format!("cannot serialize {what}: {e}")))
}

/// Parses a JSON column of the row `(table, key)`.
pub(crate) fn from_json<T: DeserializeOwned>(table: &str, key: &str, column: &str, raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| corrupt(table, key, format_args!("{column}: {e}")))
}

fn parse_state(table: &str, key: &str, raw: &str) -> Result<MessageState, StoreError> {
    MessageState::parse(raw).ok_or_else(|| corrupt(table, key, format_args!("state: unknown state {raw:?}")))
}

fn parse_corp(table: &str, key: &str, raw: &str) -> Result<CorpId, StoreError> {
    CorpId::parse(raw).map_err(|e| corrupt(table, key, e))
}

fn parse_body(table: &str, key: &str, raw: &str) -> Result<MessageBody, StoreError> {
    let json: serde_json::Value = from_json(table, key, "body", raw)?;
    MessageBody::parse(&json).map_err(|e| corrupt(table, key, e))
}

/// A row of `login_attempts`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_attempts)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct LoginAttemptRow {
    pub state_hash: String,
    pub return_to: String,
    pub expires_at: i64,
    pub provider: String,
}

impl LoginAttemptRow {
    pub fn from_domain(attempt: &LoginAttempt) -> Self {
        Self {
            state_hash: attempt.state_hash.clone(),
            return_to: attempt.return_to.as_str().to_owned(),
            expires_at: attempt.expires_at.as_millis(),
            provider: attempt.provider.to_string(),
        }
    }

    pub fn into_domain(self) -> Result<LoginAttempt, StoreError> {
        // A safe relative path, or an absolute URL on a trusted origin (forward_auth.return_origins,
        // checked when the sign-in started; the store does not know them, so the URL's own origin
        // stands in: what is checked here is its shape — http(s), no credentials, no `\`).
        let own_origin = url::Url::parse(&self.return_to).map(|u| u.origin().ascii_serialization()).ok();
        let return_to = ReturnTo::parse_with_origins(Some(&self.return_to), own_origin.as_slice());
        if return_to.as_str() != self.return_to {
            return Err(corrupt("login_attempts", &self.state_hash, "return_to is not a safe relative path or URL"));
        }
        let provider =
            ProviderKey::parse(&self.provider).map_err(|e| corrupt("login_attempts", &self.state_hash, e))?;
        Ok(LoginAttempt {
            state_hash: self.state_hash,
            provider,
            return_to,
            expires_at: Timestamp::from_millis(self.expires_at),
        })
    }
}

/// A row of `login_intents`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_intents)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct LoginIntentRow {
    pub state_hash: String,
    pub client_id: String,
    pub complete_url: String,
    pub corp_ids: String,
    pub expires_at: i64,
    pub provider: String,
    pub code_verifier: Option<String>,
}

impl LoginIntentRow {
    pub fn from_domain(intent: &LoginIntent) -> Result<Self, StoreError> {
        Ok(Self {
            state_hash: intent.state_hash.clone(),
            client_id: intent.client_id.clone(),
            complete_url: intent.complete_url.clone(),
            corp_ids: to_json(&intent.corp_ids, "login intent corp ids")?,
            expires_at: intent.expires_at.as_millis(),
            provider: intent.provider.to_string(),
            code_verifier: intent.code_verifier.as_ref().map(|v| v.expose().to_owned()),
        })
    }

    pub fn into_domain(self) -> Result<LoginIntent, StoreError> {
        const T: &str = "login_intents";
        let corp_ids: Vec<CorpId> = from_json(T, &self.state_hash, "corp_ids", &self.corp_ids)?;
        let provider = ProviderKey::parse(&self.provider).map_err(|e| corrupt(T, &self.state_hash, e))?;
        let code_verifier = match &self.code_verifier {
            Some(raw) => Some(PkceVerifier::parse(raw).map_err(|e| corrupt(T, &self.state_hash, e))?),
            None => None,
        };
        Ok(LoginIntent {
            state_hash: self.state_hash,
            client_id: self.client_id,
            provider,
            code_verifier,
            complete_url: self.complete_url,
            corp_ids,
            expires_at: Timestamp::from_millis(self.expires_at),
        })
    }
}

/// A row of `login_results`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_results)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct LoginResultRow {
    pub state_hash: String,
    pub client_id: String,
    pub outcome: String,
    pub expires_at: i64,
}

impl LoginResultRow {
    pub fn from_domain(
        state_hash: &str,
        client_id: &str,
        outcome: &LoginOutcome,
        expires_at: Timestamp,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            state_hash: state_hash.to_owned(),
            client_id: client_id.to_owned(),
            outcome: to_json(outcome, "login outcome")?,
            expires_at: expires_at.as_millis(),
        })
    }

    pub fn into_domain(self) -> Result<LoginOutcome, StoreError> {
        from_json("login_results", &self.state_hash, "outcome", &self.outcome)
    }
}

/// A row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl SessionRow {
    pub fn from_domain(session: &Session) -> Self {
        Self {
            token_hash: session.token_hash.clone(),
            user_id: session.user_id.clone(),
            created_at: session.created_at.as_millis(),
            expires_at: session.expires_at.as_millis(),
        }
    }

    pub fn into_domain(self) -> Session {
        Session {
            token_hash: self.token_hash,
            user_id: self.user_id,
            created_at: Timestamp::from_millis(self.created_at),
            expires_at: Timestamp::from_millis(self.expires_at),
        }
    }
}

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct UserRow {
    pub id: String,
    pub corp_id: String,
    pub union_id: String,
    pub userid: String,
    pub open_id: Option<String>,
    pub name: String,
    pub avatar_url: Option<String>,
    pub title: Option<String>,
    pub org_email: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub dept_ids: String,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub provider: String,
}

/// What an upsert of an existing user overwrites: every profile field and
/// `updated_at` (a `None` clears the column), never `id` or `created_at`.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct UserChanges {
    pub userid: String,
    pub open_id: Option<String>,
    pub name: String,
    pub avatar_url: Option<String>,
    pub title: Option<String>,
    pub org_email: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub dept_ids: String,
    pub active: bool,
    pub updated_at: i64,
}

impl UserRow {
    /// The row a new user with this profile gets.
    pub fn new_user(profile: &MemberProfile, id: &str, now: Timestamp) -> Result<Self, StoreError> {
        Ok(Self {
            id: id.to_owned(),
            corp_id: profile.corp_id.as_str().to_owned(),
            union_id: profile.union_id.as_str().to_owned(),
            userid: profile.userid.as_str().to_owned(),
            open_id: profile.open_id.as_ref().map(|o| o.as_str().to_owned()),
            name: profile.name.clone(),
            avatar_url: profile.avatar_url.clone(),
            title: profile.title.clone(),
            org_email: profile.org_email.clone(),
            email: profile.email.clone(),
            mobile: profile.mobile.clone(),
            dept_ids: to_json(&profile.dept_ids, "department ids")?,
            active: profile.active,
            created_at: now.as_millis(),
            updated_at: now.as_millis(),
            provider: profile.provider.to_string(),
        })
    }

    /// The changes an upsert applies to an existing row.
    pub fn changes(&self) -> UserChanges {
        UserChanges {
            userid: self.userid.clone(),
            open_id: self.open_id.clone(),
            name: self.name.clone(),
            avatar_url: self.avatar_url.clone(),
            title: self.title.clone(),
            org_email: self.org_email.clone(),
            email: self.email.clone(),
            mobile: self.mobile.clone(),
            dept_ids: self.dept_ids.clone(),
            active: self.active,
            updated_at: self.updated_at,
        }
    }

    pub fn into_domain(self) -> Result<User, StoreError> {
        const T: &str = "users";
        let key = self.id.as_str();
        let open_id = match &self.open_id {
            Some(raw) => Some(OpenId::parse(raw).map_err(|e| corrupt(T, key, e))?),
            None => None,
        };
        let profile = MemberProfile {
            provider: ProviderKey::parse(&self.provider).map_err(|e| corrupt(T, key, e))?,
            corp_id: parse_corp(T, key, &self.corp_id)?,
            union_id: UnionId::parse(&self.union_id).map_err(|e| corrupt(T, key, e))?,
            userid: UserId::parse(&self.userid).map_err(|e| corrupt(T, key, e))?,
            open_id,
            name: self.name,
            avatar_url: self.avatar_url,
            title: self.title,
            org_email: self.org_email,
            email: self.email,
            mobile: self.mobile,
            dept_ids: from_json::<Vec<DeptId>>(T, key, "dept_ids", &self.dept_ids)?,
            active: self.active,
        };
        Ok(User {
            id: self.id,
            profile,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

/// A row of `messages`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct MessageRow {
    pub id: String,
    pub corp_id: String,
    pub body: String,
    pub user_ids: String,
    pub dept_ids: String,
    pub to_all: bool,
    pub state: String,
    pub delivery_ids: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub idempotency_key: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub relayed_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl MessageRow {
    pub fn from_domain(record: &MessageRecord) -> Result<Self, StoreError> {
        Ok(Self {
            id: record.id.clone(),
            corp_id: record.corp_id.as_str().to_owned(),
            body: to_json(record.body.as_json(), "message body")?,
            user_ids: to_json(record.recipients.user_ids(), "user ids")?,
            dept_ids: to_json(record.recipients.dept_ids(), "department ids")?,
            to_all: record.recipients.to_all(),
            state: record.state.as_str().to_owned(),
            delivery_ids: to_json(&record.delivery_ids, "delivery ids")?,
            error: record.error.clone(),
            created_at: record.created_at.as_millis(),
            updated_at: record.updated_at.as_millis(),
            idempotency_key: record.idempotency_key.clone(),
            attempts: i32::try_from(record.attempts).unwrap_or(i32::MAX),
            next_attempt_at: record.next_attempt_at.as_millis(),
            relayed_at: record.relayed_at.map(Timestamp::as_millis),
            sent_at: record.sent_at.map(Timestamp::as_millis),
            finished_at: record.finished_at.map(Timestamp::as_millis),
        })
    }

    pub fn into_domain(self) -> Result<MessageRecord, StoreError> {
        const T: &str = "messages";
        let key = self.id.as_str();
        let recipients = if self.to_all {
            Recipients::everyone()
        } else {
            let user_ids: Vec<UserId> = from_json(T, key, "user_ids", &self.user_ids)?;
            let dept_ids: Vec<DeptId> = from_json(T, key, "dept_ids", &self.dept_ids)?;
            Recipients::new(user_ids, dept_ids).map_err(|e| corrupt(T, key, e))?
        };
        Ok(MessageRecord {
            corp_id: parse_corp(T, key, &self.corp_id)?,
            body: parse_body(T, key, &self.body)?,
            recipients,
            state: parse_state(T, key, &self.state)?,
            delivery_ids: from_json::<Vec<DeliveryId>>(T, key, "delivery_ids", &self.delivery_ids)?,
            error: self.error,
            idempotency_key: self.idempotency_key,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            next_attempt_at: Timestamp::from_millis(self.next_attempt_at),
            relayed_at: self.relayed_at.map(Timestamp::from_millis),
            sent_at: self.sent_at.map(Timestamp::from_millis),
            finished_at: self.finished_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            id: self.id,
        })
    }
}

/// A row of `relay_messages`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = relay_messages)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct RelayMessageRow {
    pub client_id: String,
    pub key: String,
    pub corp_id: String,
    pub body: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub attempts: i64,
    pub waiting: Option<String>,
    pub waiting_detail: Option<String>,
    pub retry_at: Option<i64>,
}

/// A row of `relay_batches`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = relay_batches)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct RelayBatchRow {
    pub client_id: String,
    pub key: String,
    pub idx: i32,
    pub user_ids: String,
    pub dept_ids: String,
    pub to_all: bool,
    pub delivery_id: Option<String>,
    pub error: Option<String>,
    pub skipped: String,
}

/// One skipped recipient in `relay_batches.skipped`.
#[derive(Debug, Serialize, Deserialize)]
struct SkippedRow {
    userid: UserId,
    reason: SkipReason,
}

/// `relay_batches.skipped` for `skipped`.
pub(crate) fn skipped_json(skipped: &[(UserId, SkipReason)]) -> Result<String, StoreError> {
    let rows: Vec<SkippedRow> =
        skipped.iter().map(|(userid, reason)| SkippedRow { userid: userid.clone(), reason: *reason }).collect();
    to_json(&rows, "skipped recipients")
}

/// Converts a 0-based batch index to the `idx` column.
pub(crate) fn batch_idx(index: usize) -> Result<i32, StoreError> {
    i32::try_from(index).map_err(|_| StoreError::Other(format!("batch index {index} is out of range")))
}

impl RelayMessageRow {
    /// The message row and its batch rows.
    pub fn from_domain(record: &RelayMessageRecord) -> Result<(Self, Vec<RelayBatchRow>), StoreError> {
        let message = Self {
            client_id: record.client_id.clone(),
            key: record.key.clone(),
            corp_id: record.corp_id.as_str().to_owned(),
            body: to_json(record.body.as_json(), "message body")?,
            state: record.state.as_str().to_owned(),
            created_at: record.created_at.as_millis(),
            updated_at: record.updated_at.as_millis(),
            attempts: i64::from(record.attempts),
            waiting: record.waiting.as_ref().map(|w| w.reason.as_str().to_owned()),
            waiting_detail: record.waiting.as_ref().map(|w| w.detail.clone()),
            retry_at: record.waiting.as_ref().map(|w| w.retry_at.as_millis()),
        };
        let batches = record
            .batches
            .iter()
            .enumerate()
            .map(|(index, b)| {
                Ok(RelayBatchRow {
                    client_id: record.client_id.clone(),
                    key: record.key.clone(),
                    idx: batch_idx(index)?,
                    user_ids: to_json(b.batch.user_ids(), "user ids")?,
                    dept_ids: to_json(b.batch.dept_ids(), "department ids")?,
                    to_all: b.batch.to_all(),
                    delivery_id: b.delivery_id.as_ref().map(|d| d.as_str().to_owned()),
                    error: b.error.clone(),
                    skipped: skipped_json(&b.skipped)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((message, batches))
    }

    /// Rebuilds the record from its message row and its batch rows (in `idx` order).
    pub fn into_domain(self, batches: Vec<RelayBatchRow>) -> Result<RelayMessageRecord, StoreError> {
        const T: &str = "relay_messages";
        let key = format!("{}/{}", self.client_id, self.key);
        let batches = batches
            .into_iter()
            .map(|b| {
                let key = format!("{key}#{}", b.idx);
                let user_ids: Vec<UserId> = from_json("relay_batches", &key, "user_ids", &b.user_ids)?;
                let dept_ids: Vec<DeptId> = from_json("relay_batches", &key, "dept_ids", &b.dept_ids)?;
                let batch = Batch::new(user_ids, dept_ids, b.to_all).map_err(|e| corrupt("relay_batches", &key, e))?;
                let delivery_id = match b.delivery_id {
                    Some(raw) => Some(DeliveryId::parse(&raw).map_err(|e| corrupt("relay_batches", &key, e))?),
                    None => None,
                };
                let skipped: Vec<SkippedRow> = from_json("relay_batches", &key, "skipped", &b.skipped)?;
                let skipped = skipped.into_iter().map(|r| (r.userid, r.reason)).collect();
                Ok(BatchRecord { batch, delivery_id, error: b.error, skipped })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let waiting = match self.waiting {
            None => None,
            Some(code) => Some(RelayWaiting {
                reason: WaitReason::parse(&code)
                    .ok_or_else(|| corrupt(T, &key, format!("unknown waiting reason {code:?}")))?,
                detail: self.waiting_detail.unwrap_or_default(),
                retry_at: Timestamp::from_millis(self.retry_at.unwrap_or(self.updated_at)),
            }),
        };
        Ok(RelayMessageRecord {
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            waiting,
            corp_id: parse_corp(T, &key, &self.corp_id)?,
            body: parse_body(T, &key, &self.body)?,
            batches,
            state: parse_state(T, &key, &self.state)?,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            client_id: self.client_id,
            key: self.key,
        })
    }
}

/// A row of `bindings`. A missing tenant is stored as `''`, so that the
/// unique `(tenant_id, external_id)` treats it as one tenant on both backends
/// (a NULL would never collide).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = bindings)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct BindingRow {
    pub user_id: String,
    pub external_id: String,
    pub tenant_id: String,
    pub updated_at: i64,
}

/// The `tenant_id` column for a tenant: `''` for none.
pub(crate) fn tenant_column(tenant_id: Option<&str>) -> String {
    tenant_id.unwrap_or_default().to_owned()
}

impl BindingRow {
    pub fn from_domain(binding: &Binding) -> Self {
        Self {
            user_id: binding.user_id.clone(),
            external_id: binding.external_id.clone(),
            tenant_id: tenant_column(binding.tenant_id.as_deref()),
            updated_at: binding.updated_at.as_millis(),
        }
    }

    pub fn into_domain(self) -> Binding {
        Binding {
            user_id: self.user_id,
            external_id: self.external_id,
            tenant_id: Some(self.tenant_id).filter(|t| !t.is_empty()),
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }
}

/// A row of `suite_tickets`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = suite_tickets)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct SuiteTicketRow {
    pub suite_key: String,
    pub ticket: String,
    pub updated_at: i64,
}

impl SuiteTicketRow {
    pub fn into_domain(self) -> SuiteTicket {
        SuiteTicket {
            suite_key: self.suite_key,
            ticket: self.ticket,
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }
}

/// A row of `corp_authorizations`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = corp_authorizations)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct CorpAuthorizationRow {
    pub suite_key: String,
    pub corp_id: String,
    pub agent_id: Option<i64>,
    pub permanent_code: Option<String>,
    pub active: bool,
    pub updated_at: i64,
}

impl CorpAuthorizationRow {
    pub fn from_domain(authorization: &CorpAuthorization) -> Self {
        Self {
            suite_key: authorization.suite_key.clone(),
            corp_id: authorization.corp_id.as_str().to_owned(),
            agent_id: authorization.agent_id.map(AgentId::get),
            permanent_code: authorization.permanent_code.clone(),
            active: authorization.active,
            updated_at: authorization.updated_at.as_millis(),
        }
    }

    pub fn into_domain(self) -> Result<CorpAuthorization, StoreError> {
        const T: &str = "corp_authorizations";
        let key = format!("{}/{}", self.suite_key, self.corp_id);
        let agent_id = match self.agent_id {
            Some(raw) => Some(AgentId::new(raw).map_err(|e| corrupt(T, &key, e))?),
            None => None,
        };
        Ok(CorpAuthorization {
            corp_id: parse_corp(T, &key, &self.corp_id)?,
            agent_id,
            permanent_code: self.permanent_code,
            active: self.active,
            updated_at: Timestamp::from_millis(self.updated_at),
            suite_key: self.suite_key,
        })
    }
}

/// A row of `callback_nonces`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = callback_nonces)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct CallbackNonceRow {
    pub owner: String,
    pub nonce: String,
    pub keep_until: i64,
}

/// A new row of `contact_events` (the database assigns `seq`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = contact_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct NewContactEventRow {
    pub corp_id: String,
    pub event_id: String,
    pub event_type: String,
    pub userids: String,
    pub dept_ids: String,
    pub received_at: i64,
}

impl NewContactEventRow {
    pub fn from_domain(event: &ContactEvent) -> Result<Self, StoreError> {
        Ok(Self {
            corp_id: event.corp_id.as_str().to_owned(),
            event_id: event.event_id.clone(),
            event_type: crate::feed_names::name(&event.change).to_owned(),
            userids: to_json(&event.userids, "contact event userids")?,
            dept_ids: to_json(&event.dept_ids, "contact event department ids")?,
            received_at: event.received_at.as_millis(),
        })
    }
}

/// A stored row of `contact_events`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contact_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct ContactEventRow {
    pub seq: i64,
    pub corp_id: String,
    pub event_id: String,
    pub event_type: String,
    pub userids: String,
    pub dept_ids: String,
    pub received_at: i64,
}

impl ContactEventRow {
    pub fn into_domain(self) -> Result<FeedEntry, StoreError> {
        const T: &str = "contact_events";
        let key = self.seq.to_string();
        let userids: Vec<UserId> = from_json(T, &key, "userids", &self.userids)?;
        let dept_ids: Vec<DeptId> = from_json(T, &key, "dept_ids", &self.dept_ids)?;
        Ok(FeedEntry {
            cursor: self.seq,
            event: ContactEvent {
                corp_id: parse_corp(T, &key, &self.corp_id)?,
                event_id: self.event_id,
                change: crate::feed_names::parse(&self.event_type),
                userids,
                dept_ids,
                received_at: Timestamp::from_millis(self.received_at),
            },
        })
    }
}
