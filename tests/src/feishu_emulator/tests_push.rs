//! Event pusher tests (docs/feishu-api.md §E): the §E.6 vectors, pushes to a receiver started here
//! that decrypts and checks the signature with its own code (not the pusher's), url_verification,
//! the Deleted side effect and the admin endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, async_trait};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::tests::{V2, VERIFIER, env};
use super::*;

/// docs/feishu-api.md §E.6 vector 2 (key `test key`, iv 00..0f, url_verification plaintext).
const VECTOR2: &str = "AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE";

/// The test's own §E.4 decryption: b64decode, iv = first 16 bytes, AES-256-CBC(SHA256(key)), PKCS#7.
fn decrypt(encrypt_key: &str, encrypt: &str) -> Vec<u8> {
    let raw = STANDARD.decode(encrypt).unwrap();
    let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
    let (iv, cipher) = raw.split_at(16);
    let iv: [u8; 16] = iv.try_into().unwrap();
    cbc::Decryptor::<Aes256>::new(&key.into(), &iv.into()).decrypt_padded_vec::<Pkcs7>(cipher).unwrap()
}

/// The test's own §E.5 signature.
fn signature(ts: &str, nonce: &str, key: &str, body: &[u8]) -> String {
    let mut all = format!("{ts}{nonce}{key}").into_bytes();
    all.extend_from_slice(body);
    Sha256::digest(&all).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn e6_vectors() {
    let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
    let plain = r#"{"challenge":"ajls384kdjx98XX","token":"xxxxxx","type":"url_verification"}"#;
    assert_eq!(encrypt_event("test key", plain.as_bytes(), iv), VECTOR2);
    assert_eq!(decrypt("test key", VECTOR2), plain.as_bytes());
    let body = format!(r#"{{"encrypt":"{VECTOR2}"}}"#);
    let expected = "457dbde5ce4ae6829fc19b3ca0a771ba2567ca00f0b94bfe0dcd63ff925622ba";
    assert_eq!(sign_event("1603977298", "abc123", "test key", body.as_bytes()), expected);
    assert_eq!(signature("1603977298", "abc123", "test key", body.as_bytes()), expected);
    // Vector 1: official decrypt sample; re-encryption with the recovered iv is byte-exact.
    let v1 = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=";
    assert_eq!(decrypt("test key", v1), b"hello world");
    let iv1: [u8; 16] = STANDARD.decode(v1).unwrap()[..16].try_into().unwrap();
    assert_eq!(encrypt_event("test key", b"hello world", iv1), v1);
}

#[test]
fn fixture_json_without_event_keys_still_loads() {
    let mut v = serde_json::to_value(FeishuFixture::default()).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("encrypt_key");
    m.remove("verification_token");
    let f: FeishuFixture = serde_json::from_value(v).unwrap();
    assert_eq!(
        (f.encrypt_key.as_str(), f.verification_token.as_str()),
        (DEFAULT_ENCRYPT_KEY, DEFAULT_VERIFICATION_TOKEN)
    );
}

/// What the receiver saw: lower-case header names and the raw body.
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Mode {
    /// HTTP 200 `{"msg":"success"}` (the Python SDK's reply, §E.3).
    Success,
    /// Decrypts and answers `{"challenge": …}` (§E.2).
    Echo,
    /// HTTP 500 `{"msg":"boom"}`.
    Fail,
}

#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
    mode: Mode,
}

#[async_trait]
impl Handler for Receiver {
    async fn handle(&self, req: &mut Request, _d: &mut Depot, res: &mut Response, _c: &mut FlowCtrl) {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = req.payload().await.unwrap().to_vec();
        let reply = match self.mode {
            Mode::Success => json!({"msg": "success"}),
            Mode::Echo => {
                let outer: Value = serde_json::from_slice(&body).unwrap();
                let plain = decrypt(DEFAULT_ENCRYPT_KEY, outer["encrypt"].as_str().unwrap());
                let inner: Value = serde_json::from_slice(&plain).unwrap();
                json!({"challenge": inner["challenge"]})
            }
            Mode::Fail => {
                res.status_code(salvo::http::StatusCode::INTERNAL_SERVER_ERROR);
                json!({"msg": "boom"})
            }
        };
        self.tx.send(Received { headers, body }).unwrap();
        res.render(salvo::writing::Json(reply));
    }
}

/// Starts a receiver on 127.0.0.1:0; returns its `/feishu/events` URL and what it receives.
async fn receiver(mode: Mode) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let acceptor = TcpListener::new("127.0.0.1:0").try_bind().await.unwrap();
    let addr = acceptor.holdings()[0].local_addr.clone().into_std().unwrap();
    let router = Router::with_path("feishu/events").post(Receiver { tx, mode });
    tokio::spawn(Server::new(acceptor).serve(router));
    (format!("http://{addr}/feishu/events"), rx)
}

