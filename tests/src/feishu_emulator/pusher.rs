//! The event pusher (docs/feishu-api.md §E, webhook mode): builds v2.0 contact events (§E.3, §E.7)
//! and the url_verification request (§E.2), encrypts them with the app's Encrypt Key (§E.4), signs
//! them (§E.5) and POSTs them to a request URL with the 3 s deadline of §E.1. Every push is
//! recorded ([`FeishuEmulator::pushes`]). Written from docs/feishu-api.md only; nothing is shared
//! with the DingTalk emulator's pusher.
//!
//! Retries (§E.1: 15 s, 5 min, 1 h, 6 h) are not automatic: a test pushes again when it wants a
//! redelivery.

use std::time::Duration;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::fixture::{FeishuUserFixture, FeishuUserStatus};
use super::state::FeishuEmulator;
use super::wire::{Incoming, Reply, random_from, random_hex};

/// docs/feishu-api.md §E.1: the app must answer within 3 s.
const DEADLINE: Duration = Duration::from_secs(3);
/// docs/feishu-api.md §E.1: TCP connect timeout 2 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Alphabet of nonces and challenges.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Which contact event to push (docs/feishu-api.md §E.7). As JSON: `"created"`, `"updated"`, `"deleted"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactEventKind {
    /// `contact.user.created_v3` (员工入职): `event.object` only.
    Created,
    /// `contact.user.updated_v3` (信息变更): `event.object` plus `event.old_object` holding only
    /// the changed field — the emulator reports a name change (`old_object.name` = the current
    /// name with ` (旧)` appended; the state is not changed).
    Updated,
    /// `contact.user.deleted_v3` (员工离职): `event.object` plus `event.old_object` =
    /// `{"department_ids":[...],"open_id":"ou_..."}`. The person becomes resigned in the
    /// emulator before the push (and stays so): `user_info` then answers 20021 (§A.5).
    Deleted,
}

impl ContactEventKind {
    /// The v2.0 `header.event_type` (docs/feishu-api.md §E.7).
    pub fn event_type(self) -> &'static str {
        match self {
            ContactEventKind::Created => "contact.user.created_v3",
            ContactEventKind::Updated => "contact.user.updated_v3",
            ContactEventKind::Deleted => "contact.user.deleted_v3",
        }
    }
}

/// One push the emulator made (`GET /_admin/pushes`, `POST /_admin/push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuPush {
    /// `header.event_id` (32 lower-case hex, the receiver's dedupe key, §E.1); for a
    /// url_verification push, the `challenge` sent.
    pub event_id: String,
    /// `header.event_type` (§E.7), or `url_verification` (§E.2).
    pub event_type: String,
    /// HTTP status of the reply; 0 when no reply arrived (the push call then returned an error).
    pub status: u16,
    /// The reply body as (lossy) UTF-8 text ("" when none).
    pub body: String,
}

/// docs/feishu-api.md §E.4: `base64(iv ‖ AES-256-CBC(key = SHA256(utf8(encrypt_key)), iv, PKCS#7(plaintext)))`
/// with the standard alphabet and padding. The emulator passes a random `iv`; tests pass §E.6's.
pub fn encrypt_event(encrypt_key: &str, plaintext: &[u8], iv: [u8; 16]) -> String {
    let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
    let cipher = cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext);
    let mut out = Vec::with_capacity(iv.len() + cipher.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&cipher);
    STANDARD.encode(out)
}

