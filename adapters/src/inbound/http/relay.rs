//! Cloud-role relay API v1 (`/relay/v1/...`): what local deployments call,
//! outbound, as relay clients authenticated with HTTP Basic. Bodies are in
//! [`crate::relay_api`].
//!
//! A client only ever sees its own logins and messages (another client's are
//! 404) and the contact events of its own corps, may act only for its own
//! corps (403) and may only use its own `complete_url` origins (403). Repeated bad credentials from one address are
//! rate-limited (429 `rate_limited` with `Retry-After`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use application::ports::{MemberKey, RelayClient, RelaySendRequest};
use application::usecases::cloud::{
    CreateLoginIntent, FetchMember, RelayRecall, RelaySend, RelayStatus, TakeLoginResult,
};
use application::usecases::feed::{DEFAULT_LIMIT, FeedQuery, ReadContactFeed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::{CorpId, LoginState, MessageBody, ProviderKey, Recipients, UnionId, UserId, ValidationError};
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo_oapi::endpoint;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::extract::read_json;
use super::middleware::Inject;
use crate::relay_api::{
    ContactFeedDto, LoginIntentRequest, LoginIntentResponse, LoginResultResponse, MemberDto, RelayMessageRequest,
    RelayReceiptDto, RelayStatusDto,
};

/// A relay client as the cloud knows it: who it is, its secret, what it may do.
pub struct RelayClientCredentials {
    /// Id, corps and origins.
    pub client: RelayClient,
    /// The HTTP Basic password.
    pub secret: SecretString,
}

/// Failed-authentication budget per remote address.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimit {
    /// Failures allowed per window.
    pub max_failures: u32,
    /// The window (and the lock-out once exceeded).
    pub window: Duration,
}

impl Default for AuthLimit {
    fn default() -> Self {
        Self { max_failures: 10, window: Duration::from_secs(60) }
    }
}

/// Counts authentication failures per remote address in fixed windows.
pub struct AuthLimiter {
    limit: AuthLimit,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthLimiter {
    /// A limiter with `limit`.
    pub fn new(limit: AuthLimit) -> Self {
        Self { limit, failures: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `ip` may try again, when it is locked out.
    fn locked_for(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let (count, since) = failures.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= self.limit.max_failures && elapsed < self.limit.window)
            .then(|| (self.limit.window - elapsed).as_secs().max(1))
    }

    fn record_failure(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 10_000 {
                let window = self.limit.window;
                failures.retain(|_, (_, since)| since.elapsed() < window);
            }
            let entry = failures.entry(ip).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= self.limit.window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }
}

/// Everything the relay routes need.
pub struct RelayHttp {
    /// Configured relay clients.
    pub clients: Vec<RelayClientCredentials>,
    /// Bad-credential rate limiting.
    pub limiter: AuthLimiter,
    /// Login intents.
    pub create_intent: CreateLoginIntent,
    /// Login results.
    pub take_result: TakeLoginResult,
    /// Accepting messages (the background sender shares it: [`application::usecases::cloud::DeliverRelayed`]).
    pub send: Arc<RelaySend>,
    /// Delivery reports.
    pub status: RelayStatus,
    /// Recall.
    pub recall: RelayRecall,
    /// Member look-up.
    pub fetch_member: FetchMember,
    /// The contact-event feed (long-poll).
    pub read_feed: ReadContactFeed,
}

/// The relay routes under `/relay/v1`.
pub fn routes(relay: Arc<RelayHttp>) -> Router {
    Router::with_path("relay/v1")
        .hoop(Inject(relay))
        .hoop(authenticate)
        .push(Router::with_path("logins").post(create_login).push(Router::with_path("{state}").get(take_login)))
        .push(Router::with_path("messages").post(send_message).push(
            Router::with_path("{key}").get(message_status).push(Router::with_path("recall").post(recall_message)),
        ))
        .push(Router::with_path("members").get(get_member))
        .push(Router::with_path("events").get(contact_events))
}

fn relay(depot: &Depot) -> Result<Arc<RelayHttp>, ApiError> {
    depot.get_typed::<Arc<RelayHttp>>().cloned().map_err(|_| ApiError::internal("relay state missing from depot"))
}

fn client(depot: &Depot) -> Result<RelayClient, ApiError> {
    depot.get_typed::<RelayClient>().cloned().map_err(|_| ApiError::internal("relay client missing from depot"))
}

fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let header = req.header::<String>("authorization")?;
    // The scheme name is case-insensitive (RFC 7235 §2.1).
    let (scheme, encoded) = header.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// HTTP Basic against the configured relay clients (constant-time secret
/// comparison); puts the [`RelayClient`] into the depot.
#[handler]
async fn authenticate(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let relay = match relay(depot) {
        Ok(relay) => relay,
        Err(err) => {
            err.write(req, depot, res).await;
            return ctrl.skip_rest();
        }
    };
    let ip = req.remote_addr().clone().into_std().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(wait) = relay.limiter.locked_for(ip) {
        let _ = res.add_header("retry-after", wait.to_string(), true);
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many failed authentications; wait and retry")
            .write(req, depot, res)
            .await;
        return ctrl.skip_rest();
    }
    let matched = basic_credentials(req).and_then(|(id, secret)| {
        let known = relay.clients.iter().find(|c| c.client.id == id);
        // Compare even for unknown ids, so timing does not reveal which ids exist.
        let expected = known.map(|c| c.secret.expose_secret().as_bytes()).unwrap_or(b"-unknown-relay-client-");
        let same = bool::from(expected.ct_eq(secret.as_bytes()));
        known.filter(|_| same).map(|c| c.client.clone())
    });
    match matched {
        Some(client) => {
            depot.insert_typed(client);
        }
        None => {
            relay.limiter.record_failure(ip);
            tracing::warn!(%ip, "relay authentication failed");
            let _ = res.add_header("www-authenticate", "Basic realm=\"dingbridge relay\"", true);
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "relay client id or secret is wrong")
                .write(req, depot, res)
                .await;
            ctrl.skip_rest();
        }
    }
}

/// Registers a login intent for this relay client with the provider `provider` (default
/// `dingtalk`); answers that provider's authorize URL (201). 403 `forbidden` when `complete_url`
/// is outside the client's origins; 404 `unknown_provider` when the cloud serves no such provider.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    request_body(content = LoginIntentRequest, content_type = "application/json"),
    status_codes(201, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
    responses((status_code = 201, body = LoginIntentResponse))
)]
async fn create_login(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let input: LoginIntentRequest = read_json(req).await?;
    let state = LoginState::parse(&input.state)
        .map_err(|e| ApiError::validation(&ValidationError::new("state", e.code, e.message)))?;
    let provider = ProviderKey::parse(&input.provider).map_err(|e| ApiError::validation(&e))?;
    let authorize_url = relay.create_intent.execute(&client, &provider, &state, &input.complete_url).await?;
    res.status_code(StatusCode::CREATED);
    res.render(Json(LoginIntentResponse { authorize_url }));
    Ok(())
}

