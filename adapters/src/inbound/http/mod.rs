//! The Salvo HTTP API: one router per role, one [`ApiError`].
//!
//! - local routes ([`local`]): sign-in start/complete, sessions, `/api/*`;
//! - cloud routes ([`cloud`]): the DingTalk OAuth callback; [`events`]: the DingTalk event callback;
//! - every role: `/healthz`, `/readyz`, `/openapi.json`, `/swagger-ui`.
//!
//! [`dev_router`] mounts both roles in one process (dev mode).

pub mod cloud;
#[cfg(test)]
mod cloud_routes_tests;
#[cfg(test)]
mod contract_tests;
pub mod dto;
pub mod error;
pub mod events;
pub mod extract;
pub mod feishu_events;
pub mod forward_auth;
mod i18n;
pub mod limits;
pub mod local;
#[cfg(test)]
mod local_routes_tests;
pub mod metrics;
mod middleware;
pub mod oidc;
#[cfg(test)]
mod oidc_routes_tests;
#[cfg(test)]
mod openapi_tests;
mod pages;
pub mod relay;
#[cfg(test)]
mod relay_tests;
#[cfg(test)]
mod test_support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use salvo::catcher::Catcher;
use salvo::prelude::*;
use salvo_oapi::OpenApi;
use salvo_oapi::endpoint;
use salvo_oapi::swagger_ui::SwaggerUi;
use serde::Serialize;

pub use cloud::CloudHttp;
pub use error::ApiError;
pub use events::EventsHttp;
pub use forward_auth::ForwardAuthSettings;
pub use limits::TokenLimiter;
pub use limits::{LoginLimit, LoginLimiter};
pub use local::{CookieSettings, LocalHttp};
pub use metrics::MetricsHttp;
pub use middleware::DurableAcks;
pub use oidc::OidcHttp;
pub use relay::{AuthLimit, AuthLimiter, RelayClientCredentials, RelayHttp};

/// A readiness check: resolves to `Err(reason)` when the service cannot serve
/// (e.g. the database is unreachable).
pub type ReadinessCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Probes {
    /// Checks run in order; the first failure makes `/readyz` answer 503.
    pub checks: Vec<(&'static str, ReadinessCheck)>,
}

#[derive(Serialize, salvo_oapi::ToSchema)]
struct HealthBody {
    /// `ok`, or `unavailable`.
    #[salvo(schema(value_type = HealthStatus))]
    status: &'static str,
    /// The failing check, when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
}

/// `HealthBody::status` in the OpenAPI document.
#[derive(Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum HealthStatus {
    /// Serving.
    Ok,
    /// A readiness check failed (see `failed`).
    Unavailable,
}

/// Liveness: the process is up and serving HTTP.
#[endpoint(
    tags("health"),
    responses((status_code = 200, body = HealthBody), (status_code = 500, description = "`internal`", body = error::ErrorBody))
)]
async fn healthz() -> Json<HealthBody> {
    Json(HealthBody { status: "ok", failed: None })
}

/// Readiness: storage (and other dependencies) reachable. 503 otherwise.
#[endpoint(
    tags("health"),
    responses(
        (status_code = 200, body = HealthBody, description = "Ready"),
        (status_code = 500, description = "`internal`", body = error::ErrorBody),
        (status_code = 503, body = HealthBody, description = "Not ready: `failed` names the check"),
    )
)]
async fn readyz(depot: &mut Depot, res: &mut Response) {
    let probes = depot.get_typed::<Arc<Probes>>().ok().cloned();
    for (name, check) in probes.iter().flat_map(|p| p.checks.iter()) {
        if let Err(reason) = check().await {
            tracing::warn!(check = name, %reason, "not ready");
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
            res.render(Json(HealthBody { status: "unavailable", failed: Some((*name).to_owned()) }));
            return;
        }
    }
    res.render(Json(HealthBody { status: "ok", failed: None }));
}

fn with_common(router: Router, probes: Arc<Probes>, title: &str) -> Router {
    let router = router.push(Router::with_path("healthz").get(healthz)).push(Router::with_path("readyz").get(readyz));
    let doc = document(&router, title);
    Router::new()
        .hoop(middleware::page_language)
        .hoop(middleware::Inject(probes))
        .push(doc.into_router("/openapi.json"))
        .push(SwaggerUi::new("/openapi.json").into_router("/swagger-ui"))
        .push(router)
}

