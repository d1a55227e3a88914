//! Cloud-role DingTalk event callback (docs/dingtalk-api.md §E): `POST /dingtalk/events`
//! (and the seed's `POST /dingding/event/pushed`).
//!
//! The request is `?signature=…&msg_signature=…&timestamp=…&nonce=…` with the
//! JSON body `{"encrypt": "…"}` (§E.2). It is verified and decrypted with the
//! [`CallbackCrypto`] of each configured subscription in turn (internal app:
//! AppKey or corp id; suite: SuiteKey), parsed into events
//! ([`crate::inbound::dingtalk_events::parse`]) and applied by [`HandleEvents`].
//!
//! Answers: 200 with the encrypted `success` reply (§E.5) whenever the push is
//! genuine — also for unknown events and for SyncHTTP batches with a bad item
//! (which is logged); 400 `invalid_payload`, 401 `invalid_signature`, 403
//! `invalid_signature` (owner key mismatch) or `stale_timestamp`, 409
//! `replayed_nonce`, 413 `payload_too_large` (body over
//! [`EventsHttp::max_body_bytes`], default 1 MiB) — nothing stored in each
//! case; 503 `unavailable` when storage fails (DingTalk retries); 404
//! `events_not_configured` when no `[events]` section is configured.

use std::sync::Arc;

use crate::inbound::dingtalk_events::{EventsError, HandleEvents};
use application::ports::Clock;
use salvo::http::{ParseError, StatusCode};
use salvo::prelude::*;
use salvo_oapi::{ToSchema, endpoint};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::error::ApiError;
use super::middleware::Inject;
use crate::inbound::dingtalk_events::crypto::{CallbackCrypto, CallbackQuery, CallbackReply, CryptoError};
use crate::inbound::dingtalk_events::parse::parse_events;

/// Everything the event callback needs.
pub struct EventsHttp {
    /// Applies verified events.
    pub handle_events: HandleEvents,
    /// One crypto per subscription (owner key); tried in order until one verifies.
    pub cryptos: Vec<CallbackCrypto>,
    /// Now, for the timestamp window and the reply.
    pub clock: Arc<dyn Clock>,
    /// Largest request body read, in bytes (config `events.max_body_bytes`, default
    /// [`DEFAULT_MAX_BODY_BYTES`]); a larger one is answered 413 `payload_too_large` before
    /// anything is verified or stored.
    pub max_body_bytes: usize,
}

/// Default of [`EventsHttp::max_body_bytes`]: 1 MiB. A genuine push (docs/dingtalk-api.md §E.2)
/// can exceed 100 KB — a SyncHTTP batch (§E.6) carries many items — and the base64 of §E.4 adds
/// a third, so the 64 KiB limit of the JSON API ([`super::extract::MAX_BODY_BYTES`]) is too small.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The event routes. Without `events` they answer 404 `events_not_configured`.
pub fn routes(events: Option<Arc<EventsHttp>>) -> Router {
    let router = match events {
        Some(events) => Router::new().hoop(Inject(events)),
        None => Router::new(),
    };
    router
        .push(Router::with_path("dingtalk/events").post(receive_event))
        .push(Router::with_path("dingding/event/pushed").post(receive_event))
}

/// The callback body (docs/dingtalk-api.md §E.2).
#[derive(Deserialize, ToSchema)]
struct EncryptedBody {
    /// The encrypted event: base64 of AES-256-CBC (docs/dingtalk-api.md §E.4).
    encrypt: String,
}

/// The reply of docs/dingtalk-api.md §E.5: `encrypt` is the encrypted `success`.
#[derive(Serialize, ToSchema)]
struct EventReply {
    /// SHA-1 signature over token, `timeStamp`, `nonce`, `encrypt`.
    msg_signature: String,
    /// The signed timestamp.
    #[serde(rename = "timeStamp")]
    time_stamp: String,
    /// The signed nonce.
    nonce: String,
    /// The encrypted `success`.
    encrypt: String,
}