/// Checks the §E.5 headers and returns the decrypted v2.0 envelope.
fn open_signed(r: &Received) -> Value {
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    let ts = &r.headers["x-lark-request-timestamp"];
    let nonce = &r.headers["x-lark-request-nonce"];
    assert_eq!(ts.len(), 10, "seconds: {ts}");
    assert!(!nonce.is_empty());
    assert_eq!(r.headers["x-lark-signature"], signature(ts, nonce, DEFAULT_ENCRYPT_KEY, &r.body));
    let outer: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(outer.as_object().unwrap().len(), 1, "only `encrypt`: {outer}");
    serde_json::from_slice(&decrypt(DEFAULT_ENCRYPT_KEY, outer["encrypt"].as_str().unwrap())).unwrap()
}

#[tokio::test]
async fn contact_events_are_encrypted_signed_v2_envelopes() {
    let env = env().await;
    let (url, mut rx) = receiver(Mode::Success).await;
    let push = env.emu.push_contact_event(&url, ContactEventKind::Created, "ou_feishu_alice").await.unwrap();
    assert_eq!((push.status, push.body.as_str()), (200, r#"{"msg":"success"}"#));
    let v = open_signed(&rx.recv().await.unwrap());
    assert_eq!(v["schema"], "2.0");
    let h = &v["header"];
    assert_eq!(h["event_id"], push.event_id.as_str());
    assert_eq!(push.event_id.len(), 32);
    assert!(push.event_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h["event_type"], "contact.user.created_v3");
    assert_eq!(h["token"], DEFAULT_VERIFICATION_TOKEN);
    assert_eq!(h["app_id"], "cli_a5d611352af9d00b");
    assert_eq!(h["tenant_key"], "736588c9260f175d");
    assert!(h["create_time"].as_str().unwrap().parse::<i64>().unwrap() > 1_600_000_000_000);
    let o = &v["event"]["object"];
    assert_eq!((o["user_id"].as_str(), o["union_id"].as_str()), (Some("fs_alice"), Some("on_feishu_alice")));
    assert_eq!((o["name"].as_str(), o["email"].as_str()), (Some("李雷"), Some("alice@feishu-emulator.example")));
    assert_eq!(o["status"]["is_activated"], true);
    assert!(v["event"].get("old_object").is_none());

    let push2 = env.emu.push_contact_event(&url, ContactEventKind::Updated, "ou_feishu_alice").await.unwrap();
    let v = open_signed(&rx.recv().await.unwrap());
    assert_eq!(v["header"]["event_type"], "contact.user.updated_v3");
    assert_ne!(push2.event_id, push.event_id);
    assert_eq!(v["event"]["old_object"], json!({"name": "李雷 (旧)"}));
    let types: Vec<String> = env.emu.pushes().into_iter().map(|p| p.event_type).collect();
    assert_eq!(types, ["contact.user.created_v3", "contact.user.updated_v3"]);

    // Outsiders and unknown people are refused before anything is sent.
    assert!(env.emu.push_contact_event(&url, ContactEventKind::Created, "ou_feishu_olivia").await.is_err());
    assert!(env.emu.push_contact_event(&url, ContactEventKind::Created, "ou_nobody").await.is_err());
    assert_eq!(env.emu.pushes().len(), 2);
}

#[tokio::test]
async fn url_verification_round_trip() {
    let env = env().await;
    let (url, mut rx) = receiver(Mode::Echo).await;
    let push = env.emu.push_url_verification(&url).await.unwrap();
    assert_eq!(push.event_type, "url_verification");
    let r = rx.recv().await.unwrap();
    assert!(!r.headers.contains_key("x-lark-signature"), "no signature for url_verification");
    let outer: Value = serde_json::from_slice(&r.body).unwrap();
    let inner: Value =
        serde_json::from_slice(&decrypt(DEFAULT_ENCRYPT_KEY, outer["encrypt"].as_str().unwrap())).unwrap();
    assert_eq!(
        inner,
        json!({"challenge": push.event_id, "token": DEFAULT_VERIFICATION_TOKEN, "type": "url_verification"})
    );
    // A receiver that does not echo the challenge is reported with what it answered.
    let (url, _rx) = receiver(Mode::Success).await;
    let err = env.emu.push_url_verification(&url).await.unwrap_err().to_string();
    assert!(err.contains(r#"{"msg":"success"}"#), "{err}");
}

#[tokio::test]
async fn deleted_push_resigns_the_person() {
    let env = env().await;
    let code = env.code_for("ou_feishu_alice", "").await;
    let (status, token) = env.exchange(V2, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap().to_owned();
    let (_, info) = env.get_auth("/open-apis/authen/v1/user_info", &access).await;
    assert_eq!(info["code"], 0, "{info}");

    let (url, mut rx) = receiver(Mode::Success).await;
    env.emu.push_contact_event(&url, ContactEventKind::Deleted, "ou_feishu_alice").await.unwrap();
    let v = open_signed(&rx.recv().await.unwrap());
    assert_eq!(v["header"]["event_type"], "contact.user.deleted_v3");
    assert_eq!(v["event"]["object"]["status"]["is_resigned"], true);
    assert_eq!(
        v["event"]["old_object"],
        json!({"department_ids": ["od-5b91c9affb665451a16b90b4be367efa"], "open_id": "ou_feishu_alice"})
    );
    let (_, info) = env.get_auth("/open-apis/authen/v1/user_info", &access).await;
    assert_eq!(info["code"], 20021, "{info}");
    // A leaver stays resigned: a later update event still says so.
    env.emu.push_contact_event(&url, ContactEventKind::Updated, "ou_feishu_alice").await.unwrap();
    let v = open_signed(&rx.recv().await.unwrap());
    assert_eq!(v["event"]["object"]["status"]["is_resigned"], true);
}

#[tokio::test]
async fn admin_push_and_pushes() {
    let env = env().await;
    let (url, mut rx) = receiver(Mode::Success).await;
    let (status, v) =
        env.post("/_admin/push", json!({"target": url, "kind": "deleted", "open_id": "ou_feishu_carol"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["status"].as_u64(), v["event_type"].as_str()), (Some(200), Some("contact.user.deleted_v3")));
    assert_eq!(open_signed(&rx.recv().await.unwrap())["header"]["event_id"], v["event_id"]);
    let (status, _) = env.post("/_admin/push", json!({"target": url, "kind": "deleted", "open_id": "ou_x"})).await;
    assert_eq!(status, 400);
    let (status, _) =
        env.post("/_admin/push", json!({"target": url, "kind": "moved", "open_id": "ou_feishu_bob"})).await;
    assert_eq!(status, 400);
    // A non-200 answer is reported, not an error.
    let (fail_url, _fail_rx) = receiver(Mode::Fail).await;
    let (status, v) =
        env.post("/_admin/push", json!({"target": fail_url, "kind": "created", "open_id": "ou_feishu_bob"})).await;
    assert_eq!((status, v["status"].as_u64(), v["body"].as_str()), (200, Some(500), Some(r#"{"msg":"boom"}"#)));
    // Nobody listening → 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/feishu/events", closed.local_addr().unwrap());
    drop(closed);
    let (status, v) =
        env.post("/_admin/push", json!({"target": dead, "kind": "created", "open_id": "ou_feishu_bob"})).await;
    assert_eq!(status, 502, "{v}");
    let res = env.http.get(env.url("/_admin/pushes")).send().await.unwrap();
    let pushes: Vec<FeishuPush> = res.json().await.unwrap();
    let statuses: Vec<u16> = pushes.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [200, 500, 0]);
    assert!(env.emu.calls().iter().all(|c| !c.path.starts_with("/_admin")), "admin calls are not recorded");
}

#[tokio::test]
async fn without_an_encrypt_key_events_go_in_plaintext_unsigned() {
    let mut config = FeishuEmulatorConfig::default();
    config.fixture.encrypt_key = String::new();
    let env = super::tests::env_with(config).await;
    let (url, mut rx) = receiver(Mode::Success).await;
    env.emu.push_contact_event(&url, ContactEventKind::Created, "ou_feishu_dave").await.unwrap();
    let r = rx.recv().await.unwrap();
    assert!(!r.headers.contains_key("x-lark-signature"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["schema"].as_str(), v["event"]["object"]["user_id"].as_str()), (Some("2.0"), Some("fs_dave")));
}
