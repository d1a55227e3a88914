//! Shared emulator state ([`Emulator`]) and the records tests inspect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EmulatorConfig;
use super::faults::FaultRule;
use super::fixture::{Fixture, Org};
use super::pusher::{CallbackTarget, PushSettings, RecordedPush};

/// How `GET /oauth2/auth` answers (docs/dingtalk-api.md §A.1/§A.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ConsentMode {
    /// Render an HTML page with one approve link per person and a deny link (default).
    Page,
    /// Approve at once as `who` (a member's userid or unionid, or an outsider's unionid).
    Approve {
        /// userid or unionid of the person who approves.
        who: String,
    },
    /// Deny at once: redirect with `error=<error>`.
    Deny {
        /// The `error` value put on the callback URL.
        error: String,
    },
}

/// Which issued tokens [`Emulator::revoke_tokens`] invalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// App-level access tokens: internal-app tokens and the ISV suite and corp tokens.
    App,
    /// User access tokens and their refresh tokens.
    User,
    /// Only the ISV suite access tokens and authorized-corp tokens (docs/dingtalk-api.md §B.4).
    Isv,
    /// Everything above.
    All,
}

/// One non-admin request the emulator received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    /// 1-based sequence number.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// Request body as (lossy) UTF-8 text.
    pub body: String,
    /// Response status; 0 when the connection was dropped by a fault.
    pub status: u16,
    /// Emulator-clock time, epoch ms.
    pub at_ms: i64,
}

/// One `forbidden_list` entry (docs/dingtalk-api.md §D.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForbiddenEntry {
    /// Flow-control code, e.g. `"143105"` (daily limit) or `"143106"` (duplicate content).
    pub code: String,
    /// For 143105: messages already delivered today; for 143106: times this content was delivered today.
    pub count: u64,
    /// The blocked user.
    pub userid: String,
}

/// Per-recipient outcome of a work notification, computed at send time (docs/dingtalk-api.md §D.4/§D.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// Users that were delivered and then marked read.
    pub read_user_id_list: Vec<String>,
    /// Users that were delivered and not read yet.
    pub unread_user_id_list: Vec<String>,
    /// Unknown userids from `userid_list`.
    pub invalid_user_id_list: Vec<String>,
    /// Unknown department ids from `dept_id_list`.
    pub invalid_dept_id_list: Vec<i64>,
    /// Users blocked by flow control.
    pub forbidden_list: Vec<ForbiddenEntry>,
    /// Always empty in the emulator.
    pub failed_user_id_list: Vec<String>,
}

/// A recorded `asyncsend_v2` call that was accepted (`errcode 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSend {
    /// The `task_id` returned.
    pub task_id: u64,
    /// App whose token sent it (the suite key for an ISV corp token).
    pub app_key: String,
    /// `agent_id` from the request.
    pub agent_id: i64,
    /// Parsed `userid_list`.
    pub userid_list: Vec<String>,
    /// Parsed `dept_id_list`.
    pub dept_id_list: Vec<i64>,
    /// `to_all_user`.
    pub to_all_user: bool,
    /// The `msg` object.
    pub msg: Value,
    /// The corp the message went to: the main corp for internal-app tokens, the token's corp for
    /// ISV corp tokens (then `app_key` is the suite key).
    #[serde(default)]
    pub corp_id: String,
    /// Emulator-clock time of the send, epoch ms.
    pub at_ms: i64,
    /// Per-recipient outcome.
    pub outcome: SendOutcome,
    /// Whether it was recalled (docs/dingtalk-api.md §D.5).
    pub recalled: bool,
}

/// Who approved a consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Person {
    /// Corp member, by userid.
    Member(String),
    /// Outsider, by unionid.
    Outsider(String),
}

#[derive(Debug, Clone)]
pub(crate) struct PendingAuth {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) corpid_scope: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    pub(crate) person: Person,
    pub(crate) corpid_scope: bool,
    pub(crate) expires_at_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct AppToken {
    pub(crate) app_key: String,
    pub(crate) expires_at_ms: i64,
}

/// An ISV suite access token (docs/dingtalk-api.md §B.4).
#[derive(Debug, Clone)]
pub(crate) struct SuiteToken {
    pub(crate) suite_key: String,
    pub(crate) expires_at_ms: i64,
}

