//! Cloud-role DingTalk event callback (API.md §E): `POST /dingtalk/events`
//! (and the seed's `POST /dingding/event/pushed`).
//!
//! The request is `?signature=…&msg_signature=…&timestamp=…&nonce=…` with the
//! JSON body `{"encrypt": "…"}` (§E.2). It is verified and decrypted with the
//! [`CallbackCrypto`] of each configured subscription in turn (internal app:
//! AppKey or corp id; suite: SuiteKey), parsed into events
//! ([`crate::outbound::dingtalk::events`]) and applied by [`HandleEvents`].
//!
//! Answers: 200 with the encrypted `success` reply (§E.5) whenever the push is
//! genuine — also for unknown events and for SyncHTTP batches with a bad item
//! (which is logged); 400 `invalid_payload`, 401 `invalid_signature`, 403
//! `invalid_signature` (owner key mismatch) or `stale_timestamp`, 409
//! `replayed_nonce` — nothing stored in each case; 503 `unavailable` when
//! storage fails (DingTalk retries); 404 `events_not_configured` when no
//! `[events]` section is configured.

use std::sync::Arc;

use application::ports::Clock;
use application::usecases::events::{EventsError, HandleEvents};
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo_oapi::{ToSchema, endpoint};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::error::ApiError;
use super::extract::MAX_BODY_BYTES;
use super::middleware::Inject;
use crate::outbound::dingtalk::crypto::{CallbackCrypto, CallbackQuery, CallbackReply, CryptoError};
use crate::outbound::dingtalk::events::parse_events;

/// Everything the event callback needs.
pub struct EventsHttp {
    /// Applies verified events.
    pub handle_events: HandleEvents,
    /// One crypto per subscription (owner key); tried in order until one verifies.
    pub cryptos: Vec<CallbackCrypto>,
    /// Now, for the timestamp window and the reply.
    pub clock: Arc<dyn Clock>,
}

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

/// The callback body (API.md §E.2).
#[derive(Deserialize)]
struct EncryptedBody {
    encrypt: String,
}

/// The reply of API.md §E.5: `encrypt` is the encrypted `success`.
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

/// DingTalk's event push (API.md §E.2–§E.6). Verifies the signature, the timestamp window and
/// the owner key, refuses a replayed nonce, applies the events, and answers the encrypted
/// `success` (§E.5).
#[endpoint(
    tags("events"),
    parameters(
        ("signature" = Option<String>, Query, description = "SHA-1 signature (documented name)"),
        ("msg_signature" = Option<String>, Query, description = "SHA-1 signature (newer name)"),
        ("timestamp" = String, Query, description = "Epoch ms (or s)"),
        ("nonce" = String, Query, description = "Nonce"),
    ),
    responses(
        (status_code = 200, body = EventReply, description = "Encrypted `success`"),
        (status_code = 400, description = "`invalid_payload`"),
        (status_code = 401, description = "`invalid_signature`"),
        (status_code = 403, description = "`stale_timestamp` or `invalid_signature` (owner key)"),
        (status_code = 404, description = "`events_not_configured`"),
        (status_code = 409, description = "`replayed_nonce`"),
        (status_code = 503, description = "Storage unavailable; DingTalk retries"),
    )
)]
async fn receive_event(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    match handle(req, depot).await {
        Ok(reply) => res.render(Json(reply)),
        Err(err) => {
            res.status_code(err.status);
            res.render(Json(err.body));
        }
    }
}

async fn handle(req: &mut Request, depot: &mut Depot) -> Result<EventReply, ApiError> {
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
    let bytes = req
        .payload_with_max_size(MAX_BODY_BYTES)
        .await
        .map_err(|e| invalid_payload(format!("the body could not be read: {e}")))?;
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
    let kinds: Vec<String> = parsed.iter().map(|e| e.kind().to_owned()).collect();
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
