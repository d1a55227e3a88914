//! Admin API for ISV suites, callback targets, event pushes and membership changes:
//!
//! | request | effect |
//! |---|---|
//! | `GET /_admin/suites` | suites with their current ticket, authorizations and callback target |
//! | `POST /_admin/suites/{suite_key}/ticket` `{"push"?: true, "sync"?: false}` | rotates the suite_ticket (§B.5) and pushes it when the suite has a target → `{"suite_ticket", "push"}` |
//! | `POST /_admin/suites/{suite_key}/authorizations` `{"corp_id","agent_id","permanent_code"?}` | a corp installs the suite (no push) |
//! | `GET /_admin/callback` / `POST /_admin/callback` `{"owner":"suite"\|"app","suite_key"?,"url","token"?,"aes_key"?,"owner_key"?}` | lists / configures push targets |
//! | `GET /_admin/push/settings` / `POST /_admin/push/settings` `{"deadline_ms"?,"max_attempts"?,"backoff_ms"?}` | push timing |
//! | `POST /_admin/push` `{"target","event"}` | pushes any decrypted event |
//! | `POST /_admin/push/{check_url,suite_ticket,tmp_auth_code,org_suite_auth,change_auth,suite_relieve,contact}` | convenience pushes |
//! | `GET /_admin/pushes[?target=]` | every push attempt |
//! | `POST /_admin/users/{userid}/leave` `{"corp_id"?,"push"?,"target"?}` | the member leaves (then 60121) |
//! | `POST /_admin/users` `{...user fields, "corp_id"?,"push"?,"target"?}` | a member joins |
//!
//! Every push answers HTTP 200 with the [`PushOutcome`] (`status, accepted, attempts, reply, error,
//! push_id, target, event`), whether or not the app accepted it; 400 when the target is unknown.
//! Push bodies also take the per-push overrides `deadline_ms`, `max_attempts`, `backoff_ms`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{bad_request, body};
use super::fixture::{SuiteAuthorization, UserFixture};
use super::pusher::{
    CallbackTarget, PushOptions, PushOutcome, PushSettings, TargetOwner, check_url_event, contact_event, isv_event,
    org_suite_auth_biz_data, suite_ticket_biz_data, suite_ticket_event, sync_event, sync_item,
};
use super::state::{Emulator, random_hex};
use super::wire::{Incoming, Reply};

/// Target name of the internal app.
const APP_TARGET: &str = "app";

