#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the outbox dispatcher ([`DispatchOutbox`]) and its backoff, and of how
//! [`MessageStatus`] treats the `relayed` state, with strict mockall expectations.

use std::sync::Arc;

use domain::{CorpId, DeliveryId, DeliveryReport, MessageBody, MessageState, Recipients, Timestamp, UserId};
use mockall::Sequence;

use super::local::{DISPATCH_LEASE_SECS, DispatchOutbox, MessageError, MessageStatus, RETRY_MAX_MS};
use super::test_support::*;
use crate::ports::{
    GatewayError, MessageRecord, MockCloudGateway, MockMessageStore, MockRandomSource, RelayReceipt, RelaySendRequest,
    RelayWaiting, StoreError, WaitReason,
};

const ID_1: &str = "0197-msg-1";
const ID_2: &str = "0197-msg-2";
const WAITING: &str = "waiting for the provider to accept every batch";

fn corp_a() -> CorpId {
    CorpId::parse("dingcorpa").unwrap()
}

fn task(n: i64) -> DeliveryId {
    DeliveryId::parse(&n.to_string()).unwrap()
}

fn recipients() -> Recipients {
    Recipients::new(vec![UserId::parse("alice").unwrap()], vec![]).unwrap()
}

/// A message as `claim_due` returns it: leased until now + 60 s, `attempts` already counted.
fn claimed(id: &str, state: MessageState, attempts: u32, delivery_ids: Vec<DeliveryId>) -> MessageRecord {
    let created = Timestamp::from_millis(NOW_MS - 10_000);
    MessageRecord {
        id: id.to_owned(),
        corp_id: corp_a(),
        body: MessageBody::text(&format!("hello from {id}")).unwrap(),
        recipients: recipients(),
        state,
        delivery_ids,
        error: None,
        idempotency_key: None,
        attempts,
        next_attempt_at: now().plus_secs(DISPATCH_LEASE_SECS),
        relayed_at: None,
        sent_at: None,
        finished_at: None,
        created_at: created,
        updated_at: created,
    }
}

fn request_for(record: &MessageRecord) -> RelaySendRequest {
    RelaySendRequest {
        key: record.id.clone(),
        corp_id: record.corp_id.clone(),
        recipients: record.recipients.clone(),
        body: record.body.clone(),
    }
}

fn receipt(id: &str, state: MessageState, delivery_ids: Vec<DeliveryId>, errors: Vec<&str>) -> RelayReceipt {
    RelayReceipt {
        key: id.to_owned(),
        state,
        delivery_ids,
        errors: errors.into_iter().map(str::to_owned).collect(),
        waiting: None,
    }
}

struct Mocks {
    messages: MockMessageStore,
    gateway: MockCloudGateway,
    random: MockRandomSource,
    seq: Sequence,
}

