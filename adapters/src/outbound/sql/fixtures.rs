//! Record builders shared by the SQLite and PostgreSQL store tests.

use application::ports::{Binding, LoginIntent, MessageRecord, RelayMessageRecord, Session};
use domain::{
    BatchRecord, CorpId, DeliveryId, DeptId, LoginAttempt, MemberProfile, MessageBody, MessageState, OpenId,
    Recipients, ReturnTo, Timestamp, UnionId, UserId,
};
use serde_json::json;

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn corp(raw: &str) -> CorpId {
    CorpId::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn uid(raw: &str) -> UserId {
    UserId::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn dept(raw: i64) -> DeptId {
    DeptId::new(raw).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn task(raw: i64) -> DeliveryId {
    DeliveryId::parse(&raw.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn attempt(hash: &str, return_to: &str, expires_at: i64) -> LoginAttempt {
    LoginAttempt {
        state_hash: hash.to_owned(),
        provider: crate::outbound::dingtalk::provider_key(),
        return_to: ReturnTo::parse_or_root(Some(return_to)),
        expires_at: ts(expires_at),
    }
}

pub(crate) fn profile(corp_id: &str, union_id: &str, userid: &str, name: &str) -> MemberProfile {
    MemberProfile {
        provider: crate::outbound::dingtalk::provider_key(),
        corp_id: corp(corp_id),
        union_id: UnionId::parse(union_id).unwrap_or_else(|e| panic!("{e}")),
        userid: uid(userid),
        open_id: Some(OpenId::parse("open-1").unwrap_or_else(|e| panic!("{e}"))),
        name: name.to_owned(),
        avatar_url: Some("https://a.example/x.png".into()),
        title: Some("Manager".into()),
        org_email: Some("zs@corp.example".into()),
        email: None,
        mobile: Some("15000009144".into()),
        dept_ids: vec![dept(1), dept(42)],
        active: true,
    }
}

pub(crate) fn text_body(content: &str) -> MessageBody {
    MessageBody::text(content).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn message(id: &str, recipients: Recipients) -> MessageRecord {
    MessageRecord {
        id: id.to_owned(),
        corp_id: corp("dingcorp"),
        body: text_body("hello"),
        recipients,
        state: MessageState::Accepted,
        delivery_ids: vec![],
        error: None,
        idempotency_key: None,
        attempts: 0,
        next_attempt_at: ts(1_000),
        relayed_at: None,
        sent_at: None,
        finished_at: None,
        created_at: ts(1_000),
        updated_at: ts(1_000),
    }
}

pub(crate) fn relay_record(client_id: &str, key: &str, recipients: &Recipients) -> RelayMessageRecord {
    RelayMessageRecord {
        client_id: client_id.to_owned(),
        key: key.to_owned(),
        corp_id: corp("dingcorp"),
        body: MessageBody::parse(&json!({"msgtype":"markdown","markdown":{"title":"T","text":"# hi"}}))
            .unwrap_or_else(|e| panic!("{e}")),
        batches: recipients.batches().into_iter().map(BatchRecord::new).collect(),
        state: MessageState::Accepted,
        created_at: ts(1_000),
        updated_at: ts(1_000),
        attempts: 0,
        waiting: None,
    }
}

pub(crate) fn intent(hash: &str, expires_at: i64) -> LoginIntent {
    LoginIntent {
        state_hash: hash.to_owned(),
        client_id: "client-a".to_owned(),
        provider: crate::outbound::dingtalk::provider_key(),
        code_verifier: Some(domain::PkceVerifier::from_random_bytes(&[4; 32])),
        complete_url: "https://local.example/auth/dingtalk/complete".to_owned(),
        corp_ids: vec![corp("dingcorp"), corp("dingother")],
        expires_at: ts(expires_at),
    }
}

pub(crate) fn session(hash: &str, user_id: &str, expires_at: i64) -> Session {
    Session { token_hash: hash.to_owned(), user_id: user_id.to_owned(), created_at: ts(1), expires_at: ts(expires_at) }
}

pub(crate) fn binding(user_id: &str, tenant_id: Option<&str>, external_id: &str, at: i64) -> Binding {
    Binding {
        user_id: user_id.to_owned(),
        external_id: external_id.to_owned(),
        tenant_id: tenant_id.map(str::to_owned),
        updated_at: ts(at),
    }
}
