//! Cloud-role Feishu / Lark event callback, webhook mode (docs/feishu-api.md §E):
//! `POST /feishu/events`, the request URL registered in the Feishu console (事件与回调).
//!
//! Each push is verified and read by [`FeishuEventCrypto`]; `url_verification` is answered with
//! its challenge (§E.2), contact events of the app's own tenants are appended to the contact-event
//! feed ([`AppendContactEvents`]), so a person who leaves Feishu loses their local sessions like a
//! DingTalk leaver. Other event types, other apps' and other tenants' events are acknowledged and
//! dropped (logged), so Feishu does not retry them.
//!
//! Answers: 200 `{"msg":"success"}` (§E.3) or `{"challenge":…}`; 400 `invalid_payload`, 401
//! `invalid_signature` (signature or verification token), 413 `payload_too_large` — nothing stored
//! in each case; 503 `unavailable` when the feed cannot be written (Feishu retries after 15 s,
//! §E.1); 404 `events_not_configured` without `[feishu] verification_token`.

use std::sync::Arc;

use application::ports::Clock;
use application::usecases::contact_events::AppendContactEvents;
use domain::CorpId;
use salvo::http::{ParseError, StatusCode};
use salvo::prelude::*;
use salvo_oapi::endpoint;
use serde_json::json;
use tracing::{error, info, warn};

use super::error::ApiError;
use crate::inbound::feishu_events::{FeishuEventCrypto, FeishuEventError, FeishuPush, SignatureHeaders};

/// Everything the Feishu event callback needs.
pub struct FeishuEventsHttp {
    /// Verifies and reads pushes.
    pub crypto: FeishuEventCrypto,
    /// The app's `app_id`: events of other apps are dropped.
    pub app_id: String,
    /// The tenants served: events of other tenants are dropped.
    pub tenants: Vec<CorpId>,
    /// Appends contact events to the feed.
    pub append: AppendContactEvents,
    /// Now, for the events' arrival time.
    pub clock: Arc<dyn Clock>,
    /// Largest request body read, in bytes (a larger one is 413).
    pub max_body_bytes: usize,
}

fn invalid_payload(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", message)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Feishu's event push (docs/feishu-api.md §E.2–§E.7): verifies the Verification Token and — with
/// an Encrypt Key — decrypts the body and checks `X-Lark-Signature`; answers a `url_verification`
/// with its challenge and appends contact events (`contact.user.created_v3`, `updated_v3`,
/// `deleted_v3`) of the app's tenants to the contact-event feed, once per `event_id`.
#[endpoint(
    tags("events"),
    parameters(
        ("X-Lark-Request-Timestamp" = Option<String>, Header, description = "The signed timestamp (docs/feishu-api.md §E.5); required for events when an Encrypt Key is configured"),
        ("X-Lark-Request-Nonce" = Option<String>, Header, description = "The signed nonce (§E.5)"),
        ("X-Lark-Signature" = Option<String>, Header, description = "hex(SHA256(timestamp + nonce + encrypt_key ‖ body)) (§E.5)"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{\"encrypt\": \"<base64>\"}` (§E.4), or the plaintext v2.0 event / url_verification without an Encrypt Key"),
    responses(
        (status_code = 200, body = serde_json::Value, description = "`{\"msg\":\"success\"}`, or `{\"challenge\":…}` for a url_verification"),
        (status_code = 400, description = "`invalid_payload`: not an event of §E.2–§E.4 (or a wrong Encrypt Key)", body = crate::inbound::http::error::ErrorBody),
        (status_code = 401, description = "`invalid_signature`: the signature or the verification token does not match", body = crate::inbound::http::error::ErrorBody),
        (status_code = 404, description = "`events_not_configured`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 413, description = "`payload_too_large`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 500, description = "`internal`", body = crate::inbound::http::error::ErrorBody),
        (status_code = 503, description = "`unavailable`: the feed cannot be written; Feishu retries", body = crate::inbound::http::error::ErrorBody),
    )
)]
pub(super) async fn receive_feishu_event(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    match handle(req, depot).await {
        Ok(body) => res.render(Json(body)),
        Err(err) => {
            res.status_code(err.status);
            res.render(Json(err.body));
        }
    }
}

async fn handle(req: &mut Request, depot: &mut Depot) -> Result<serde_json::Value, ApiError> {
    let Ok(http) = depot.get_typed::<Arc<FeishuEventsHttp>>().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "events_not_configured",
            "Feishu event callbacks are not configured on this server ([feishu] verification_token)",
        ));
    };
    let headers = SignatureHeaders {
        timestamp: header(req, "x-lark-request-timestamp"),
        nonce: header(req, "x-lark-request-nonce"),
        signature: header(req, "x-lark-signature"),
    };
    let max = http.max_body_bytes;
    let body = req.payload_with_max_size(max).await.map_err(|err| match err {
        ParseError::PayloadTooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {max} bytes"),
        ),
        other => invalid_payload(format!("the body could not be read: {other}")),
    })?;
    let push = http.crypto.open(&headers, body, http.clock.now()).map_err(|err| {
        warn!(error = %err, "feishu event refused");
        match err {
            FeishuEventError::SignatureMismatch | FeishuEventError::TokenMismatch => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", err.to_string())
            }
            FeishuEventError::NotEncryptable | FeishuEventError::Invalid(_) => invalid_payload(err.to_string()),
        }
    })?;
    match push {
        FeishuPush::UrlVerification { challenge } => {
            info!("feishu url_verification answered");
            Ok(json!({ "challenge": challenge }))
        }
        FeishuPush::Event { event_type, app_id, tenant_key, contact } => {
            let ours = app_id == http.app_id && http.tenants.iter().any(|t| t.as_str() == tenant_key);
            match contact {
                Some(event) if ours => match http.append.execute(std::slice::from_ref(&event)).await {
                    Ok(appended) => info!(%event_type, %tenant_key, appended, "feishu contact event received"),
                    Err(err) => {
                        error!(error = %err, "feishu event: the feed cannot be written");
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "storage is unavailable; the push will be retried",
                        ));
                    }
                },
                Some(_) => warn!(%event_type, %app_id, %tenant_key, "feishu event of another app or tenant dropped"),
                None => info!(%event_type, %tenant_key, "feishu event acknowledged (nothing to apply)"),
            }
            Ok(json!({ "msg": "success" }))
        }
    }
}
