//! The Feishu messenger against the Feishu emulator (docs/feishu-api.md §D): a batch sent again
//! with the same idempotency key is one message per person (the `uuid`, §D.1), people Feishu
//! refuses are reported per person, bursts to one person are paced under its 5 messages a second
//! (§D.1) instead of being refused, recall and read receipts work on what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adapters::outbound::feishu::{FeishuClient, FeishuConfig};
use application::ports::{Messenger, MessengerError, UpstreamError};
use domain::{Batch, CorpId, DeptId, MessageBody, UserId};
use secrecy::SecretString;
use tests::feishu_emulator::{self, FeishuEmulatorConfig, FeishuFixture, RunningFeishuEmulator};

async fn emulator() -> (RunningFeishuEmulator, FeishuClient, CorpId) {
    let emulator = feishu_emulator::start(FeishuEmulatorConfig::default(), "127.0.0.1:0").await.unwrap();
    let fixture = FeishuFixture::default();
    let tenant = CorpId::parse(&fixture.tenant_key).unwrap();
    let mut config =
        FeishuConfig::new(fixture.app_id.clone(), SecretString::from(fixture.app_secret.clone()), vec![tenant.clone()]);
    config.open_base = emulator.base_url();
    config.accounts_base = emulator.base_url();
    (emulator, FeishuClient::new(reqwest::Client::new(), config), tenant)
}

fn users(ids: &[&str]) -> Batch {
    Batch::new(ids.iter().map(|u| UserId::parse(u).unwrap()).collect(), Vec::new(), false).unwrap()
}

#[tokio::test]
async fn a_batch_sent_again_with_its_key_is_one_message_per_person_and_refused_people_are_reported() {
    let (emulator, client, tenant) = emulator().await;
    let body = MessageBody::text("deploy finished").unwrap();
    // alice is available; bob has resigned (230013, docs/feishu-api.md §D.1); ghost does not exist.
    let batch = users(&["fs_alice", "fs_bob", "fs_ghost"]);
    let first = client.send(&tenant, &batch, &body, "local-a/msg-1/0").await.unwrap();
    let again = client.send(&tenant, &batch, &body, "local-a/msg-1/0").await.unwrap();
    assert_eq!(emulator.state().message_count(), 1, "the resend is deduplicated by its uuid");
    let message_id = emulator.state().messages()[0].message_id.clone();
    assert_eq!(first, again);
    assert_eq!(first.as_str(), format!("fs_alice={message_id},fs_bob!230013,fs_ghost!99992351"));

    let result = client.result(&tenant, &first).await.unwrap();
    assert_eq!(result.unread, vec![UserId::parse("fs_alice").unwrap()]);
    assert_eq!(result.invalid_users, vec![UserId::parse("fs_ghost").unwrap()]);
    assert_eq!(
        result.forbidden.iter().map(|f| (f.userid.as_str(), f.code.as_str())).collect::<Vec<_>>(),
        [("fs_bob", "230013")]
    );
    assert!(client.progress(&tenant, &first).await.unwrap().done);

    // Another key is another message.
    client.send(&tenant, &users(&["fs_alice"]), &body, "local-a/msg-2/0").await.unwrap();
    assert_eq!(emulator.state().message_count(), 2);

    client.recall(&tenant, &first).await.unwrap();
    assert!(emulator.state().messages()[0].recalled);
    client.recall(&tenant, &first).await.unwrap(); // already recalled (230110) is not an error
    emulator.stop().await;
}

#[tokio::test]
async fn a_burst_to_one_person_is_paced_under_five_a_second_not_refused() {
    let (emulator, client, tenant) = emulator().await;
    let started = std::time::Instant::now();
    for n in 0..8 {
        let body = MessageBody::text(&format!("alert {n}")).unwrap();
        client.send(&tenant, &users(&["fs_alice"]), &body, &format!("k/{n}/0")).await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(emulator.state().message_count(), 8, "none refused with 230020");
    // 8 messages one PER_USER_INTERVAL (250 ms) apart: the last leaves ≥ 1.75 s after the first.
    assert!(elapsed >= std::time::Duration::from_millis(1700), "{elapsed:?}");
    emulator.stop().await;
}

#[tokio::test]
async fn departments_another_tenant_and_dingtalk_only_bodies_are_refused_before_any_call() {
    let (emulator, client, tenant) = emulator().await;
    let text = MessageBody::text("hi").unwrap();
    let to_dept = Batch::new(Vec::new(), vec![DeptId::new(1).unwrap()], false).unwrap();
    let refused = client.send(&tenant, &to_dept, &text, "k").await;
    assert!(
        matches!(&refused, Err(MessengerError::Upstream(UpstreamError::Rejected { code, .. })) if code == "recipients_unsupported"),
        "{refused:?}"
    );
    let other = CorpId::parse("dingcorp").unwrap();
    assert_eq!(client.send(&other, &users(&["fs_alice"]), &text, "k").await, Err(MessengerError::CorpNotServed(other)));
    let oa = MessageBody::parse(&serde_json::json!({"msgtype": "oa", "oa": {
        "message_url": "https://a.example", "head": {"bgcolor": "FFBBBBBB", "text": "h"}, "body": {"title": "t"}}}))
    .unwrap();
    let refused = client.send(&tenant, &users(&["fs_alice"]), &oa, "k").await;
    assert!(
        matches!(&refused, Err(MessengerError::Upstream(UpstreamError::Rejected { code, .. })) if code == "unsupported"),
        "{refused:?}"
    );
    assert_eq!(emulator.state().message_count(), 0);
    assert!(emulator.state().calls().is_empty(), "no call was made");
    emulator.stop().await;
}
