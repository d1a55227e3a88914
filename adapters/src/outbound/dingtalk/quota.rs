//! Quota accounting of DingTalk's metered API calls (docs/dingtalk-api.md §G.3).
//!
//! Since 2025-11-19 a standard-edition org gets **5,000 metered API calls a month**. Which calls
//! are metered ([`is_metered`], from §G.3 \[S52\]):
//!
//! | API | metered |
//! |---|---|
//! | app, corp, suite and user tokens (`/v1.0/oauth2/*`, `/gettoken`, `/service/get_corp_token`) | no |
//! | `GET /v1.0/contact/users/me`, `topapi/user/getbyunionid`, `topapi/v2/user/get` (contacts) | no |
//! | `asyncsend_v2`, `sendbytemplate`, `getsendprogress`, `getsendresult`, `recall` (work notifications) | **yes** |
//!
//! The accountant counts each metered call DingTalk answered (success or refusal; calls refused by
//! QPS throttling are not counted, §G.3) per corp per month (China Standard Time, DingTalk's
//! billing month) in the cloud's store, logs a warning when a corp passes 80 % and 95 % of its
//! `quota.monthly_limit`, and exports the figures as gauges. DingTalk has the last word: the
//! org's quota is shared with every other app of the org, so this count is a lower bound. When
//! DingTalk answers `90020` / `Forbidden.AccessDenied.ApiCountLimitForOrg` the corp's month is
//! marked exhausted: from then on its metered calls are not made but fail at once as
//! `Throttled` (so messages wait in the outbox, never fail), until the month turns or an operator
//! runs `dingbridge quota resume --corp-id …`. Token and contact calls (sign-in) go on.
//!
//! A store failure never stops a call: accounting is logged and skipped.

use std::collections::HashMap;
use std::sync::Arc;

use application::ports::{Clock, QuotaStore, QuotaUsage, StoreError, UpstreamError, WaitReason};
use domain::{CorpId, Timestamp};
use time::{OffsetDateTime, UtcOffset};

use super::wire::path;

/// DingTalk's monthly quota of metered calls for a standard-edition org (docs/dingtalk-api.md §G.3).
pub const DEFAULT_MONTHLY_LIMIT: u64 = 5_000;
/// How long a message held for an exhausted monthly quota waits before the sender looks again,
/// in milliseconds (no DingTalk call is made while the month is marked exhausted, so this only
/// bounds how soon an operator's `dingbridge quota resume` or the month's turn takes effect).
pub const QUOTA_RECHECK_MS: u64 = 60_000;

/// The metered work-notification APIs (docs/dingtalk-api.md §G.3 "Metered"); every other API this
/// client calls (tokens, users/me, contacts) is exempt.
const METERED: [&str; 5] =
    [path::ASYNC_SEND, path::SEND_BY_TEMPLATE, path::SEND_PROGRESS, path::SEND_RESULT, path::RECALL];

/// Whether a call to `endpoint` counts against the org's monthly quota (docs/dingtalk-api.md §G.3).
pub fn is_metered(endpoint: &str) -> bool {
    METERED.contains(&endpoint)
}

/// `at` in China Standard Time (UTC+8), DingTalk's time zone for billing months and daily limits.
pub(super) fn china_time(at: Timestamp) -> OffsetDateTime {
    let china = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    let nanos = i128::from(at.as_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(china)
}

/// The billing month of `at`: `YYYY-MM` in China Standard Time (UTC+8).
pub fn billing_month(at: Timestamp) -> String {
    let when = china_time(at);
    format!("{:04}-{:02}", when.year(), u8::from(when.month()))
}

/// Settings of the accountant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Metered calls a corp may make per month (default 5,000); used for the warnings and the
    /// figures, not to stop calls (DingTalk's `90020` does that).
    pub monthly_limit: u64,
    /// Per-corp limits (`corp_id` → calls a month), for orgs with a professional edition or an
    /// add-on pack.
    pub corp_limits: HashMap<String, u64>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self { monthly_limit: DEFAULT_MONTHLY_LIMIT, corp_limits: HashMap::new() }
    }
}

