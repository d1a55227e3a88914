//! Shared emulator state ([`FeishuEmulator`]) and the records tests inspect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::FeishuEmulatorConfig;
use super::fixture::{FeishuUserFixture, FeishuUserStatus};

/// How `GET /open-apis/authen/v1/authorize` answers (docs/feishu-api.md §A.1/§A.2). As JSON (the
/// admin API): `{"mode":"page"}`, `{"mode":"approve","open_id":"ou_…"}`, `{"mode":"deny"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum FeishuConsent {
    /// An HTML page with one approve link per fixture person and a deny link (default).
    Page,
    /// Approve at once as the person with this `open_id` (a user or an outsider).
    Approve {
        /// The approving person's open_id.
        open_id: String,
    },
    /// Deny at once: `?error=access_denied` (§A.2: the only error value).
    Deny,
}

/// One non-admin request the emulator received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuCall {
    /// 1-based sequence number.
    pub seq: u64,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// Request body as (lossy) UTF-8.
    pub body: String,
    /// Response status.
    pub status: u16,
    /// Emulator-clock time, Unix epoch ms.
    pub at_ms: i64,
}

/// One message accepted by `POST /open-apis/im/v1/messages` (docs/feishu-api.md §D.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuMessage {
    /// `om_` + 32 hex.
    pub message_id: String,
    /// `receive_id` as sent.
    pub receive_id: String,
    /// `receive_id_type` as sent (`open_id`, `union_id`, `user_id`, `email`).
    pub receive_id_type: String,
    /// The recipient's open_id.
    pub open_id: String,
    /// The bot↔person p2p chat (`oc_...`), stable per person.
    pub chat_id: String,
    /// `msg_type` (`text`, `post`, `interactive`, ...).
    pub msg_type: String,
    /// `content` as sent: a JSON-encoded string (§D.2).
    pub content: String,
    /// The request's `uuid` (dedupe key, §D.1).
    pub uuid: Option<String>,
    /// Recalled by `DELETE /open-apis/im/v1/messages/:message_id` (§D.5).
    pub recalled: bool,
    /// When the recipient read it (`POST /_admin/read`), epoch ms.
    pub read_at_ms: Option<i64>,
    /// Emulator-clock send time, epoch ms.
    pub at_ms: i64,
}

/// A consent request waiting on the page (§A.1 parameters kept for the code).
#[derive(Debug, Clone)]
pub(crate) struct PendingAuth {
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) scope: String,
    pub(crate) code_challenge: Option<String>,
    /// `S256` or `plain` (the default, §A.1).
    pub(crate) code_challenge_method: String,
}

/// An issued authorization code (§A.2: 5 min, single use).
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub(crate) auth: PendingAuth,
    pub(crate) open_id: String,
    pub(crate) expires_at_ms: i64,
    pub(crate) used: bool,
}

/// A user access token or refresh token (§A.3/§A.4).
#[derive(Debug, Clone)]
pub(crate) struct UserGrant {
    pub(crate) open_id: String,
    pub(crate) scope: String,
    pub(crate) expires_at_ms: i64,
    /// Refresh tokens only: rotated away (§A.4, reuse → 20073).
    pub(crate) used: bool,
}

pub(crate) struct State {
    pub(crate) clock_offset_ms: i64,
    pub(crate) consent: FeishuConsent,
    pub(crate) users: Vec<FeishuUserFixture>,
    pub(crate) outsiders: Vec<FeishuUserFixture>,
    pub(crate) pending: HashMap<String, PendingAuth>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) user_tokens: HashMap<String, UserGrant>,
    pub(crate) refresh_tokens: HashMap<String, UserGrant>,
    /// `t-` token → expiry (epoch ms); several may be valid at once (§B.1).
    pub(crate) tenant_tokens: HashMap<String, i64>,
    /// The newest tenant token.
    pub(crate) current_tenant_token: Option<String>,
    pub(crate) tenant_token_fetches: usize,
    pub(crate) calls: Vec<FeishuCall>,
    pub(crate) messages: Vec<FeishuMessage>,
    pub(crate) batches: Vec<super::batch::FeishuBatch>,
    /// open_id → p2p chat id.
    pub(crate) chats: HashMap<String, String>,
    /// Recall window in seconds (§D.5, admin-configurable; default 24 h).
    pub(crate) recall_window_secs: i64,
    /// The §0.4 per-API rate limit.
    pub(crate) limits: super::limits::ApiLimits,
    /// Event pushes made (§E), oldest first.
    pub(crate) pushes: Vec<super::pusher::FeishuPush>,
}

