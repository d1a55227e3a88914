//! `GET/POST /oidc/end_session`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–§3).

use std::sync::Arc;

use serde_json::Value;
use tracing::{info, instrument};

use super::authorize::with_query as append_query;
use super::clients::ClientRegistry;
use super::{OAuthError, OidcSettings};
use crate::ports::TokenSigner;
use crate::usecases::local::Logout;

/// The logout request's parameters, as received.
#[derive(Debug, Clone, Default)]
pub struct EndSessionRequest {
    /// `id_token_hint`: an ID token this server issued (expired ones are accepted, §2).
    pub id_token_hint: Option<String>,
    /// `client_id`: which client asks (needed with `post_logout_redirect_uri` when there is no hint).
    pub client_id: Option<String>,
    /// `post_logout_redirect_uri`: must be registered for the client, exactly.
    pub post_logout_redirect_uri: Option<String>,
    /// `state`, passed back on the redirect.
    pub state: Option<String>,
}

/// What the logout endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSessionOutcome {
    /// Signed out; 302 to the client's registered `post_logout_redirect_uri` (with `state`).
    Redirect(String),
    /// Signed out; no redirect asked for: a "signed out" page.
    SignedOut,
    /// Refused without signing out (an invalid hint, an unregistered redirect URI): an error page.
    Refused(OAuthError),
}

/// RP-initiated logout: ends the dingbridge session (and the grants issued under it).
pub struct EndSession {
    clients: Arc<ClientRegistry>,
    settings: Arc<OidcSettings>,
    signer: Arc<dyn TokenSigner>,
    logout: Logout,
}

impl EndSession {
    /// Builds the use case; `logout` should revoke grants too ([`Logout::with_grants`]).
    pub fn new(
        clients: Arc<ClientRegistry>,
        settings: Arc<OidcSettings>,
        signer: Arc<dyn TokenSigner>,
        logout: Logout,
    ) -> Self {
        Self { clients, settings, signer, logout }
    }

    /// Checks the request, then signs the browser holding `session_token` out. Never fails:
    /// storage errors are logged and the person still sees the outcome (the cookie is cleared by
    /// the caller either way).
    #[instrument(skip_all)]
    pub async fn execute(&self, request: EndSessionRequest, session_token: Option<&str>) -> EndSessionOutcome {
        let hinted_client = match request.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(hint) => match self.hint_audience(hint) {
                Some(aud) => Some(aud),
                None => {
                    return EndSessionOutcome::Refused(OAuthError::invalid_request(
                        "id_token_hint is not an ID token this server issued",
                    ));
                }
            },
        };
        let client_id = match (request.client_id.clone().filter(|c| !c.is_empty()), hinted_client) {
            (Some(given), Some(hinted)) if given != hinted => {
                return EndSessionOutcome::Refused(OAuthError::invalid_request(
                    "client_id differs from the audience of id_token_hint",
                ));
            }
            (given, hinted) => given.or(hinted),
        };
        let redirect = match request.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let Some(client) = client_id.as_deref().and_then(|id| self.clients.get(id)) else {
                    return EndSessionOutcome::Refused(OAuthError::invalid_request(
                        "post_logout_redirect_uri needs a known client_id or id_token_hint",
                    ));
                };
                if !client.post_logout_uri_allowed(uri) {
                    return EndSessionOutcome::Refused(OAuthError::invalid_request(format!(
                        "post_logout_redirect_uri {uri:?} is not registered for client {:?}",
                        client.client_id
                    )));
                }
                Some(uri.to_owned())
            }
        };
        match self.logout.execute(session_token).await {
            Ok(true) => info!(client_id = client_id.as_deref().unwrap_or(""), "oidc: signed out by a client"),
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "oidc: sign-out failed to update storage"),
        }
        match redirect {
            Some(uri) => {
                let pairs: Vec<(&str, String)> =
                    request.state.filter(|s| !s.is_empty()).map(|s| vec![("state", s)]).unwrap_or_default();
                EndSessionOutcome::Redirect(if pairs.is_empty() { uri } else { append_query(&uri, &pairs) })
            }
            None => EndSessionOutcome::SignedOut,
        }
    }

    /// The client (`aud`) of an ID token this server signed, ignoring expiry.
    fn hint_audience(&self, hint: &str) -> Option<String> {
        let Ok(Value::Object(claims)) = self.signer.verify(hint, Some("JWT")) else { return None };
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return None;
        }
        match claims.get("aud")? {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(list) => list.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    }
}
