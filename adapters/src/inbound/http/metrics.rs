//! `GET /metrics`: the Prometheus text exposition (format 0.0.4) of `crate::metrics`'s families.
//!
//! Not an API operation (it is in no `/openapi.json`): `bootstrap` serves it on its own listener
//! (`metrics.bind`) or, with `metrics.token`, on the main listener behind
//! `Authorization: Bearer <token>`; by default it is not served at all (README "Operating
//! dingbridge").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use salvo::http::header::{AUTHORIZATION, CONTENT_TYPE};
use salvo::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::middleware::Inject;

/// Renders the current text exposition.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;
/// Brings gauges read from storage up to date before a render (e.g. the outbox depth); a failure
/// is logged and the previous values are shown.
pub type RefreshMetrics = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What `/metrics` needs.
#[derive(Clone)]
pub struct MetricsHttp {
    /// The renderer (the installed Prometheus recorder's).
    pub render: RenderMetrics,
    /// Run in order before each render.
    pub refresh: Vec<RefreshMetrics>,
    /// When set, a scrape must send `Authorization: Bearer <token>` (else 401 `unauthorized`).
    pub token: Option<SecretString>,
}

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `GET /metrics` route.
pub fn router(metrics: Arc<MetricsHttp>) -> Router {
    Router::with_path("metrics").hoop(Inject(metrics)).get(scrape)
}

fn bearer_matches(req: &Request, token: &SecretString) -> bool {
    let Some(given) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    bool::from(given.trim().as_bytes().ct_eq(token.expose_secret().as_bytes()))
}

/// The scrape: 200 with the text exposition; 401 `unauthorized` when a token is configured and
/// not presented.
#[handler]
async fn scrape(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Ok(metrics) = depot.get_typed::<Arc<MetricsHttp>>().cloned() else {
        return ApiError::internal("metrics state missing from depot").write(req, depot, res).await;
    };
    if let Some(token) = &metrics.token
        && !bearer_matches(req, token)
    {
        let _ = res.add_header("www-authenticate", "Bearer", true);
        return ApiError::unauthorized().write(req, depot, res).await;
    }
    for refresh in &metrics.refresh {
        refresh().await;
    }
    let _ = res.add_header(CONTENT_TYPE, PROMETHEUS_TEXT, true);
    res.render((metrics.render)());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use salvo::test::{ResponseExt, TestClient};

    use super::*;

    fn service(token: Option<&str>) -> Service {
        let metrics = MetricsHttp {
            render: Arc::new(|| "# TYPE x counter\nx 1\n".to_owned()),
            refresh: Vec::new(),
            token: token.map(|t| SecretString::from(t.to_owned())),
        };
        super::super::service(router(Arc::new(metrics)))
    }

    #[tokio::test]
    async fn the_exposition_is_served_as_prometheus_text() {
        let mut res = TestClient::get("http://127.0.0.1/metrics").send(&service(None)).await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        assert_eq!(res.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
        assert_eq!(res.take_string().await.unwrap(), "# TYPE x counter\nx 1\n");
    }

    #[tokio::test]
    async fn with_a_token_a_scrape_without_it_is_401() {
        let service = service(Some("scrape-token-0123456789"));
        let res = TestClient::get("http://127.0.0.1/metrics").send(&service).await;
        assert_eq!(res.status_code, Some(StatusCode::UNAUTHORIZED));
        let res = TestClient::get("http://127.0.0.1/metrics").bearer_auth("wrong").send(&service).await;
        assert_eq!(res.status_code, Some(StatusCode::UNAUTHORIZED));
        let res =
            TestClient::get("http://127.0.0.1/metrics").bearer_auth("scrape-token-0123456789").send(&service).await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
    }
}