/// docs/feishu-api.md §E.5: `X-Lark-Signature` = lower-case hex of one SHA-256 over
/// `utf8(timestamp + nonce + encrypt_key) ‖ body`, `body` being the raw request body bytes.
pub fn sign_event(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The §C.1 user fields of `event.object` (docs/feishu-api.md §E.7); absent values are omitted.
fn user_object(u: &FeishuUserFixture) -> Value {
    super::contact::user_json(u)
}

/// A push ready to send: the plaintext and its id/type.
struct Prepared {
    event_id: String,
    event_type: String,
    plaintext: Vec<u8>,
}

/// Why an admin push failed before any HTTP answer.
enum PushError {
    /// The request is wrong (unknown person) → 400.
    Input(String),
    /// The target could not be reached or did not answer in time → 502.
    Transport(anyhow::Error),
}

impl FeishuEmulator {
    /// Pushes a contact event about the fixture user `open_id` (docs/feishu-api.md §E.7) to the
    /// request URL `target`: v2.0 envelope (§E.3) with a random 32-hex `event_id`, `create_time`
    /// = emulator clock in ms (string), `token` = the Verification Token, the fixture's `app_id`
    /// and `tenant_key`; encrypted (§E.4) and signed (§E.5); POSTed as
    /// `application/json; charset=utf-8` with a 3 s deadline (§E.1). For
    /// [`ContactEventKind::Deleted`] the person is first set to resigned.
    ///
    /// Returns the recorded [`FeishuPush`]; a non-200 answer is returned, not an error.
    /// Errors: `open_id` is not a user of the app's tenant (outsiders included), or no HTTP
    /// answer arrived within 3 s (connection refused, timeout, bad URL).
    pub async fn push_contact_event(
        &self,
        target: &str,
        kind: ContactEventKind,
        open_id: &str,
    ) -> anyhow::Result<FeishuPush> {
        match self.push_contact(target, kind, open_id).await {
            Ok(p) => Ok(p),
            Err(PushError::Input(e)) => Err(anyhow::anyhow!(e)),
            Err(PushError::Transport(e)) => Err(e),
        }
    }

    /// Sends the url_verification request of docs/feishu-api.md §E.2 to `target`: the plaintext
    /// `{"challenge":<random>,"token":<Verification Token>,"type":"url_verification"}`, encrypted
    /// (§E.4) but without signature headers (SDKs do not verify them for this type), 3 s deadline.
    ///
    /// Returns the recorded [`FeishuPush`] (its `event_id` is the challenge).
    /// Errors: no HTTP answer; or the answer is not HTTP 200 with the JSON `{"challenge": <the
    /// same>}` — the message names the status and body that came back.
    pub async fn push_url_verification(&self, target: &str) -> anyhow::Result<FeishuPush> {
        let challenge = random_from(ALNUM, 16);
        let token = &self.config().fixture.verification_token;
        let plaintext = json!({"challenge": challenge, "token": token, "type": "url_verification"}).to_string();
        let prepared = Prepared {
            event_id: challenge.clone(),
            event_type: "url_verification".to_owned(),
            plaintext: plaintext.into(),
        };
        let push = self.deliver(target, prepared, false).await?;
        let echoed = serde_json::from_str::<Value>(&push.body).ok();
        let echoed = echoed.as_ref().and_then(|v| v.get("challenge")).and_then(Value::as_str);
        anyhow::ensure!(
            push.status == 200 && echoed == Some(challenge.as_str()),
            "url_verification to {target}: expected HTTP 200 {{\"challenge\":\"{challenge}\"}}, got HTTP {} {}",
            push.status,
            push.body
        );
        Ok(push)
    }

    /// Every push so far, oldest first.
    pub fn pushes(&self) -> Vec<FeishuPush> {
        self.lock().pushes.clone()
    }

    async fn push_contact(&self, target: &str, kind: ContactEventKind, open_id: &str) -> Result<FeishuPush, PushError> {
        let prepared = self.prepare_contact(kind, open_id).map_err(PushError::Input)?;
        self.deliver(target, prepared, true).await.map_err(PushError::Transport)
    }

    /// Builds the §E.3 envelope (and applies the Deleted state change).
    fn prepare_contact(&self, kind: ContactEventKind, open_id: &str) -> Result<Prepared, String> {
        let fixture = &self.config().fixture;
        let mut st = self.lock();
        let now_ms = st.now_ms();
        let Some(u) = st.users.iter_mut().find(|u| u.open_id == open_id) else {
            return Err(format!("no user of the app's tenant has open_id {open_id}"));
        };
        if kind == ContactEventKind::Deleted {
            u.status = FeishuUserStatus::Resigned;
        }
        let mut event = json!({"object": user_object(u)});
        match kind {
            ContactEventKind::Created => {}
            ContactEventKind::Updated => event["old_object"] = json!({"name": format!("{} (旧)", u.name)}),
            ContactEventKind::Deleted => {
                event["old_object"] = json!({"department_ids": u.department_ids, "open_id": u.open_id});
            }
        }
        let event_id = random_hex(32);
        let envelope = json!({
            "schema": "2.0",
            "header": {
                "event_id": event_id, "event_type": kind.event_type(), "create_time": now_ms.to_string(),
                "token": fixture.verification_token, "app_id": fixture.app_id, "tenant_key": fixture.tenant_key,
            },
            "event": event,
        });
        Ok(Prepared { event_id, event_type: kind.event_type().to_owned(), plaintext: envelope.to_string().into() })
    }

    /// Encrypts, optionally signs, POSTs and records. With an empty Encrypt Key the plaintext is sent
    /// as is and unsigned (§E.1: encryption and signature need a key).
    async fn deliver(&self, target: &str, p: Prepared, signed: bool) -> anyhow::Result<FeishuPush> {
        let key = &self.config().fixture.encrypt_key;
        let body = if key.is_empty() {
            p.plaintext
        } else {
            json!({"encrypt": encrypt_event(key, &p.plaintext, rand::random())}).to_string().into_bytes()
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(DEADLINE)
            .build()?;
        let mut req = http.post(target).header("content-type", "application/json; charset=utf-8");
        if signed && !key.is_empty() {
            // §E.5 / §H: the timestamp unit is UNCONFIRMED; seconds, as third-party code reads it.
            let timestamp = (self.now_ms() / 1000).to_string();
            let nonce = random_from(ALNUM, 16);
            let signature = sign_event(&timestamp, &nonce, key, &body);
            req = req
                .header("X-Lark-Request-Timestamp", timestamp)
                .header("X-Lark-Request-Nonce", nonce)
                .header("X-Lark-Signature", signature);
        }
        let answer = async {
            let res = req.body(body).send().await?;
            let status = res.status().as_u16();
            let text = res.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        }
        .await;
        let (status, reply, error) = match answer {
            Ok((s, b)) => (s, b, None),
            Err(e) => (0, String::new(), Some(e)),
        };
        let push = FeishuPush { event_id: p.event_id, event_type: p.event_type, status, body: reply };
        tracing::debug!(%target, event_type = %push.event_type, status, "feishu event push");
        self.lock().pushes.push(push.clone());
        match error {
            Some(e) if e.is_timeout() => Err(anyhow::anyhow!("push to {target}: no answer within 3 s: {e}")),
            Some(e) => Err(anyhow::anyhow!("push to {target} failed: {e}")),
            None => Ok(push),
        }
    }
}

/// `POST /_admin/push`: `{"target":"http://…","kind":"created"|"updated"|"deleted","open_id":"ou_…"}`.
#[derive(Deserialize)]
struct PushBody {
    target: String,
    kind: ContactEventKind,
    open_id: String,
}

/// `POST /_admin/push` → 200 with the [`FeishuPush`] JSON; 400 `{"error"}` for a bad body, an
/// unknown kind or person; 502 `{"error"}` when the target gave no HTTP answer.
pub(crate) async fn admin_push(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let b: PushBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return Reply::admin(400, json!({"error": format!("bad JSON body: {e}")})),
    };
    match emu.push_contact(&b.target, b.kind, &b.open_id).await {
        Ok(p) => Reply::admin(200, json!(p)),
        Err(PushError::Input(e)) => Reply::admin(400, json!({"error": e})),
        Err(PushError::Transport(e)) => Reply::admin(502, json!({"error": e.to_string()})),
    }
}