impl Mocks {
    /// `claim_due(now, now + lease, limit)` expected once, answering `claimed`. No jitter is drawn
    /// unless [`Mocks::jitter`] says so.
    fn claiming(limit: u32, claimed: Result<Vec<MessageRecord>, StoreError>) -> Self {
        let mut seq = Sequence::new();
        let mut messages = MockMessageStore::new();
        messages
            .expect_claim_due()
            .withf(move |at, lease, l| *at == now() && *lease == now().plus_secs(DISPATCH_LEASE_SECS) && *l == limit)
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _| claimed.clone());
        let mut random = MockRandomSource::new();
        random.expect_bytes32().never();
        Self { messages, gateway: MockCloudGateway::new(), random, seq }
    }

    /// The random source answers `byte` (every byte) once per backoff.
    fn jitter(mut self, byte: u8, times: usize) -> Self {
        self.random = MockRandomSource::new();
        self.random.expect_bytes32().times(times).return_const([byte; 32]);
        self
    }

    /// `send_message` of `record` expected once (in order), answering `answer`.
    fn sending(mut self, record: &MessageRecord, answer: Result<RelayReceipt, GatewayError>) -> Self {
        let request = request_for(record);
        self.gateway
            .expect_send_message()
            .withf(move |r| *r == request)
            .times(1)
            .in_sequence(&mut self.seq)
            .returning(move |_| answer.clone());
        self
    }

    /// `update` expected once (in order) with these values at `now()`, answering `answer`.
    fn updating(
        mut self,
        id: &'static str,
        state: MessageState,
        delivery_ids: Vec<DeliveryId>,
        error: Option<&str>,
        answer: Result<(), StoreError>,
    ) -> Self {
        let error = error.map(str::to_owned);
        self.messages
            .expect_update()
            .withf(move |i, s, t, e, at| i == id && *s == state && t == delivery_ids && *e == error && *at == now())
            .times(1)
            .in_sequence(&mut self.seq)
            .returning(move |_, _, _, _, _| answer.clone());
        self
    }

    /// `reschedule` expected once (in order) at `now() + delay_ms` with `error`.
    fn rescheduling(mut self, id: &'static str, delay_ms: i64, error: &str, answer: Result<(), StoreError>) -> Self {
        let error = error.to_owned();
        self.messages
            .expect_reschedule()
            .withf(move |i, at, e| {
                i == id && *at == Timestamp::from_millis(NOW_MS + delay_ms) && e.as_deref() == Some(&*error)
            })
            .times(1)
            .in_sequence(&mut self.seq)
            .returning(move |_, _, _| answer.clone());
        self
    }

    fn never_updating(mut self) -> Self {
        self.messages.expect_update().never();
        self
    }

    fn never_rescheduling(mut self) -> Self {
        self.messages.expect_reschedule().never();
        self
    }

    fn build(self) -> DispatchOutbox {
        DispatchOutbox::new(Arc::new(self.messages), Arc::new(self.gateway), Arc::new(self.random), clock())
    }
}

// ---------------------------------------------------------------------------
// backoff_ms
// ---------------------------------------------------------------------------

#[test]
fn backoff_of_the_first_attempt_is_between_250_and_500_ms() {
    assert_eq!(DispatchOutbox::backoff_ms(1, 0), 250);
    assert_eq!(DispatchOutbox::backoff_ms(1, 255), 500);
    for byte in 0..=u8::MAX {
        let delay = DispatchOutbox::backoff_ms(1, byte);
        assert!((250..=500).contains(&delay), "jitter {byte}: {delay}");
    }
}

#[test]
fn backoff_jitter_byte_0_is_half_and_255_is_the_full_delay() {
    for attempts in 1..=20 {
        let full = DispatchOutbox::backoff_ms(attempts, 255);
        assert_eq!(DispatchOutbox::backoff_ms(attempts, 0), full / 2, "attempt {attempts}");
    }
}

#[test]
fn backoff_grows_with_the_jitter_byte() {
    for attempts in [1, 3, 7, 30] {
        let delays: Vec<i64> = (0..=u8::MAX).map(|b| DispatchOutbox::backoff_ms(attempts, b)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "attempt {attempts}");
    }
}

#[test]
fn backoff_doubles_per_attempt_until_the_cap() {
    assert_eq!(
        (1..=7).map(|a| DispatchOutbox::backoff_ms(a, 255)).collect::<Vec<_>>(),
        vec![500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000]
    );
    for attempts in 1..6 {
        for byte in [0, 255] {
            assert_eq!(
                DispatchOutbox::backoff_ms(attempts + 1, byte),
                2 * DispatchOutbox::backoff_ms(attempts, byte),
                "attempt {attempts}, jitter {byte}"
            );
        }
    }
}

#[test]
fn backoff_is_capped_at_30_seconds_for_any_attempt_count() {
    for attempts in [7, 8, 16, 17, 64, 1_000, u32::MAX] {
        assert_eq!(DispatchOutbox::backoff_ms(attempts, 255), RETRY_MAX_MS, "attempt {attempts}");
        assert_eq!(DispatchOutbox::backoff_ms(attempts, 0), RETRY_MAX_MS / 2, "attempt {attempts}");
    }
}

#[test]
fn backoff_of_attempt_zero_is_that_of_the_first() {
    for byte in [0, 77, 255] {
        assert_eq!(DispatchOutbox::backoff_ms(0, byte), DispatchOutbox::backoff_ms(1, byte));
    }
}

// ---------------------------------------------------------------------------
// run_once
// ---------------------------------------------------------------------------

#[tokio::test]
async fn run_once_with_nothing_due_returns_zero_and_relays_nothing() -> Result<(), StoreError> {
    let mut mocks = Mocks::claiming(25, Ok(vec![])).never_updating().never_rescheduling();
    mocks.gateway.expect_send_message().never();

    assert_eq!(mocks.build().run_once(25).await?, 0);
    Ok(())
}

