//! Tests of the ISV part (suite tickets, suite / corp tokens, corp-scoped topapi), the callback
//! crypto (docs/dingtalk-api.md §E.7 official vectors) and the event pusher, over real HTTP: the emulator and a
//! small callback receiver each on 127.0.0.1:0, reqwest as the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::http::StatusCode;
use salvo::http::header::{CONTENT_TYPE, HeaderValue};
use salvo::server::ServerHandle;
use salvo::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, async_trait};
use serde_json::{Value, json};

use super::crypto::{CryptoError, aes_key_bytes, callback_signature, suite_signature};
use super::*;

const SUITE_KEY: &str = "suiteemukey0001";
const SUITE_SECRET: &str = "emulator-suite-secret";
const SUITE_TOKEN: &str = "emutoken";
const SUITE_AES_KEY: &str = "emuSuiteAesKey0123456789abcdefghijklmnopqrs";
const CORP1: &str = "dingemucorp0001";
const CORP2: &str = "dingemucorp0002";
const APP_KEY: &str = "dingemuappkey0001";
const APP_SECRET: &str = "emulator-app-secret";
const SEND: &str = "/topapi/message/corpconversation/asyncsend_v2";

// ---------------------------------------------------------------------------------------------
// §E.7 official vectors

struct Vector {
    token: &'static str,
    aes_key: &'static str,
    owner: &'static str,
    timestamp: &'static str,
    nonce: &'static str,
    signature: &'static str,
    encrypt: &'static str,
    plaintext: &'static str,
    prefix: &'static str,
    pad: u8,
}

const VECTORS: [Vector; 3] = [
    Vector {
        token: "123456",
        aes_key: "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
        owner: "suite4xxxxxxxxxxxxxxx",
        timestamp: "1445827045067",
        nonce: "nEXhMP4r",
        signature: "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
        encrypt: "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==",
        plaintext: r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#,
        prefix: "hU3bEfGZZewzhG5a",
        pad: 22,
    },
    Vector {
        token: "123456",
        aes_key: "1234567890123456789012345678901234567890123",
        owner: "dingsnotzck6pm5veliw",
        timestamp: "1614767836",
        nonce: "A7Co0cJLMzIDtMMI",
        signature: "9a95a004dd16f5c307e849b994173f76aa26e5eb",
        encrypt: "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==",
        plaintext: "success",
        prefix: "dICkEDLj0eb6yAbc",
        pad: 17,
    },
    Vector {
        token: "mryue",
        aes_key: "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
        owner: "ding6ccabc44d2c8d38b",
        timestamp: "1608001896814",
        nonce: "WL4PK6yA",
        signature: "03044561471240d4a14bb09372dfcfd4fd0e40cb",
        encrypt: "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
        plaintext: r#"{"EventType":"check_url"}"#,
        prefix: "l7Y3EcX2CU5w8av3",
        pad: 31,
    },
];

#[test]
fn official_vectors_signature_decrypt_and_byte_exact_reencryption() {
    for (i, v) in VECTORS.iter().enumerate() {
        assert_eq!(callback_signature(v.token, v.timestamp, v.nonce, v.encrypt), v.signature, "vector {}", i + 1);
        let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
        assert_eq!(c.signature(v.timestamp, v.nonce, v.encrypt), v.signature);
        let d = c.decrypt(v.encrypt).unwrap();
        assert_eq!(d.msg, v.plaintext, "vector {}", i + 1);
        assert_eq!(&d.prefix, v.prefix.as_bytes(), "vector {}", i + 1);
        // The server pads to 32 bytes (§E.4): the pad values prove it.
        let raw = c.decrypt_raw(v.encrypt).unwrap();
        assert_eq!(raw.len() % 32, 0);
        assert_eq!(*raw.last().unwrap(), v.pad, "vector {}", i + 1);
        assert!(raw[raw.len() - usize::from(v.pad)..].iter().all(|b| *b == v.pad));
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(v.prefix.as_bytes());
        assert_eq!(c.encrypt_with_prefix(&prefix, v.plaintext), v.encrypt, "vector {}", i + 1);
        // The owner key is checked (library error 900010).
        let other = CallbackCrypto::new(v.token, v.aes_key, "someone-else").unwrap();
        assert_eq!(other.decrypt(v.encrypt), Err(CryptoError::OwnerKeyMismatch { found: v.owner.to_owned() }));
    }
}

#[test]
fn raw_aes_vector_and_key_checks() {
    // §E.7 extra raw-AES vector (not a framed message).
    let c = CallbackCrypto::new("123456", VECTORS[0].aes_key, "x").unwrap();
    let raw = c
        .decrypt_raw("DwCJ9BMxu4r+VTe9TD+AWc1yfxqs7d2YgepFe4XruMgh1+6pTjCCq4nqAM6StRcafOx5a1OfwmX3ckSBifatlA==")
        .unwrap();
    let mut expected = b"5p7b4jXMWUshiBCosucc111esssuite4xxxxxxxxxxxxxxx221".to_vec();
    expected.extend([0x0e; 14]);
    assert_eq!(raw, expected);

    // §E.1: exactly 43 characters of [A-Za-z0-9]; keys with non-zero spare bits are accepted.
    assert!(aes_key_bytes(VECTORS[1].aes_key).is_ok());
    assert_eq!(aes_key_bytes(&VECTORS[1].aes_key[..42]), Err(CryptoError::InvalidAesKey));
    assert_eq!(aes_key_bytes("123456789012345678901234567890123456789012+"), Err(CryptoError::InvalidAesKey));
    assert!(CallbackCrypto::new("t", "short", "o").is_err());

    // Round trip with a random prefix, including a message that is already 32-byte aligned.
    let c = CallbackCrypto::new(SUITE_TOKEN, SUITE_AES_KEY, SUITE_KEY).unwrap();
    // 16 + 4 + 29 + 15 = 64 bytes: already aligned, so a whole 32-byte pad block is added (§E.4).
    let aligned = "x".repeat(64 - 20 - SUITE_KEY.len());
    let raw = c.decrypt_raw(&c.encrypt(&aligned)).unwrap();
    assert_eq!(raw.len(), 96);
    assert_eq!(raw[64..], [32u8; 32]);
    for msg in ["success", "", aligned.as_str(), "事件 ✓"] {
        let e1 = c.encrypt(msg);
        let e2 = c.encrypt(msg);
        assert_ne!(e1, e2, "a fresh random prefix every time");
        assert_eq!(c.decrypt(&e1).unwrap().msg, msg);
        assert_eq!(c.decrypt_raw(&e1).unwrap().len() % 32, 0);
    }
    assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Base64));
    assert_eq!(c.decrypt("AAAA"), Err(CryptoError::CipherLength));
}