impl QuotaConfig {
    /// The monthly limit of `corp_id`.
    pub fn limit_of(&self, corp_id: &str) -> u64 {
        self.corp_limits.get(corp_id).copied().unwrap_or(self.monthly_limit)
    }
}

/// The quota accountant (see the module docs). One per process, shared by every DingTalk client.
pub struct QuotaAccountant {
    store: Arc<dyn QuotaStore>,
    clock: Arc<dyn Clock>,
    config: QuotaConfig,
}

impl std::fmt::Debug for QuotaAccountant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaAccountant").field("config", &self.config).finish_non_exhaustive()
    }
}

/// One corp's figures for the current month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFigures {
    /// The corp.
    pub corp_id: String,
    /// The billing month, `YYYY-MM`.
    pub month: String,
    /// Metered calls made this month.
    pub metered_calls: u64,
    /// The configured monthly limit.
    pub monthly_limit: u64,
    /// `monthly_limit - metered_calls`, at least 0.
    pub remaining: u64,
    /// Whether DingTalk said the month's quota is gone (metered calls wait).
    pub exhausted: bool,
}

impl QuotaAccountant {
    /// An accountant writing to `store`, reading the month from `clock`.
    pub fn new(store: Arc<dyn QuotaStore>, clock: Arc<dyn Clock>, config: QuotaConfig) -> Self {
        Self { store, clock, config }
    }

    /// The settings.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// The current billing month.
    pub fn month(&self) -> String {
        billing_month(self.clock.now())
    }

    /// Before a call: `Throttled` when `endpoint` is metered and `corp_id`'s quota for this month
    /// is marked exhausted; otherwise (or when the store cannot be read) the call may go.
    pub(super) async fn check(&self, corp_id: &CorpId, endpoint: &'static str) -> Result<(), UpstreamError> {
        if !is_metered(endpoint) {
            return Ok(());
        }
        let month = self.month();
        match self.store.quota_usage(corp_id.as_str(), &month).await {
            Ok(Some(usage)) if usage.exhausted => {
                crate::metrics::governor_refused("quota");
                Err(UpstreamError::Held {
                    reason: WaitReason::WaitingQuota,
                    retry_after_ms: QUOTA_RECHECK_MS,
                    detail: format!(
                        "{endpoint}: the monthly quota of corp {corp_id} is exhausted for {month} (DingTalk 90020); \
                         metered calls wait until the month turns or `dingbridge quota resume --corp-id {corp_id}`"
                    ),
                })
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::warn!(%corp_id, error = %err, "cannot read the quota; the call goes on");
                Ok(())
            }
        }
    }

    /// After DingTalk answered a metered call for `corp_id` (not a throttle): counts it, warns at
    /// 80 % and 95 % of the limit, updates the gauges.
    pub(super) async fn count(&self, corp_id: &CorpId, endpoint: &'static str) {
        if !is_metered(endpoint) {
            return;
        }
        let month = self.month();
        match self.store.add_metered_calls(corp_id.as_str(), &month, 1, self.clock.now()).await {
            Ok(total) => {
                let limit = self.config.limit_of(corp_id.as_str());
                for percent in [80_u64, 95, 100] {
                    let threshold = limit.saturating_mul(percent).div_ceil(100);
                    if total == threshold {
                        tracing::warn!(
                            %corp_id, %month, metered_calls = total, monthly_limit = limit, percent,
                            "corp {corp_id} has used {percent} % of its monthly DingTalk quota (docs/dingtalk-api.md §G.3)"
                        );
                    }
                }
                crate::metrics::quota(corp_id.as_str(), total, limit);
            }
            Err(err) => tracing::warn!(%corp_id, error = %err, "cannot count a metered call"),
        }
    }

    /// DingTalk answered `90020` for `corp_id`: marks this month exhausted and logs it.
    pub(super) async fn exhausted(&self, corp_id: &CorpId) {
        let month = self.month();
        tracing::error!(
            %corp_id, %month,
            "DingTalk says the monthly API quota of corp {corp_id} is exhausted (90020): work notifications wait until the month turns or an operator resumes"
        );
        if let Err(err) = self.store.set_exhausted(corp_id.as_str(), &month, true, self.clock.now()).await {
            tracing::warn!(%corp_id, error = %err, "cannot mark the quota exhausted");
        }
        crate::metrics::quota_exhausted(corp_id.as_str(), true);
    }

