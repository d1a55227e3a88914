//! The admin API (`/_admin/...`, JSON) — the HTTP face of [`FeishuEmulator`]'s test methods.
//! Admin requests are not recorded.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::fixture::FeishuUserStatus;
use super::state::{FeishuConsent, FeishuEmulator};
use super::wire::{Incoming, Reply};

fn bad_request(message: impl Into<String>) -> Reply {
    Reply::admin(400, json!({"error": message.into()}))
}

fn ok() -> Reply {
    Reply::admin(200, json!({"ok": true}))
}

fn body<T: DeserializeOwned>(req: &Incoming) -> Result<T, Reply> {
    let raw: &[u8] = if req.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &req.body };
    serde_json::from_slice(raw).map_err(|e| bad_request(format!("bad JSON body: {e}")))
}

/// `POST /_admin/users/status`: `{"open_id":"ou_…","status":"resigned"}`.
#[derive(Deserialize)]
struct StatusBody {
    open_id: String,
    status: FeishuUserStatus,
}

/// `POST /_admin/users/available`: `{"open_id":"ou_…","available":false}`.
#[derive(Deserialize)]
struct AvailableBody {
    open_id: String,
    available: bool,
}

/// `POST /_admin/read`: `{"message_id":"om_…"}`, or `{"message_id":"bm-…","open_id":"ou_…"}` for a batch task.
#[derive(Deserialize)]
struct ReadBody {
    message_id: String,
    #[serde(default)]
    open_id: Option<String>,
}

/// `POST /_admin/clock`: `{"advance_secs": 3600}`.
#[derive(Deserialize)]
struct ClockBody {
    advance_secs: i64,
}

/// `POST /_admin/recall_window`: `{"secs": 86400}`.
#[derive(Deserialize)]
struct RecallWindowBody {
    secs: i64,
}

/// `POST /_admin/limits`: `{"api_qps": 50}` or `{"api_qps": null}` (unlimited).
#[derive(Deserialize)]
struct LimitsBody {
    api_qps: Option<u32>,
}

fn run<T: DeserializeOwned>(req: &Incoming, f: impl FnOnce(T) -> Reply) -> Reply {
    match body::<T>(req) {
        Ok(b) => f(b),
        Err(r) => r,
    }
}

fn not_found_unless(found: bool, what: &str) -> Reply {
    if found { ok() } else { Reply::admin(404, json!({"error": what})) }
}

/// Dispatches `/_admin/...`.
pub(crate) fn handle(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_admin/health") => {
            let f = &emu.config().fixture;
            Reply::admin(
                200,
                json!({"ok": true, "app_id": f.app_id, "tenant_key": f.tenant_key, "now_ms": emu.now_ms()}),
            )
        }
        ("GET", "/_admin/calls") => {
            let calls = emu.calls();
            let calls: Vec<_> = match req.query("path") {
                Some(p) => calls.into_iter().filter(|c| c.path == p).collect(),
                None => calls,
            };
            Reply::admin(200, json!(calls))
        }
        ("GET", "/_admin/messages") => Reply::admin(200, json!(emu.messages())),
        ("GET", "/_admin/batches") => Reply::admin(200, json!(emu.batches())),
        ("GET", "/_admin/pushes") => Reply::admin(200, json!(emu.pushes())),
        ("POST", "/_admin/consent") => run(req, |consent: FeishuConsent| {
            if let FeishuConsent::Approve { open_id } = &consent
                && emu.lock().person(open_id).is_none()
            {
                return bad_request(format!("unknown person {open_id}"));
            }
            emu.set_consent(consent);
            ok()
        }),
        ("POST", "/_admin/users/status") => {
            run(req, |b: StatusBody| not_found_unless(emu.set_user_status(&b.open_id, b.status), "unknown open_id"))
        }
        ("POST", "/_admin/users/available") => run(req, |b: AvailableBody| {
            not_found_unless(emu.set_user_available(&b.open_id, b.available), "unknown open_id")
        }),
        ("POST", "/_admin/read") => run(req, |b: ReadBody| match &b.open_id {
            Some(o) => {
                not_found_unless(emu.mark_batch_read(&b.message_id, o), "no such delivered, unread batch recipient")
            }
            None => not_found_unless(emu.mark_read(&b.message_id), "no such message, recalled, or already read"),
        }),
        ("POST", "/_admin/clock") => run(req, |b: ClockBody| {
            emu.advance_clock(b.advance_secs);
            Reply::admin(200, json!({"ok": true, "now_ms": emu.now_ms()}))
        }),
        ("POST", "/_admin/recall_window") => run(req, |b: RecallWindowBody| {
            emu.set_recall_window_secs(b.secs);
            ok()
        }),
        ("POST", "/_admin/limits") => run(req, |b: LimitsBody| {
            if b.api_qps == Some(0) {
                return bad_request("api_qps must be at least 1, or null for no limit");
            }
            emu.set_api_qps(b.api_qps);
            ok()
        }),
        ("GET", "/_admin/limits") => {
            let st = emu.lock();
            Reply::admin(200, json!({"api_qps": st.limits.qps, "throttled": st.limits.refused}))
        }
        ("POST", "/_admin/reset") => {
            emu.reset();
            ok()
        }
        _ => Reply::admin(404, json!({"error": "unknown admin endpoint"})),
    }
}