/// Takes (single use) the outcome of this client's login with `state`. 404 when unknown, expired,
/// already taken or another client's.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    parameters(("state" = crate::inbound::http::dto::LoginStateString, Path, description = "The login state")),
    status_codes(200, 401, 404, 429, 500, 503),
    responses((status_code = 200, body = LoginResultResponse))
)]
async fn take_login(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let state = LoginState::parse(&req.param::<String>("state").unwrap_or_default())
        .map_err(|_| ApiError::not_found("login result"))?;
    let outcome = relay.take_result.execute(&client, &state).await?;
    res.render(Json(LoginResultResponse::from(&outcome)));
    Ok(())
}

fn parse_key(raw: &str) -> Result<String, ApiError> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::validation(&ValidationError::new(
            "key",
            "invalid",
            "key must be 1–128 printable ASCII characters",
        )));
    }
    Ok(key.to_owned())
}

/// Accepts a work notification: one durable write and the record's receipt (`accepted`, with
/// `waiting` saying why it is not sent yet); the cloud's background sender makes the DingTalk
/// calls, paced. Idempotent on `key`: a repeated key returns the existing record (with its task
/// ids once sent) and never sends a batch twice; the same key with a different message is 409.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    request_body(content = RelayMessageRequest, content_type = "application/json"),
    status_codes(200, 400, 401, 403, 409, 413, 415, 422, 429, 500, 502, 503),
    responses((status_code = 200, body = RelayReceiptDto))
)]
async fn send_message(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let input: RelayMessageRequest = read_json(req).await?;
    let key = parse_key(&input.key)?;
    let corp_id = CorpId::parse(&input.corp_id)?;
    let recipients = Recipients::try_from(input.recipients)?;
    let body = MessageBody::parse(&input.body)?;
    // Accepting checks the body by the tenant's provider's rules, then is one durable write; the
    // background sender makes the provider's calls.
    let request = RelaySendRequest { key, corp_id, recipients, body };
    let receipt = relay.send.accept(&client, &request).await?;
    res.render(Json(RelayReceiptDto::from(&receipt)));
    Ok(())
}

/// The record and DingTalk's per-recipient report of this client's message. 404 when unknown.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    parameters(("key" = crate::inbound::http::dto::KeyString, Path, description = "The message's idempotency key")),
    status_codes(200, 401, 404, 422, 429, 500, 502, 503),
    responses((status_code = 200, body = RelayStatusDto))
)]
async fn message_status(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let key = parse_key(&req.param::<String>("key").unwrap_or_default())?;
    let (receipt, report) = relay.status.execute(&client, &key).await?;
    res.render(Json(RelayStatusDto::new(&receipt, &report)));
    Ok(())
}

