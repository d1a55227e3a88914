//! Local-role routes: sign-in start and completion, sessions, the user
//! directory and messages.
//!
//! - Browser flows (`/`, `/auth/dingtalk/*`) answer HTML (errors as an error page).
//! - `/api/me*` use the session cookie.
//! - Every other `/api/*` route needs a service token (`Authorization: Bearer`).

use std::sync::Arc;

use application::ports::ListUsers;
use application::usecases::local::{
    Bindings, CompleteLogin, CurrentUser, GetUser, ListMessagesQuery, ListUsersQuery, Logout, MessageError,
    MessageStatus, RecallMessage, RefreshUser, SendMessage, SendMessageCommand, StartLogin,
};
use domain::{CorpId, ProviderKey, User};
use salvo::http::StatusCode;
use salvo::http::cookie::time::Duration as CookieDuration;
use salvo::http::cookie::{Cookie, SameSite};
use salvo::prelude::*;
use salvo_oapi::endpoint;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::dto::{BindingInput, BindingView, OutboxMessageView, SelfMessageInput, SendMessageInput, UserView};
use super::error::ApiError;
use super::extract::{idempotency_key, page, read_json, validated};
use super::middleware::Inject;
use super::pages;

/// Name of the cookie that binds a login's `state` to the browser (HttpOnly, SameSite=Lax, 10 minutes).
pub const LOGIN_COOKIE: &str = "dingbridge_login";
/// Name of the session cookie (HttpOnly, SameSite=Lax).
pub const SESSION_COOKIE: &str = "dingbridge_session";

/// Cookie attributes.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Set `Secure` (the public URL is https).
    pub secure: bool,
    /// Session lifetime in seconds (the cookie's Max-Age).
    pub session_ttl_secs: i64,
    /// The session cookie's `Domain` (e.g. `example.com`, so that forward-auth works for
    /// `app.example.com` too); `None`: host-only, the default and the safest.
    pub domain: Option<String>,
}

/// The session cookie (HttpOnly, SameSite=Lax, path `/`, `Domain` when configured) with `value`
/// for `max_age_secs` seconds; an empty value with 0 clears it.
pub(crate) fn session_cookie(value: String, max_age_secs: i64, settings: &CookieSettings) -> Cookie<'static> {
    let mut built = cookie(SESSION_COOKIE, value, "/", max_age_secs, settings.secure);
    if let Some(domain) = &settings.domain {
        built.set_domain(domain.clone());
    }
    built
}

/// Everything the local routes need.
pub struct LocalHttp {
    /// Sign-in start.
    pub start_login: StartLogin,
    /// Sign-in completion.
    pub complete_login: CompleteLogin,
    /// Session → user.
    pub current_user: CurrentUser,
    /// Sign-out.
    pub logout: Logout,
    /// Directory listing.
    pub list_users: ListUsersQuery,
    /// Directory look-up.
    pub get_user: GetUser,
    /// Directory refresh through the cloud.
    pub refresh_user: RefreshUser,
    /// Bindings to the enterprise system's accounts.
    pub bindings: Bindings,
    /// Sending.
    pub send_message: SendMessage,
    /// Status.
    pub message_status: MessageStatus,
    /// Recall.
    pub recall_message: RecallMessage,
    /// Message listing.
    pub list_messages: ListMessagesQuery,
    /// Accepted service tokens for `/api/*` (empty: the service API is closed).
    pub service_tokens: Vec<SecretString>,
    /// Cookie attributes.
    pub cookies: CookieSettings,
    /// How many sign-ins may start (each stores a login attempt), per address and in total.
    pub login_limiter: super::limits::LoginLimiter,
    /// `/auth/verify` (forward-auth for reverse proxies).
    pub forward_auth: super::forward_auth::ForwardAuthSettings,
    /// The identity providers people may sign in with (`/auth/{provider}/login`), in the order
    /// the sign-in page shows them. Never empty.
    pub providers: Vec<ProviderKey>,
}