impl From<CallbackReply> for EventReply {
    fn from(r: CallbackReply) -> Self {
        Self { msg_signature: r.msg_signature, time_stamp: r.timestamp, nonce: r.nonce, encrypt: r.encrypt }
    }
}

fn invalid_payload(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", message)
}

/// Maps a crypto rejection to a clean 4xx (never a 500 for bad input).
fn crypto_error(err: CryptoError) -> ApiError {
    match err {
        CryptoError::SignatureMismatch => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", "the callback signature does not verify")
        }
        CryptoError::OwnerMismatch => ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the callback is addressed to another owner key (AppKey, corp id or SuiteKey)",
        ),
        CryptoError::StaleTimestamp => ApiError::new(
            StatusCode::FORBIDDEN,
            "stale_timestamp",
            "the callback timestamp is outside the accepted window",
        ),
        CryptoError::MissingParameter(_)
        | CryptoError::InvalidParameter(_)
        | CryptoError::InvalidBase64
        | CryptoError::InvalidLength
        | CryptoError::InvalidPadding
        | CryptoError::InvalidLayout
        | CryptoError::NotUtf8 => invalid_payload(err.to_string()),
        CryptoError::InvalidConfig(_) => ApiError::internal(err),
    }
}

/// Tries each crypto; the first that verifies wins. Otherwise the most telling error: one from a
/// crypto whose signature matched (stale timestamp, owner mismatch, bad ciphertext) beats a
/// signature mismatch.
fn verify<'a>(
    cryptos: &'a [CallbackCrypto],
    query: &CallbackQuery,
    encrypt: &str,
    now_ms: i64,
) -> Result<(&'a CallbackCrypto, String), CryptoError> {
    let mut best = CryptoError::SignatureMismatch;
    for crypto in cryptos {
        match crypto.verify_and_decrypt(query, encrypt, now_ms) {
            Ok(msg) => return Ok((crypto, msg)),
            Err(CryptoError::SignatureMismatch) => {}
            Err(other) => best = other,
        }
    }
    Err(best)
}

/// DingTalk's event push (docs/dingtalk-api.md §E.2–§E.6). Verifies the signature, the timestamp window and
/// the owner key, refuses a replayed nonce, applies the events, and answers the encrypted
/// `success` (§E.5).
#[endpoint(
    tags("events"),
    parameters(
        ("signature" = Option<String>, Query, pattern = "^[0-9a-f]{40}$", description = "SHA-1 signature, 40 lower-case hex characters (docs/dingtalk-api.md §E.2, §E.3); `signature` or `msg_signature` is required, and both must agree"),
        ("msg_signature" = Option<String>, Query, pattern = "^[0-9a-f]{40}$", description = "The same signature under its newer name"),
        ("timestamp" = String, Query, pattern = "^[0-9]{1,18}$", description = "The signed timestamp, epoch ms (or s); outside the accepted window: 403 `stale_timestamp`"),
        ("nonce" = String, Query, min_length = 1, max_length = 64, description = "The signed nonce, 1–64 characters; each is accepted once within the window (409 `replayed_nonce`)"),
    ),
    request_body(
        content = EncryptedBody,
        content_type = "application/json",
        description = "DingTalk's push (docs/dingtalk-api.md §E.2): the encrypted event"
    ),
    responses(
        (status_code = 200, body = EventReply, description = "The encrypted `success` (docs/dingtalk-api.md §E.5)"),
        (status_code = 400, description = "`invalid_payload`: a missing or malformed parameter or body", body = crate::inbound::http::error::ErrorBody),
        (status_code = 401, description = "`invalid_signature`: the signature does not verify", body = crate::inbound::http::error::ErrorBody),
        (status_code = 403, description = "`stale_timestamp`, or `invalid_signature` (addressed to another owner key)", body = crate::inbound::http::error::ErrorBody),
        (status_code = 404, description = "`events_not_configured`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 409, description = "`replayed_nonce`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 413, description = "`payload_too_large`: the body is over `events.max_body_bytes`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 500, description = "`internal`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 503, description = "`unavailable`: storage is unavailable; DingTalk retries", body = crate::inbound::http::error::ErrorBody),
    )
)]
async fn receive_event(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let mut kinds = Vec::new();
    let outcome = handle(req, depot, &mut kinds).await;
    let code = outcome.as_ref().err().map_or("ok", |err| err.body.code.as_str());
    if kinds.is_empty() {
        crate::metrics::event_push(None, code);
    }
    for kind in &kinds {
        crate::metrics::event_push(Some(kind), code);
    }
    match outcome {
        Ok(reply) => res.render(Json(reply)),
        Err(err) => {
            res.status_code(err.status);
            res.render(Json(err.body));
        }
    }
}