/// Default recall window: 24 h (docs/feishu-api.md §D.4 "within one days", §H "recall within 24 h
/// is admin-configurable").
pub const DEFAULT_RECALL_WINDOW_SECS: i64 = 86_400;

impl State {
    fn new(config: &FeishuEmulatorConfig) -> State {
        State {
            clock_offset_ms: 0,
            consent: FeishuConsent::Page,
            users: config.fixture.users.clone(),
            outsiders: config.fixture.outsiders.clone(),
            pending: HashMap::new(),
            codes: HashMap::new(),
            user_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            tenant_tokens: HashMap::new(),
            current_tenant_token: None,
            tenant_token_fetches: 0,
            calls: Vec::new(),
            messages: Vec::new(),
            batches: Vec::new(),
            chats: HashMap::new(),
            recall_window_secs: DEFAULT_RECALL_WINDOW_SECS,
            limits: super::limits::ApiLimits::default(),
            pushes: Vec::new(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        system_ms().saturating_add(self.clock_offset_ms)
    }

    /// Whether `token` is a tenant token still valid now (§B.1: older tokens stay valid until expiry).
    pub(crate) fn tenant_token_valid(&self, token: &str) -> bool {
        self.tenant_tokens.get(token).is_some_and(|exp| *exp > self.now_ms())
    }

    /// A person (user or outsider) by open_id.
    pub(crate) fn person(&self, open_id: &str) -> Option<&FeishuUserFixture> {
        self.users.iter().chain(&self.outsiders).find(|u| u.open_id == open_id)
    }
}

fn system_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

pub(crate) struct Inner {
    pub(crate) config: FeishuEmulatorConfig,
    state: Mutex<State>,
}

/// The emulator's shared state; cheap to clone. Admin operations are methods here too.
#[derive(Clone)]
pub struct FeishuEmulator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for FeishuEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuEmulator").field("app_id", &self.inner.config.fixture.app_id).finish_non_exhaustive()
    }
}

impl FeishuEmulator {
    /// Builds the state from a config.
    pub fn new(config: FeishuEmulatorConfig) -> FeishuEmulator {
        let state = State::new(&config);
        FeishuEmulator { inner: Arc::new(Inner { config, state: Mutex::new(state) }) }
    }

    /// Locks the state; a poisoned lock is recovered.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration the emulator was started with.
    pub fn config(&self) -> &FeishuEmulatorConfig {
        &self.inner.config
    }

    /// Changes how the authorize page answers (§A.1/§A.2).
    pub fn set_consent(&self, consent: FeishuConsent) {
        self.lock().consent = consent;
    }

    /// Every non-admin request so far, oldest first.
    pub fn calls(&self) -> Vec<FeishuCall> {
        self.lock().calls.clone()
    }

    /// Every accepted message, oldest first (a uuid-deduplicated repeat is not stored again).
    pub fn messages(&self) -> Vec<FeishuMessage> {
        self.lock().messages.clone()
    }

    /// Every accepted `message/v4/batch_send` task, oldest first (§D.3).
    pub fn batches(&self) -> Vec<super::batch::FeishuBatch> {
        self.lock().batches.clone()
    }

