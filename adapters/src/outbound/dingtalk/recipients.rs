//! No silent drops: DingTalk's per-recipient rules for work notifications, checked before sending
//! (docs/dingtalk-api.md §D.6 — "超出限制后接口返回成功，但用户无法接收到": past them
//! `asyncsend_v2` answers success and the person never receives the message):
//!
//! | rule | limit | reported as |
//! |---|---|---|
//! | the same content to the same person | once per day per app | `duplicate_content` |
//! | messages to one person | 500 per day per app (internal app), 100 (third-party app) | `daily_limit` |
//!
//! "Day" is the calendar day in China Standard Time, as DingTalk counts it. The cloud's own records
//! (the [`RecipientLedgerStore`]) are the count: every message this cloud sent, per corp, person
//! and day. Messages the org's other apps or other systems sent with the same app are not seen, so
//! DingTalk's per-recipient result (`143105`/`143106` in `forbidden`) stays the last word.
//! Recipients addressed through departments or "everyone" are expanded by DingTalk, not here, and
//! are not screened.

use std::collections::HashSet;
use std::sync::Arc;

use application::ports::{Clock, RecipientLedgerStore, RecipientLimits, StoreError};
use async_trait::async_trait;
use domain::{CorpId, MessageBody, SkipReason, Timestamp, UserId};

/// Work notifications one person may receive from an internal app per day (docs/dingtalk-api.md §D.6).
pub const INTERNAL_DAILY_LIMIT: u64 = 500;
/// Work notifications one person may receive from a third-party (suite) app per day (§D.6).
pub const ISV_DAILY_LIMIT: u64 = 100;

/// The day of `at` as DingTalk counts it: `YYYY-MM-DD` in China Standard Time (UTC+8).
pub fn china_day(at: Timestamp) -> String {
    let when = super::quota::china_time(at);
    format!("{:04}-{:02}-{:02}", when.year(), u8::from(when.month()), when.day())
}

/// The content key of a body: lower-case hex SHA-256 of its JSON with keys sorted (the same
/// `msg` gives the same key however its fields were ordered).
pub fn content_digest(body: &MessageBody) -> String {
    domain::digest::sha256_hex(body.as_json().to_string().as_bytes())
}

/// [`RecipientLimits`] for DingTalk over the cloud's [`RecipientLedgerStore`].
pub struct DingTalkRecipientLimits {
    store: Arc<dyn RecipientLedgerStore>,
    clock: Arc<dyn Clock>,
    suite_corps: HashSet<CorpId>,
    other_providers: HashSet<CorpId>,
}

impl DingTalkRecipientLimits {
    /// Screens with [`INTERNAL_DAILY_LIMIT`] per person per day, or [`ISV_DAILY_LIMIT`] for the
    /// corps in `suite_corps` (served by a third-party suite app).
    pub fn new(
        store: Arc<dyn RecipientLedgerStore>,
        clock: Arc<dyn Clock>,
        suite_corps: impl IntoIterator<Item = CorpId>,
    ) -> Self {
        Self { store, clock, suite_corps: suite_corps.into_iter().collect(), other_providers: HashSet::new() }
    }

    /// Leaves `tenants` alone: they belong to another provider (Feishu), whose sends DingTalk's
    /// rules do not limit — nothing is screened or counted for them.
    #[must_use]
    pub fn except(mut self, tenants: impl IntoIterator<Item = CorpId>) -> Self {
        self.other_providers.extend(tenants);
        self
    }

    fn daily_limit(&self, corp_id: &CorpId) -> u64 {
        if self.suite_corps.contains(corp_id) { ISV_DAILY_LIMIT } else { INTERNAL_DAILY_LIMIT }
    }
}

#[async_trait]
impl RecipientLimits for DingTalkRecipientLimits {
    async fn screen(
        &self,
        corp_id: &CorpId,
        userids: &[UserId],
        body: &MessageBody,
    ) -> Result<Vec<(UserId, SkipReason)>, StoreError> {
        if userids.is_empty() || self.other_providers.contains(corp_id) {
            return Ok(Vec::new());
        }
        let day = china_day(self.clock.now());
        let names: Vec<String> = userids.iter().map(ToString::to_string).collect();
        let seen = self.store.received_content(corp_id.as_str(), &day, &content_digest(body), &names).await?;
        let counts = self.store.received_on(corp_id.as_str(), &day, &names).await?;
        let limit = self.daily_limit(corp_id);
        Ok(userids
            .iter()
            .filter_map(|userid| {
                let name = userid.as_str();
                if seen.iter().any(|s| s == name) {
                    Some((userid.clone(), SkipReason::DuplicateContent))
                } else if counts.iter().any(|(u, n)| u == name && *n >= limit) {
                    Some((userid.clone(), SkipReason::DailyLimit))
                } else {
                    None
                }
            })
            .collect())
    }

    async fn record(&self, corp_id: &CorpId, userids: &[UserId], body: &MessageBody) -> Result<(), StoreError> {
        if userids.is_empty() || self.other_providers.contains(corp_id) {
            return Ok(());
        }
        let names: Vec<String> = userids.iter().map(ToString::to_string).collect();
        let day = china_day(self.clock.now());
        self.store.record_received(corp_id.as_str(), &day, &content_digest(body), &names).await
    }
}

#[cfg(test)]
mod tests {
    use application::ports::MockClock;
    use serde_json::json;

