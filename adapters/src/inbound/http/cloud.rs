//! Cloud-role routes: each identity provider's OAuth callback (`redirect_uri`).

use std::sync::Arc;

use application::usecases::cloud::{CallbackQuery, CloudError, HandleCallback};
use domain::ProviderKey;
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo_oapi::endpoint;

use super::error::ApiError;
use super::middleware::Inject;
use super::pages;

/// Everything the cloud routes need.
pub struct CloudHttp {
    /// The OAuth callback.
    pub handle_callback: HandleCallback,
    /// Feishu's event callback (`POST /feishu/events`), when `[feishu] verification_token` is
    /// set; otherwise that route answers 404 `events_not_configured`.
    pub feishu_events: Option<Arc<super::feishu_events::FeishuEventsHttp>>,
}

/// The cloud routes: each provider's OAuth callback and Feishu's event callback.
pub fn routes(cloud: Arc<CloudHttp>) -> Router {
    let feishu = match &cloud.feishu_events {
        Some(events) => Router::new().hoop(Inject(events.clone())),
        None => Router::new(),
    };
    Router::new()
        .push(Router::new().hoop(Inject(cloud)).push(Router::with_path("auth/{provider}/callback").get(callback)))
        .push(feishu.push(Router::with_path("feishu/events").post(super::feishu_events::receive_feishu_event)))
}

/// A provider's redirect after consent (DingTalk: docs/dingtalk-api.md §A.2, `authCode` (or
/// `code`) and `state`; Feishu: docs/feishu-api.md §A.2, `code` and `state`), or `error` and
/// `state`. Resolves the member, stores the outcome for the relay client, and redirects (302) the
/// browser to the client's `complete_url?state=…` — never with the code or the profile in the URL.
/// 400 HTML page `invalid_login_state` for a missing, unknown, expired or used state, or a state
/// started with another provider; 404 `unknown_provider` for a provider this cloud does not serve.
#[endpoint(
    tags("auth"),
    parameters(
        ("provider" = String, Path, description = "The identity provider: `dingtalk` or `feishu`"),
        ("state" = crate::inbound::http::dto::LoginStateString, Query, description = "The login state"),
        ("authCode" = Option<String>, Query, description = "Authorization code"),
        ("code" = Option<String>, Query, description = "Authorization code (older name)"),
        ("error" = Option<String>, Query, description = "Set when the person declined"),
    ),
    responses(
        (status_code = 302, description = "To the relay client's complete_url"),
        (status_code = 400, description = "`invalid_login_state`: missing, unknown, expired or used state (HTML error page)", content_type = "text/html", body = String),
        (status_code = 403, description = "`forbidden` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 404, description = "`unknown_provider`, `not_found`, `not_member` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 409, description = "`conflict` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 500, description = "`internal` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 502, description = "`upstream_refused`: DingTalk refused the code exchange (HTML error page)", content_type = "text/html", body = String),
        (status_code = 503, description = "`unavailable`: DingTalk or the database is unreachable (HTML error page)", content_type = "text/html", body = String),
    )
)]
async fn callback(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Ok(cloud) = depot.get_typed::<Arc<CloudHttp>>().cloned() else {
        return pages::render_error(res, &ApiError::internal("cloud state missing from depot"));
    };
    let query = CallbackQuery {
        state: req.query::<String>("state"),
        code: req.query::<String>("authCode").or_else(|| req.query::<String>("code")),
        error: req.query::<String>("error"),
    };
    let provider = match req.param::<String>("provider").as_deref().map(ProviderKey::parse) {
        Some(Ok(provider)) => provider,
        _ => {
            let err = ApiError::from(CloudError::UnknownProvider(req.param::<String>("provider").unwrap_or_default()));
            return pages::render_error(res, &err);
        }
    };
    match cloud.handle_callback.execute(&provider, &query).await {
        Ok(location) => match Redirect::with_status_code(StatusCode::FOUND, &location) {
            Ok(r) => res.render(r),
            Err(err) => pages::render_error(res, &ApiError::internal(format!("bad complete_url: {err}"))),
        },
        Err(err) => {
            // The sign-in ends here (the browser never reaches local's completion); DingTalk's
            // refusals are not errors here but reported by the completion.
            let err = ApiError::from(err);
            crate::metrics::login(&err.body.code);
            pages::render_error(res, &err);
        }
    }
}