/// Verifies, decrypts and handles one push; `kinds` receives the event types read from it (for
/// `dingbridge_event_pushes_total`), empty when it could not be decrypted.
async fn handle(req: &mut Request, depot: &mut Depot, kinds: &mut Vec<String>) -> Result<EventReply, ApiError> {
    let Ok(events) = depot.get_typed::<Arc<EventsHttp>>().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "events_not_configured",
            "DingTalk event callbacks are not configured on this server ([events] token, aes_key, owner_key)",
        ));
    };
    let query = CallbackQuery {
        signature: req.query::<String>("signature"),
        msg_signature: req.query::<String>("msg_signature"),
        timestamp: req.query::<String>("timestamp"),
        nonce: req.query::<String>("nonce"),
    };
    let max = events.max_body_bytes;
    let bytes = req.payload_with_max_size(max).await.map_err(|err| match err {
        ParseError::PayloadTooLarge => {
            warn!(max_body_bytes = max, "event callback refused: body too large");
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {max} bytes (events.max_body_bytes)"),
            )
        }
        other => invalid_payload(format!("the body could not be read: {other}")),
    })?;
    let body: EncryptedBody = serde_json::from_slice(bytes)
        .map_err(|_| invalid_payload("the body must be JSON {\"encrypt\": \"<base64>\"}"))?;
    let now_ms = events.clock.now().as_millis();
    let (crypto, plaintext) = verify(&events.cryptos, &query, &body.encrypt, now_ms).map_err(|err| {
        warn!(error = %err, "event callback refused");
        crypto_error(err)
    })?;
    let owner = crypto.owner_key();
    let replay_key = crypto.replay_key(&query).ok_or_else(|| invalid_payload("missing callback parameter: nonce"))?;
    let mut parsed = Vec::new();
    for entry in parse_events(&plaintext, owner) {
        match entry {
            Ok(event) => parsed.push(event),
            Err(problem) => warn!(%owner, %problem, "event skipped: it could not be read"),
        }
    }
    kinds.extend(parsed.iter().map(|e| e.kind().to_owned()));
    match events.handle_events.execute(owner, &replay_key, parsed).await {
        Ok(summary) => {
            info!(%owner, events = ?kinds, applied = summary.applied, duplicates = summary.duplicates, ignored = summary.ignored, "event callback handled");
            Ok(crypto.success_reply(now_ms).into())
        }
        Err(EventsError::Replayed) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed_nonce",
            "this callback nonce was already used within the window",
        )),
        Err(EventsError::Store(err)) => {
            error!(error = %err, "event callback: storage failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; the push will be retried",
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use application::ports::{MockClock, MockEventStore, MockSuiteStore, StoreError};
    use domain::Timestamp;
    use salvo::test::{ResponseExt, TestClient};
    use serde_json::{Value, json};

    use super::*;

    const NOW_MS: i64 = 1_750_000_000_000;
    const TOKEN: &str = "token123";
    const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
    const SUITE: &str = "suitekey1";
    const APP: &str = "dingappkey";

    fn crypto(owner: &str) -> CallbackCrypto {
        CallbackCrypto::new(TOKEN, AES_KEY, owner).unwrap()
    }

    fn service(suites: MockSuiteStore, events: Option<MockEventStore>) -> Service {
        service_with_limit(suites, events, DEFAULT_MAX_BODY_BYTES)
    }

    fn service_with_limit(suites: MockSuiteStore, events: Option<MockEventStore>, max_body_bytes: usize) -> Service {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::from_millis(NOW_MS));
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let http = events.map(|events| {
            Arc::new(EventsHttp {
                handle_events: HandleEvents::new(Arc::new(suites), Arc::new(events), clock.clone(), 600),
                cryptos: vec![crypto(APP), crypto(SUITE)],
                clock,
                max_body_bytes,
            })
        });
        Service::new(Router::new().push(routes(http)))
    }

    fn nonce_ok(times: usize) -> MockEventStore {
        let mut events = MockEventStore::new();
        events.expect_remember_nonce().times(times).returning(|_, _, _, _| Ok(true));
        events
    }

    /// Posts `event` encrypted for `owner`, signed at `ts`, optionally tampering the signature.
    async fn push(service: &Service, owner: &str, event: &Value, ts: i64, tamper: bool) -> (u16, Value) {
        push_encrypted(service, owner, crypto(owner).encrypt(&event.to_string()), ts, tamper).await
    }

    /// Posts `encrypt` as is, signed at `ts` for `owner`, optionally tampering the signature.
    async fn push_encrypted(service: &Service, owner: &str, encrypt: String, ts: i64, tamper: bool) -> (u16, Value) {
        let c = crypto(owner);
        let mut signature = c.signature(&ts.to_string(), "n0nce", &encrypt);
        if tamper {
            signature = "0".repeat(40);
        }
        let url = format!(
            "http://127.0.0.1/dingtalk/events?signature={signature}&msg_signature={signature}&timestamp={ts}&nonce=n0nce"
        );
        let mut res = TestClient::post(url).json(&json!({"encrypt": encrypt})).send(service).await;
        let status = res.status_code.map(|s| s.as_u16()).unwrap_or(0);
        let body: Value = res.take_json().await.unwrap_or(Value::Null);
        (status, body)
    }

    fn assert_success(body: &Value, owner: &str) {
        let c = crypto(owner);
        let encrypt = body["encrypt"].as_str().unwrap();
        let ts = body["timeStamp"].as_str().unwrap();
        let nonce = body["nonce"].as_str().unwrap();
        assert_eq!(body["msg_signature"].as_str().unwrap(), c.signature(ts, nonce, encrypt));
        assert_eq!(c.decrypt(encrypt).unwrap(), "success");
    }

    #[tokio::test]
    async fn a_suite_ticket_is_stored_and_answered_with_success() {
        let mut suites = MockSuiteStore::new();
        suites.expect_put_ticket().withf(|k, t, _| k == SUITE && t == "tk").times(1).returning(|_, _, _| Ok(()));
        let service = service(suites, Some(nonce_ok(1)));
        let event = json!({"EventType": "suite_ticket", "SuiteKey": SUITE, "SuiteTicket": "tk"});
        let (status, body) = push(&service, SUITE, &event, NOW_MS, false).await;
        assert_eq!(status, 200);
        assert_success(&body, SUITE);
    }

    #[tokio::test]
    async fn unknown_events_and_bad_batch_items_still_get_success() {
        let service = service(MockSuiteStore::new(), Some(nonce_ok(2)));
        let (status, body) = push(&service, APP, &json!({"EventType": "bpms_task_change"}), NOW_MS, false).await;
        assert_eq!(status, 200);
        assert_success(&body, APP);
        let batch = json!({"EventType": "SYNC_HTTP_PUSH_HIGH", "bizData": [{"biz_type": 2, "biz_data": "{bad"}]});
        let (status, _) = push(&service, APP, &batch, NOW_MS, false).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn bad_requests_are_clean_4xx_and_store_nothing() {
        // No expectations: any store call would panic.
        let service = service(MockSuiteStore::new(), Some(MockEventStore::new()));
        let event = json!({"EventType": "check_url"});
        let (status, body) = push(&service, APP, &event, NOW_MS, true).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")));
        let (status, body) = push(&service, APP, &event, NOW_MS - 3_600_000, false).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("stale_timestamp")));
        let (status, body) = push(&service, "someoneelse", &event, NOW_MS, false).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("invalid_signature")));
        let mut res = TestClient::post("http://127.0.0.1/dingtalk/events?signature=x&timestamp=1&nonce=n")
            .raw_json("{not json")
            .send(&service)
            .await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(400));
        let body: Value = res.take_json().await.unwrap();
        assert_eq!(body["code"], "invalid_payload");
        let res =
            TestClient::post("http://127.0.0.1/dingtalk/events").json(&json!({"encrypt": "abc"})).send(&service).await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(400));
    }

    #[tokio::test]
    async fn a_replayed_nonce_is_409_and_a_store_failure_503() {
        let mut events = MockEventStore::new();
        events.expect_remember_nonce().times(1).returning(|_, _, _, _| Ok(false));
        let service1 = service(MockSuiteStore::new(), Some(events));
        let (status, body) = push(&service1, APP, &json!({"EventType": "check_url"}), NOW_MS, false).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("replayed_nonce")));
        let mut events = MockEventStore::new();
        events.expect_remember_nonce().times(1).returning(|_, _, _, _| Err(StoreError::Other("disk".into())));
        let service2 = service(MockSuiteStore::new(), Some(events));
        let (status, _) = push(&service2, APP, &json!({"EventType": "check_url"}), NOW_MS, false).await;
        assert_eq!(status, 503);
    }

    #[tokio::test]
    async fn the_seed_alias_works_and_unconfigured_is_404() {
        let service1 = service(MockSuiteStore::new(), None);
        let mut res =
            TestClient::post("http://127.0.0.1/dingtalk/events").json(&json!({"encrypt": "x"})).send(&service1).await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(404));
        let body: Value = res.take_json().await.unwrap();
        assert_eq!(body["code"], "events_not_configured");
        let service2 = service(MockSuiteStore::new(), Some(nonce_ok(1)));
        let c = crypto(APP);
        let encrypt = c.encrypt("{\"EventType\":\"check_url\"}");
        let sig = c.signature(&NOW_MS.to_string(), "abc", &encrypt);
        let res = TestClient::post(format!(
            "http://127.0.0.1/dingding/event/pushed?msg_signature={sig}&timestamp={NOW_MS}&nonce=abc"
        ))
        .json(&json!({"encrypt": encrypt}))
        .send(&service2)
        .await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(200));
    }

    /// A SyncHTTP batch (docs/dingtalk-api.md §E.6) of `items` user/department changes
    /// (`biz_type` 13/14, acknowledged and not applied): about 250 bytes of JSON per item.
    fn sync_batch(items: usize) -> Value {
        let biz: Vec<Value> = (0..items)
            .map(|i| {
                let data = json!({"syncAction": "user_modify_org", "userid": format!("user{i:06}"), "name": "成员", "dept_id_list": [1, 2, 3]});
                json!({
                    "gmt_create": 1_750_000_000_000_i64, "biz_type": 13 + (i % 2), "open_cursor": 0,
                    "subscribe_id": "sub-0001", "id": i, "gmt_modified": 1_750_000_000_000_i64,
                    "biz_id": format!("user{i:06}"), "biz_data": data.to_string(), "corp_id": "dingcorp0001", "status": 0,
                })
            })
            .collect();
        json!({"EventType": "SYNC_HTTP_PUSH_HIGH", "bizData": biz})
    }

    #[tokio::test]
    async fn a_genuine_push_of_about_100_kb_is_accepted() {
        let event = sync_batch(420);
        let plaintext = event.to_string();
        assert!((100_000..140_000).contains(&plaintext.len()), "{}", plaintext.len());
        let encrypt = crypto(SUITE).encrypt(&plaintext);
        assert!(encrypt.len() > 128 * 1024, "over the old 64 KiB limit twice: {}", encrypt.len());
        let service = service(MockSuiteStore::new(), Some(nonce_ok(1)));
        let (status, body) = push_encrypted(&service, SUITE, encrypt, NOW_MS, false).await;
        assert_eq!(status, 200, "{body}");
        assert_success(&body, SUITE);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_and_stores_nothing() {
        // No expectations: any store call would panic.
        let service1 = service(MockSuiteStore::new(), Some(MockEventStore::new()));
        let padding = "A".repeat(DEFAULT_MAX_BODY_BYTES);
        let mut res =
            TestClient::post(format!("http://127.0.0.1/dingtalk/events?signature=x&timestamp={NOW_MS}&nonce=n"))
                .raw_json(format!("{{\"encrypt\":\"{padding}\"}}"))
                .send(&service1)
                .await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(413));
        let body: Value = res.take_json().await.unwrap();
        assert_eq!(body["code"], "payload_too_large");
        assert!(body["message"].as_str().unwrap().contains("events.max_body_bytes"), "{body}");

        // A configured smaller limit refuses a genuine, correctly signed push, on the alias too.
        let service2 = service_with_limit(MockSuiteStore::new(), Some(MockEventStore::new()), 64 * 1024);
        let encrypt = crypto(SUITE).encrypt(&sync_batch(420).to_string());
        let (status, body) = push_encrypted(&service2, SUITE, encrypt.clone(), NOW_MS, false).await;
        assert_eq!((status, body["code"].as_str()), (413, Some("payload_too_large")));
        let sig = crypto(SUITE).signature(&NOW_MS.to_string(), "n1", &encrypt);
        let res = TestClient::post(format!(
            "http://127.0.0.1/dingding/event/pushed?signature={sig}&timestamp={NOW_MS}&nonce=n1"
        ))
        .json(&json!({"encrypt": encrypt}))
        .send(&service2)
        .await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(413));
    }

    #[tokio::test]
    async fn mime_base64_with_line_breaks_is_accepted_when_signed_as_sent() {
        let lenient = service(MockSuiteStore::new(), Some(nonce_ok(1)));
        let c = crypto(APP);
        let compact = c.encrypt(&json!({"EventType": "check_url", "pad": "p".repeat(300)}).to_string());
        // Python's base64.encodebytes: a "\n" after every 76 characters and at the end.
        let wrapped: String =
            compact.as_bytes().chunks(76).map(|chunk| String::from_utf8_lossy(chunk).into_owned() + "\n").collect();
        assert!(wrapped.matches('\n').count() >= 5);
        let (status, body) = push_encrypted(&lenient, APP, wrapped.clone(), NOW_MS, false).await;
        assert_eq!(status, 200, "{body}");
        assert_success(&body, APP);

        // Signed over the stripped text but sent wrapped: the signature covers `encrypt` as sent.
        let strict = service(MockSuiteStore::new(), Some(MockEventStore::new()));
        let sig = c.signature(&NOW_MS.to_string(), "n2", &compact);
        let mut res =
            TestClient::post(format!("http://127.0.0.1/dingtalk/events?signature={sig}&timestamp={NOW_MS}&nonce=n2"))
                .json(&json!({"encrypt": wrapped}))
                .send(&strict)
                .await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(401));
        let body: Value = res.take_json().await.unwrap();
        assert_eq!(body["code"], "invalid_signature");

        // Whitespace is the only exception: another stray character is still a 400.
        let bad = format!("{}-{}", &wrapped[..10], &wrapped[10..]);
        let (status, body) = push_encrypted(&strict, APP, bad, NOW_MS, false).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_payload")));
    }
}