    use super::*;
    use crate::outbound::sqlite::SqliteStore;

    /// 2026-12-06 23:59:59.000 in China (15:59:59 UTC).
    const LATE_EVENING_CST: i64 = 1_796_572_799_000;

    fn clock(at: i64) -> Arc<dyn Clock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::from_millis(at));
        Arc::new(clock)
    }

    fn text(content: &str) -> MessageBody {
        MessageBody::parse(&json!({"msgtype": "text", "text": {"content": content}})).unwrap_or_else(|e| panic!("{e}"))
    }

    fn users(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::parse(n).unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    async fn store() -> (Arc<SqliteStore>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("dingbridge-recipients-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("cloud.db").display()), 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (Arc::new(store), dir)
    }

    #[test]
    fn the_day_is_chinas_and_the_content_key_ignores_field_order() {
        assert_eq!(china_day(Timestamp::from_millis(LATE_EVENING_CST)), "2026-12-06");
        assert_eq!(china_day(Timestamp::from_millis(LATE_EVENING_CST + 1_000)), "2026-12-07");
        let a = MessageBody::parse(
            &json!({"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "https://e.x", "picUrl": "@lA"}}),
        );
        let b = MessageBody::parse(
            &json!({"link": {"picUrl": "@lA", "messageUrl": "https://e.x", "text": "x", "title": "t"}, "msgtype": "link"}),
        );
        let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(content_digest(&a), content_digest(&b));
        assert_ne!(content_digest(&text("one")), content_digest(&text("two")));
    }

    #[tokio::test]
    async fn another_providers_tenants_are_neither_screened_nor_counted() -> Result<(), StoreError> {
        let (store, dir) = store().await;
        let tenant = CorpId::parse("feishu-tenant").unwrap_or_else(|e| panic!("{e}"));
        let limits = DingTalkRecipientLimits::new(store.clone(), clock(LATE_EVENING_CST), []).except([tenant.clone()]);
        let (alice, hello) = (users(&["alice"]), text("hello"));
        limits.record(&tenant, &alice, &hello).await?;
        limits.record(&tenant, &alice, &hello).await?;
        assert!(limits.screen(&tenant, &alice, &hello).await?.is_empty(), "the same content goes twice");
        let counted = store
            .received_on(tenant.as_str(), &china_day(Timestamp::from_millis(LATE_EVENING_CST)), &["alice".to_owned()])
            .await?;
        assert!(counted.iter().all(|(_, n)| *n == 0), "{counted:?}");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn the_same_content_twice_a_day_is_skipped_until_the_day_turns() -> Result<(), StoreError> {
        let (store, dir) = store().await;
        let corp = CorpId::parse("dingcorp").unwrap_or_else(|e| panic!("{e}"));
        let limits = DingTalkRecipientLimits::new(store.clone(), clock(LATE_EVENING_CST), []);
        let (alice_bob, hello) = (users(&["alice", "bob"]), text("hello"));
        assert!(limits.screen(&corp, &alice_bob, &hello).await?.is_empty());
        limits.record(&corp, &users(&["alice"]), &hello).await?;
        assert_eq!(
            limits.screen(&corp, &alice_bob, &hello).await?,
            vec![(users(&["alice"])[0].clone(), SkipReason::DuplicateContent)]
        );
        assert!(limits.screen(&corp, &alice_bob, &text("other")).await?.is_empty(), "other content goes");
        let other_corp = CorpId::parse("dingother").unwrap_or_else(|e| panic!("{e}"));
        assert!(limits.screen(&other_corp, &alice_bob, &hello).await?.is_empty(), "counted per corp");
        let tomorrow = DingTalkRecipientLimits::new(store.clone(), clock(LATE_EVENING_CST + 1_000), []);
        assert!(tomorrow.screen(&corp, &alice_bob, &hello).await?.is_empty(), "a new day in China");
        // Yesterday's rows go in the purge.
        assert_eq!(store.purge_days_before("2026-12-07").await?, 2);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn past_the_daily_limit_a_person_is_skipped_100_for_a_suite_corp() -> Result<(), StoreError> {
        let (store, dir) = store().await;
        let (internal, suite) = (
            CorpId::parse("dingcorp").unwrap_or_else(|e| panic!("{e}")),
            CorpId::parse("dingsuitecorp").unwrap_or_else(|e| panic!("{e}")),
        );
        let limits = DingTalkRecipientLimits::new(store.clone(), clock(LATE_EVENING_CST), [suite.clone()]);
        let alice = users(&["alice"]);
        for i in 0..INTERNAL_DAILY_LIMIT {
            if i < ISV_DAILY_LIMIT {
                limits.record(&suite, &alice, &text(&format!("#{i}"))).await?;
            }
            limits.record(&internal, &alice, &text(&format!("#{i}"))).await?;
        }
        let fresh = text("fresh");
        assert_eq!(limits.screen(&internal, &alice, &fresh).await?, vec![(alice[0].clone(), SkipReason::DailyLimit)]);
        assert_eq!(limits.screen(&suite, &alice, &fresh).await?, vec![(alice[0].clone(), SkipReason::DailyLimit)]);
        // One under the limit still goes.
        let limits_bob = users(&["bob"]);
        for i in 0..INTERNAL_DAILY_LIMIT - 1 {
            limits.record(&internal, &limits_bob, &text(&format!("#{i}"))).await?;
        }
        assert!(limits.screen(&internal, &limits_bob, &fresh).await?.is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