#[test]
fn suite_signature_matches_an_independent_hmac() {
    // Expected values computed with Python's hmac/hashlib/base64 (§B.4 formula).
    assert_eq!(
        suite_signature(SUITE_SECRET, "1700000000000", "ticket-abc"),
        "T4mCUpIZ+GW49QI3qrAj7vpI+GuPSoMnWRrSwWJS40o="
    );
    assert_eq!(
        suite_signature("testsecret", "1581064463000", "TestSuiteTicket"),
        "TtlpX0YeUnS038oEKiAQ34JD9UJTZMLhY1X1C/0PZQM="
    );
}

// ---------------------------------------------------------------------------------------------
// Harness

struct Env {
    running: RunningEmulator,
    base: String,
    http: reqwest::Client,
    emu: Emulator,
}

async fn env() -> Env {
    let running = start(EmulatorConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = running.base_url();
    let emu = running.state();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Env { running, base, http, emu }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.unwrap()
    }

    async fn admin(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.post(path, body).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    fn ticket(&self) -> String {
        self.emu.suite_ticket(SUITE_KEY).unwrap()
    }

    async fn corp_token_res(&self, corp: &str, ticket: &str) -> reqwest::Response {
        self.post(
            "/v1.0/oauth2/corpAccessToken",
            json!({"suiteKey": SUITE_KEY, "suiteSecret": SUITE_SECRET, "authCorpId": corp, "suiteTicket": ticket}),
        )
        .await
    }

    async fn corp_token(&self, corp: &str) -> String {
        let res = self.corp_token_res(corp, &self.ticket()).await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(keys(&v), set(&["accessToken", "expireIn"]));
        assert_eq!(v["expireIn"], 7200);
        v["accessToken"].as_str().unwrap().to_owned()
    }

    async fn app_token(&self) -> String {
        let res = self.post("/v1.0/oauth2/accessToken", json!({"appKey": APP_KEY, "appSecret": APP_SECRET})).await;
        let v: Value = res.json().await.unwrap();
        v["accessToken"].as_str().unwrap().to_owned()
    }

    async fn topapi(&self, path: &str, token: &str, body: Value) -> Value {
        let res = self.http.post(format!("{}?access_token={token}", self.url(path))).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn get_corp_token(&self, key: &str, timestamp: &str, ticket: &str, signature: &str, corp: &str) -> Value {
        let url = format!(
            "{}?accessKey={}&timestamp={}&suiteTicket={}&signature={signature}",
            self.url("/service/get_corp_token"),
            wire::url_encode(key),
            wire::url_encode(timestamp),
            wire::url_encode(ticket),
        );
        let res = self.http.post(url).json(&json!({"auth_corpid": corp})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Points the suite's (or the app's) pushes at `receiver`.
    async fn configure(&self, receiver: &Receiver, owner: &str) {
        let body = if owner == "suite" {
            json!({"owner": "suite", "suite_key": SUITE_KEY, "url": receiver.url()})
        } else {
            json!({"owner": "app", "url": receiver.url(), "token": APP_CB_TOKEN, "aes_key": APP_CB_AES_KEY, "owner_key": CORP1})
        };
        let (status, v) = self.admin("/_admin/callback", body).await;
        assert_eq!(status, 200, "{v}");
    }
}

async fn assert_v1_error(res: reqwest::Response, code: &str) {
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(keys(&v), set(&["code", "message", "requestid"]), "{v}");
    assert_eq!(v["code"], code, "{v}");
}

/// Callback settings of the internal app in the push tests (owner key = corp id, an org-level
/// subscription, §E.1).
const APP_CB_TOKEN: &str = "apptoken1";
const APP_CB_AES_KEY: &str = "1234567890123456789012345678901234567890123";

/// How the test receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Encrypted `success` with `timeStamp`.
    Good,
    /// Encrypted `success` with lower-case `timestamp`.
    GoodLowercase,
    /// A non-JSON body.
    Garbage,
    /// Right encrypt, wrong msg_signature.
    WrongSignature,
    /// HTTP 500.
    Error500,
    /// Encrypts `fail` instead of `success`.
    NotSuccess,
    /// Answers correctly after a delay (ms).
    Slow(u64),
    /// Like `Slow` for the first request, then `Good`.
    SlowOnce(u64),
}

/// What the receiver saw in one request.
#[derive(Debug, Clone)]
struct Seen {
    query: Vec<(String, String)>,
    signature_ok: bool,
    event: Option<Value>,
}

impl Seen {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct ReceiverHandler {
    crypto: CallbackCrypto,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[async_trait]
impl Handler for ReceiverHandler {
    async fn handle(&self, req: &mut Request, _depot: &mut Depot, res: &mut Response, _ctrl: &mut FlowCtrl) {
        let query = wire::parse_urlencoded(req.uri().query().unwrap_or(""));
        let body: Value = serde_json::from_slice(req.payload().await.unwrap()).unwrap_or(Value::Null);
        let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let encrypt = body["encrypt"].as_str().unwrap_or_default().to_owned();
        let signature_ok = match (get("msg_signature"), get("timestamp"), get("nonce")) {
            (Some(s), Some(t), Some(n)) => self.crypto.signature(&t, &n, &encrypt) == s,
            _ => false,
        };
        let event = self.crypto.decrypt(&encrypt).ok().and_then(|d| serde_json::from_str(&d.msg).ok());
        self.seen.lock().unwrap().push(Seen { query, signature_ok, event });
        let mode = {
            let mut m = self.mode.lock().unwrap();
            let mode = *m;
            if let Mode::SlowOnce(_) = mode {
                *m = Mode::Good;
            }
            mode
        };
        if let Mode::Slow(ms) | Mode::SlowOnce(ms) = mode {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let (ts, nonce) = ("1783610513".to_owned(), "123456".to_owned());
        let answer = |msg: &str, ts_key: &str, bad_sig: bool| {
            let enc = self.crypto.encrypt(msg);
            let sig = if bad_sig { "0".repeat(40) } else { self.crypto.signature(&ts, &nonce, &enc) };
            json!({"msg_signature": sig, ts_key: ts, "nonce": nonce, "encrypt": enc}).to_string()
        };
        let (status, text) = match mode {
            Mode::Good | Mode::Slow(_) | Mode::SlowOnce(_) => (200, answer("success", "timeStamp", false)),
            Mode::GoodLowercase => (200, answer("success", "timestamp", false)),
            Mode::Garbage => (200, "success".to_owned()),
            Mode::WrongSignature => (200, answer("success", "timeStamp", true)),
            Mode::Error500 => (500, "Internal Server Error".to_owned()),
            Mode::NotSuccess => (200, answer("fail", "timeStamp", false)),
        };
        res.status_code(StatusCode::from_u16(status).unwrap());
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.body(text);
    }
}

/// A callback receiver on 127.0.0.1:0 at `/cb`.
struct Receiver {
    addr: SocketAddr,
    handle: ServerHandle,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(crypto: CallbackCrypto, mode: Mode) -> Receiver {
        let acceptor = TcpListener::new("127.0.0.1:0").try_bind().await.unwrap();
        let addr = acceptor.holdings()[0].local_addr.clone().into_std().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = ReceiverHandler { crypto, mode: mode.clone(), seen: seen.clone() };
        let server = Server::new(acceptor);
        let handle = server.handle();
        tokio::spawn(server.serve(Router::with_path("cb").post(handler)));
        Receiver { addr, handle, mode, seen }
    }

    async fn suite(mode: Mode) -> Receiver {
        Receiver::start(CallbackCrypto::new(SUITE_TOKEN, SUITE_AES_KEY, SUITE_KEY).unwrap(), mode).await
    }

    async fn app(mode: Mode) -> Receiver {
        Receiver::start(CallbackCrypto::new(APP_CB_TOKEN, APP_CB_AES_KEY, CORP1).unwrap(), mode).await
    }

    fn url(&self) -> String {
        format!("http://{}/cb", self.addr)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn stop(self) {
        self.handle.stop_forceful();
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn suite_access_token_success_new_token_each_call_and_errors() {
    let e = env().await;
    let ok = json!({"suiteKey": SUITE_KEY, "suiteSecret": SUITE_SECRET, "suiteTicket": e.ticket()});
    let mut tokens = BTreeSet::new();
    for _ in 0..2 {
        let res = e.post("/v1.0/oauth2/suiteAccessToken", ok.clone()).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().contains_key("x-acs-request-id"));
        let v: Value = res.json().await.unwrap();
        assert_eq!(keys(&v), set(&["accessToken", "expireIn"]));
        assert_eq!(v["expireIn"], 7200);
        tokens.insert(v["accessToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens.len(), 2, "a new token per call");
    for t in &tokens {
        assert_eq!(e.emu.suite_token_owner(t).as_deref(), Some(SUITE_KEY));
    }

    let bad = |k: &str, s: &str, t: &str| json!({"suiteKey": k, "suiteSecret": s, "suiteTicket": t});
    let ticket = e.ticket();
    let res = e.post("/v1.0/oauth2/suiteAccessToken", bad("suitenope", SUITE_SECRET, &ticket)).await;
    assert_v1_error(res, "invalidSuiteKey").await;
    let res = e.post("/v1.0/oauth2/suiteAccessToken", bad(SUITE_KEY, "wrong", &ticket)).await;
    assert_v1_error(res, "invalidSuiteKey").await;
    let res = e.post("/v1.0/oauth2/suiteAccessToken", bad(SUITE_KEY, SUITE_SECRET, "unknown")).await;
    assert_v1_error(res, "invalidSuiteTicket").await;
    let res = e.post("/v1.0/oauth2/suiteAccessToken", json!({"suiteKey": SUITE_KEY})).await;
    assert_v1_error(res, "invalidSuiteKey").await;
    // A rotated ticket makes the old one stale (§B.5).
    let new_ticket = e.emu.rotate_suite_ticket(SUITE_KEY).unwrap();
    assert_ne!(new_ticket, ticket);
    let res = e.post("/v1.0/oauth2/suiteAccessToken", bad(SUITE_KEY, SUITE_SECRET, &ticket)).await;
    assert_v1_error(res, "invalidSuiteTicket").await;
    let res = e.post("/v1.0/oauth2/suiteAccessToken", bad(SUITE_KEY, SUITE_SECRET, &new_ticket)).await;
    assert_eq!(res.status(), 200);
    e.running.stop().await;
}

#[tokio::test]
async fn corp_access_token_success_new_token_each_call_and_errors() {
    let e = env().await;
    let t1 = e.corp_token(CORP2).await;
    let t2 = e.corp_token(CORP2).await;
    assert_ne!(t1, t2, "§B.4: a new token on every call");
    // Both stay usable.
    for t in [&t1, &t2] {
        let v = e.topapi("/topapi/v2/user/get", t, json!({"userid": "c2boss01"})).await;
        assert_eq!(v["errcode"], 0, "{v}");
    }
    let ticket = e.ticket();
    let res = e.corp_token_res("dingnotauthorized", &ticket).await;
    assert_v1_error(res, "invalidAuthInfo").await;
    let res = e.corp_token_res(CORP2, "stale-ticket").await;
    assert_v1_error(res, "invalidSuiteTicket").await;
    let res = e
        .post(
            "/v1.0/oauth2/corpAccessToken",
            json!({"suiteKey": "suitenope", "suiteSecret": SUITE_SECRET, "authCorpId": CORP2, "suiteTicket": ticket}),
        )
        .await;
    assert_v1_error(res, "invalidSuiteKey").await;
    let res = e
        .post(
            "/v1.0/oauth2/corpAccessToken",
            json!({"suiteKey": SUITE_KEY, "suiteSecret": "wrong", "authCorpId": CORP2, "suiteTicket": ticket}),
        )
        .await;
    assert_v1_error(res, "invalidSuiteKey").await;
    // Form bodies are refused like on every v1.0 endpoint (§0.2).
    let res = e.http.post(e.url("/v1.0/oauth2/corpAccessToken")).form(&[("suiteKey", SUITE_KEY)]).send().await.unwrap();
    assert_v1_error(res, "MissingBody").await;
    e.running.stop().await;
}

#[tokio::test]
async fn legacy_get_corp_token_checks_the_hmac_signature() {
    let e = env().await;
    let ticket = e.ticket();
    let ts = "1700000000000";
    let sig = suite_signature(SUITE_SECRET, ts, &ticket);
    let v = e.get_corp_token(SUITE_KEY, ts, &ticket, &wire::url_encode(&sig), CORP1).await;
    assert_eq!(keys(&v), set(&["access_token", "errcode", "errmsg", "expires_in"]), "{v}");
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert_eq!(v["expires_in"], 7200);
    let token = v["access_token"].as_str().unwrap().to_owned();
    let u = e.topapi("/topapi/v2/user/get", &token, json!({"userid": "manager4220"})).await;
    assert_eq!(u["errcode"], 0, "{u}");

    // Bad signature (wrong secret) → 40088.
    let bad = suite_signature("not-the-secret", ts, &ticket);
    let v = e.get_corp_token(SUITE_KEY, ts, &ticket, &wire::url_encode(&bad), CORP1).await;
    assert_eq!(v, json!({"errcode": 40088, "errmsg": "不合法的套件key或secret"}));
    // Signature of another timestamp → 40088.
    let v = e.get_corp_token(SUITE_KEY, "1700000000001", &ticket, &wire::url_encode(&sig), CORP1).await;
    assert_eq!(v["errcode"], 40088);
    // Unknown suite key → 40088.
    let v = e.get_corp_token("suitenope", ts, &ticket, &wire::url_encode(&sig), CORP1).await;
    assert_eq!(v["errcode"], 40088);
    // Stale ticket (signed correctly) → 40085.
    let stale_sig = suite_signature(SUITE_SECRET, ts, "old-ticket");
    let v = e.get_corp_token(SUITE_KEY, ts, "old-ticket", &wire::url_encode(&stale_sig), CORP1).await;
    assert_eq!(v, json!({"errcode": 40085, "errmsg": "不存在的suiteticket"}));
    // Corp without an authorization → 40079.
    let v = e.get_corp_token(SUITE_KEY, ts, &ticket, &wire::url_encode(&sig), "dingnotauthorized").await;
    assert_eq!(v["errcode"], 40079);
    // Standard query decoding: a base64 `+` sent unencoded arrives as a space and fails (§B.4 asks
    // for URL-encoding); encoded it passes.
    let (ts, sig) = (1_700_000_000_000_i64..)
        .map(|t| (t.to_string(), suite_signature(SUITE_SECRET, &t.to_string(), &ticket)))
        .find(|(_, s)| s.contains('+'))
        .unwrap();
    let v = e.get_corp_token(SUITE_KEY, &ts, &ticket, &sig, CORP1).await;
    assert_eq!(v["errcode"], 40088, "{v}");
    let v = e.get_corp_token(SUITE_KEY, &ts, &ticket, &wire::url_encode(&sig), CORP1).await;
    assert_eq!(v["errcode"], 0, "{v}");
    // Missing parameters → 40035.
    let res = e.http.post(e.url("/service/get_corp_token")).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["errcode"], 40035);
    e.running.stop().await;
}

#[tokio::test]
async fn corp_tokens_reach_their_corp_only() {
    let e = env().await;
    let app = e.app_token().await;
    let c1 = e.corp_token(CORP1).await;
    let c2 = e.corp_token(CORP2).await;
    let by_union = |t: &str| {
        let t = t.to_owned();
        let e = &e;
        async move { e.topapi("/topapi/user/getbyunionid", &t, json!({"unionid": "union-lisi0002"})).await }
    };
    // Same person, one userid per corp (§0.4).
    assert_eq!(by_union(&app).await["result"]["userid"], "lisi0002");
    assert_eq!(by_union(&c1).await["result"]["userid"], "lisi0002");
    assert_eq!(by_union(&c2).await["result"]["userid"], "c2lisi03");

    let get = |t: &str, userid: &str| {
        let (t, userid) = (t.to_owned(), userid.to_owned());
        let e = &e;
        async move { e.topapi("/topapi/v2/user/get", &t, json!({"userid": userid})).await }
    };
    assert_eq!(get(&c2, "manager4220").await["errcode"], 60121);
    assert_eq!(get(&c1, "c2boss01").await["errcode"], 60121);
    assert_eq!(get(&app, "c2boss01").await["errcode"], 60121);
    let boss = get(&c2, "c2boss01").await;
    assert_eq!(boss["errcode"], 0, "{boss}");
    assert_eq!(boss["result"]["name"], "周七");
    // §C.2: state_code / telephone not for ISV apps; mobile only for internal apps.
    assert!(boss["result"].get("mobile").is_none());
    assert!(boss["result"].get("state_code").is_none());
    let manager = get(&app, "manager4220").await;
    assert_eq!(manager["result"]["mobile"], "15000009144");

    // A suite token is not a corp token.
    let res = e
        .post(
            "/v1.0/oauth2/suiteAccessToken",
            json!({"suiteKey": SUITE_KEY, "suiteSecret": SUITE_SECRET, "suiteTicket": e.ticket()}),
        )
        .await;
    let suite_token = res.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_owned();
    let v = get(&suite_token, "c2boss01").await;
    assert_eq!(v["errcode"], 88);
    assert_eq!(v["sub_code"], "40014");

    // Revocation covers ISV tokens: `isv` only them, `app` them and app tokens.
    let (status, _) = e.admin("/_admin/tokens/revoke", json!({"kind": "isv"})).await;
    assert_eq!(status, 200);
    assert_eq!(get(&c2, "c2boss01").await["sub_code"], "40014");
    assert_eq!(get(&app, "manager4220").await["errcode"], 0);
    let c2 = e.corp_token(CORP2).await;
    let (status, _) = e.admin("/_admin/tokens/revoke", json!({"kind": "app"})).await;
    assert_eq!(status, 200);
    assert_eq!(get(&c2, "c2boss01").await["sub_code"], "40014");
    assert_eq!(get(&app, "manager4220").await["sub_code"], "40014");
    e.running.stop().await;
}

#[tokio::test]
async fn asyncsend_with_a_corp_token_uses_that_corps_agent() {
    let e = env().await;
    let c2 = e.corp_token(CORP2).await;
    let msg = json!({"msgtype": "text", "text": {"content": "hello second corp"}});
    // Another corp's agent id, or the internal app's, is refused.
    for agent in [400001, 300001] {
        let v = e.topapi(SEND, &c2, json!({"agent_id": agent, "userid_list": "c2staff02", "msg": msg})).await;
        assert_eq!(v["errcode"], 400002, "{v}");
    }
    let v = e.topapi(SEND, &c2, json!({"agent_id": 400002, "userid_list": "c2staff02,manager4220", "msg": msg})).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let task_id = v["task_id"].clone();
    let result = e
        .topapi("/topapi/message/corpconversation/getsendresult", &c2, json!({"agent_id": 400002, "task_id": task_id}))
        .await;
    assert_eq!(result["send_result"]["unread_user_id_list"], json!(["c2staff02"]));
    assert_eq!(result["send_result"]["invalid_user_id_list"], json!(["manager4220"]));
    let progress = e
        .topapi(
            "/topapi/message/corpconversation/getsendprogress",
            &c2,
            json!({"agent_id": 400002, "task_id": task_id}),
        )
        .await;
    assert_eq!(progress["progress"]["status"], 2);
    // The task is invisible to the same suite's token of another corp.
    let c1 = e.corp_token(CORP1).await;
    let other = e
        .topapi("/topapi/message/corpconversation/getsendresult", &c1, json!({"agent_id": 400001, "task_id": task_id}))
        .await;
    assert_eq!(other["errcode"], 40035);
    let recall = e
        .topapi("/topapi/message/corpconversation/recall", &c2, json!({"agent_id": 400002, "msg_task_id": task_id}))
        .await;
    assert_eq!(recall["errcode"], 0, "{recall}");
    let sends = e.emu.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].app_key, SUITE_KEY);
    assert_eq!(sends[0].corp_id, CORP2);
    assert_eq!(sends[0].agent_id, 400002);
    assert!(sends[0].recalled);
    e.running.stop().await;
}

#[tokio::test]
async fn sendbytemplate_records_template_id_and_data() {
    let e = env().await;
    let c2 = e.corp_token(CORP2).await;
    const TEMPLATE: &str = "/topapi/message/corpconversation/sendbytemplate";
    let data = r#"{"message":"请审批","url":"https://erp.example/7"}"#;
    let v = e
        .topapi(
            TEMPLATE,
            &c2,
            json!({"agent_id": 400002, "userid_list": "c2staff02,c2boss01", "template_id": "tpl-1", "data": data}),
        )
        .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert!(v["task_id"].is_u64());
    for bad in [
        json!({"agent_id": 400002, "userid_list": "c2staff02", "data": data}),
        json!({"agent_id": 400002, "userid_list": "c2staff02", "template_id": "t", "data": "not json"}),
        json!({"agent_id": 400002, "userid_list": "c2staff02", "template_id": "t", "data": "[1]"}),
        json!({"agent_id": 400001, "userid_list": "c2staff02", "template_id": "t", "data": data}),
        json!({"agent_id": 400002, "template_id": "t", "data": data}),
    ] {
        let v = e.topapi(TEMPLATE, &c2, bad.clone()).await;
        assert_eq!(v["errcode"], 400002, "{bad} → {v}");
    }
    let sends = e.emu.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].msg,
        json!({"template_id": "tpl-1", "data": {"message": "请审批", "url": "https://erp.example/7"}})
    );
    assert_eq!(sends[0].agent_id, 400002);
    assert_eq!(sends[0].outcome.unread_user_id_list, vec!["c2staff02".to_owned(), "c2boss01".to_owned()]);
    e.running.stop().await;
}

#[tokio::test]
async fn a_suite_is_an_oauth_client() {
    let e = env().await;
    e.emu.set_consent(ConsentMode::Approve { who: "manager4220".into() });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = http
        .get(e.url("/oauth2/auth"))
        .query(&[
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("response_type", "code"),
            ("client_id", SUITE_KEY),
            ("scope", "openid"),
            ("state", "s1"),
            ("prompt", "consent"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let code = location.split("authCode=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let body = |secret: &str| json!({"clientId": SUITE_KEY, "clientSecret": secret, "code": code, "grantType": "authorization_code"});
    assert_v1_error(e.post("/v1.0/oauth2/userAccessToken", body("wrong")).await, "invalidClientIdOrSecret").await;
    let res = e.post("/v1.0/oauth2/userAccessToken", body(SUITE_SECRET)).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert!(v["accessToken"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    // The suite is not an internal app: no app token for it (docs/dingtalk-api.md §B.1 takes AppKey/AppSecret).
    let res = e.post("/v1.0/oauth2/accessToken", json!({"appKey": SUITE_KEY, "appSecret": SUITE_SECRET})).await;
    assert_v1_error(res, "invalidClientIdOrSecret").await;
    e.running.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Event pusher

#[tokio::test]
async fn suite_ticket_push_is_accepted_in_one_attempt_with_both_signature_names() {
    let e = env().await;
    let r = Receiver::suite(Mode::Good).await;
    e.configure(&r, "suite").await;
    let (status, out) = e.admin("/_admin/push/suite_ticket", json!({})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], true, "{out}");
    assert_eq!(out["attempts"], 1);
    assert_eq!(out["status"], 200);
    assert_eq!(out["error"], Value::Null);
    assert_eq!(keys(&out["reply"]), set(&["msg_signature", "timeStamp", "nonce", "encrypt"]));

    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert!(s.signature_ok);
    // §E.2: both names, same value, plus timestamp and nonce.
    assert_eq!(s.q("signature"), s.q("msg_signature"));
    assert_eq!(s.q("signature").unwrap().len(), 40);
    assert!(s.q("timestamp").unwrap().parse::<i64>().is_ok());
    assert!(!s.q("nonce").unwrap().is_empty());
    let event = s.event.clone().unwrap();
    assert_eq!(keys(&event), set(&["SuiteKey", "EventType", "TimeStamp", "SuiteTicket"]));
    assert_eq!(event["EventType"], "suite_ticket");
    assert_eq!(event["SuiteKey"], SUITE_KEY);
    assert_eq!(event["SuiteTicket"], e.ticket().as_str());
    assert!(event["TimeStamp"].is_i64());

    let pushes = e.emu.pushes();
    assert_eq!(pushes.len(), 1);
    assert!(pushes[0].accepted);
    assert_eq!(pushes[0].event_type, "suite_ticket");
    let (status, listed) = (200, e.http.get(e.url("/_admin/pushes")).send().await.unwrap());
    assert_eq!(listed.status(), status);
    assert_eq!(listed.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    r.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn ticket_rotation_pushes_the_new_ticket_in_both_formats() {
    let e = env().await;
    let r = Receiver::suite(Mode::Good).await;
    e.configure(&r, "suite").await;
    let old = e.ticket();
    let (status, out) = e.admin(&format!("/_admin/suites/{SUITE_KEY}/ticket"), json!({"sync": true})).await;
    assert_eq!(status, 200, "{out}");
    let new = out["suite_ticket"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(out["push"]["accepted"], true, "{out}");
    let event = r.seen()[0].event.clone().unwrap();
    assert_eq!(event["EventType"], "SYNC_HTTP_PUSH_HIGH");
    let item = &event["bizData"][0];
    assert_eq!(item["biz_type"], 2);
    assert_eq!(item["corp_id"], CORP1, "provider corp defaults to the main corp");
    for k in ["gmt_create", "open_cursor", "subscribe_id", "id", "gmt_modified", "biz_id", "status"] {
        assert!(item.get(k).is_some(), "{k} missing in {item}");
    }
    let biz: Value = serde_json::from_str(item["biz_data"].as_str().unwrap()).unwrap();
    assert_eq!(biz["syncAction"], "suite_ticket");
    assert_eq!(biz["suiteTicket"], new.as_str());
    // The pushed ticket works, the old one does not.
    assert_eq!(e.corp_token_res(CORP2, &old).await.status(), 400);
    assert_eq!(e.corp_token_res(CORP2, &new).await.status(), 200);

    // Legacy form again, and a rotation without a push.
    let (_, out) = e.admin(&format!("/_admin/suites/{SUITE_KEY}/ticket"), json!({"push": false})).await;
    assert_eq!(out["push"], Value::Null);
    assert_eq!(r.seen().len(), 1);
    let (status, _) = e.admin("/_admin/suites/suitenope/ticket", json!({})).await;
    assert_eq!(status, 404);
    r.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn isv_authorization_events() {
    let e = env().await;
    let r = Receiver::suite(Mode::Good).await;
    e.configure(&r, "suite").await;
    let (_, out) = e.admin("/_admin/push/org_suite_auth", json!({"corp_id": CORP2})).await;
    assert_eq!(out["accepted"], true, "{out}");
    let event = r.seen()[0].event.clone().unwrap();
    let item = &event["bizData"][0];
    assert_eq!(item["biz_type"], 4);
    assert_eq!(item["corp_id"], CORP2);
    let biz: Value = serde_json::from_str(item["biz_data"].as_str().unwrap()).unwrap();
    assert_eq!(biz["syncAction"], "org_suite_auth");
    assert_eq!(biz["permanent_code"], "emu-permanent-code-0002");
    assert_eq!(biz["auth_corp_info"]["corpid"], CORP2);
    assert_eq!(biz["auth_info"]["agent"][0]["agentid"], 400002);

    let (_, out) = e.admin("/_admin/push/tmp_auth_code", json!({"corp_id": CORP2, "auth_code": "tmpcode"})).await;
    assert_eq!(out["event"]["AuthCode"], "tmpcode");
    assert_eq!(out["event"]["AuthCorpId"], CORP2);
    let (_, out) = e.admin("/_admin/push/change_auth", json!({"corp_id": CORP2})).await;
    assert_eq!(out["event"]["EventType"], "change_auth");

    // suite_relieve removes the authorization: corp tokens stop working.
    let c2 = e.corp_token(CORP2).await;
    let (_, out) = e.admin("/_admin/push/suite_relieve", json!({"corp_id": CORP2})).await;
    assert_eq!(out["accepted"], true);
    assert_eq!(keys(&out["event"]), set(&["EventType", "SuiteKey", "TimeStamp", "AuthCorpId"]));
    let v = e.topapi("/topapi/v2/user/get", &c2, json!({"userid": "c2boss01"})).await;
    assert_eq!(v["sub_code"], "40014");
    assert_v1_error(e.corp_token_res(CORP2, &e.ticket()).await, "invalidAuthInfo").await;
    // Not authorized any more: org_suite_auth needs an agent_id, which re-authorizes.
    let (status, _) = e.admin("/_admin/push/org_suite_auth", json!({"corp_id": CORP2})).await;
    assert_eq!(status, 400);
    let (_, out) = e
        .admin("/_admin/push/org_suite_auth", json!({"corp_id": CORP2, "agent_id": 400009, "permanent_code": "pc9"}))
        .await;
    assert_eq!(out["accepted"], true);
    let c2 = e.corp_token(CORP2).await;
    let v = e
        .topapi(
            SEND,
            &c2,
            json!({"agent_id": 400009, "userid_list": "c2boss01", "msg": {"msgtype": "text", "text": {"content": "x"}}}),
        )
        .await;
    assert_eq!(v["errcode"], 0, "{v}");
    r.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn bad_replies_are_retried_and_reported_not_accepted() {
    let e = env().await;
    let (status, settings) = e.admin("/_admin/push/settings", json!({"backoff_ms": 5, "deadline_ms": 500})).await;
    assert_eq!(status, 200);
    assert_eq!(settings["max_attempts"], 3);
    let r = Receiver::suite(Mode::Garbage).await;
    e.configure(&r, "suite").await;
    let cases = [
        (Mode::Garbage, "JSON", 200),
        (Mode::WrongSignature, "does not verify", 200),
        (Mode::Error500, "HTTP 500", 500),
        (Mode::NotSuccess, "not \"success\"", 200),
        (Mode::Slow(1200), "deadline", 0),
    ];
    let mut total = 0;
    for (mode, error, http_status) in cases {
        r.set_mode(mode);
        let (status, out) = e.admin("/_admin/push/suite_ticket", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(out["accepted"], false, "{mode:?}: {out}");
        assert_eq!(out["attempts"], 3, "{mode:?}: {out}");
        assert_eq!(out["status"], http_status, "{mode:?}: {out}");
        assert!(out["error"].as_str().unwrap().contains(error), "{mode:?}: {out}");
        total += 3;
        assert_eq!(r.seen().len(), total, "{mode:?}: every attempt reached the receiver");
    }
    // Each attempt is recorded, signed afresh.
    let pushes = e.emu.pushes();
    assert_eq!(pushes.len(), total);
    assert!(pushes.iter().all(|p| !p.accepted && p.error.is_some()));
    assert_eq!(pushes[0].push_id, pushes[2].push_id);
    assert_eq!(pushes[..3].iter().map(|p| p.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_ne!(pushes[0].nonce, pushes[1].nonce);
    // Per-push override, and the lower-case `timestamp` reply is accepted (§E.5).
    r.set_mode(Mode::Error500);
    let (_, out) = e.admin("/_admin/push/suite_ticket", json!({"max_attempts": 1})).await;
    assert_eq!(out["attempts"], 1);
    r.set_mode(Mode::GoodLowercase);
    let (_, out) = e.admin("/_admin/push/suite_ticket", json!({})).await;
    assert_eq!(out["accepted"], true, "{out}");
    // A receiver that recovers on the second attempt.
    r.set_mode(Mode::SlowOnce(1200));
    let (_, out) = e.admin("/_admin/push/suite_ticket", json!({})).await;
    assert_eq!(out["accepted"], true, "{out}");
    assert_eq!(out["attempts"], 2, "{out}");
    r.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn app_target_generic_and_contact_pushes() {
    let e = env().await;
    // Nothing configured yet.
    let (status, out) = e.admin("/_admin/push", json!({"target": "app", "event": {"EventType": "check_url"}})).await;
    assert_eq!(status, 400, "{out}");
    let r = Receiver::app(Mode::Good).await;
    e.configure(&r, "app").await;
    // A wrong aes_key is refused at configuration time.
    let (status, _) = e
        .admin(
            "/_admin/callback",
            json!({"owner": "app", "url": r.url(), "token": "t", "aes_key": "short", "owner_key": CORP1}),
        )
        .await;
    assert_eq!(status, 400);

    let (_, out) = e.admin("/_admin/push/check_url", json!({})).await;
    assert_eq!(out["accepted"], true, "{out}");
    assert_eq!(r.seen()[0].event, Some(json!({"EventType": "check_url"})));

    let custom = json!({"EventType": "bpms_task_change", "processInstanceId": "p1"});
    let (_, out) = e.admin("/_admin/push", json!({"target": "app", "event": custom})).await;
    assert_eq!(out["accepted"], true);
    assert_eq!(r.seen()[1].event, Some(custom));

    let (_, out) = e
        .admin("/_admin/push/contact", json!({"event_type": "user_modify_org", "user_ids": ["lisi0002", "wangwu0003"]}))
        .await;
    assert_eq!(out["accepted"], true, "{out}");
    let event = r.seen()[2].event.clone().unwrap();
    assert_eq!(keys(&event), set(&["EventType", "EventTime", "CorpId", "BizId", "eventId", "timeStamp", "userId"]));
    assert_eq!(event["EventType"], "user_modify_org");
    assert_eq!(event["CorpId"], CORP1);
    assert!(event["EventTime"].is_i64());
    assert!(event["timeStamp"].is_string());
    assert_eq!(event["userId"], json!(["lisi0002", "wangwu0003"]));
    let (_, out) = e.admin("/_admin/push/contact", json!({"event_type": "org_dept_create", "dept_ids": [7]})).await;
    let event2 = r.seen()[3].event.clone().unwrap();
    assert_eq!(event2["deptId"], json!([7]));
    assert!(event2.get("userId").is_none());
    assert_ne!(event2["eventId"], event["eventId"], "{out}");

    // The suite's own target gets check_update_suite_url with its key.
    let rs = Receiver::suite(Mode::Good).await;
    e.configure(&rs, "suite").await;
    let (_, out) =
        e.admin("/_admin/push/check_url", json!({"target": SUITE_KEY, "event_type": "check_update_suite_url"})).await;
    assert_eq!(out["accepted"], true, "{out}");
    assert_eq!(rs.seen()[0].event.clone().unwrap()["TestSuiteKey"], SUITE_KEY);
    r.stop();
    rs.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn member_leave_and_join() {
    let e = env().await;
    let app = e.app_token().await;
    let r = Receiver::app(Mode::Good).await;
    e.configure(&r, "app").await;
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-lisi0002"})).await;
    assert_eq!(v["result"]["userid"], "lisi0002");

    let (status, out) = e.admin("/_admin/users/lisi0002/leave", json!({"push": true})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["push"]["accepted"], true, "{out}");
    let event = r.seen()[0].event.clone().unwrap();
    assert_eq!(event["EventType"], "user_leave_org");
    assert_eq!(event["userId"], json!(["lisi0002"]));

    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-lisi0002"})).await;
    assert_eq!(v["errcode"], 60121, "{v}");
    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "lisi0002"})).await;
    assert_eq!(v["errcode"], 60121, "{v}");
    // The same person in the other corp is unaffected.
    let c2 = e.corp_token(CORP2).await;
    let v = e.topapi("/topapi/user/getbyunionid", &c2, json!({"unionid": "union-lisi0002"})).await;
    assert_eq!(v["result"]["userid"], "c2lisi03");
    // Leaving twice, or a corp member of another corp.
    let (status, _) = e.admin("/_admin/users/lisi0002/leave", json!({})).await;
    assert_eq!(status, 404);
    // Leave without push, in the second corp.
    let (status, out) = e.admin("/_admin/users/c2staff02/leave", json!({"corp_id": CORP2})).await;
    assert_eq!(status, 200);
    assert_eq!(out["push"], Value::Null);
    assert_eq!(e.topapi("/topapi/v2/user/get", &c2, json!({"userid": "c2staff02"})).await["errcode"], 60121);

    // Join (with a push).
    let (status, out) = e
        .admin(
            "/_admin/users",
            json!({"userid": "newbie9", "unionid": "union-newbie9", "open_id": "open-newbie9",
                   "name": "新人", "dept_id_list": [2], "push": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["push"]["event"]["EventType"], "user_add_org");
    let v = e.topapi("/topapi/user/getbyunionid", &app, json!({"unionid": "union-newbie9"})).await;
    assert_eq!(v["result"]["userid"], "newbie9");
    let (status, _) =
        e.admin("/_admin/users", json!({"userid": "newbie9", "unionid": "u2", "open_id": "o2", "name": "dup"})).await;
    assert_eq!(status, 400);
    let (status, _) = e
        .admin(
            "/_admin/users",
            json!({"userid": "x1", "unionid": "u3", "open_id": "o3", "name": "x", "dept_id_list": [99]}),
        )
        .await;
    assert_eq!(status, 400);
    // A push to an unconfigured target changes nothing.
    let (status, _) = e.admin("/_admin/users/wangwu0003/leave", json!({"push": true, "target": "nope"})).await;
    assert_eq!(status, 400);
    assert_eq!(e.topapi("/topapi/v2/user/get", &app, json!({"userid": "wangwu0003"})).await["errcode"], 0);

    // Reset restores the fixture's members.
    let (status, _) = e.admin("/_admin/reset", json!({})).await;
    assert_eq!(status, 200);
    let app = e.app_token().await;
    let v = e.topapi("/topapi/v2/user/get", &app, json!({"userid": "lisi0002"})).await;
    assert_eq!(v["errcode"], 0);
    assert!(e.emu.callback_targets().is_empty());
    r.stop();
    e.running.stop().await;
}

#[tokio::test]
async fn admin_lists_suites() {
    let e = env().await;
    let v: Value = e.http.get(e.url("/_admin/suites")).send().await.unwrap().json().await.unwrap();
    let s = &v[0];
    assert_eq!(s["suite_key"], SUITE_KEY);
    assert_eq!(s["suite_ticket"], e.ticket().as_str());
    assert_eq!(s["authorizations"].as_array().unwrap().len(), 2);
    assert_eq!(s["callback"], Value::Null);
    let (status, v) = e
        .admin(&format!("/_admin/suites/{SUITE_KEY}/authorizations"), json!({"corp_id": CORP2, "agent_id": 400077}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(e.emu.suite_authorizations(SUITE_KEY).unwrap()[1].agent_id, 400077);
    let (status, _) = e
        .admin(&format!("/_admin/suites/{SUITE_KEY}/authorizations"), json!({"corp_id": "dingunknown", "agent_id": 1}))
        .await;
    assert_eq!(status, 400);
    e.running.stop().await;
}

#[test]
fn fixture_without_suites_still_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/org.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("suites");
    v.as_object_mut().unwrap().remove("other_corps");
    let f = Fixture::from_json(&v.to_string()).unwrap();
    assert!(f.suites.is_empty() && f.other_corps.is_empty());
    // A suite authorized by an unknown corp, or with a bad aes_key, is refused.
    let mut bad = Fixture::default();
    bad.suites[0].authorizations[0].corp_id = "dingunknown".to_owned();
    assert!(Fixture::from_json(&serde_json::to_string(&bad).unwrap()).is_err());
    let mut bad = Fixture::default();
    bad.suites[0].aes_key = "tooshort".to_owned();
    assert!(Fixture::from_json(&serde_json::to_string(&bad).unwrap()).is_err());
}

#[test]
fn fixture_callback_url_configures_the_suite_target() {
    let mut fixture = Fixture::default();
    fixture.suites[0].callback_url = Some("http://127.0.0.1:9/cb".to_owned());
    fixture.suites[0].provider_corp_id = Some("dingemuisv0001".to_owned());
    let emu = Emulator::new(EmulatorConfig { fixture, ..EmulatorConfig::default() }).unwrap();
    let check = |emu: &Emulator| {
        let targets = emu.callback_targets();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, SUITE_KEY);
        assert_eq!(targets[0].owner, TargetOwner::Suite);
        assert_eq!(targets[0].owner_key, SUITE_KEY);
        assert_eq!(targets[0].token, SUITE_TOKEN);
    };
    check(&emu);
    let before = emu.suite_ticket(SUITE_KEY).unwrap();
    emu.reset();
    check(&emu);
    assert_ne!(emu.suite_ticket(SUITE_KEY).unwrap(), before, "reset issues new tickets");
}