    /// Clears the exhausted mark of `corp_id` for this month (an operator bought more quota).
    ///
    /// Errors: the store's.
    pub async fn resume(&self, corp_id: &str) -> Result<(), StoreError> {
        self.store.set_exhausted(corp_id, &self.month(), false, self.clock.now()).await?;
        crate::metrics::quota_exhausted(corp_id, false);
        Ok(())
    }

    /// This month's figures of each of `corp_ids` (in that order), plus any other corp with calls.
    ///
    /// Errors: the store's.
    pub async fn figures(&self, corp_ids: &[String]) -> Result<Vec<QuotaFigures>, StoreError> {
        let month = self.month();
        let rows = self.store.quota_month(&month).await?;
        let mut out: Vec<QuotaFigures> = corp_ids
            .iter()
            .map(|corp_id| {
                let row = rows.iter().find(|r| &r.tenant == corp_id);
                self.figures_of(corp_id, &month, row)
            })
            .collect();
        for row in rows.iter().filter(|r| !corp_ids.contains(&r.tenant)) {
            out.push(self.figures_of(&row.tenant, &month, Some(row)));
        }
        Ok(out)
    }

    fn figures_of(&self, corp_id: &str, month: &str, row: Option<&QuotaUsage>) -> QuotaFigures {
        let monthly_limit = self.config.limit_of(corp_id);
        let metered_calls = row.map_or(0, |r| r.metered_calls);
        QuotaFigures {
            corp_id: corp_id.to_owned(),
            month: month.to_owned(),
            metered_calls,
            monthly_limit,
            remaining: monthly_limit.saturating_sub(metered_calls),
            exhausted: row.is_some_and(|r| r.exhausted),
        }
    }
}

/// Whether a DingTalk refusal means the org's monthly quota is gone (docs/dingtalk-api.md §G.1,
/// §G.3): legacy `90020`, v1.0 `Forbidden.AccessDenied.ApiCountLimitForOrg`.
pub(super) fn is_quota_refusal(error: &UpstreamError) -> bool {
    matches!(error, UpstreamError::Rejected { code, .. }
        if code == "90020" || code == "Forbidden.AccessDenied.ApiCountLimitForOrg")
}

#[cfg(test)]
mod tests {
    use application::ports::{MockClock, MockQuotaStore};
    use mockall::predicate::eq;

    use super::*;

    fn clock_at(ms: i64) -> Arc<dyn Clock> {
        let mut clock = MockClock::new();
        clock.expect_now().returning(move || Timestamp::from_millis(ms));
        Arc::new(clock)
    }

    /// 2026-12-06 12:00 UTC.
    const NOW: i64 = 1_796_558_400_000;

    #[test]
    fn the_metered_table_is_section_g3s() {
        for metered in [path::ASYNC_SEND, path::SEND_BY_TEMPLATE, path::SEND_PROGRESS, path::SEND_RESULT, path::RECALL]
        {
            assert!(is_metered(metered), "{metered}");
        }
        for exempt in [
            path::APP_TOKEN,
            path::CORP_TOKEN,
            path::LEGACY_CORP_TOKEN,
            path::USER_TOKEN,
            path::GET_BY_UNIONID,
            path::USER_GET,
        ] {
            assert!(!is_metered(exempt), "{exempt}");
        }
    }

    #[test]
    fn the_billing_month_is_china_standard_time() {
        assert_eq!(billing_month(Timestamp::from_millis(NOW)), "2026-12");
        // 2026-12-31 16:00 UTC is 2027-01-01 00:00 in Beijing.
        assert_eq!(billing_month(Timestamp::from_millis(1_798_732_800_000)), "2027-01");
        assert_eq!(billing_month(Timestamp::from_millis(1_798_732_799_999)), "2026-12");
    }