/// Recalls this client's message (DingTalk allows 24 h; later → 502 `upstream_refused`).
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    parameters(("key" = crate::inbound::http::dto::KeyString, Path, description = "The message's idempotency key")),
    status_codes(200, 401, 404, 409, 422, 429, 500, 502, 503),
    responses((status_code = 200, body = RelayReceiptDto))
)]
async fn recall_message(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let key = parse_key(&req.param::<String>("key").unwrap_or_default())?;
    let receipt = relay.recall.execute(&client, &key).await?;
    res.render(Json(RelayReceiptDto::from(&receipt)));
    Ok(())
}

/// A member's current profile from DingTalk, by `userid` or `union_id` (exactly one).
/// 403 for a corp outside the client's list; 404 `not_member`.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    parameters(
        ("corp_id" = crate::inbound::http::dto::CorpIdString, Query, description = "Corp id (one of the relay client's)"),
        ("userid" = Option<crate::inbound::http::dto::DingTalkIdString>, Query, description = "DingTalk userid (give exactly one of `userid` and `union_id`)"),
        ("union_id" = Option<crate::inbound::http::dto::DingTalkIdString>, Query, description = "unionId (give exactly one of `userid` and `union_id`)"),
    ),
    status_codes(200, 401, 403, 404, 422, 429, 500, 502, 503),
    responses((status_code = 200, body = MemberDto))
)]
async fn get_member(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let corp_id = CorpId::parse(&req.query::<String>("corp_id").unwrap_or_default())?;
    let key = match (req.query::<String>("userid"), req.query::<String>("union_id")) {
        (Some(userid), None) => MemberKey::UserId(UserId::parse(&userid)?),
        (None, Some(union_id)) => MemberKey::UnionId(UnionId::parse(&union_id)?),
        _ => {
            return Err(ApiError::validation(&ValidationError::new(
                "userid",
                "required",
                "give exactly one of userid or union_id",
            )));
        }
    };
    let profile = relay.fetch_member.execute(&client, &corp_id, &key).await?;
    res.render(Json(MemberDto::from(&profile)));
    Ok(())
}

/// The whole-number query parameter `name`, or `default` when absent. 422 naming the field when
/// it is not a whole number.
fn query_number(req: &Request, name: &str, default: i64) -> Result<i64, ApiError> {
    match req.query::<String>(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse::<i64>().map_err(|_| ApiError::validation(&FeedQuery::invalid(name))),
    }
}

/// Long-polls the contact-event feed of this client's corps: the events with `cursor > after`, in
/// cursor order, at most `limit`; when there are none yet, waits up to `wait` seconds for one
/// (answering as soon as it is appended) and then answers what there is, possibly nothing. Pass
/// the answer's `next` as the next `after`. Events of corps outside the client's list are never
/// returned. 422 `validation_failed` naming `after`, `wait` or `limit` when out of range.
#[endpoint(
    tags("relay"),
    security(("relay_client" = [])),
    parameters(
        ("after" = Option<i64>, Query, minimum = 0, description = "Cursor: only events after it (default 0)"),
        ("wait" = Option<i32>, Query, minimum = 0, maximum = 30, description = "Seconds to wait when there is no event yet (default 0)"),
        ("limit" = Option<i32>, Query, minimum = 1, maximum = 500, description = "Most events to return (default 100)"),
    ),
    status_codes(200, 401, 422, 429, 500, 503),
    responses((status_code = 200, body = ContactFeedDto))
)]
async fn contact_events(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let (relay, client) = (relay(depot)?, client(depot)?);
    let query = FeedQuery::new(
        query_number(req, "after", 0)?,
        query_number(req, "wait", 0)?,
        query_number(req, "limit", i64::from(DEFAULT_LIMIT))?,
    )?;
    let page = relay.read_feed.execute(&client, &query).await?;
    res.render(Json(ContactFeedDto::from(&page)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_locks_out_after_the_budget() {
        let limiter = AuthLimiter::new(AuthLimit { max_failures: 3, window: Duration::from_secs(60) });
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..2 {
            limiter.record_failure(ip);
        }
        assert_eq!(limiter.locked_for(ip), None);
        limiter.record_failure(ip);
        assert!(limiter.locked_for(ip).is_some_and(|s| s >= 1));
        assert_eq!(limiter.locked_for(IpAddr::from([127, 0, 0, 2])), None);
    }

    #[test]
    fn the_window_resets() {
        let limiter = AuthLimiter::new(AuthLimit { max_failures: 1, window: Duration::from_millis(1) });
        let ip = IpAddr::from([10, 0, 0, 1]);
        limiter.record_failure(ip);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(limiter.locked_for(ip), None);
    }

    #[test]
    fn keys_are_bounded() {
        assert!(parse_key("01a1fe03-f10a").is_ok());
        assert!(parse_key("").is_err());
        assert!(parse_key("a b").is_err());
        assert!(parse_key(&"k".repeat(129)).is_err());
    }
}
