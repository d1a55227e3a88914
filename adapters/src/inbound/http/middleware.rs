//! Hoops: request ids, traces, access log and request metrics; state injection; the pages' language.

use std::time::Instant;

use salvo::prelude::*;
use tracing::Instrument;

use super::i18n::Lang;
use crate::telemetry::{TRACEPARENT_HEADER, TraceId, in_trace, parse_traceparent};

/// Puts a clone of `T` into every request's depot (read it with `depot.get_typed::<T>()`).
pub struct Inject<T>(pub T);

#[async_trait]
impl<T: Clone + Send + Sync + 'static> Handler for Inject<T> {
    async fn handle(&self, _req: &mut Request, depot: &mut Depot, _res: &mut Response, _ctrl: &mut FlowCtrl) {
        depot.insert_typed(self.0.clone());
    }
}

/// The request id header, read from the request (if sane) or generated, and echoed on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request id safe to echo: 1–128 characters of `[A-Za-z0-9-_.:]`.
pub(super) fn usable_request_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// The route template of a request as a label: `/api/users/{id}` for a matched route (salvo's
/// matched path, parameters as `{name}`), `/` for the index page, `unmatched` when no route
/// matched. Never the path itself: paths can carry a login state (`/relay/v1/logins/{state}`).
pub(super) fn route_template(req: &Request) -> String {
    let matched = req.matched_path();
    if !matched.is_empty() {
        format!("/{}", matched.trim_start_matches('/'))
    } else if req.uri().path() == "/" {
        "/".to_owned()
    } else {
        "unmatched".to_owned()
    }
}

/// Gives each request an id (echoing a sane `x-request-id` or making a UUID) and a trace (a
/// valid W3C `traceparent`'s trace id, or a new one: `crate::telemetry`), runs the rest inside a
/// tracing span carrying `request_id`, `trace_id`, `method` and `route` (the route template,
/// never the path or query: they can carry codes and states) with the trace as the current one,
/// logs one access line — status and duration in milliseconds — and records the request in
/// `dingbridge_http_requests_total` / `dingbridge_http_request_duration_seconds`.
#[handler]
pub async fn request_id(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let id = req
        .header::<String>(REQUEST_ID_HEADER)
        .filter(|v| usable_request_id(v))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace =
        req.header::<String>(TRACEPARENT_HEADER).and_then(|v| parse_traceparent(&v)).unwrap_or_else(TraceId::random);
    let _ = res.add_header(REQUEST_ID_HEADER, id.clone(), true);
    let method = req.method().clone();
    let route = route_template(req);
    let span = tracing::info_span!("request", request_id = %id, trace_id = %trace, %method, route = %route);
    let started = Instant::now();
    in_trace(trace, ctrl.call_next(req, depot, res).instrument(span.clone())).await;
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "handled");
    });
    crate::metrics::http_request(&route, method.as_str(), status, elapsed);
}

/// Acknowledges only what is on disk: after a request that may have written (any method but
/// `GET`, `HEAD`, `OPTIONS`, `TRACE`) succeeded, waits for [`Durability::flush`] before the answer
/// leaves, so a `200`/`202` is never sent for a write a power cut could still lose. A failed flush
/// turns the answer into `503 unavailable` (the caller retries; every write path is idempotent).
///
/// [`Durability::flush`]: application::ports::Durability::flush
pub struct DurableAcks(pub std::sync::Arc<dyn application::ports::Durability>);

#[async_trait]
impl Handler for DurableAcks {
    async fn handle(&self, req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
        ctrl.call_next(req, depot, res).await;
        let succeeded = res.status_code.is_none_or(|s| s.is_success() || s.is_redirection());
        if req.method().is_safe() || !succeeded {
            return;
        }
        if let Err(err) = self.0.flush().await {
            tracing::error!(error = %err, "the write could not be made durable; answering 503");
            res.replace_body(salvo::http::ResBody::None);
            super::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database could not make the change durable; retry",
            )
            .write(req, depot, res)
            .await;
        }
    }
}

/// Chooses the language of the HTML pages for this request ([`Lang::of_request`]) and keeps it in
/// the response's extensions, where the page renderers read it.
#[handler]
pub async fn page_language(req: &mut Request, res: &mut Response) {
    res.extensions.insert(Lang::of_request(req));
}

#[cfg(test)]
mod tests {
    use super::usable_request_id;

    #[test]
    fn request_ids_are_sanitised() {
        assert!(usable_request_id("abc-123_x.y:z"));
        assert!(!usable_request_id(""));
        assert!(!usable_request_id("a b"));
        assert!(!usable_request_id(&"a".repeat(129)));
        assert!(!usable_request_id("<script>"));
    }
}
