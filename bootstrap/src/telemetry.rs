//! Operating dingbridge (README "Operating dingbridge"): the log format, the Prometheus recorder
//! behind `/metrics` and where `/metrics` is served, and the gauges read from storage or the feed.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::inbound::http::MetricsHttp;
use adapters::inbound::http::metrics::RefreshMetrics;
use adapters::outbound::sql::ops::OutboxStats;
use application::ports::{
    CloudGateway, ContactFeedPage, GatewayError, LoginOutcome, MemberKey, RelayReceipt, RelaySendRequest, StoreError,
};
use domain::{CorpId, DeliveryReport, LoginState, MemberProfile};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing_subscriber::EnvFilter;

use crate::config::Secret;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event's
    /// fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`,
    /// `method`, `route`) and `spans` (every enclosing span's fields).
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(serde::de::Error::custom(format!("unknown log format {raw:?}; expected text or json"))),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` (default) or `json` (`DINGBRIDGE_LOG__FORMAT`; `--log-format` wins). The level is
    /// `RUST_LOG` (default `info`).
    #[serde(default)]
    pub format: LogFormat,
}

/// `[metrics]`: where `GET /metrics` (Prometheus text format) is served. By default nowhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Its own listen address, e.g. `127.0.0.1:9464` (`DINGBRIDGE_METRICS__BIND`): `/metrics` is
    /// served there and only there.
    #[serde(default)]
    pub bind: Option<String>,
    /// A bearer token (≥ 16 characters; `DINGBRIDGE_METRICS__TOKEN`) scrapes must send as
    /// `Authorization: Bearer <token>`. Without `bind`, `/metrics` is then served on the main
    /// listener; with `bind`, the own listener requires it too.
    #[serde(default)]
    pub token: Option<Secret>,
}

impl MetricsSection {
    /// Whether `/metrics` is served at all.
    pub fn enabled(&self) -> bool {
        self.bind.is_some() || self.token.is_some()
    }

    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(bind) = &self.bind
            && bind.parse::<std::net::SocketAddr>().is_err()
        {
            out.push(("metrics.bind", format!("{bind:?} is not an address like 127.0.0.1:9464")));
        }
        if let Some(token) = &self.token
            && token.expose().len() < 16
        {
            out.push(("metrics.token", "must be at least 16 characters".to_owned()));
        }
        out
    }
}

/// Installs the stderr subscriber in `format` with the `RUST_LOG` filter (default `info`).
/// A second call does nothing (the first subscriber stays).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(true).try_init(),
    };
}

/// Latency buckets of every `_seconds` histogram: 1 ms to 30 s.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process-wide Prometheus recorder, installed at the first call (so recording starts only in
/// processes that serve `/metrics`); `None` when another recorder was installed first.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            adapters::metrics::describe();
            let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            adapters::metrics::touch_all(env!("CARGO_PKG_VERSION"), started);
            Some(handle)
        })
        .clone()
}

/// A store that can count its outbox (local and dev modes).
#[async_trait::async_trait]
pub(crate) trait OutboxSource: Send + Sync + 'static {
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
}

#[async_trait::async_trait]
impl OutboxSource for adapters::outbound::sqlite::SqliteStore {
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        adapters::outbound::sqlite::SqliteStore::outbox_stats(self).await
    }
}

#[async_trait::async_trait]
impl OutboxSource for adapters::outbound::postgres::PgStore {
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        adapters::outbound::postgres::PgStore::outbox_stats(self).await
    }
}

/// What a mode contributes to `/metrics` beyond the recorded families.
#[derive(Default)]
pub struct Ops {
    outbox: Option<Arc<dyn OutboxSource>>,
}

impl Ops {
    /// The outbox gauges read from `store` at each scrape.
    pub(crate) fn with_outbox(store: Arc<dyn OutboxSource>) -> Self {
        Self { outbox: Some(store) }
    }

    /// The `/metrics` state for `section`, or `None` when metrics are off (or another recorder
    /// is installed).
    pub(crate) fn metrics_http(&self, section: &MetricsSection) -> Option<Arc<MetricsHttp>> {
        if !section.enabled() {
            return None;
        }
        let handle = prometheus()?;
        let mut refresh: Vec<RefreshMetrics> = Vec::new();
        if let Some(outbox) = self.outbox.clone() {
            refresh.push(Arc::new(move || {
                let outbox = outbox.clone();
                Box::pin(async move {
                    match outbox.outbox_stats().await {
                        Ok(stats) => {
                            let now_ms = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                            #[allow(clippy::cast_precision_loss)]
                            let oldest_age =
                                stats.oldest_pending_ms.map_or(0.0, |at| (now_ms.saturating_sub(at)) as f64 / 1000.0);
                            adapters::metrics::outbox(stats.pending, oldest_age, stats.attempts, stats.failed);
                        }
                        Err(err) => tracing::warn!(error = %err, "metrics: the outbox could not be counted"),
                    }
                })
            }));
        }
        Some(Arc::new(MetricsHttp {
            render: Arc::new(move || {
                handle.run_upkeep();
                handle.render()
            }),
            refresh,
            token: section.token.as_ref().map(Secret::to_secret_string),
        }))
    }
}

/// How many applied-event arrival times [`FeedWatch`] remembers (two pages of the cloud's default size).
const FEED_WATCH_SIZE: usize = 200;

/// Local's [`CloudGateway`] with the arrival times of the contact events it read, so the feed
/// poller can report how far behind the cloud it is (`dingbridge_feed_cursor_lag_seconds`).
pub(crate) struct FeedWatch {
    inner: Arc<dyn CloudGateway>,
    seen: Mutex<VecDeque<(i64, i64)>>,
}

impl FeedWatch {
    pub(crate) fn new(inner: Arc<dyn CloudGateway>) -> Self {
        Self { inner, seen: Mutex::new(VecDeque::new()) }
    }

    /// Records that the event at `cursor` was applied now: the feed gauges.
    pub(crate) fn applied(&self, cursor: i64) {
        let received = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(c, _)| *c == cursor)
            .map(|(_, received)| *received);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let lag = received.map_or(Duration::ZERO, |at| {
            Duration::from_millis(u64::try_from(i128::try_from(now_ms).unwrap_or(0) - i128::from(at)).unwrap_or(0))
        });
        adapters::metrics::feed_applied(cursor, lag);
    }
}

#[async_trait::async_trait]
impl CloudGateway for FeedWatch {
    async fn start_login(
        &self,
        provider: &domain::ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, GatewayError> {
        self.inner.start_login(provider, state, complete_url).await
    }
    async fn take_login_result(&self, state: &LoginState) -> Result<LoginOutcome, GatewayError> {
        self.inner.take_login_result(state).await
    }
    async fn send_message(&self, request: &RelaySendRequest) -> Result<RelayReceipt, GatewayError> {
        self.inner.send_message(request).await
    }
    async fn message_status(&self, key: &str) -> Result<(RelayReceipt, DeliveryReport), GatewayError> {
        self.inner.message_status(key).await
    }
    async fn recall_message(&self, key: &str) -> Result<RelayReceipt, GatewayError> {
        self.inner.recall_message(key).await
    }
    async fn get_member(&self, corp_id: &CorpId, key: &MemberKey) -> Result<MemberProfile, GatewayError> {
        self.inner.get_member(corp_id, key).await
    }
    async fn contact_events(&self, after: i64, wait_secs: u32) -> Result<ContactFeedPage, GatewayError> {
        let page = self.inner.contact_events(after, wait_secs).await?;
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for entry in &page.entries {
            seen.push_back((entry.cursor, entry.event.received_at.as_millis()));
            if seen.len() > FEED_WATCH_SIZE {
                seen.pop_front();
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_metrics_section_names_bad_keys() {
        let section = MetricsSection { bind: Some("nowhere".into()), token: Some(Secret::from("short")) };
        let keys: Vec<_> = section.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["metrics.bind", "metrics.token"]);
        assert!(!MetricsSection::default().enabled());
    }

    #[test]
    fn log_formats_parse_case_insensitively() {
        let parsed: LogSection = serde_json::from_str(r#"{"format": "JSON"}"#).unwrap();
        assert_eq!(parsed.format, LogFormat::Json);
        let err = serde_json::from_str::<LogSection>(r#"{"format": "xml"}"#).unwrap_err();
        assert!(err.to_string().contains("expected text or json"), "{err}");
    }
}
