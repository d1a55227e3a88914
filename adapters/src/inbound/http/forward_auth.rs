//! `GET /auth/verify`: forward-auth for reverse proxies (nginx `auth_request`, Traefik
//! `forwardAuth`; the oauth2-proxy / Authelia pattern). The proxy asks dingbridge about each
//! request, passing the browser's cookies: 200 with identity headers lets it through, 401 (or
//! 302 with `?redirect=true`) sends the person to sign in and back (docs/oidc.md "Forward-auth").

use application::usecases::local::LoginError;
use application::usecases::oidc::SubjectClaim;
use domain::{ReturnTo, User};
use salvo::http::StatusCode;
use salvo::http::header::{HeaderName, HeaderValue};
use salvo::prelude::*;
use salvo_oapi::endpoint;
use serde::Serialize;

use super::error::ApiError;
use super::local::{signed_in_user, state};

/// How `/auth/verify` answers.
#[derive(Debug, Clone)]
pub struct ForwardAuthSettings {
    /// Prefix of the identity headers (`X-Auth-Request-` gives `X-Auth-Request-User`, `-Email`,
    /// `-Preferred-Username`, `-Groups`, `-Corp-Id`; oauth2-proxy's names).
    pub header_prefix: String,
    /// This service's `…/auth/dingtalk/login`.
    pub sign_in_url: String,
    /// Origins whose URLs may be the `return_to` of a sign-in (`https://app.example.com`).
    pub return_origins: Vec<String>,
    /// What the `…User` header carries (the OIDC `sub`).
    pub subject: SubjectClaim,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            header_prefix: "X-Auth-Request-".into(),
            sign_in_url: "/auth/dingtalk/login".into(),
            return_origins: Vec::new(),
            subject: SubjectClaim::UserId,
        }
    }
}

/// The identity also returned as the 200 body.
#[derive(Debug, Serialize, salvo_oapi::ToSchema)]
pub struct VerifiedIdentity {
    /// `sub` (the `…User` header).
    pub user: String,
    /// The org email, when the org has one (the `…Email` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// DingTalk `userid` (the `…Preferred-Username` header).
    pub preferred_username: String,
    /// Department ids (the `…Groups` header, comma-separated).
    pub groups: Vec<String>,
    /// The corp (the `…Corp-Id` header).
    pub corp_id: String,
}

/// The URL the proxied request was for: `?rd=`, nginx's `X-Original-URL`, or Traefik's
/// `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri`.
fn original_url(req: &Request) -> Option<String> {
    if let Some(rd) = req.query::<String>("rd") {
        return Some(rd);
    }
    if let Some(url) = req.header::<String>("x-original-url") {
        return Some(url);
    }
    let proto = req.header::<String>("x-forwarded-proto")?;
    let host = req.header::<String>("x-forwarded-host")?;
    let uri = req.header::<String>("x-forwarded-uri").unwrap_or_else(|| "/".into());
    Some(format!("{proto}://{host}{uri}"))
}

fn identity(user: &User, subject: SubjectClaim) -> VerifiedIdentity {
    VerifiedIdentity {
        user: subject.of(user),
        email: user.profile.org_email.clone(),
        preferred_username: user.profile.userid.as_str().to_owned(),
        groups: user.profile.dept_ids.iter().map(|d| d.to_string()).collect(),
        corp_id: user.profile.corp_id.as_str().to_owned(),
    }
}

fn set(res: &mut Response, name: &str, value: &str) {
    // Header values must be visible ASCII; anything else is left out rather than mangled.
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        && value.to_str().is_ok()
    {
        let _ = res.add_header(name, value, true);
    }
}

/// Forward-auth: 200 with identity headers (`X-Auth-Request-User`, `-Email`,
/// `-Preferred-Username`, `-Groups`, `-Corp-Id`; prefix configurable) for a valid session
/// cookie; otherwise 401 `not_signed_in` with `X-Auth-Request-Redirect` naming the sign-in URL
/// (its `return_to` is the original URL when its origin is trusted), or with `?redirect=true` a
/// 302 to it (Traefik passes the answer to the browser).
#[endpoint(
    tags("auth"),
    security((), ("session_cookie" = [])),
    parameters(
        ("rd" = Option<String>, Query, description = "The original URL (else `X-Original-URL`, else `X-Forwarded-Proto/Host/Uri`)"),
        ("redirect" = Option<bool>, Query, description = "Answer an unauthenticated request with 302 to the sign-in instead of 401"),
        ("X-Original-URL" = Option<String>, Header, description = "nginx: the URL the proxied request was for"),
    ),
    responses(
        (status_code = 200, description = "Signed in; identity headers set", body = VerifiedIdentity),
        (status_code = 302, description = "Not signed in (`redirect=true`): to the sign-in"),
        (status_code = 401, description = "`not_signed_in`; `X-Auth-Request-Redirect` is the sign-in URL", body = super::error::ErrorBody),
        (status_code = 500, description = "`internal`", body = super::error::ErrorBody),
        (status_code = 503, description = "`unavailable`: the database is unreachable", body = super::error::ErrorBody),
    )
)]
pub(crate) async fn verify(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let local = state(depot)?;
    let settings = &local.forward_auth;
    let _ = res.add_header("cache-control", "no-store", true);
    match signed_in_user(req, &local).await {
        Ok(user) => {
            let found = identity(&user, settings.subject);
            let prefix = &settings.header_prefix;
            set(res, &format!("{prefix}User"), &found.user);
            if let Some(email) = &found.email {
                set(res, &format!("{prefix}Email"), email);
            }
            set(res, &format!("{prefix}Preferred-Username"), &found.preferred_username);
            set(res, &format!("{prefix}Groups"), &found.groups.join(","));
            set(res, &format!("{prefix}Corp-Id"), &found.corp_id);
            res.render(Json(found));
            Ok(())
        }
        Err(ApiError { status: StatusCode::UNAUTHORIZED, .. }) => {
            let original = original_url(req);
            let return_to = ReturnTo::parse_with_origins(original.as_deref(), &settings.return_origins);
            let sign_in = if return_to == ReturnTo::root() && original.is_some() {
                settings.sign_in_url.clone()
            } else {
                let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_str().as_bytes()).collect();
                format!("{}?return_to={encoded}", settings.sign_in_url)
            };
            set(res, &format!("{}Redirect", settings.header_prefix), &sign_in);
            if req.query::<bool>("redirect").unwrap_or(false) {
                res.render(Redirect::found(sign_in));
                return Ok(());
            }
            Err(ApiError::from(LoginError::NotSignedIn))
        }
        Err(other) => Err(other),
    }
}
