//! Third-party (ISV) suite apps: suite tickets (docs/dingtalk-api.md §B.5) and the suite / authorized-corp token
//! endpoints (§B.4) on both hosts.

use serde_json::{Map, Value, json};

use super::crypto::suite_signature;
use super::fixture::{SuiteAuthorization, SuiteFixture};
use super::state::{CorpToken, Emulator, SuiteToken, new_suite_ticket, random_hex};
use super::wire::{Incoming, Reply};

impl Emulator {
    /// The current suite_ticket of `suite_key` (docs/dingtalk-api.md §B.5).
    pub fn suite_ticket(&self, suite_key: &str) -> Option<String> {
        self.lock().suite_tickets.get(suite_key).cloned()
    }

    /// Replaces the suite_ticket of `suite_key` with a new random one and returns it; the previous
    /// ticket stops working at once (docs/dingtalk-api.md §B.5). Does not push it (see
    /// `POST /_admin/suites/{key}/ticket`).
    pub fn rotate_suite_ticket(&self, suite_key: &str) -> Option<String> {
        self.org().suite(suite_key)?;
        let ticket = new_suite_ticket();
        self.lock().suite_tickets.insert(suite_key.to_owned(), ticket.clone());
        Some(ticket)
    }

    /// The authorizations of a suite as they are now.
    pub fn suite_authorizations(&self, suite_key: &str) -> Option<Vec<SuiteAuthorization>> {
        self.org().suite(suite_key).map(|s| s.authorizations.clone())
    }

    /// Adds (or replaces) the authorization of `auth.corp_id` for `suite_key`; false for an unknown suite.
    pub fn authorize_suite(&self, suite_key: &str, auth: SuiteAuthorization) -> bool {
        self.update_org(|org| {
            let Some(suite) = org.suite_mut(suite_key) else {
                return false;
            };
            suite.authorizations.retain(|a| a.corp_id != auth.corp_id);
            suite.authorizations.push(auth);
            true
        })
    }

    /// Removes the authorization of `corp_id` (the corp uninstalled the suite) and invalidates that
    /// corp's tokens of the suite. Returns the removed authorization.
    pub fn relieve_suite(&self, suite_key: &str, corp_id: &str) -> Option<SuiteAuthorization> {
        let removed = self.update_org(|org| {
            let suite = org.suite_mut(suite_key)?;
            let i = suite.authorizations.iter().position(|a| a.corp_id == corp_id)?;
            Some(suite.authorizations.remove(i))
        })?;
        self.lock().corp_tokens.retain(|_, t| !(t.suite_key == suite_key && t.corp_id == corp_id));
        Some(removed)
    }

    /// A valid corp token together with its (still existing) authorization.
    pub(crate) fn corp_token(&self, token: &str) -> Option<(CorpToken, SuiteAuthorization)> {
        let t = {
            let st = self.lock();
            let now = st.now_ms();
            st.corp_tokens.get(token).filter(|t| t.expires_at_ms > now).cloned()?
        };
        let auth = self.org().suite(&t.suite_key)?.authorization(&t.corp_id)?.clone();
        Some((t, auth))
    }

    /// The suite of a valid suite access token (suite tokens are issued but no emulated API takes
    /// them; topapi refuses them like any foreign token).
    pub fn suite_token_owner(&self, token: &str) -> Option<String> {
        let st = self.lock();
        let now = st.now_ms();
        st.suite_tokens.get(token).filter(|t| t.expires_at_ms > now).map(|t| t.suite_key.clone())
    }

    fn issue_suite_token(&self, suite_key: &str) -> (String, i64) {
        let ttl = self.inner.token_ttl_secs;
        let mut st = self.lock();
        let now = st.now_ms();
        st.suite_tokens.retain(|_, t| t.expires_at_ms > now);
        let token = random_hex(32);
        st.suite_tokens.insert(
            token.clone(),
            SuiteToken { suite_key: suite_key.to_owned(), expires_at_ms: now + ttl.saturating_mul(1000) },
        );
        (token, ttl)
    }