    /// Marks `open_id` as having read the batch task `batch_id` (§D.4 read counts); false when the
    /// task is unknown or recalled, or the person was not delivered or already read it.
    pub fn mark_batch_read(&self, batch_id: &str, open_id: &str) -> bool {
        let mut st = self.lock();
        match st.batches.iter_mut().find(|b| b.batch_id == batch_id) {
            Some(b)
                if !b.recalled && b.delivered.iter().any(|o| o == open_id) && !b.read.iter().any(|o| o == open_id) =>
            {
                b.read.push(open_id.to_owned());
                true
            }
            _ => false,
        }
    }

    /// How many messages were accepted (without copying them).
    pub fn message_count(&self) -> usize {
        self.lock().messages.len()
    }

    /// Successful `tenant_access_token/internal` (and `app_access_token/internal`) calls so far (§B.1).
    pub fn tenant_token_fetches(&self) -> usize {
        self.lock().tenant_token_fetches
    }

    /// Sets the status of the user or outsider `open_id`; false when nobody has that open_id.
    pub fn set_user_status(&self, open_id: &str, status: FeishuUserStatus) -> bool {
        let mut st = self.lock();
        let State { users, outsiders, .. } = &mut *st;
        match users.iter_mut().chain(outsiders.iter_mut()).find(|u| u.open_id == open_id) {
            Some(u) => {
                u.status = status;
                true
            }
            None => false,
        }
    }

    /// Puts the user or outsider `open_id` in or out of the app's availability; false when unknown.
    pub fn set_user_available(&self, open_id: &str, available: bool) -> bool {
        let mut st = self.lock();
        let State { users, outsiders, .. } = &mut *st;
        match users.iter_mut().chain(outsiders.iter_mut()).find(|u| u.open_id == open_id) {
            Some(u) => {
                u.available = available;
                true
            }
            None => false,
        }
    }

    /// Sets the recall window in seconds (§D.5: admin-configurable; default 24 h).
    pub fn set_recall_window_secs(&self, secs: i64) {
        self.lock().recall_window_secs = secs;
    }

    /// Sets the calls allowed per second per API (docs/feishu-api.md §0.4, e.g. 50 for tier 4);
    /// `None` (the default): unlimited. Over it a call gets HTTP 429 / 99991400 and does nothing.
    pub fn set_api_qps(&self, qps: Option<u32>) {
        self.lock().limits.qps = qps;
    }

    /// Calls refused by the §0.4 rate limit so far.
    pub fn throttled_calls(&self) -> u64 {
        self.lock().limits.refused
    }

    /// Marks the recipient of `message_id` as having read it now (§D.6); false when unknown,
    /// recalled or already read.
    pub fn mark_read(&self, message_id: &str) -> bool {
        let mut st = self.lock();
        let now = st.now_ms();
        match st.messages.iter_mut().find(|m| m.message_id == message_id) {
            Some(m) if !m.recalled && m.read_at_ms.is_none() => {
                m.read_at_ms = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Moves the emulator clock forward by `secs` seconds (negative moves it back): codes and
    /// tokens expire, the per-receiver send window and the recall window move with it.
    pub fn advance_clock(&self, secs: i64) {
        let mut st = self.lock();
        st.clock_offset_ms = st.clock_offset_ms.saturating_add(secs.saturating_mul(1000));
    }

    /// The emulator clock, Unix epoch ms.
    pub fn now_ms(&self) -> i64 {
        self.lock().now_ms()
    }

    /// Back to a fresh start: people as in the fixture, no calls, messages, batches, pushes, tokens,
    /// codes or pending consents; consent mode, recall window and clock back to their defaults.
    pub fn reset(&self) {
        *self.lock() = State::new(&self.inner.config);
    }

    pub(crate) fn record_call(&self, mut call: FeishuCall) {
        let mut st = self.lock();
        call.seq = st.calls.len() as u64 + 1;
        call.at_ms = st.now_ms();
        st.calls.push(call);
    }
}
