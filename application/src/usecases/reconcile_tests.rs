#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the cloud's background delivery reconciliation.

use std::sync::Arc;

use domain::{BatchRecord, CorpId, DeliveryId, MessageBody, MessageState, Recipients, SendProgress, Timestamp, UserId};

use super::cloud::{RECONCILE_WINDOW_MS, ReconcileDeliveries};
use super::test_support::*;
use crate::ports::{MessengerError, MockMessenger, MockRelayMessageStore, RelayMessageRecord, UpstreamError};

fn record(key: &str, tasks: &[i64]) -> RelayMessageRecord {
    let batch = Recipients::new(vec![UserId::parse("u1").unwrap()], vec![]).unwrap().batches().remove(0);
    RelayMessageRecord {
        client_id: "c".into(),
        key: key.into(),
        corp_id: CorpId::parse("dingcorp").unwrap(),
        body: MessageBody::text("hi").unwrap(),
        batches: tasks
            .iter()
            .map(|t| BatchRecord {
                delivery_id: Some(DeliveryId::parse(&t.to_string()).unwrap()),
                ..BatchRecord::new(batch.clone())
            })
            .collect(),
        state: MessageState::Sent,
        created_at: Timestamp::from_millis(NOW_MS - 1000),
        updated_at: Timestamp::from_millis(NOW_MS - 1000),
        attempts: 0,
        waiting: None,
    }
}

#[tokio::test]
async fn completes_messages_whose_tasks_are_all_done_and_touches_the_rest() {
    let mut store = MockRelayMessageStore::new();
    store
        .expect_list_in_state()
        .withf(|state, after, rounds, limit| {
            *state == MessageState::Sent
                && after.as_millis() == NOW_MS - RECONCILE_WINDOW_MS
                && *rounds == 2
                && *limit == 10
        })
        .times(1)
        .returning(|_, _, _, _| Ok(vec![record("done", &[1, 2]), record("busy", &[3])]));
    store
        .expect_record_reconcile_round()
        .withf(|_, key, state, _| key == "done" && *state == MessageState::Completed)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    store
        .expect_record_reconcile_round()
        .withf(|_, key, state, _| key == "busy" && *state == MessageState::Sent)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut messenger = MockMessenger::new();
    messenger
        .expect_progress()
        .times(3)
        .returning(|_, task| Ok(SendProgress { percent: 100, done: task.as_str() != "3" }));
    let job = ReconcileDeliveries::new(Arc::new(store), Arc::new(messenger), clock(), 2);
    assert_eq!(job.run_once(10).await.unwrap(), 1);
}

#[tokio::test]
async fn a_provider_error_leaves_the_message_sent() {
    let mut store = MockRelayMessageStore::new();
    store.expect_list_in_state().times(1).returning(|_, _, _, _| Ok(vec![record("m", &[1, 2])]));
    store
        .expect_record_reconcile_round()
        .withf(|_, _, state, _| *state == MessageState::Sent)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut messenger = MockMessenger::new();
    messenger
        .expect_progress()
        .times(1)
        .returning(|_, _| Err(MessengerError::Upstream(UpstreamError::Unavailable("down".into()))));
    let job = ReconcileDeliveries::new(Arc::new(store), Arc::new(messenger), clock(), 1);
    assert_eq!(job.run_once(10).await.unwrap(), 0);
}