macro_rules! body_or_return {
    ($req:expr) => {
        match body($req) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

fn not_found(message: impl Into<String>) -> Reply {
    Reply::admin(404, json!({"error": message.into()}))
}

fn outcome_reply(result: Result<PushOutcome, String>) -> Reply {
    match result {
        Ok(outcome) => Reply::admin(200, json!(outcome)),
        Err(e) => bad_request(e),
    }
}

/// Routes the requests this module owns; `None` for the others.
pub(crate) async fn handle(emu: &Emulator, req: &Incoming) -> Option<Reply> {
    let path = req.path.as_str();
    let reply = match (req.method.as_str(), path) {
        ("GET", "/_admin/suites") => list_suites(emu),
        ("GET", "/_admin/callback") => Reply::admin(200, json!(emu.callback_targets())),
        ("POST", "/_admin/callback") => configure_callback(emu, req),
        ("GET", "/_admin/push/settings") => Reply::admin(200, json!(emu.push_settings())),
        ("POST", "/_admin/push/settings") => push_settings(emu, req),
        ("GET", "/_admin/pushes") => {
            let pushes = emu.pushes();
            let pushes: Vec<_> = match req.query("target") {
                Some(t) => pushes.into_iter().filter(|p| p.target == t).collect(),
                None => pushes,
            };
            Reply::admin(200, json!(pushes))
        }
        ("POST", "/_admin/push") => push_any(emu, req).await,
        ("POST", "/_admin/push/check_url") => push_check_url(emu, req).await,
        ("POST", "/_admin/push/suite_ticket") => push_suite_ticket(emu, req).await,
        ("POST", "/_admin/push/tmp_auth_code") => push_isv_event(emu, req, "tmp_auth_code").await,
        ("POST", "/_admin/push/change_auth") => push_isv_event(emu, req, "change_auth").await,
        ("POST", "/_admin/push/suite_relieve") => push_isv_event(emu, req, "suite_relieve").await,
        ("POST", "/_admin/push/org_suite_auth") => push_org_suite_auth(emu, req).await,
        ("POST", "/_admin/push/contact") => push_contact(emu, req).await,
        ("POST", "/_admin/users") => add_user(emu, req).await,
        ("POST", p) => {
            if let Some(key) =
                p.strip_prefix("/_admin/suites/").and_then(|r| r.strip_suffix("/ticket")).filter(|k| !k.contains('/'))
            {
                rotate_ticket(emu, req, key).await
            } else if let Some(key) = p
                .strip_prefix("/_admin/suites/")
                .and_then(|r| r.strip_suffix("/authorizations"))
                .filter(|k| !k.contains('/'))
            {
                add_authorization(emu, req, key)
            } else if let Some(userid) = p
                .strip_prefix("/_admin/users/")
                .and_then(|r| r.strip_suffix("/leave"))
                .filter(|u| !u.is_empty() && !u.contains('/'))
            {
                leave(emu, req, userid).await
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(reply)
}

fn list_suites(emu: &Emulator) -> Reply {
    let org = emu.org();
    let targets = emu.callback_targets();
    let suites: Vec<Value> = org
        .suites
        .iter()
        .map(|s| {
            json!({
                "suite_key": s.suite_key,
                "suite_ticket": emu.suite_ticket(&s.suite_key),
                "provider_corp_id": s.provider_corp_id.as_deref().unwrap_or(&org.corp().corp_id),
                "authorizations": s.authorizations,
                "callback": targets.iter().find(|t| t.name == s.suite_key),
            })
        })
        .collect();
    Reply::admin(200, json!(suites))
}

#[derive(Deserialize)]
struct CallbackBody {
    owner: TargetOwner,
    #[serde(default)]
    suite_key: Option<String>,
    url: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    aes_key: Option<String>,
    #[serde(default)]
    owner_key: Option<String>,
}

// For a suite, `token`/`aes_key` default to the fixture's and `owner_key` to the suite key (§E.1);
// giving them overrides (e.g. to test a misconfigured app). For the app all three are required
// (owner key = AppKey for app-level or corpId for org-level subscriptions, §E.1).
fn configure_callback(emu: &Emulator, req: &Incoming) -> Reply {
    let b: CallbackBody = body_or_return!(req);
    let target = match b.owner {
        TargetOwner::Suite => {
            let org = emu.org();
            let Some(suite) = b.suite_key.as_deref().and_then(|k| org.suite(k)) else {
                return bad_request("suite_key must name a fixture suite");
            };
            let mut t = CallbackTarget::for_suite(suite, b.url);
            if let Some(token) = b.token {
                t.token = token;
            }
            if let Some(aes_key) = b.aes_key {
                t.aes_key = aes_key;
            }
            if let Some(owner_key) = b.owner_key {
                t.owner_key = owner_key;
            }
            t
        }
        TargetOwner::App => {
            let (Some(token), Some(aes_key), Some(owner_key)) = (b.token, b.aes_key, b.owner_key) else {
                return bad_request("owner app needs token, aes_key and owner_key");
            };
            CallbackTarget {
                owner: TargetOwner::App,
                name: APP_TARGET.to_owned(),
                url: b.url,
                token,
                aes_key,
                owner_key,
            }
        }
    };
    let name = target.name.clone();
    match emu.configure_callback(target) {
        Ok(()) => Reply::admin(200, json!({"ok": true, "target": name})),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct SettingsBody {
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    backoff_ms: Option<u64>,
}

fn push_settings(emu: &Emulator, req: &Incoming) -> Reply {
    let b: SettingsBody = body_or_return!(req);
    let mut s: PushSettings = emu.push_settings();
    s.deadline_ms = b.deadline_ms.unwrap_or(s.deadline_ms);
    s.max_attempts = b.max_attempts.unwrap_or(s.max_attempts);
    s.backoff_ms = b.backoff_ms.unwrap_or(s.backoff_ms);
    emu.set_push_settings(s);
    Reply::admin(200, json!(emu.push_settings()))
}

#[derive(Deserialize)]
struct PushBody {
    target: String,
    event: Value,
    #[serde(flatten)]
    options: PushOptions,
}

async fn push_any(emu: &Emulator, req: &Incoming) -> Reply {
    let b: PushBody = body_or_return!(req);
    if !b.event.is_object() {
        return bad_request("event must be a JSON object");
    }
    outcome_reply(emu.push_event(&b.target, b.event, b.options).await)
}

/// The suite named by `suite_key`, or the only suite when omitted.
fn resolve_suite(emu: &Emulator, suite_key: Option<&str>) -> Result<String, Reply> {
    let org = emu.org();
    match suite_key {
        Some(k) if org.suite(k).is_some() => Ok(k.to_owned()),
        Some(k) => Err(not_found(format!("unknown suite {k}"))),
        None if org.suites.len() == 1 => Ok(org.suites.first().map(|s| s.suite_key.clone()).unwrap_or_default()),
        None => Err(bad_request("suite_key is required (the fixture has no or several suites)")),
    }
}

macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

#[derive(Deserialize)]
struct CheckUrlBody {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(flatten)]
    options: PushOptions,
}

// §E.6: `check_url` (internal app), `check_create_suite_url` / `check_update_suite_url` (ISV).
async fn push_check_url(emu: &Emulator, req: &Incoming) -> Reply {
    let b: CheckUrlBody = body_or_return!(req);
    let target = b.target.unwrap_or_else(|| APP_TARGET.to_owned());
    let event_type = b.event_type.unwrap_or_else(|| "check_url".to_owned());
    if !matches!(event_type.as_str(), "check_url" | "check_create_suite_url" | "check_update_suite_url") {
        return bad_request("event_type must be check_url, check_create_suite_url or check_update_suite_url");
    }
    let event = check_url_event(&event_type, &target);
    outcome_reply(emu.push_event(&target, event, b.options).await)
}

#[derive(Deserialize)]
struct SuiteTicketBody {
    #[serde(default)]
    suite_key: Option<String>,
    #[serde(default)]
    sync: bool,
    #[serde(flatten)]
    options: PushOptions,
}

/// The suite_ticket event for the suite's current ticket: legacy HTTP form, or SyncHTTP biz_type 2
/// (§B.5, §E.6) whose item `corp_id` is the suite's provider corp.
fn ticket_event(emu: &Emulator, suite_key: &str, sync: bool) -> Value {
    let ticket = emu.suite_ticket(suite_key).unwrap_or_default();
    let now = emu.now_ms();
    if sync {
        let org = emu.org();
        let provider =
            org.suite(suite_key).and_then(|s| s.provider_corp_id.clone()).unwrap_or_else(|| org.corp().corp_id.clone());
        let item = sync_item(emu.next_id(), now, 2, suite_key, &provider, &suite_ticket_biz_data(&ticket));
        sync_event(vec![item])
    } else {
        suite_ticket_event(suite_key, &ticket, now)
    }
}

async fn push_suite_ticket(emu: &Emulator, req: &Incoming) -> Reply {
    let b: SuiteTicketBody = body_or_return!(req);
    let key = or_return!(resolve_suite(emu, b.suite_key.as_deref()));
    let event = ticket_event(emu, &key, b.sync);
    outcome_reply(emu.push_event(&key, event, b.options).await)
}

#[derive(Deserialize)]
struct RotateBody {
    #[serde(default = "yes")]
    push: bool,
    #[serde(default)]
    sync: bool,
    #[serde(flatten)]
    options: PushOptions,
}

fn yes() -> bool {
    true
}

async fn rotate_ticket(emu: &Emulator, req: &Incoming, key: &str) -> Reply {
    let b: RotateBody = body_or_return!(req);
    let Some(ticket) = emu.rotate_suite_ticket(key) else {
        return not_found(format!("unknown suite {key}"));
    };
    let push = if b.push && emu.has_callback(key) {
        let event = ticket_event(emu, key, b.sync);
        match emu.push_event(key, event, b.options).await {
            Ok(o) => json!(o),
            Err(e) => json!({"error": e}),
        }
    } else {
        Value::Null
    };
    Reply::admin(200, json!({"suite_ticket": ticket, "push": push}))
}

#[derive(Deserialize)]
struct AuthorizationBody {
    corp_id: String,
    agent_id: i64,
    #[serde(default)]
    permanent_code: Option<String>,
}

fn authorize(emu: &Emulator, key: &str, corp_id: &str, agent_id: i64, code: Option<String>) -> Result<(), Reply> {
    if emu.org().directory(corp_id).is_none() {
        return Err(bad_request(format!("unknown corp {corp_id}")));
    }
    let auth = SuiteAuthorization {
        corp_id: corp_id.to_owned(),
        agent_id,
        permanent_code: code.unwrap_or_else(|| random_hex(32)),
    };
    if emu.authorize_suite(key, auth) { Ok(()) } else { Err(not_found(format!("unknown suite {key}"))) }
}

fn add_authorization(emu: &Emulator, req: &Incoming, key: &str) -> Reply {
    let b: AuthorizationBody = body_or_return!(req);
    match authorize(emu, key, &b.corp_id, b.agent_id, b.permanent_code) {
        Ok(()) => Reply::admin(200, json!(emu.suite_authorizations(key))),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct IsvEventBody {
    #[serde(default)]
    suite_key: Option<String>,
    corp_id: String,
    #[serde(default)]
    auth_code: Option<String>,
    /// For `suite_relieve`: keep the authorization (only push the event).
    #[serde(default)]
    keep: bool,
    #[serde(flatten)]
    options: PushOptions,
}

// Legacy ISV events (§E.6): `tmp_auth_code` (+ `AuthCode`), `change_auth`, `suite_relieve`.
// `suite_relieve` also removes the corp's authorization (its corp tokens stop working) unless
// `keep` is true.
async fn push_isv_event(emu: &Emulator, req: &Incoming, event_type: &str) -> Reply {
    let b: IsvEventBody = body_or_return!(req);
    let key = or_return!(resolve_suite(emu, b.suite_key.as_deref()));
    let mut event = isv_event(event_type, &key, &b.corp_id, emu.now_ms());
    if event_type == "tmp_auth_code" {
        event["AuthCode"] = json!(b.auth_code.unwrap_or_else(|| random_hex(32)));
    }
    if event_type == "suite_relieve" && !b.keep {
        emu.relieve_suite(&key, &b.corp_id);
    }
    outcome_reply(emu.push_event(&key, event, b.options).await)
}

#[derive(Deserialize)]
struct OrgSuiteAuthBody {
    #[serde(default)]
    suite_key: Option<String>,
    corp_id: String,
    #[serde(default)]
    sync_action: Option<String>,
    /// Authorize (or re-authorize) the corp with this AgentID before pushing.
    #[serde(default)]
    agent_id: Option<i64>,
    #[serde(default)]
    permanent_code: Option<String>,
    #[serde(flatten)]
    options: PushOptions,
}

// SyncHTTP biz_type 4 (§E.6) with `syncAction` `org_suite_auth` (default) — any other action is
// passed through; `org_suite_relieve` also removes the authorization. The corp must be authorized,
// or `agent_id` given to authorize it first.
async fn push_org_suite_auth(emu: &Emulator, req: &Incoming) -> Reply {
    let b: OrgSuiteAuthBody = body_or_return!(req);
    let key = or_return!(resolve_suite(emu, b.suite_key.as_deref()));
    let action = b.sync_action.unwrap_or_else(|| "org_suite_auth".to_owned());
    if let Some(agent_id) = b.agent_id
        && let Err(r) = authorize(emu, &key, &b.corp_id, agent_id, b.permanent_code)
    {
        return r;
    }
    let org = emu.org();
    let Some(auth) = org.suite(&key).and_then(|s| s.authorization(&b.corp_id)).cloned() else {
        return bad_request(format!("{} has not authorized {key}; give agent_id", b.corp_id));
    };
    let corp_name = org.directory(&b.corp_id).map(|d| d.corp.name.clone()).unwrap_or_default();
    drop(org);
    let biz_data = org_suite_auth_biz_data(&action, &b.corp_id, &corp_name, auth.agent_id, &auth.permanent_code);
    if action == "org_suite_relieve" {
        emu.relieve_suite(&key, &b.corp_id);
    }
    let item = sync_item(emu.next_id(), emu.now_ms(), 4, &key, &b.corp_id, &biz_data);
    outcome_reply(emu.push_event(&key, sync_event(vec![item]), b.options).await)
}

#[derive(Deserialize)]
struct ContactBody {
    #[serde(default)]
    target: Option<String>,
    event_type: String,
    #[serde(default)]
    corp_id: Option<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    dept_ids: Vec<i64>,
    #[serde(flatten)]
    options: PushOptions,
}

async fn push_contact(emu: &Emulator, req: &Incoming) -> Reply {
    let b: ContactBody = body_or_return!(req);
    let target = b.target.unwrap_or_else(|| APP_TARGET.to_owned());
    let corp = b.corp_id.unwrap_or_else(|| emu.org().corp().corp_id.clone());
    let event = contact_event(&b.event_type, &corp, &b.user_ids, &b.dept_ids, emu.now_ms());
    outcome_reply(emu.push_event(&target, event, b.options).await)
}

#[derive(Deserialize)]
struct LeaveBody {
    #[serde(default)]
    corp_id: Option<String>,
    #[serde(default)]
    push: bool,
    #[serde(default)]
    target: Option<String>,
    #[serde(flatten)]
    options: PushOptions,
}

/// Checks the push target before a membership change, so a bad request changes nothing.
fn push_target(emu: &Emulator, push: bool, target: Option<String>) -> Result<Option<String>, Reply> {
    if !push {
        return Ok(None);
    }
    let target = target.unwrap_or_else(|| APP_TARGET.to_owned());
    if emu.has_callback(&target) {
        Ok(Some(target))
    } else {
        Err(bad_request(format!("no callback configured for {target}")))
    }
}

async fn push_membership(
    emu: &Emulator,
    target: Option<String>,
    event_type: &str,
    corp: &str,
    userid: &str,
    options: PushOptions,
) -> Value {
    let Some(target) = target else {
        return Value::Null;
    };
    let event = contact_event(event_type, corp, &[userid.to_owned()], &[], emu.now_ms());
    match emu.push_event(&target, event, options).await {
        Ok(o) => json!(o),
        Err(e) => json!({"error": e}),
    }
}

// The member leaves the corp: getbyunionid / v2/user/get answer 60121 afterwards, sends to them
// count as invalid users; optionally pushes `user_leave_org` (§E.6).
async fn leave(emu: &Emulator, req: &Incoming, userid: &str) -> Reply {
    let b: LeaveBody = body_or_return!(req);
    let target = or_return!(push_target(emu, b.push, b.target));
    let corp = b.corp_id.unwrap_or_else(|| emu.org().corp().corp_id.clone());
    let removed = emu.update_org(|org| org.directory_mut(&corp).map(|d| d.remove_user(userid)));
    match removed {
        None => return not_found(format!("unknown corp {corp}")),
        Some(None) => return not_found(format!("{userid} is not a member of {corp}")),
        Some(Some(_)) => {}
    }
    let push = push_membership(emu, target, "user_leave_org", &corp, userid, b.options).await;
    Reply::admin(200, json!({"ok": true, "corp_id": corp, "userid": userid, "push": push}))
}

#[derive(Deserialize)]
struct AddUserBody {
    #[serde(default)]
    corp_id: Option<String>,
    #[serde(default)]
    push: bool,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    backoff_ms: Option<u64>,
    #[serde(flatten)]
    user: UserFixture,
}

// A member joins the corp; optionally pushes `user_add_org` (§E.6).
async fn add_user(emu: &Emulator, req: &Incoming) -> Reply {
    let b: AddUserBody = body_or_return!(req);
    let target = or_return!(push_target(emu, b.push, b.target));
    let corp = b.corp_id.unwrap_or_else(|| emu.org().corp().corp_id.clone());
    let userid = b.user.userid.clone();
    let user = b.user;
    let added = emu.update_org(|org| org.directory_mut(&corp).map(|d| d.add_user(user)));
    match added {
        None => return not_found(format!("unknown corp {corp}")),
        Some(Err(e)) => return bad_request(e.to_string()),
        Some(Ok(())) => {}
    }
    let options = PushOptions { deadline_ms: b.deadline_ms, max_attempts: b.max_attempts, backoff_ms: b.backoff_ms };
    let push = push_membership(emu, target, "user_add_org", &corp, &userid, options).await;
    Reply::admin(200, json!({"ok": true, "corp_id": corp, "userid": userid, "push": push}))
}
