//! The one HTTP error type: every use-case error maps to a status and a
//! stable machine `code`, exhaustively. 5xx details go to the log, never to
//! the client.

use std::collections::BTreeMap;

use application::ports::StoreError;
use application::usecases::cloud::CloudError;
use application::usecases::local::{LoginError, MessageError};
use domain::ValidationError;
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo_oapi::{Components, EndpointOutRegister, Operation, ToSchema};
use serde::Serialize;
use tracing::error;

/// One field's problem in a 422 body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// Stable machine code (`required`, `too_long`, `too_many`, `invalid`, `too_large`, `unknown_field`, …).
    pub code: String,
    /// Human message naming the field and the limit.
    pub message: String,
}

/// The JSON body of every error response.
///
/// ```json
/// {"code":"validation_failed","message":"body.text.content is required","fields":{"body.text.content":{"code":"required","message":"…"}}}
/// ```
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code; see the README for the list.
    pub code: String,
    /// Human message. For 5xx a generic sentence; details are in the log under the request id.
    pub message: String,
    /// Field problems keyed by dotted field path (422 only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldProblem>,
}

/// An HTTP error: status + [`ErrorBody`].
///
/// Statuses: 400 bad request (`malformed_json`, `invalid_login_state`),
/// 401 (`unauthorized`, `not_signed_in`), 403 (`forbidden`, `not_member`,
/// `consent_denied`), 404 `not_found`, 409 `conflict`, 413 `payload_too_large`,
/// 422 (`validation_failed`, `unknown_recipients`), 500 `internal`,
/// 502 `upstream_refused`, 503 `unavailable`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with no field map.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, body: ErrorBody { code: code.to_owned(), message: message.into(), fields: BTreeMap::new() } }
    }

    /// 400 `malformed_json`.
    pub fn malformed_json(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the request body is not valid JSON: {detail}"))
    }

    /// 401 `unauthorized` (service token missing or wrong).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs a service token: Authorization: Bearer <token>",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 422 `validation_failed` for one field.
    pub fn validation(err: &ValidationError) -> Self {
        Self::fields(vec![(err.field.clone(), err.code.to_owned(), err.message.clone())])
    }

    /// 422 `validation_failed` for several fields (`(field, code, message)`).
    pub fn fields(problems: Vec<(String, String, String)>) -> Self {
        let message = problems.iter().map(|(_, _, m)| m.as_str()).collect::<Vec<_>>().join("; ");
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message);
        error.body.fields =
            problems.into_iter().map(|(field, code, message)| (field, FieldProblem { code, message })).collect();
        error
    }

    /// 500 `internal`; `detail` is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; see the server log")
    }

    fn unavailable(detail: impl std::fmt::Display) -> Self {
        error!(error = %detail, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency (database, cloud relay or DingTalk) is unavailable; try again shortly",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(detail) => {
                Self::new(StatusCode::CONFLICT, "conflict", format!("the request conflicts with stored data: {detail}"))
            }
            StoreError::Unavailable(detail) => Self::unavailable(detail),
            StoreError::Other(detail) => Self::internal(detail),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        Self::validation(&err)
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidState(reason) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_login_state", format!("{reason}; start the sign-in again"))
            }
            LoginError::Failed(failure) => {
                let status = match failure {
                    domain::LoginFailure::ProviderUnavailable => StatusCode::BAD_GATEWAY,
                    domain::LoginFailure::InvalidCode => StatusCode::BAD_REQUEST,
                    domain::LoginFailure::NotMember
                    | domain::LoginFailure::Inactive
                    | domain::LoginFailure::ConsentDenied { .. } => StatusCode::FORBIDDEN,
                };
                Self::new(status, failure.code(), failure.message())
            }
            LoginError::Refused(detail) => {
                error!(error = %detail, "the cloud refused the login");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_refused",
                    "the cloud relay refused this login; check the relay client's configuration",
                )
            }
            LoginError::Unavailable(detail) => Self::unavailable(detail),
            LoginError::NotSignedIn => {
                Self::new(StatusCode::UNAUTHORIZED, "not_signed_in", "sign in with DingTalk first")
            }
            LoginError::Store(store) => store.into(),
        }
    }
}