/// The provider named by the `{provider}` path segment, if this service offers it.
/// Errors: 404 `unknown_provider`.
fn path_provider(req: &Request, local: &LocalHttp) -> Result<ProviderKey, ApiError> {
    let raw = req.param::<String>("provider").unwrap_or_default();
    local.providers.iter().find(|p| p.as_str() == raw).cloned().ok_or_else(|| {
        let offered: Vec<&str> = local.providers.iter().map(ProviderKey::as_str).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            format!("provider: {raw:?} is not offered here; sign in with one of {}", offered.join(", ")),
        )
    })
}

/// The login cookie's path for `provider`: `/auth/{provider}`, so that only that provider's
/// completion receives it.
fn login_cookie_path(provider: &ProviderKey) -> String {
    format!("/auth/{provider}")
}

pub(crate) fn state(depot: &Depot) -> Result<Arc<LocalHttp>, ApiError> {
    depot.get_typed::<Arc<LocalHttp>>().cloned().map_err(|_| ApiError::internal("local state missing from depot"))
}

/// The local routes.
pub fn routes(local: Arc<LocalHttp>) -> Router {
    Router::new()
        .hoop(Inject(local))
        .get(index)
        .push(Router::with_path("auth/{provider}/login").get(login))
        .push(Router::with_path("auth/{provider}/complete").get(complete))
        .push(Router::with_path("auth/logout").post(logout))
        .push(Router::with_path("auth/verify").get(super::forward_auth::verify))
        .push(Router::with_path("api/me").get(me).push(Router::with_path("messages").post(me_message)))
        .push(
            Router::with_path("api")
                .hoop(require_service_token)
                .push(
                    Router::with_path("users").get(list_users).push(
                        Router::with_path("{id}")
                            .get(get_user)
                            .push(Router::with_path("refresh").post(refresh_user))
                            .push(Router::with_path("binding").get(get_binding).put(put_binding)),
                    ),
                )
                .push(
                    Router::with_path("messages").get(list_messages).post(send_message).push(
                        Router::with_path("{id}")
                            .get(message_status)
                            .push(Router::with_path("recall").post(recall_message)),
                    ),
                ),
        )
}

fn cookie(
    name: &'static str,
    value: String,
    path: impl Into<String>,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path.into())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(CookieDuration::seconds(max_age_secs))
        .build()
}

fn redirect(res: &mut Response, location: &str) {
    match Redirect::with_status_code(StatusCode::FOUND, location) {
        Ok(r) => res.render(r),
        Err(err) => pages::render_error(res, &ApiError::internal(format!("bad redirect target: {err}"))),
    }
}

/// The sandbox page: "Continue with DingTalk", then the signed-in member's profile (English or
/// Chinese; `?lang=` switches).
#[handler]
async fn index(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let local = state(depot).ok();
    let secure = local.as_ref().is_some_and(|local| local.cookies.secure);
    let providers: Vec<&str> = match &local {
        Some(local) => local.providers.iter().map(ProviderKey::as_str).collect(),
        None => vec![crate::outbound::dingtalk::PROVIDER],
    };
    pages::serve_index(req, res, secure, &providers);
}

