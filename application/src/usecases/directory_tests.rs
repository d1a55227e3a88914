#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the directory use cases added for split deployments: refreshing a member through
//! the cloud, bindings to the enterprise system's accounts, and addressing messages by binding.

use std::sync::Arc;

use domain::{CorpId, MemberProfile, MessageBody, MessageState, Timestamp, UnionId, User, UserId};

use super::local::{Bindings, MessageError, RefreshUser, SendMessage, SendMessageCommand};
use super::test_support::*;
use crate::ports::{
    Binding, GatewayError, MemberKey, MockBindingStore, MockCloudGateway, MockDispatchTrigger, MockMessageStore,
    MockRandomSource, MockSessionStore, MockUserRepository, StoreError,
};

fn profile(userid: &str, name: &str) -> MemberProfile {
    MemberProfile {
        provider: domain::ProviderKey::from_static("idp-a"),
        corp_id: CorpId::parse("dingcorpa").unwrap(),
        union_id: UnionId::parse(&format!("union-{userid}")).unwrap(),
        userid: UserId::parse(userid).unwrap(),
        open_id: None,
        name: name.into(),
        avatar_url: None,
        title: None,
        org_email: None,
        email: None,
        mobile: None,
        dept_ids: vec![],
        active: true,
    }
}

fn user(id: &str, userid: &str) -> User {
    User {
        id: id.into(),
        profile: profile(userid, "Old Name"),
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(1),
    }
}

fn random() -> Arc<MockRandomSource> {
    let mut random = MockRandomSource::new();
    random.expect_new_id().returning(|| "new-id".to_owned());
    Arc::new(random)
}

fn finding(users: &mut MockUserRepository, id: &'static str, found: Option<User>) {
    users.expect_find().withf(move |i| i == id).times(1).returning(move |_| Ok(found.clone()));
}

#[tokio::test]
async fn refresh_stores_the_clouds_profile() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    users
        .expect_upsert()
        .withf(|p, new_id, now| p.name == "Alice New" && p.active && new_id == "new-id" && now.as_millis() == NOW_MS)
        .times(1)
        .returning(|p, _, _| {
            Ok(User {
                id: "u-1".into(),
                profile: p.clone(),
                created_at: Timestamp::from_millis(1),
                updated_at: Timestamp::from_millis(NOW_MS),
            })
        });
    let mut gateway = MockCloudGateway::new();
    gateway
        .expect_get_member()
        .withf(|corp, key| corp.as_str() == "dingcorpa" && *key == MemberKey::UserId(UserId::parse("alice").unwrap()))
        .times(1)
        .returning(|_, _| Ok(profile("alice", "Alice New")));
    let sessions = MockSessionStore::new();
    let refreshed = RefreshUser::new(Arc::new(users), Arc::new(sessions), Arc::new(gateway), random(), clock())
        .execute("u-1")
        .await
        .unwrap();
    assert_eq!(refreshed.profile.name, "Alice New");
}

#[tokio::test]
async fn refresh_of_a_member_who_left_marks_them_inactive() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    users.expect_upsert().withf(|p, _, _| !p.active && p.name == "Old Name").times(1).returning(|p, _, _| {
        Ok(User {
            id: "u-1".into(),
            profile: p.clone(),
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(NOW_MS),
        })
    });
    let mut gateway = MockCloudGateway::new();
    gateway.expect_get_member().times(1).returning(|_, _| Err(GatewayError::NotMember));
    let mut sessions = MockSessionStore::new();
    sessions.expect_delete_for_user().withf(|id| id == "u-1").times(1).returning(|_| Ok(2));
    let refreshed = RefreshUser::new(Arc::new(users), Arc::new(sessions), Arc::new(gateway), random(), clock())
        .execute("u-1")
        .await
        .unwrap();
    assert!(!refreshed.profile.active);
}

#[tokio::test]
async fn refresh_of_an_unknown_user_is_not_found_without_calling_the_cloud() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "nope", None);
    let gateway = MockCloudGateway::new();
    let sessions = MockSessionStore::new();
    let err = RefreshUser::new(Arc::new(users), Arc::new(sessions), Arc::new(gateway), random(), clock())
        .execute("nope")
        .await
        .err();
    assert!(matches!(err, Some(MessageError::NotFound)));
}

#[tokio::test]
async fn refresh_when_the_cloud_is_down_is_unavailable_and_stores_nothing() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    let mut gateway = MockCloudGateway::new();
    gateway.expect_get_member().times(1).returning(|_, _| Err(GatewayError::Unavailable("down".into())));
    let sessions = MockSessionStore::new();
    let err = RefreshUser::new(Arc::new(users), Arc::new(sessions), Arc::new(gateway), random(), clock())
        .execute("u-1")
        .await
        .err();
    assert!(matches!(err, Some(MessageError::Unavailable(_))));
}

#[tokio::test]
async fn put_binding_stores_it_for_an_existing_user() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    let mut bindings = MockBindingStore::new();
    bindings
        .expect_put()
        .withf(|b| b.user_id == "u-1" && b.external_id == "staff-7" && b.tenant_id.as_deref() == Some("t1"))
        .times(1)
        .returning(|_| Ok(()));
    let binding =
        Bindings::new(Arc::new(users), Arc::new(bindings), clock()).put("u-1", " staff-7 ", Some("t1")).await.unwrap();
    assert_eq!(binding.updated_at.as_millis(), NOW_MS);
}