    #[tokio::test]
    async fn an_exhausted_month_refuses_metered_calls_only() {
        let mut store = MockQuotaStore::new();
        store.expect_quota_usage().with(eq("dingcorp"), eq("2026-12")).times(1).returning(|_, month| {
            Ok(Some(QuotaUsage {
                tenant: "dingcorp".into(),
                month: month.into(),
                metered_calls: 5_000,
                exhausted: true,
                updated_at: Timestamp::from_millis(NOW),
            }))
        });
        let accountant = QuotaAccountant::new(Arc::new(store), clock_at(NOW), QuotaConfig::default());
        let corp = CorpId::parse("dingcorp").expect("corp");
        assert!(
            matches!(accountant.check(&corp, path::ASYNC_SEND).await, Err(UpstreamError::Held { reason: WaitReason::WaitingQuota, retry_after_ms: QUOTA_RECHECK_MS, detail }) if detail.contains("90020"))
        );
        // Exempt APIs are not even looked up (the mock allows one lookup).
        assert_eq!(accountant.check(&corp, path::USER_GET).await, Ok(()));
        assert_eq!(accountant.check(&corp, path::APP_TOKEN).await, Ok(()));
    }

    #[tokio::test]
    async fn a_store_failure_never_stops_a_call() {
        let mut store = MockQuotaStore::new();
        store.expect_quota_usage().returning(|_, _| Err(StoreError::Unavailable("down".into())));
        store.expect_add_metered_calls().returning(|_, _, _, _| Err(StoreError::Unavailable("down".into())));
        let accountant = QuotaAccountant::new(Arc::new(store), clock_at(NOW), QuotaConfig::default());
        let corp = CorpId::parse("dingcorp").expect("corp");
        assert_eq!(accountant.check(&corp, path::ASYNC_SEND).await, Ok(()));
        accountant.count(&corp, path::ASYNC_SEND).await;
    }

    #[tokio::test]
    async fn metered_calls_are_counted_in_this_month_and_exempt_ones_are_not() {
        let mut store = MockQuotaStore::new();
        store
            .expect_add_metered_calls()
            .with(eq("dingcorp"), eq("2026-12"), eq(1), eq(Timestamp::from_millis(NOW)))
            .times(2)
            .returning(|_, _, _, _| Ok(4_000));
        let mut config = QuotaConfig::default();
        config.corp_limits.insert("dingbig".into(), 200_000);
        let accountant = QuotaAccountant::new(Arc::new(store), clock_at(NOW), config);
        let corp = CorpId::parse("dingcorp").expect("corp");
        accountant.count(&corp, path::ASYNC_SEND).await;
        accountant.count(&corp, path::SEND_PROGRESS).await;
        accountant.count(&corp, path::GET_BY_UNIONID).await;
        assert_eq!(accountant.config().limit_of("dingbig"), 200_000);
        assert_eq!(accountant.config().limit_of("dingcorp"), 5_000);
    }

    #[tokio::test]
    async fn figures_list_the_served_corps_first_with_what_remains() {
        let mut store = MockQuotaStore::new();
        store.expect_quota_month().with(eq("2026-12")).returning(|month| {
            Ok(vec![QuotaUsage {
                tenant: "dingother".into(),
                month: month.into(),
                metered_calls: 5_100,
                exhausted: true,
                updated_at: Timestamp::from_millis(NOW),
            }])
        });
        let accountant = QuotaAccountant::new(Arc::new(store), clock_at(NOW), QuotaConfig::default());
        let figures = accountant.figures(&["dingcorp".to_owned()]).await.expect("figures");
        assert_eq!(figures.len(), 2);
        assert_eq!(
            (figures[0].corp_id.as_str(), figures[0].metered_calls, figures[0].remaining),
            ("dingcorp", 0, 5_000)
        );
        assert_eq!((figures[1].metered_calls, figures[1].remaining, figures[1].exhausted), (5_100, 0, true));
    }

    #[test]
    fn quota_refusals_are_recognised_in_both_families() {
        let refusal = |code: &str| UpstreamError::Rejected { code: code.into(), message: String::new() };
        assert!(is_quota_refusal(&refusal("90020")));
        assert!(is_quota_refusal(&refusal("Forbidden.AccessDenied.ApiCountLimitForOrg")));
        assert!(!is_quota_refusal(&refusal("60011")));
        assert!(!is_quota_refusal(&UpstreamError::Throttled("90018".into())));
    }
}
