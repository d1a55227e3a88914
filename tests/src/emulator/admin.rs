//! The admin API (`/_admin/...`, JSON) — the HTTP face of [`Emulator`]'s test methods.
//! Admin requests are not recorded and never hit faults. The ISV and event-push part is in
//! [`super::admin_push`].

use serde::Deserialize;
use serde_json::json;

use super::faults::FaultRule;
use super::state::{ConsentMode, Emulator, TokenKind};
use super::wire::{Incoming, Reply};

pub(crate) fn bad_request(message: impl Into<String>) -> Reply {
    Reply::admin(400, json!({"error": message.into()}))
}

pub(crate) fn ok() -> Reply {
    Reply::admin(200, json!({"ok": true}))
}

pub(crate) fn body<T: for<'de> Deserialize<'de>>(req: &Incoming) -> Result<T, Reply> {
    let text: &[u8] = if req.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &req.body };
    serde_json::from_slice(text).map_err(|e| bad_request(format!("bad JSON body: {e}")))
}

macro_rules! body_or_return {
    ($req:expr) => {
        match body($req) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

#[derive(Deserialize)]
struct RevokeBody {
    kind: TokenKind,
}

#[derive(Deserialize)]
struct ReadBody {
    task_id: u64,
    userid: String,
}

/// `POST /_admin/limits`: `{"qps": 20}` or `{"qps": null}` (no limit), and/or
/// `{"monthly_quota": 5000}` or `{"monthly_quota": null}`, and/or
/// `{"ip_ban": {"calls": 10000, "window_secs": 20, "ban_minutes": 5}}` or `{"ip_ban": null}`;
/// an absent key is left as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    #[serde(default, deserialize_with = "present")]
    qps: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    monthly_quota: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    ip_ban: Option<Option<super::ip_ban::IpBanRule>>,
}

/// A key that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct ClockBody {
    advance_secs: i64,
}

/// Dispatches `/_admin/...`.
pub(crate) async fn handle(emu: &Emulator, req: &Incoming) -> Reply {
    if let Some(reply) = super::admin_push::handle(emu, req).await {
        return reply;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_admin/health") => {
            Reply::admin(200, json!({"ok": true, "corp_id": emu.org().corp().corp_id, "now_ms": emu.now_ms()}))
        }
        ("GET", "/_admin/calls") => {
            let calls = emu.calls();
            let calls: Vec<_> = match req.query("path") {
                Some(p) => calls.into_iter().filter(|c| c.path == p).collect(),
                None => calls,
            };
            Reply::admin(200, json!(calls))
        }
        ("GET", "/_admin/sends") => Reply::admin(200, json!(emu.sends())),
        ("GET", "/_admin/sends/count") => Reply::admin(200, json!({"count": emu.send_count()})),
        ("GET", "/_admin/in_flight") => Reply::admin(200, json!({"count": emu.in_flight()})),
        ("GET", "/_admin/tokens") => Reply::admin(200, json!(emu.issued_tokens())),
        ("POST", "/_admin/consent") => {
            let mode: ConsentMode = body_or_return!(req);
            if let ConsentMode::Approve { who } = &mode {
                let org = emu.org();
                let known =
                    org.user(who).is_some() || org.user_by_unionid(who).is_some() || org.outsider(who).is_some();
                if !known {
                    return bad_request(format!("unknown person {who}"));
                }
            }
            emu.set_consent(mode);
            ok()
        }
        ("POST", "/_admin/tokens/revoke") => {
            let b: RevokeBody = body_or_return!(req);
            emu.revoke_tokens(b.kind);
            ok()
        }
        ("POST", "/_admin/read") => {
            let b: ReadBody = body_or_return!(req);
            if emu.mark_read(b.task_id, &b.userid) {
                ok()
            } else {
                Reply::admin(404, json!({"error": "no such task or the user is not an unread recipient"}))
            }
        }
        ("POST", "/_admin/clock") => {
            let b: ClockBody = body_or_return!(req);
            emu.advance_clock(b.advance_secs);
            Reply::admin(200, json!({"ok": true, "now_ms": emu.now_ms()}))
        }
        ("POST", "/_admin/reset") => {
            emu.reset();
            ok()
        }
        ("POST", "/_admin/faults") => {
            let rule: FaultRule = body_or_return!(req);
            if !(0.0..=1.0).contains(&rule.rate) {
                return bad_request("rate must be within 0..=1");
            }
            if let Some(e) = &rule.error
                && !FaultRule::is_valid_error(e)
            {
                return bad_request(format!("unknown error {e}"));
            }
            emu.set_fault(rule);
            ok()
        }
        ("GET", "/_admin/faults") => Reply::admin(200, json!(emu.lock().faults.clone())),
        ("GET", "/_admin/limits") => Reply::admin(200, json!(emu.limits_report())),
        ("POST", "/_admin/limits") => {
            let b: LimitsBody = body_or_return!(req);
            if b.qps == Some(Some(0)) {
                return bad_request("qps must be at least 1, or null for no limit");
            }
            if let Some(problem) = b.ip_ban.flatten().and_then(|rule| rule.problem()) {
                return bad_request(problem);
            }
            if let Some(rule) = b.ip_ban {
                emu.set_ip_ban(rule);
            }
            if let Some(qps) = b.qps {
                emu.set_qps_limit(qps);
            }
            if let Some(quota) = b.monthly_quota {
                emu.set_monthly_quota(quota);
            }
            Reply::admin(200, json!(emu.limits_report()))
        }
        ("DELETE", "/_admin/faults") => {
            emu.clear_faults();
            ok()
        }
        _ => Reply::admin(404, json!({"error": "unknown admin endpoint"})),
    }
}