    /// docs/dingtalk-api.md §B.4/§B.6: a NEW corp token on every call ("有效期内重复获取会返回新的accessToken");
    /// earlier tokens stay valid until they expire (UNCONFIRMED: the doc does not say whether the
    /// old one is invalidated).
    fn issue_corp_token(&self, suite_key: &str, corp_id: &str) -> (String, i64) {
        let ttl = self.inner.token_ttl_secs;
        let mut st = self.lock();
        let now = st.now_ms();
        st.corp_tokens.retain(|_, t| t.expires_at_ms > now);
        let token = random_hex(32);
        st.corp_tokens.insert(
            token.clone(),
            CorpToken {
                suite_key: suite_key.to_owned(),
                corp_id: corp_id.to_owned(),
                expires_at_ms: now + ttl.saturating_mul(1000),
            },
        );
        (token, ttl)
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Why ISV credentials were refused.
enum IsvRefusal {
    /// Unknown suite key or wrong secret / signature.
    Key,
    /// The suite_ticket is not the current one (stale or unknown).
    Ticket,
    /// The corp has not authorized the suite.
    AuthInfo,
}

/// Checks suite key + secret (`None` secret = already checked by signature) + ticket (+ corp).
fn check_isv(
    emu: &Emulator,
    suite_key: Option<&str>,
    secret_ok: impl FnOnce(&SuiteFixture) -> bool,
    ticket: Option<&str>,
    corp_id: Option<Option<&str>>,
) -> Result<SuiteFixture, IsvRefusal> {
    let org = emu.org();
    let Some(suite) = suite_key.and_then(|k| org.suite(k)) else {
        return Err(IsvRefusal::Key);
    };
    if !secret_ok(suite) {
        return Err(IsvRefusal::Key);
    }
    let current = emu.suite_ticket(&suite.suite_key);
    if ticket.is_none() || ticket.map(str::to_owned) != current {
        return Err(IsvRefusal::Ticket);
    }
    if let Some(corp) = corp_id
        && corp.and_then(|c| suite.authorization(c)).is_none()
    {
        return Err(IsvRefusal::AuthInfo);
    }
    Ok(suite.clone())
}

/// The three documented v1.0 errors (docs/dingtalk-api.md §B.4). A wrong suiteSecret is not listed: we answer
/// `invalidSuiteKey` (the only credential error the doc gives). Missing fields count as wrong.
fn v1_refusal(r: &IsvRefusal) -> Reply {
    match r {
        IsvRefusal::Key => Reply::v1_err(400, "invalidSuiteKey", "suitekey不合法"),
        IsvRefusal::Ticket => Reply::v1_err(400, "invalidSuiteTicket", "suiteTicket无效"),
        IsvRefusal::AuthInfo => Reply::v1_err(400, "invalidAuthInfo", "授权关系不存在"),
    }
}

fn v1_body(req: &Incoming) -> Result<Map<String, Value>, Reply> {
    // docs/dingtalk-api.md §0.2: JSON bodies only (same answer as the app-token endpoint).
    match req.json_object() {
        Some(m) if req.media_type() == "application/json" => Ok(m),
        _ => Err(Reply::v1_err(400, "MissingBody", "body is mandatory for this action.")),
    }
}

// docs/dingtalk-api.md §B.4 — `POST /v1.0/oauth2/suiteAccessToken` `{"suiteKey","suiteSecret","suiteTicket"}`
// → `{"accessToken","expireIn":7200}`. docs/dingtalk-api.md is silent on renewal semantics for the suite token;
// like the corp token, every call issues a new one.
pub(crate) fn suite_access_token(emu: &Emulator, req: &Incoming) -> Reply {
    let body = match v1_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let secret = str_field(&body, "suiteSecret");
    let checked = check_isv(
        emu,
        str_field(&body, "suiteKey"),
        |s| Some(s.suite_secret.as_str()) == secret,
        str_field(&body, "suiteTicket"),
        None,
    );
    match checked {
        Ok(suite) => {
            let (token, expire_in) = emu.issue_suite_token(&suite.suite_key);
            Reply::v1_ok(json!({"accessToken": token, "expireIn": expire_in}))
        }
        Err(r) => v1_refusal(&r),
    }
}

// docs/dingtalk-api.md §B.4 — `POST /v1.0/oauth2/corpAccessToken`
// `{"suiteKey","suiteSecret","authCorpId","suiteTicket"}` → `{"accessToken","expireIn":7200}`,
// a new token on every call (§B.4 doc note, §B.6).
pub(crate) fn corp_access_token(emu: &Emulator, req: &Incoming) -> Reply {
    let body = match v1_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let secret = str_field(&body, "suiteSecret");
    let corp_id = str_field(&body, "authCorpId");
    let checked = check_isv(
        emu,
        str_field(&body, "suiteKey"),
        |s| Some(s.suite_secret.as_str()) == secret,
        str_field(&body, "suiteTicket"),
        Some(corp_id),
    );
    match (checked, corp_id) {
        (Ok(suite), Some(corp)) => {
            let (token, expire_in) = emu.issue_corp_token(&suite.suite_key, corp);
            Reply::v1_ok(json!({"accessToken": token, "expireIn": expire_in}))
        }
        (Ok(_), None) => v1_refusal(&IsvRefusal::AuthInfo),
        (Err(r), _) => v1_refusal(&r),
    }
}

// docs/dingtalk-api.md §B.4 — legacy
// `POST /service/get_corp_token?accessKey=<suiteKey>&timestamp=<ms>&suiteTicket=<t>&signature=<sig>`
// body `{"auth_corpid"}` → `{"access_token","errcode":0,"errmsg":"ok","expires_in":7200}` (no
// `request_id`, like `/gettoken`).
//
// Error codes (docs/dingtalk-api.md gives none for this endpoint; §G.2's bad-credentials row lists 40088/40080/
// 40085 for suite key/secret/ticket, messages from the global table [S27]):
// - unknown `accessKey`, or a signature that does not verify → 40088 "不合法的套件key或secret" (the
//   server cannot tell a wrong secret from a tampered signature, so the key-or-secret code);
// - a stale or unknown `suiteTicket` → 40085 "不存在的suiteticket";
// - the corp has not authorized the suite → 40079 "不存在的授权信息" (global table [S27]; UNCONFIRMED
//   for this endpoint);
// - a missing parameter → 40035 "缺少参数" (as §B.2).
// The signature is compared after standard query decoding, so an unencoded `+` (decoded as a
// space) fails, as it would on any server; the timestamp's freshness is not checked (UNCONFIRMED).
pub(crate) fn get_corp_token(emu: &Emulator, req: &Incoming) -> Reply {
    let err = |code: i64, msg: &str| Reply::legacy(json!({"errcode": code, "errmsg": msg}));
    let q = |k: &str| req.query(k).filter(|v| !v.is_empty());
    let (Some(key), Some(timestamp), Some(ticket), Some(signature)) =
        (q("accessKey"), q("timestamp"), q("suiteTicket"), q("signature"))
    else {
        return err(40035, "缺少参数");
    };
    let corp = req.params().and_then(|p| p.text("auth_corpid"));
    let Some(corp) = corp else {
        return err(40035, "缺少参数 auth_corpid");
    };
    let checked = check_isv(
        emu,
        Some(key),
        |s| suite_signature(&s.suite_secret, timestamp, ticket) == signature,
        Some(ticket),
        Some(Some(corp.as_str())),
    );
    match checked {
        Ok(suite) => {
            let (token, expires_in) = emu.issue_corp_token(&suite.suite_key, &corp);
            Reply::legacy(json!({
                "access_token": token,
                "errcode": 0,
                "errmsg": "ok",
                "expires_in": expires_in,
            }))
        }
        Err(IsvRefusal::Key) => err(40088, "不合法的套件key或secret"),
        Err(IsvRefusal::Ticket) => err(40085, "不存在的suiteticket"),
        Err(IsvRefusal::AuthInfo) => err(40079, "不存在的授权信息"),
    }
}