/// The HTTP service serving `router`. A response left with an error status and no body — no route
/// matched (404 `not_found`), a route matched but not its method (405 `method_not_allowed`), or
/// anything salvo itself refused (413 `payload_too_large`, 415 `unsupported_media_type`, 5xx
/// `internal`) — answers the JSON [`error::ErrorBody`] like every handler, never salvo's HTML page.
pub fn service(router: Router) -> Service {
    // On the service, not the router, so that requests no route matches get an id and a log line too.
    Service::new(router).hoop(middleware::request_id).catcher(Catcher::default().hoop(json_errors))
}

/// The catcher hoop behind [`service`]: writes the JSON error body for a bodiless error response.
#[handler]
async fn json_errors(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let path = req.uri().path().to_owned();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::new(status, "not_found", format!("no route {path}")),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, "method_not_allowed", format!("{path} does not accept the {} method", req.method()))
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "unsupported_media_type", "this content type is not accepted here")
        }
        s if s.is_server_error() => ApiError::internal(format!("{s} without a body for {path}")),
        s => ApiError::new(s, "bad_request", s.canonical_reason().unwrap_or("the request was refused").to_owned()),
    };
    error.write(req, depot, res).await;
    ctrl.skip_rest();
}

/// Security scheme of `/api/*` except `/api/me*`: `Authorization: Bearer <service token>`.
pub const SERVICE_TOKEN_SCHEME: &str = "service_token";
/// Security scheme of `/relay/v1/*`: HTTP Basic with a relay client's id and secret.
pub const RELAY_CLIENT_SCHEME: &str = "relay_client";
/// Security scheme of `/api/me*` and `/auth/logout`: the session cookie.
pub const SESSION_COOKIE_SCHEME: &str = "session_cookie";

/// The OpenAPI document of `router`: its operations (each naming the security scheme it needs)
/// and the three security schemes.
fn document(router: &Router, title: &str) -> OpenApi {
    use salvo_oapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
    OpenApi::new(title, env!("CARGO_PKG_VERSION"))
        .add_security_scheme(
            SERVICE_TOKEN_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer).description(
                "A service token from `[api] service_tokens`: `Authorization: Bearer <token>` (local `/api/*` except `/api/me*`).",
            )),
        )
        .add_security_scheme(
            RELAY_CLIENT_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic).description(
                "A relay client's id and secret from `[[relay.clients]]` (`/relay/v1/*`); repeated failures from one address are answered 429 `rate_limited` with `Retry-After`.",
            )),
        )
        .add_security_scheme(
            SESSION_COOKIE_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                local::SESSION_COOKIE,
                "The session cookie set by `/auth/dingtalk/complete` after \"Login with DingTalk\" (`/api/me*`, `/auth/logout`).",
            ))),
        )
        .merge_router(router)
}

/// Cloud mode: the DingTalk callbacks and the relay API; no local routes. Without `events` the
/// event callback answers 404 `events_not_configured`.
pub fn cloud_router(
    cloud: Arc<CloudHttp>,
    relay: Arc<RelayHttp>,
    events: Option<Arc<EventsHttp>>,
    probes: Arc<Probes>,
) -> Router {
    let router = Router::new().push(cloud::routes(cloud)).push(events::routes(events)).push(relay::routes(relay));
    with_common(router, probes, "dingbridge (cloud)")
}

/// Local mode: sign-in, sessions, directory and messages, and — with `oidc` — the OpenID
/// Provider; no cloud routes.
pub fn local_router(local: Arc<LocalHttp>, oidc: Option<Arc<OidcHttp>>, probes: Arc<Probes>) -> Router {
    let mut router = Router::new().push(local::routes(local));
    if let Some(oidc) = oidc {
        router = router.push(oidc::routes(oidc));
    }
    with_common(router, probes, "dingbridge (local)")
}

/// Dev mode: local and cloud routes (including the event callback) and — with `oidc` — the
/// OpenID Provider, in one router.
pub fn dev_router(
    local: Arc<LocalHttp>,
    oidc: Option<Arc<OidcHttp>>,
    cloud: Arc<CloudHttp>,
    events: Option<Arc<EventsHttp>>,
    probes: Arc<Probes>,
) -> Router {
    let mut router = Router::new().push(local::routes(local)).push(cloud::routes(cloud)).push(events::routes(events));
    if let Some(oidc) = oidc {
        router = router.push(oidc::routes(oidc));
    }
    with_common(router, probes, "dingbridge (dev)")
}
