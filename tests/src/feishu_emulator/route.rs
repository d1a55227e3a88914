//! Which endpoint a request is for (docs/feishu-api.md §G.1: the open.* and accounts.* paths on
//! one listener), and the API each one counts against for the §0.4 rate limit.

use super::wire::Incoming;

/// A served endpoint; ids are the path's `:message_id` / `:user_id` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// §A.1 `GET /open-apis/authen/v1/authorize`.
    Authorize,
    /// Emulator consent page action: approve.
    ConsentApprove,
    /// Emulator consent page action: deny.
    ConsentDeny,
    /// §A.3 `POST /open-apis/authen/v2/oauth/token`.
    TokenV2,
    /// §A.3 `POST /oauth/v3/token`.
    TokenV3,
    /// §A.5 `GET /open-apis/authen/v1/user_info`.
    UserInfo,
    /// §B.1 `POST /open-apis/auth/v3/tenant_access_token/internal[/]`.
    TenantToken,
    /// §B.1 `POST /open-apis/auth/v3/app_access_token/internal[/]`.
    AppToken,
    /// §C.1 `GET /open-apis/contact/v3/users/:user_id`.
    ContactUser(String),
    /// §C.2 `POST /open-apis/contact/v3/users/batch_get_id`.
    BatchGetId,
    /// §A.5 `GET /open-apis/tenant/v2/tenant/query`.
    TenantQuery,
    /// §D.1 `POST /open-apis/im/v1/messages`.
    Send,
    /// §D.5 `DELETE /open-apis/im/v1/messages/:message_id`.
    Recall(String),
    /// §D.6 `GET /open-apis/im/v1/messages/:message_id/read_users`.
    ReadUsers(String),
    /// §D.3 `POST /open-apis/message/v4/batch_send/` (with or without the trailing `/`).
    BatchSend,
    /// §D.4 `GET /open-apis/im/v1/batch_messages/:batch_message_id/get_progress`.
    BatchProgress(String),
    /// §D.4 `GET /open-apis/im/v1/batch_messages/:batch_message_id/read_user`.
    BatchReadUser(String),
    /// §D.4 `DELETE /open-apis/im/v1/batch_messages/:batch_message_id`.
    BatchRecall(String),
}

/// One non-empty path segment without `/`.
fn segment(s: &str) -> Option<String> {
    (!s.is_empty() && !s.contains('/')).then(|| s.to_owned())
}

impl Route {
    /// The endpoint of `req`; `None` → 404 `text/plain` (§0.2: unknown path or wrong method).
    pub(crate) fn of(req: &Incoming) -> Option<Route> {
        const MESSAGES: &str = "/open-apis/im/v1/messages/";
        const USERS: &str = "/open-apis/contact/v3/users/";
        const BATCHES: &str = "/open-apis/im/v1/batch_messages/";
        let path = req.path.as_str();
        Some(match (req.method.as_str(), path) {
            ("GET", "/open-apis/authen/v1/authorize") => Route::Authorize,
            ("GET", "/open-apis/authen/v1/authorize/approve") => Route::ConsentApprove,
            ("GET", "/open-apis/authen/v1/authorize/deny") => Route::ConsentDeny,
            ("POST", "/open-apis/authen/v2/oauth/token") => Route::TokenV2,
            ("POST", "/oauth/v3/token") => Route::TokenV3,
            ("GET", "/open-apis/authen/v1/user_info") => Route::UserInfo,
            // §B.1: "trailing `/` also works".
            (
                "POST",
                "/open-apis/auth/v3/tenant_access_token/internal" | "/open-apis/auth/v3/tenant_access_token/internal/",
            ) => Route::TenantToken,
            (
                "POST",
                "/open-apis/auth/v3/app_access_token/internal" | "/open-apis/auth/v3/app_access_token/internal/",
            ) => Route::AppToken,
            ("POST", "/open-apis/contact/v3/users/batch_get_id") => Route::BatchGetId,
            ("GET", "/open-apis/tenant/v2/tenant/query") => Route::TenantQuery,
            ("POST", "/open-apis/im/v1/messages") => Route::Send,
            ("GET", p) if p.starts_with(USERS) => Route::ContactUser(segment(p.get(USERS.len()..)?)?),
            ("DELETE", p) if p.starts_with(MESSAGES) => Route::Recall(segment(p.get(MESSAGES.len()..)?)?),
            ("GET", p) if p.starts_with(MESSAGES) => {
                Route::ReadUsers(segment(p.get(MESSAGES.len()..)?.strip_suffix("/read_users")?)?)
            }
            ("POST", "/open-apis/message/v4/batch_send/" | "/open-apis/message/v4/batch_send") => Route::BatchSend,
            ("GET", p) if p.starts_with(BATCHES) => {
                let rest = p.get(BATCHES.len()..)?;
                match (rest.strip_suffix("/get_progress"), rest.strip_suffix("/read_user")) {
                    (Some(id), _) => Route::BatchProgress(segment(id)?),
                    (None, Some(id)) => Route::BatchReadUser(segment(id)?),
                    (None, None) => return None,
                }
            }
            ("DELETE", p) if p.starts_with(BATCHES) => Route::BatchRecall(segment(p.get(BATCHES.len()..)?)?),
            _ => return None,
        })
    }

    /// The API this call counts against for the §0.4 per-API limit; `None` for the browser pages.
    pub(crate) fn api(&self) -> Option<&'static str> {
        Some(match self {
            Route::Authorize | Route::ConsentApprove | Route::ConsentDeny => return None,
            Route::TokenV2 | Route::TokenV3 => "oauth_token",
            Route::UserInfo => "user_info",
            Route::TenantToken => "tenant_access_token",
            Route::AppToken => "app_access_token",
            Route::ContactUser(_) => "contact_user_get",
            Route::BatchGetId => "contact_user_batch_get_id",
            Route::TenantQuery => "tenant_query",
            Route::Send => "im_message_create",
            Route::Recall(_) => "im_message_delete",
            Route::ReadUsers(_) => "im_message_read_users",
            Route::BatchSend => "message_batch_send",
            Route::BatchProgress(_) => "batch_message_get_progress",
            Route::BatchReadUser(_) => "batch_message_read_user",
            Route::BatchRecall(_) => "batch_message_delete",
        })
    }
}