/// Starts "Login with DingTalk" (`/auth/dingtalk/login`) or with another offered provider
/// (`/auth/feishu/login`): sets the login cookie and redirects (302) to the provider's consent
/// page. `return_to` must be a relative path on this service or a URL on a trusted origin
/// (`forward_auth.return_origins`); anything else becomes `/`.
#[endpoint(
    tags("auth"),
    parameters(
        ("provider" = String, Path, description = "The identity provider: `dingtalk` or `feishu` (as offered by `login.providers`)"),
        ("return_to" = Option<String>, Query, description = "Relative path on this service, or a URL on an origin of `forward_auth.return_origins`, to land on after sign-in (anything else becomes `/`)"),
    ),
    responses(
        (status_code = 302, description = "To the provider's authorize URL; sets the login cookie `dingbridge_login` (path `/auth/{provider}`)"),
        (status_code = 404, description = "`unknown_provider`: the provider is not offered here (HTML error page)", content_type = "text/html", body = String),
        (status_code = 429, description = "`rate_limited`: too many sign-ins started from this address or in total (`login.*`); `Retry-After` gives the seconds to wait (HTML error page)", content_type = "text/html", body = String),
        (status_code = 500, description = "`internal` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 502, description = "`upstream_refused`: the cloud relay refused the login (HTML error page)", content_type = "text/html", body = String),
        (status_code = 503, description = "`unavailable`: the cloud relay is unreachable (HTML error page)", content_type = "text/html", body = String),
    )
)]
async fn login(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let result = async {
        let local = state(depot)?;
        let provider = path_provider(req, &local)?;
        // An address salvo cannot tell (not TCP) shares one budget.
        let address = req.remote_addr().clone().into_std().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        if let Err(wait_secs) = local.login_limiter.check(address) {
            tracing::warn!(%address, wait_secs, "sign-in start rate-limited");
            let _ = res.add_header("retry-after", wait_secs.to_string(), true);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many sign-ins were started; try again in {wait_secs} s"),
            ));
        }
        let return_to = req.query::<String>("return_to");
        let (login_state, authorize_url) = local.start_login.execute(&provider, return_to.as_deref()).await?;
        Ok::<_, ApiError>((local, provider, login_state, authorize_url))
    }
    .await;
    match result {
        Ok((local, provider, login_state, authorize_url)) => {
            res.add_cookie(cookie(
                LOGIN_COOKIE,
                login_state.expose().to_owned(),
                login_cookie_path(&provider),
                domain::login::LOGIN_TTL_SECS,
                local.cookies.secure,
            ));
            redirect(res, &authorize_url);
        }
        Err(err) => pages::render_error(res, &err),
    }
}

fn clear_login_cookie(res: &mut Response, provider: &ProviderKey, secure: bool) {
    res.add_cookie(cookie(LOGIN_COOKIE, String::new(), login_cookie_path(provider), 0, secure));
}

/// Completes the sign-in after the cloud's callback: checks `state` against the login cookie (single use,
/// 10 minutes), stores the member, sets the session cookie and redirects (302) to `return_to`.
/// Errors are an HTML page: 400 `invalid_login_state`, 403 `not_member`/`consent_denied`, 503 `unavailable`.
#[endpoint(
    tags("auth"),
    parameters(
        ("provider" = String, Path, description = "The identity provider the login was started with"),
        ("state" = crate::inbound::http::dto::LoginStateString, Query, description = "The login state echoed by the cloud"),
        ("dingbridge_login" = Option<String>, Cookie, description = "The login cookie set by `/auth/{provider}/login`; must match `state`"),
    ),
    responses(
        (status_code = 302, description = "Signed in: sets the session cookie `dingbridge_session` and redirects to `return_to`"),
        (status_code = 400, description = "`invalid_login_state` (missing, unknown, expired, used, or not this browser's) or `invalid_code` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 403, description = "`not_member` or `consent_denied` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 404, description = "`unknown_provider`: the provider is not offered here (HTML error page)", content_type = "text/html", body = String),
        (status_code = 409, description = "`conflict` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 500, description = "`internal` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 502, description = "`upstream_refused` or `provider_unavailable` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 503, description = "`unavailable`: the cloud relay or the database is unreachable (HTML error page)", content_type = "text/html", body = String),
    )
)]
async fn complete(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let local = match state(depot) {
        Ok(local) => local,
        Err(err) => return pages::render_error(res, &err),
    };
    let provider = match path_provider(req, &local) {
        Ok(provider) => provider,
        Err(err) => return pages::render_error(res, &err),
    };
    let query_state = req.query::<String>("state");
    let cookie_state = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned());
    clear_login_cookie(res, &provider, local.cookies.secure);
    match local.complete_login.execute(query_state.as_deref(), cookie_state.as_deref()).await {
        Ok(signed_in) => {
            res.add_cookie(session_cookie(
                signed_in.token.expose().to_owned(),
                local.cookies.session_ttl_secs,
                &local.cookies,
            ));
            redirect(res, signed_in.return_to.as_str());
            crate::metrics::login("success");
        }
        Err(err) => {
            let err = ApiError::from(err);
            crate::metrics::login(&err.body.code);
            pages::render_error(res, &err);
        }
    }
}