/// An ISV authorized-corp token (docs/dingtalk-api.md §B.4): usable on topapi for `corp_id` only.
#[derive(Debug, Clone)]
pub(crate) struct CorpToken {
    pub(crate) suite_key: String,
    pub(crate) corp_id: String,
    pub(crate) expires_at_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct UserToken {
    pub(crate) app_key: String,
    pub(crate) person: Person,
    pub(crate) corpid_scope: bool,
    pub(crate) expires_at_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DayStats {
    pub(crate) delivered: u64,
    pub(crate) contents: HashMap<String, u64>,
}

pub(crate) struct State {
    pub(crate) clock_offset_ms: i64,
    pub(crate) consent: ConsentMode,
    pub(crate) pending: HashMap<String, PendingAuth>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) app_tokens: HashMap<String, AppToken>,
    pub(crate) user_tokens: HashMap<String, UserToken>,
    pub(crate) refresh_tokens: HashMap<String, UserToken>,
    pub(crate) calls: Vec<RecordedCall>,
    pub(crate) sends: Vec<RecordedSend>,
    pub(crate) next_task_id: u64,
    /// (app_key or suite_key, corp_id, userid, day) → delivered count and content hashes.
    pub(crate) daily: HashMap<(String, String, String, i64), DayStats>,
    pub(crate) faults: Vec<FaultRule>,
    /// Current suite_ticket per suite key (docs/dingtalk-api.md §B.5: a new one invalidates the previous one).
    pub(crate) suite_tickets: HashMap<String, String>,
    pub(crate) suite_tokens: HashMap<String, SuiteToken>,
    pub(crate) corp_tokens: HashMap<String, CorpToken>,
    /// Push targets by name: a suite key or `app`.
    pub(crate) targets: HashMap<String, CallbackTarget>,
    /// Every push attempt, oldest first.
    pub(crate) pushes: Vec<RecordedPush>,
    pub(crate) push_settings: PushSettings,
    pub(crate) next_push_id: u64,
}

impl State {
    fn new(org: &Org) -> State {
        let suite_tickets = org.suites.iter().map(|s| (s.suite_key.clone(), new_suite_ticket())).collect();
        let targets = org
            .suites
            .iter()
            .filter_map(|s| {
                let url = s.callback_url.clone()?;
                Some((s.suite_key.clone(), CallbackTarget::for_suite(s, url)))
            })
            .collect();
        State {
            clock_offset_ms: 0,
            consent: ConsentMode::Page,
            pending: HashMap::new(),
            codes: HashMap::new(),
            app_tokens: HashMap::new(),
            user_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            calls: Vec::new(),
            sends: Vec::new(),
            // Real task ids are 12-digit numbers (docs/dingtalk-api.md §D.1 examples).
            next_task_id: 256_271_000_000 + rand::random_range(0..1_000_000u64),
            daily: HashMap::new(),
            faults: Vec::new(),
            suite_tickets,
            suite_tokens: HashMap::new(),
            corp_tokens: HashMap::new(),
            targets,
            pushes: Vec::new(),
            push_settings: PushSettings::default(),
            next_push_id: 1,
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        system_ms() + self.clock_offset_ms
    }
}

fn system_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// DingTalk's "day" for the per-day limits: a calendar day in China time (UTC+8).
pub(crate) fn china_day(ms: i64) -> i64 {
    (ms + 8 * 3_600_000).div_euclid(86_400_000)
}

/// A random suite_ticket shaped like the §B.5 example (`QsfJCEVF1h6E9fAaGwnAzbvYz...`).
pub(crate) fn new_suite_ticket() -> String {
    super::crypto::random_alnum(52)
}

pub(crate) struct Inner {
    /// The fixture as given (`reset` rebuilds the org from it).
    fixture: Fixture,
    /// The current world; replaced as a whole when membership or authorizations change, so
    /// readers hold a consistent snapshot without holding a lock.
    org: Mutex<Arc<Org>>,
    pub(crate) auth_code_ttl_secs: i64,
    pub(crate) token_ttl_secs: i64,
    pub(crate) state: Mutex<State>,
    /// Client for event pushes (docs/dingtalk-api.md §E.2); deadlines are set per request.
    pub(crate) http: reqwest::Client,
    /// The per-app, per-API rate limit (docs/dingtalk-api.md §G.1).
    pub(crate) limits: Mutex<super::limits::QpsLimits>,
    /// Requests received and not answered yet (held by a fault's latency, or being handled).
    pub(crate) in_flight: std::sync::atomic::AtomicU64,
}

/// The emulator's shared state; cheap to clone. Every admin operation is also a method here.
#[derive(Clone)]
pub struct Emulator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("corp_id", &self.inner.fixture.corp.corp_id).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the state from a config (expands and checks the fixture).
    pub fn new(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let org = Org::build(&config.fixture)?;
        let state = State::new(&org);
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build()?;
        Ok(Emulator {
            inner: Arc::new(Inner {
                fixture: config.fixture,
                org: Mutex::new(Arc::new(org)),
                auth_code_ttl_secs: config.auth_code_ttl_secs,
                token_ttl_secs: config.token_ttl_secs,
                state: Mutex::new(state),
                http,
                limits: Mutex::new(super::limits::QpsLimits::new(config.qps_limit)),
                in_flight: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Locks the state; a poisoned lock is recovered (the data stays usable).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate limit's state; a poisoned lock is recovered.
    pub(crate) fn limits(&self) -> MutexGuard<'_, super::limits::QpsLimits> {
        self.inner.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the calls allowed per second per app per API (`None`: unlimited); the counts so far stay.
    pub fn set_qps_limit(&self, limit: Option<u32>) {
        self.limits().limit = limit;
    }

    /// The rate limit's setting and what it refused so far (`GET /_admin/limits`).
    pub fn limits_report(&self) -> super::limits::LimitsReport {
        let month = super::limits::china_month(self.now_ms());
        self.limits().report(&month)
    }

    /// Sets (or with `None` lifts) the egress-IP ban rule (docs/dingtalk-api.md §G.1); bans in
    /// force and counted calls are forgotten, the counts of bans so far stay.
    pub fn set_ip_ban(&self, rule: Option<super::ip_ban::IpBanRule>) {
        self.limits().ip_bans.set_rule(rule);
    }

    /// Sets the metered calls allowed per corp per month (`None`: unlimited; docs/dingtalk-api.md §G.3).
    pub fn set_monthly_quota(&self, quota: Option<u64>) {
        self.limits().monthly_quota = quota;
    }

    /// A snapshot of the current world.
    pub(crate) fn org(&self) -> Arc<Org> {
        Arc::clone(&self.inner.org.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Changes the world (copy on write). Never call with the state lock held.
    pub(crate) fn update_org<R>(&self, f: impl FnOnce(&mut Org) -> R) -> R {
        let mut guard = self.inner.org.lock().unwrap_or_else(|p| p.into_inner());
        f(Arc::make_mut(&mut guard))
    }

    /// Non-admin requests received and not answered yet (`GET /_admin/in_flight`): with a
    /// fault's `latency_ms`, a test can tell that a call is under way before it is answered.
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every non-admin request so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// How many non-admin requests hit exactly `path`.
    pub fn calls_to(&self, path: &str) -> usize {
        self.lock().calls.iter().filter(|c| c.path == path).count()
    }

    /// Every accepted work notification, oldest first.
    pub fn sends(&self) -> Vec<RecordedSend> {
        self.lock().sends.clone()
    }

    /// How many work notifications were recorded (without copying them, so polling it never holds
    /// the lock long enough to delay the calls it counts).
    pub fn send_count(&self) -> usize {
        self.lock().sends.len()
    }

    /// Changes how the consent page answers.
    pub fn set_consent(&self, mode: ConsentMode) {
        self.lock().consent = mode;
    }

    /// Invalidates every token of `kind` issued so far; their next use gets the family's token error.
    pub fn revoke_tokens(&self, kind: TokenKind) {
        let mut st = self.lock();
        if matches!(kind, TokenKind::App | TokenKind::All) {
            st.app_tokens.clear();
        }
        if matches!(kind, TokenKind::App | TokenKind::Isv | TokenKind::All) {
            st.suite_tokens.clear();
            st.corp_tokens.clear();
        }
        if matches!(kind, TokenKind::User | TokenKind::All) {
            st.user_tokens.clear();
            st.refresh_tokens.clear();
        }
    }

    /// Moves the emulator clock forward (negative moves it back).
    pub fn advance_clock(&self, secs: i64) {
        self.lock().clock_offset_ms += secs.saturating_mul(1000);
    }

    /// The emulator clock, epoch ms.
    pub fn now_ms(&self) -> i64 {
        self.lock().now_ms()
    }

    /// Adds a fault rule, replacing an existing rule for the same path.
    pub fn set_fault(&self, rule: FaultRule) {
        let mut st = self.lock();
        st.faults.retain(|r| r.path != rule.path);
        st.faults.push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Marks `userid` as having read the notification `task_id` (moves it from unread to read).
    /// Returns false when the task or the unread recipient does not exist.
    pub fn mark_read(&self, task_id: u64, userid: &str) -> bool {
        let mut st = self.lock();
        let Some(send) = st.sends.iter_mut().find(|s| s.task_id == task_id) else {
            return false;
        };
        let unread = &mut send.outcome.unread_user_id_list;
        let Some(pos) = unread.iter().position(|u| u == userid) else {
            return false;
        };
        let user = unread.remove(pos);
        send.outcome.read_user_id_list.push(user);
        true
    }

    /// Back to a fresh start: the org as in the fixture (members, authorizations); clears calls,
    /// sends, daily counters, tokens, auth codes, pending consents, faults, pushes and push targets
    /// (fixture `callback_url`s are configured again); new suite tickets; push settings, consent
    /// mode and clock offset back to their defaults.
    pub fn reset(&self) {
        let org = match Org::build(&self.inner.fixture) {
            Ok(org) => org,
            // The fixture was checked when the emulator was built; keep the current org otherwise.
            Err(_) => (*self.org()).clone(),
        };
        let state = State::new(&org);
        *self.inner.org.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(org);
        *self.lock() = state;
    }

    /// Every token issued and still held — app, corp, user and refresh tokens — for tests that
    /// check none of them leaks (`GET /_admin/tokens`).
    pub fn issued_tokens(&self) -> Vec<String> {
        let st = self.lock();
        st.app_tokens
            .keys()
            .chain(st.corp_tokens.keys())
            .chain(st.user_tokens.keys())
            .chain(st.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    /// Issues (or re-issues, extending it) the app token of `app_key` — docs/dingtalk-api.md §B.1/§B.2/§B.6.
    pub(crate) fn issue_app_token(&self, app_key: &str) -> (String, i64) {
        let ttl_ms = self.inner.token_ttl_secs.saturating_mul(1000);
        let mut st = self.lock();
        let now = st.now_ms();
        let existing = st.app_tokens.iter_mut().find(|(_, t)| t.app_key == app_key && t.expires_at_ms > now);
        if let Some((token, t)) = existing {
            t.expires_at_ms = now + ttl_ms;
            return (token.clone(), self.inner.token_ttl_secs);
        }
        st.app_tokens.retain(|_, t| t.expires_at_ms > now);
        let token = random_hex(32);
        st.app_tokens.insert(token.clone(), AppToken { app_key: app_key.to_owned(), expires_at_ms: now + ttl_ms });
        (token, self.inner.token_ttl_secs)
    }

    /// The app of a valid app token.
    pub(crate) fn app_token(&self, token: &str) -> Option<AppToken> {
        let st = self.lock();
        let now = st.now_ms();
        st.app_tokens.get(token).filter(|t| t.expires_at_ms > now).cloned()
    }

    /// A valid user token.
    pub(crate) fn user_token(&self, token: &str) -> Option<UserToken> {
        let st = self.lock();
        let now = st.now_ms();
        st.user_tokens.get(token).filter(|t| t.expires_at_ms > now).cloned()
    }

    pub(crate) fn record_call(&self, mut call: RecordedCall) {
        let mut st = self.lock();
        call.seq = st.calls.len() as u64 + 1;
        call.at_ms = st.now_ms();
        st.calls.push(call);
    }
}

/// Random lowercase hex string of `len` characters.
pub(crate) fn random_hex(len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..len).map(|_| char::from(HEX[rand::random_range(0..16usize)])).collect()
}

/// Random string over `[a-z0-9]`, like legacy `request_id`s (`16m9qc9gk65kv`).
pub(crate) fn random_base36(len: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| char::from(ALPHABET[rand::random_range(0..36usize)])).collect()
}

/// Upper-case UUID-shaped id, like v1.0 `requestid`s (`30EE8654-1AA2-7D88-8248-9518547248AA`).
pub(crate) fn random_request_id_v1() -> String {
    let h = random_hex(32).to_uppercase();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