impl From<MessageError> for ApiError {
    fn from(err: MessageError) -> Self {
        match err {
            MessageError::Invalid(validation) => Self::validation(&validation),
            MessageError::UnknownUsers(ids) => {
                // Unknown bindings are `external:<id>`; the rest are local user ids (`inactive:<id>`
                // for members the org marks inactive). Each list is reported under its own field.
                let (external, local): (Vec<&String>, Vec<&String>) =
                    ids.iter().partition(|id| id.starts_with("external:"));
                let mut problems = Vec::new();
                if !local.is_empty() {
                    let listed = local.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
                    problems.push((
                        "recipients.user_ids".to_owned(),
                        "unknown".to_owned(),
                        format!("unknown or inactive local user ids: {listed}"),
                    ));
                }
                if !external.is_empty() {
                    let listed = external.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
                    problems.push((
                        "recipients.external_ids".to_owned(),
                        "unknown".to_owned(),
                        format!("no member is bound to these external ids: {listed}"),
                    ));
                }
                let mut error = Self::fields(problems);
                error.body.code = "unknown_recipients".to_owned();
                error
            }
            MessageError::NotFound => Self::not_found("the resource"),
            MessageError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", detail),
            MessageError::KeyReused => Self::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different message",
            ),
            MessageError::Rejected(detail) => Self::new(StatusCode::CONFLICT, "refused", detail),
            MessageError::Unavailable(detail) => Self::unavailable(detail),
            MessageError::Store(store) => store.into(),
        }
    }
}

impl From<CloudError> for ApiError {
    fn from(err: CloudError) -> Self {
        match err {
            CloudError::InvalidState => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_login_state",
                "the sign-in is unknown, expired or already used; start the sign-in again",
            ),
            CloudError::Forbidden(detail) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            CloudError::NotFound => Self::not_found("the resource"),
            CloudError::UnknownProvider(provider) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("provider: no identity provider {provider:?} is served here"),
            ),
            CloudError::KeyReused => Self::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this idempotency key was already used with a different message",
            ),
            CloudError::NotMember => {
                Self::new(StatusCode::NOT_FOUND, "not_member", "the person is not a member of the corp")
            }
            CloudError::Invalid(invalid) => Self::validation(&invalid),
            CloudError::Unavailable(detail) => Self::unavailable(detail),
            CloudError::Rejected(detail) => Self::new(StatusCode::BAD_GATEWAY, "upstream_refused", detail),
            CloudError::Store(store) => store.into(),
        }
    }
}

#[async_trait]
impl Writer for ApiError {
    async fn write(self, _req: &mut Request, _depot: &mut Depot, res: &mut Response) {
        res.status_code(self.status);
        // A challenge set by the route (the relay's `Basic`) wins over the service API's `Bearer`.
        if self.status == StatusCode::UNAUTHORIZED
            && self.body.code == "unauthorized"
            && !res.headers().contains_key("www-authenticate")
        {
            let _ = res.add_header("www-authenticate", "Bearer", true);
        }
        res.render(Json(self.body));
    }
}

/// Every status an [`ApiError`] can have, with what it means in the OpenAPI document. Each
/// endpoint keeps the ones it can answer with `#[endpoint(status_codes(...))]`.
const ERROR_RESPONSES: [(&str, &str); 12] = [
    ("400", "Bad request: `malformed_json` (the body is not JSON), `invalid_login_state`, `invalid_code`"),
    (
        "401",
        "Not authenticated: `unauthorized` (service token or relay credentials missing or wrong), `not_signed_in` (no valid session cookie)",
    ),
    (
        "403",
        "Forbidden: `forbidden` (a corp or `complete_url` outside the relay client's), `not_member`, `consent_denied`",
    ),
    ("404", "Not found: `not_found`, `not_member`"),
    (
        "409",
        "Conflict: `conflict`, `idempotency_key_reused`, `refused` (DingTalk refused, e.g. a recall after 24 hours)",
    ),
    ("413", "`payload_too_large`: the body is larger than 64 KiB"),
    ("415", "`unsupported_media_type`: the body must be JSON with `Content-Type: application/json`"),
    ("422", "`validation_failed` or `unknown_recipients`: `fields` names each field and its problem"),
    ("429", "`rate_limited`: too many failed authentications from this address; retry after `Retry-After` seconds"),
    ("500", "`internal`: an unexpected error; details are in the server log under the `x-request-id`"),
    ("502", "`upstream_refused`: DingTalk or the cloud relay refused the call"),
    ("503", "`unavailable`: a dependency (database, cloud relay or DingTalk) is unavailable; retry shortly"),
];

impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        let schema = ErrorBody::to_schema(components);
        for (status, description) in ERROR_RESPONSES {
            let mut response = salvo_oapi::Response::new(description)
                .add_content("application/json", salvo_oapi::Content::new(schema.clone()));
            if status == "429" {
                response = response.add_header(
                    "Retry-After",
                    salvo_oapi::Header::new(salvo_oapi::Object::with_type(salvo_oapi::BasicType::Integer))
                        .description("Seconds until this address may try again"),
                );
            }
            operation.responses.insert(status, response);
        }
    }
}