#[tokio::test]
async fn put_binding_validates_before_touching_storage() {
    let users = MockUserRepository::new();
    let bindings = MockBindingStore::new();
    let uc = Bindings::new(Arc::new(users), Arc::new(bindings), clock());
    let err = uc.put("u-1", "  ", None).await.err();
    assert!(matches!(err, Some(MessageError::Invalid(e)) if e.field == "external_id" && e.code == "required"));
    let err = uc.put("u-1", &"x".repeat(129), None).await.err();
    assert!(matches!(err, Some(MessageError::Invalid(e)) if e.field == "external_id"));
    let err = uc.put("u-1", "ok", Some("bad\ntenant")).await.err();
    assert!(matches!(err, Some(MessageError::Invalid(e)) if e.field == "tenant_id"));
}

#[tokio::test]
async fn put_binding_for_an_unknown_user_is_not_found() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "nope", None);
    let bindings = MockBindingStore::new();
    let err = Bindings::new(Arc::new(users), Arc::new(bindings), clock()).put("nope", "staff-7", None).await.err();
    assert!(matches!(err, Some(MessageError::NotFound)));
}

#[tokio::test]
async fn put_binding_taken_by_another_user_is_a_conflict() {
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    let mut bindings = MockBindingStore::new();
    bindings.expect_put().times(1).returning(|_| Err(StoreError::Conflict("bindings_tenant_external_key".into())));
    let err = Bindings::new(Arc::new(users), Arc::new(bindings), clock()).put("u-1", "staff-7", None).await.err();
    assert!(matches!(err, Some(MessageError::Conflict(m)) if m.contains("staff-7")));
}

fn command(external_ids: Vec<&str>) -> SendMessageCommand {
    SendMessageCommand {
        corp_id: None,
        user_ids: vec![],
        userids: vec![],
        external_ids: external_ids.into_iter().map(String::from).collect(),
        tenant_id: Some("t1".into()),
        dept_ids: vec![],
        to_all: false,
        body: MessageBody::text("hi").unwrap(),
        idempotency_key: None,
    }
}

#[tokio::test]
async fn messages_can_address_members_by_binding() {
    let mut bindings = MockBindingStore::new();
    bindings
        .expect_find_by_external_id()
        .withf(|tenant, ext| tenant.as_deref() == Some("t1") && ext == "staff-7")
        .times(1)
        .returning(|_, _| {
            Ok(Some(Binding {
                user_id: "u-1".into(),
                external_id: "staff-7".into(),
                tenant_id: Some("t1".into()),
                updated_at: Timestamp::from_millis(1),
            }))
        });
    let mut users = MockUserRepository::new();
    finding(&mut users, "u-1", Some(user("u-1", "alice")));
    let mut messages = MockMessageStore::new();
    messages
        .expect_insert()
        .withf(|r| r.recipients.user_ids() == [UserId::parse("alice").unwrap()] && r.state == MessageState::Accepted)
        .times(1)
        .returning(|_| Ok(()));
    let mut trigger = MockDispatchTrigger::new();
    trigger.expect_wake().times(1).return_const(());
    let uc = SendMessage::new(
        Arc::new(users),
        Arc::new(bindings),
        Arc::new(messages),
        Arc::new(trigger),
        random(),
        clock(),
        vec![domain::CorpId::parse("dingcorpa").unwrap()],
    );
    let record = uc.execute(command(vec!["staff-7"])).await.unwrap();
    assert_eq!(record.corp_id.as_str(), "dingcorpa");
    assert_eq!(record.state, MessageState::Accepted);
    assert!(record.delivery_ids.is_empty());
}

#[tokio::test]
async fn unknown_bindings_are_reported_and_nothing_is_stored() {
    let mut bindings = MockBindingStore::new();
    bindings.expect_find_by_external_id().times(1).returning(|_, _| Ok(None));
    let uc = SendMessage::new(
        Arc::new(MockUserRepository::new()),
        Arc::new(bindings),
        Arc::new(MockMessageStore::new()),
        Arc::new(MockDispatchTrigger::new()),
        random(),
        clock(),
        vec![domain::CorpId::parse("dingcorpa").unwrap()],
    );
    let err = uc.execute(command(vec!["ghost"])).await.err();
    assert!(matches!(err, Some(MessageError::UnknownUsers(ids)) if ids == vec!["external:ghost".to_owned()]));
}

#[test]
fn profile_claims_name_the_members_provider_and_its_ids() {
    use crate::usecases::oidc::{SubjectClaim, claims_for};
    let member = user("user-1", "u1");
    let claims = claims_for(&member, &["openid".into(), "profile".into()], SubjectClaim::UserId);
    assert_eq!(claims.get("idp"), Some(&serde_json::json!("idp-a")));
    assert_eq!(claims.get("idp-a_corp_id"), Some(&serde_json::json!("dingcorpa")));
    assert_eq!(claims.get("idp-a_union_id"), Some(&serde_json::json!("union-u1")));
    assert_eq!(claims.get("idp-a_userid"), Some(&serde_json::json!("u1")));
    assert!(claims.keys().all(|k| !k.starts_with("idp-b")), "{claims:?}");
}