/// Signs out: deletes the session and its cookie, then redirects (303) to `/`.
#[endpoint(
    tags("auth"),
    security((), ("session_cookie" = [])),
    status_codes(303, 500, 503),
    responses((status_code = 303, description = "Signed out (also without a session); clears the session cookie and redirects to `/`"))
)]
async fn logout(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    local.logout.execute(token.as_deref()).await?;
    res.add_cookie(session_cookie(String::new(), 0, &local.cookies));
    res.render(Redirect::other("/"));
    Ok(())
}

pub(crate) async fn signed_in_user(req: &Request, local: &LocalHttp) -> Result<User, ApiError> {
    let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    Ok(local.current_user.execute(token.as_deref()).await?)
}

/// The signed-in member (session cookie). 401 `not_signed_in` without a valid session.
#[endpoint(
    tags("auth"),
    security(("session_cookie" = [])),
    status_codes(200, 401, 500, 503),
    responses((status_code = 200, body = UserView))
)]
async fn me(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let user = signed_in_user(req, &local).await?;
    res.render(Json(UserView::from(user)));
    Ok(())
}

/// Sends a text work notification to the signed-in member (session cookie; JSON only, which also blocks
/// cross-site form posts). 202 with the message.
#[endpoint(
    tags("auth"),
    security(("session_cookie" = [])),
    parameters(("Idempotency-Key" = Option<crate::inbound::http::dto::KeyString>, Header, description = "Makes retries safe: the same key with the same message answers the first message; with a different message, 409 `idempotency_key_reused` (1–128 printable ASCII characters)")),
    request_body(content = SelfMessageInput, content_type = "application/json"),
    status_codes(202, 400, 401, 409, 413, 415, 422, 500, 503),
    responses((status_code = 202, body = OutboxMessageView, description = "Accepted: stored in the outbox"))
)]
async fn me_message(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let user = signed_in_user(req, &local).await?;
    let key = idempotency_key(req)?;
    let input: SelfMessageInput = validated(read_json(req).await?)?;
    let body = pages::self_message_body(&input.text)?;
    let command = SendMessageCommand {
        corp_id: Some(user.profile.corp_id.clone()),
        user_ids: Vec::new(),
        userids: vec![user.profile.userid.clone()],
        external_ids: Vec::new(),
        tenant_id: None,
        dept_ids: Vec::new(),
        to_all: false,
        body,
        idempotency_key: key,
    };
    let record = local.send_message.execute(command).await?;
    res.status_code(StatusCode::ACCEPTED);
    res.render(Json(OutboxMessageView::from(record)));
    Ok(())
}

/// Checks `Authorization: Bearer <service token>` against the configured tokens in constant time.
#[handler]
async fn require_service_token(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let presented = req
        .header::<String>("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
        .unwrap_or_default();
    let accepted = match state(depot) {
        Ok(local) => {
            !presented.is_empty()
                && local
                    .service_tokens
                    .iter()
                    .fold(false, |ok, t| ok | bool::from(t.expose_secret().as_bytes().ct_eq(presented.as_bytes())))
        }
        Err(_) => false,
    };
    if !accepted {
        ApiError::unauthorized().write(req, depot, res).await;
        ctrl.skip_rest();
    }
}

/// Lists users (service token). `limit` 1–500 (default 100), `offset` ≥ 0, optional `corp_id` filter.
#[endpoint(
    tags("users"),
    security(("service_token" = [])),
    parameters(
        ("corp_id" = Option<crate::inbound::http::dto::CorpIdString>, Query, description = "Only this corp"),
        ("limit" = Option<i32>, Query, minimum = 1, maximum = 500, description = "Page size, 1–500, default 100"),
        ("offset" = Option<i32>, Query, minimum = 0, maximum = 2147483647, description = "Rows to skip, default 0"),
    ),
    status_codes(200, 401, 422, 500, 503),
    responses((status_code = 200, body = Vec<UserView>))
)]
async fn list_users(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let (limit, offset) = page(req)?;
    let corp_id = req.query::<String>("corp_id").map(|c| CorpId::parse(&c)).transpose()?;
    let users = local.list_users.execute(ListUsers { corp_id, limit, offset }).await?;
    res.render(Json(users.into_iter().map(UserView::from).collect::<Vec<_>>()));
    Ok(())
}