#[tokio::test]
async fn run_once_claim_error_is_returned() {
    let mut mocks = Mocks::claiming(10, Err(store_down())).never_updating().never_rescheduling();
    mocks.gateway.expect_send_message().never();

    let err = mocks.build().run_once(10).await.unwrap_err();

    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn run_once_records_a_sent_receipt_with_its_task_ids() -> Result<(), StoreError> {
    let record = claimed(ID_1, MessageState::Accepted, 1, vec![]);
    let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
        .sending(&record, Ok(receipt(ID_1, MessageState::Sent, vec![task(11), task(12)], vec![])))
        .updating(ID_1, MessageState::Sent, vec![task(11), task(12)], None, Ok(()))
        .never_rescheduling();

    assert_eq!(mocks.build().run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn run_once_records_a_failed_receipt_with_the_cloud_errors() -> Result<(), StoreError> {
    let record = claimed(ID_1, MessageState::Accepted, 1, vec![]);
    let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
        .sending(&record, Ok(receipt(ID_1, MessageState::Failed, vec![task(12)], vec!["40035: bad", "40036: worse"])))
        .updating(ID_1, MessageState::Failed, vec![task(12)], Some("40035: bad; 40036: worse"), Ok(()))
        .never_rescheduling();

    assert_eq!(mocks.build().run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn run_once_stores_a_cloud_accepted_receipt_as_relayed_and_reschedules_it() -> Result<(), StoreError> {
    // Second attempt, jitter byte 255: the full 1 s delay.
    let record = claimed(ID_1, MessageState::Accepted, 2, vec![]);
    let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
        .jitter(255, 1)
        .sending(&record, Ok(receipt(ID_1, MessageState::Accepted, vec![task(11)], vec![])))
        .updating(ID_1, MessageState::Relayed, vec![task(11)], None, Ok(()))
        .rescheduling(ID_1, 1_000, WAITING, Ok(()));

    assert_eq!(mocks.build().run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn run_once_stores_why_the_cloud_is_waiting_as_the_messages_error_and_asks_again_when_due()
-> Result<(), StoreError> {
    // The cloud's next attempt is before, after, and far after the local backoff (1 s here): the
    // local asks again after the backoff, at the cloud's next attempt, or after the longest backoff.
    for (retry_in_ms, delay_ms) in [(0, 1_000), (20_000, 20_000), (600_000, RETRY_MAX_MS)] {
        let record = claimed(ID_1, MessageState::Accepted, 2, vec![]);
        let why =
            "provider call held back (waiting_quota): the monthly quota of corp dingcorp is exhausted (code 90020)";
        let waiting = RelayReceipt {
            waiting: Some(RelayWaiting {
                reason: WaitReason::WaitingQuota,
                detail: why.to_owned(),
                retry_at: Timestamp::from_millis(NOW_MS + retry_in_ms),
            }),
            ..receipt(ID_1, MessageState::Accepted, vec![], vec![])
        };
        let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
            .jitter(255, 1)
            .sending(&record, Ok(waiting))
            .updating(ID_1, MessageState::Relayed, vec![], None, Ok(()))
            .rescheduling(ID_1, delay_ms, &format!("waiting for the provider (waiting_quota): {why}"), Ok(()));

        assert_eq!(mocks.build().run_once(10).await?, 1);
    }
    Ok(())
}

#[tokio::test]
async fn run_once_relays_a_relayed_message_again_and_records_it_sent() -> Result<(), StoreError> {
    let record = claimed(ID_1, MessageState::Relayed, 3, vec![task(11)]);
    let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
        .sending(&record, Ok(receipt(ID_1, MessageState::Sent, vec![task(11), task(12)], vec![])))
        .updating(ID_1, MessageState::Sent, vec![task(11), task(12)], None, Ok(()))
        .never_rescheduling();

    assert_eq!(mocks.build().run_once(10).await?, 1);
    Ok(())
}

#[tokio::test]
async fn run_once_reschedules_an_unavailable_cloud_with_the_backoff_and_the_reason() -> Result<(), StoreError> {
    // attempts 1 → 250–500 ms; attempts 3 → 1–2 s; the jitter byte picks the point.
    for (attempts, byte, delay) in [(1, 0, 250), (1, 255, 500), (1, 128, 375), (3, 0, 1_000), (3, 255, 2_000)] {
        let record = claimed(ID_1, MessageState::Accepted, attempts, vec![]);
        let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
            .jitter(byte, 1)
            .sending(&record, Err(GatewayError::Unavailable("connect refused".to_owned())))
            .rescheduling(ID_1, delay, "connect refused", Ok(()))
            .never_updating();
        assert_eq!(DispatchOutbox::backoff_ms(attempts, byte), delay);

        assert_eq!(mocks.build().run_once(10).await?, 1, "attempt {attempts}, jitter {byte}");
    }
    Ok(())
}

#[tokio::test]
async fn run_once_reschedules_an_unavailable_cloud_within_the_backoff_bounds() -> Result<(), StoreError> {
    // Whatever the random source says, the next attempt is 250–500 ms away after attempt 1.
    for byte in [0, 1, 99, 200, 254, 255] {
        let record = claimed(ID_1, MessageState::Accepted, 1, vec![]);
        let mut mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
            .jitter(byte, 1)
            .sending(&record, Err(GatewayError::Unavailable("502".to_owned())))
            .never_updating();
        mocks
            .messages
            .expect_reschedule()
            .withf(|id, at, e| {
                let delay = at.as_millis() - NOW_MS;
                id == ID_1 && (250..=500).contains(&delay) && e.as_deref() == Some("502")
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        assert_eq!(mocks.build().run_once(10).await?, 1);
    }
    Ok(())
}

#[tokio::test]
async fn run_once_fails_a_message_the_cloud_refuses_permanently() -> Result<(), StoreError> {
    for refusal in [
        GatewayError::Forbidden("corp not allowed".to_owned()),
        GatewayError::Invalid("idempotency key reused".to_owned()),
        GatewayError::Rejected("40035: bad".to_owned()),
    ] {
        // A relayed message keeps the task ids it already has.
        let record = claimed(ID_1, MessageState::Relayed, 2, vec![task(11)]);
        let text = refusal.to_string();
        let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
            .sending(&record, Err(refusal))
            .updating(ID_1, MessageState::Failed, vec![task(11)], Some(&text), Ok(()))
            .never_rescheduling();

        assert_eq!(mocks.build().run_once(10).await?, 1, "{text}");
    }
    Ok(())
}

#[tokio::test]
async fn run_once_relays_every_claimed_message_in_order() -> Result<(), StoreError> {
    let first = claimed(ID_1, MessageState::Accepted, 1, vec![]);
    let second = claimed(ID_2, MessageState::Accepted, 1, vec![]);
    let mocks = Mocks::claiming(2, Ok(vec![first.clone(), second.clone()]))
        .jitter(0, 1)
        .sending(&first, Ok(receipt(ID_1, MessageState::Sent, vec![task(11)], vec![])))
        .updating(ID_1, MessageState::Sent, vec![task(11)], None, Ok(()))
        .sending(&second, Err(GatewayError::Unavailable("timeout".to_owned())))
        .rescheduling(ID_2, 250, "timeout", Ok(()));

    assert_eq!(mocks.build().run_once(2).await?, 2);
    Ok(())
}

#[tokio::test]
async fn run_once_logs_a_store_error_while_recording_and_goes_on() -> Result<(), StoreError> {
    // The first message's update fails, the second's reschedule fails, the third is recorded:
    // run_once still reports all three (the failed ones are retried after their lease).
    let first = claimed(ID_1, MessageState::Accepted, 1, vec![]);
    let second = claimed(ID_2, MessageState::Accepted, 1, vec![]);
    let third = claimed("0197-msg-3", MessageState::Accepted, 1, vec![]);
    let mocks = Mocks::claiming(3, Ok(vec![first.clone(), second.clone(), third.clone()]))
        .jitter(255, 1)
        .sending(&first, Ok(receipt(ID_1, MessageState::Sent, vec![task(11)], vec![])))
        .updating(ID_1, MessageState::Sent, vec![task(11)], None, Err(store_down()))
        .sending(&second, Err(GatewayError::Unavailable("timeout".to_owned())))
        .rescheduling(ID_2, 500, "timeout", Err(store_down()))
        .sending(&third, Err(GatewayError::Rejected("40035: bad".to_owned())))
        .updating(
            "0197-msg-3",
            MessageState::Failed,
            vec![],
            Some(&GatewayError::Rejected("40035: bad".to_owned()).to_string()),
            Ok(()),
        );

    assert_eq!(mocks.build().run_once(3).await?, 3);
    Ok(())
}

#[tokio::test]
async fn run_once_does_not_reschedule_a_relayed_message_whose_update_failed() -> Result<(), StoreError> {
    let record = claimed(ID_1, MessageState::Accepted, 1, vec![]);
    let mocks = Mocks::claiming(10, Ok(vec![record.clone()]))
        .sending(&record, Ok(receipt(ID_1, MessageState::Accepted, vec![task(11)], vec![])))
        .updating(ID_1, MessageState::Relayed, vec![task(11)], None, Err(store_down()))
        .never_rescheduling();

    assert_eq!(mocks.build().run_once(10).await?, 1);
    Ok(())
}

// ---------------------------------------------------------------------------
// MessageStatus and the relayed state
// ---------------------------------------------------------------------------

fn status(messages: MockMessageStore, answer: Result<(RelayReceipt, DeliveryReport), GatewayError>) -> MessageStatus {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_message_status().withf(|key| key == ID_1).times(1).returning(move |_| answer.clone());
    MessageStatus::new(Arc::new(messages), Arc::new(gateway), clock())
}

fn getting(found: MessageRecord) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages.expect_get().withf(|id| id == ID_1).times(1).returning(move |_| Ok(Some(found.clone())));
    messages
}

#[tokio::test]
async fn message_status_of_a_relayed_message_the_cloud_finished_sending_is_stored_sent() -> Result<(), MessageError> {
    let mut messages = getting(claimed(ID_1, MessageState::Relayed, 2, vec![task(11)]));
    messages
        .expect_update()
        .withf(|id, s, t, e, at| {
            id == ID_1 && *s == MessageState::Sent && t == [task(11), task(12)] && e.is_none() && *at == now()
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let answer = (receipt(ID_1, MessageState::Sent, vec![task(11), task(12)], vec![]), DeliveryReport::default());

    let view = status(messages, Ok(answer)).execute(ID_1).await?;

    assert_eq!(view.record.state, MessageState::Sent);
    assert_eq!(view.record.delivery_ids, vec![task(11), task(12)]);
    Ok(())
}

#[tokio::test]
async fn message_status_of_a_relayed_message_still_accepted_by_the_cloud_changes_nothing() -> Result<(), MessageError> {
    let stored = claimed(ID_1, MessageState::Relayed, 2, vec![task(11)]);
    let mut messages = getting(stored.clone());
    messages.expect_update().never();
    let answer = (receipt(ID_1, MessageState::Accepted, vec![task(11)], vec![]), DeliveryReport::default());

    let view = status(messages, Ok(answer)).execute(ID_1).await?;

    assert_eq!(view.record, stored);
    Ok(())
}

#[test]
fn the_waiting_error_names_its_reason_so_the_message_view_can_read_it_back() {
    for reason in [
        WaitReason::Queued,
        WaitReason::Throttled,
        WaitReason::WaitingQuota,
        WaitReason::IpBanned,
        WaitReason::Unavailable,
    ] {
        let waiting = RelayWaiting { reason, detail: "code 90018: slow down".into(), retry_at: now() };
        let error = super::local::waiting_error(&waiting);
        assert!(error.starts_with("waiting for the provider ("), "{error}");
        assert_eq!(super::local::waiting_reason(&error), Some(reason), "{error}");
    }
    assert_eq!(super::local::waiting_reason("the cloud refused the message"), None);
    assert_eq!(super::local::waiting_reason("waiting for the provider (nonsense): x"), None);
    // Rows written before providers were side by side named the provider (the adapters' view
    // tests read such a row); any one-word name reads, nothing else does.
    assert_eq!(super::local::waiting_reason("waiting for Acme (throttled): x"), Some(WaitReason::Throttled));
    assert_eq!(super::local::waiting_reason("waiting for Acme Corp (throttled): x"), None);
    assert_eq!(super::local::waiting_reason("waiting for  (throttled): x"), None);
}