/// One user by local id (service token). 404 `not_found`.
#[endpoint(
    tags("users"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Local user id")),
    status_codes(200, 401, 404, 500, 503),
    responses((status_code = 200, body = UserView))
)]
async fn get_user(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let user = local.get_user.execute(&id).await.map_err(user_not_found)?;
    res.render(Json(UserView::from(user)));
    Ok(())
}

/// Sends a work notification (service token). The body is DingTalk's own `msg` object, or for a
/// third-party suite a `template` body (`sendbytemplate`). The message
/// and its recipients are stored in the outbox before the answer: 202 with the message in state
/// `accepted`; it is then relayed to DingTalk through the cloud, retrying until it is delivered
/// (`GET /api/messages/{id}` follows it). 422 names the field for invalid or over-limit input
/// (nothing stored). An optional `Idempotency-Key` header (1–128 printable ASCII characters) makes
/// retries safe: the same key with the same message returns the first message; with a different
/// message, 409 `idempotency_key_reused`.
#[endpoint(
    tags("messages"),
    security(("service_token" = [])),
    parameters(("Idempotency-Key" = Option<crate::inbound::http::dto::KeyString>, Header, description = "Makes retries safe: the same key with the same message answers the first message; with a different message, 409 `idempotency_key_reused` (1–128 printable ASCII characters)")),
    request_body(content = SendMessageInput, content_type = "application/json"),
    status_codes(202, 400, 401, 409, 413, 415, 422, 500, 503),
    responses((
        status_code = 202,
        body = OutboxMessageView,
        description = "Accepted: stored in the outbox in state `accepted`",
        headers(("Location" = String, description = "`/api/messages/{id}`"))
    ))
)]
async fn send_message(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let key = idempotency_key(req)?;
    let input: SendMessageInput = validated(read_json(req).await?)?;
    let mut command = SendMessageCommand::try_from(input)?;
    command.idempotency_key = key;
    let record = local.send_message.execute(command).await?;
    let _ = res.add_header("location", format!("/api/messages/{}", record.id), true);
    res.status_code(StatusCode::ACCEPTED);
    res.render(Json(OutboxMessageView::from(record)));
    Ok(())
}

/// Lists messages, newest first (service token): optional `status` (`accepted`, `relayed`, `sent`,
/// `completed`, `failed`, `recalled`), `since` (RFC 3339 or epoch milliseconds: created at or after),
/// `limit` 1–500 (default 100), `offset`. Delivery reports are not included: read one message for those.
#[endpoint(
    tags("messages"),
    security(("service_token" = [])),
    parameters(
        ("status" = Option<crate::inbound::http::dto::MessageStateName>, Query, description = "Only messages in this state"),
        ("since" = Option<crate::inbound::http::dto::InstantParam>, Query, description = "Only messages created at or after this instant: RFC 3339 (`2026-11-21T10:00:00Z`) or epoch milliseconds"),
        ("limit" = Option<i32>, Query, minimum = 1, maximum = 500, description = "Page size, 1–500, default 100"),
        ("offset" = Option<i32>, Query, minimum = 0, maximum = 2147483647, description = "Rows to skip, default 0"),
    ),
    status_codes(200, 401, 422, 500, 503),
    responses((status_code = 200, body = Vec<OutboxMessageView>))
)]
async fn list_messages(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let field =
        |name: &str, message: &str| ApiError::fields(vec![(name.to_owned(), "invalid".to_owned(), message.to_owned())]);
    let state = req
        .query::<String>("status")
        .map(|s| {
            domain::MessageState::parse(&s)
                .ok_or_else(|| field("status", "status must be accepted, relayed, sent, completed, failed or recalled"))
        })
        .transpose()?;
    let since = req
        .query::<String>("since")
        .map(|s| {
            super::dto::parse_instant(&s)
                .ok_or_else(|| field("since", "since must be RFC 3339 (2026-11-21T10:00:00Z) or epoch milliseconds"))
        })
        .transpose()?;
    let (limit, offset) = page(req)?;
    let query = application::ports::ListMessages { state, since, limit, offset };
    let records = local.list_messages.execute(query).await?;
    res.render(Json(records.into_iter().map(OutboxMessageView::from).collect::<Vec<_>>()));
    Ok(())
}

fn message_not_found(err: MessageError) -> ApiError {
    match err {
        MessageError::NotFound => ApiError::not_found("message"),
        other => other.into(),
    }
}

fn user_not_found(err: MessageError) -> ApiError {
    match err {
        MessageError::NotFound => ApiError::not_found("user"),
        other => other.into(),
    }
}

/// Fetches the member's current profile from DingTalk through the cloud and stores it (service token).
/// A member who left the org is marked `active: false`. 404 `not_found`; 503 when the cloud is unreachable.
#[endpoint(
    tags("users"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Local user id")),
    status_codes(200, 401, 404, 409, 500, 502, 503),
    responses((status_code = 200, body = UserView))
)]
async fn refresh_user(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let user = local.refresh_user.execute(&id).await.map_err(user_not_found)?;
    res.render(Json(UserView::from(user)));
    Ok(())
}

/// Binds the member to an account of your system (service token): afterwards messages can address them
/// by `recipients.external_ids`. 404 `not_found`; 409 `conflict` when another member has that id.
#[endpoint(
    tags("users"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Local user id")),
    request_body(content = BindingInput, content_type = "application/json"),
    status_codes(200, 400, 401, 404, 409, 413, 415, 422, 500, 503),
    responses((status_code = 200, body = BindingView))
)]
async fn put_binding(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let input: BindingInput = read_json(req).await?;
    let binding =
        local.bindings.put(&id, &input.external_id, input.tenant_id.as_deref()).await.map_err(user_not_found)?;
    res.render(Json(BindingView::from(binding)));
    Ok(())
}

/// The member's binding (service token). 404 `not_found` when there is none.
#[endpoint(
    tags("users"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Local user id")),
    status_codes(200, 401, 404, 500, 503),
    responses((status_code = 200, body = BindingView))
)]
async fn get_binding(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let binding = local.bindings.get(&id).await?.ok_or_else(|| ApiError::not_found("binding"))?;
    res.render(Json(BindingView::from(binding)));
    Ok(())
}

/// A message with per-recipient delivery (service token). 404 `not_found`.
#[endpoint(
    tags("messages"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Message id")),
    status_codes(200, 401, 404, 500, 503),
    responses((status_code = 200, body = OutboxMessageView))
)]
async fn message_status(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let view = local.message_status.execute(&id).await.map_err(message_not_found)?;
    res.render(Json(OutboxMessageView::from(view)));
    Ok(())
}

/// Recalls a message (service token). DingTalk allows 24 hours: later, 409 `refused` says so.
#[endpoint(
    tags("messages"),
    security(("service_token" = [])),
    parameters(("id" = String, Path, description = "Message id")),
    status_codes(200, 401, 404, 409, 500, 502, 503),
    responses((status_code = 200, body = OutboxMessageView))
)]
async fn recall_message(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let id = req.param::<String>("id").unwrap_or_default();
    let record = local.recall_message.execute(&id).await.map_err(message_not_found)?;
    res.render(Json(OutboxMessageView::from(record)));
    Ok(())
}
