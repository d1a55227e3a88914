//! The relying parties (clients) local serves, from config `[[oidc.clients]]`: how each
//! authenticates at the token endpoint and where it may be redirected.

use std::collections::HashMap;

use domain::{CorpId, DeptId, ValidationError};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use url::Url;

use super::{KNOWN_SCOPES, OAuthError};
use crate::ports::SigningAlgorithm;

/// Shortest client secret accepted, in bytes (RFC 9700 §2.4 asks for secrets a guess cannot hit).
pub const MIN_SECRET_BYTES: usize = 16;

/// How a client authenticates at the token, introspection and revocation endpoints (OIDC Core
/// §9; RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic with the URL-encoded id and secret.
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `none`: a public client (a CLI, a single-page or native app); PKCE is then required.
    None,
}

impl ClientAuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    /// Parses a registered name; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// One relying party.
#[derive(Debug, Clone)]
pub struct OidcClient {
    /// `client_id` (1–128 printable ASCII characters).
    pub client_id: String,
    /// The secret of a confidential client (at least `MIN_SECRET_BYTES` bytes); `None` for a
    /// public one.
    pub client_secret: Option<SecretString>,
    /// How it authenticates; `None` exactly when it has no secret.
    pub auth_method: ClientAuthMethod,
    /// Registered redirect URIs, matched by exact string comparison (RFC 9700 §4.1.3); for a public
    /// client a loopback URI also matches on any port (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// Registered `post_logout_redirect_uri`s, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes it may be granted (a subset of [`KNOWN_SCOPES`]; `openid` always).
    pub scopes: Vec<String>,
    /// Corps whose members may sign in to it; empty: every corp local serves.
    pub corp_ids: Vec<CorpId>,
    /// Departments whose members may sign in to it (a member of any one of them); empty: all.
    pub dept_ids: Vec<DeptId>,
    /// How its ID tokens are signed (`RS256` unless configured).
    pub id_token_alg: SigningAlgorithm,
}

impl OidcClient {
    /// Whether it is public (no secret; PKCE required).
    pub fn is_public(&self) -> bool {
        self.client_secret.is_none()
    }

    /// Whether `uri` is one of its redirect URIs: exactly, or — for a public client — as a
    /// loopback URI (`http://127.0.0.1`, `http://[::1]`, `http://localhost`) equal to a
    /// registered one except for the port (RFC 8252 §7.3).
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        if !self.is_public() {
            return false;
        }
        let Some(candidate) = loopback(uri) else { return false };
        self.redirect_uris.iter().filter_map(|r| loopback(r)).any(|registered| {
            registered.host_str() == candidate.host_str()
                && registered.path() == candidate.path()
                && registered.query() == candidate.query()
        })
    }

    /// Whether `uri` is one of its post-logout redirect URIs (exact match).
    pub fn post_logout_uri_allowed(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Checks the registration. Errors name the key (`oidc.clients[i].…`, with `prefix` given).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        let field = |name: &str| format!("{prefix}.{name}");
        if self.client_id.is_empty()
            || self.client_id.len() > 128
            || !self.client_id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ValidationError::new(
                field("client_id"),
                "invalid",
                "client_id must be 1–128 printable ASCII characters",
            ));
        }
        match (&self.client_secret, self.auth_method) {
            (None, ClientAuthMethod::None) => {}
            (None, method) => {
                return Err(ValidationError::new(
                    field("client_secret"),
                    "required",
                    format!("token_endpoint_auth_method {} needs a client_secret", method.as_str()),
                ));
            }
            (Some(_), ClientAuthMethod::None) => {
                return Err(ValidationError::new(
                    field("client_secret"),
                    "invalid",
                    "a public client (token_endpoint_auth_method = \"none\") must not have a client_secret",
                ));
            }
            (Some(secret), _) if secret.expose_secret().len() < MIN_SECRET_BYTES => {
                return Err(ValidationError::new(
                    field("client_secret"),
                    "too_short",
                    format!("client_secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            (Some(_), _) => {}
        }
        if self.redirect_uris.is_empty() {
            return Err(ValidationError::new(
                field("redirect_uris"),
                "required",
                "at least one redirect URI is needed",
            ));
        }
        for (i, uri) in self.redirect_uris.iter().enumerate() {
            check_redirect_uri(&format!("{}[{i}]", field("redirect_uris")), uri)?;
        }
        for (i, uri) in self.post_logout_redirect_uris.iter().enumerate() {
            check_redirect_uri(&format!("{}[{i}]", field("post_logout_redirect_uris")), uri)?;
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(ValidationError::new(field("scopes"), "invalid", "scopes must include \"openid\""));
        }
        if let Some(unknown) = self.scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(ValidationError::new(
                field("scopes"),
                "invalid",
                format!("unknown scope {unknown:?}; known: {}", KNOWN_SCOPES.join(", ")),
            ));
        }
        Ok(())
    }
}

/// A redirect URI must be absolute, without a fragment (RFC 6749 §3.1.2), and https unless it
/// points at this machine (loopback, RFC 8252 §7.3) — plain http elsewhere would hand codes to
/// anyone on the path.
fn check_redirect_uri(field: &str, uri: &str) -> Result<(), ValidationError> {
    let parsed = Url::parse(uri)
        .map_err(|err| ValidationError::new(field, "invalid", format!("{uri:?} is not an absolute URL: {err}")))?;
    if parsed.fragment().is_some() {
        return Err(ValidationError::new(field, "invalid", format!("{uri:?} must not have a fragment")));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback(uri).is_some() => Ok(()),
        "http" => Err(ValidationError::new(
            field,
            "insecure",
            format!("{uri:?} is plain http on another host; use https (only loopback may be http)"),
        )),
        // A private-use scheme of a native app (RFC 8252 §7.1), e.g. `com.example.app:/cb`.
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(ValidationError::new(field, "invalid", format!("{uri:?}: scheme {scheme} is not allowed"))),
    }
}

/// `uri` parsed when it is an `http` URI on a loopback host.
fn loopback(uri: &str) -> Option<Url> {
    let parsed = Url::parse(uri).ok()?;
    let host = parsed.host_str()?;
    (parsed.scheme() == "http" && matches!(host, "127.0.0.1" | "[::1]" | "localhost")).then_some(parsed)
}

/// What a request presented to authenticate its client (parsed at the HTTP edge).
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret, when one was presented.
    pub secret: Option<SecretString>,
    /// How it was presented (`None`: only `client_id` in the body).
    pub method: ClientAuthMethod,
}

/// The configured clients, by id.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, OidcClient>,
}

impl ClientRegistry {
    /// Builds the registry. Errors: a registration fails [`OidcClient::validate`], or two share a
    /// `client_id` (`oidc.clients[i].client_id`, `duplicate`).
    pub fn new(clients: Vec<OidcClient>) -> Result<Self, ValidationError> {
        let mut by_id = HashMap::new();
        for (i, client) in clients.into_iter().enumerate() {
            let prefix = format!("oidc.clients[{i}]");
            client.validate(&prefix)?;
            if by_id.contains_key(&client.client_id) {
                return Err(ValidationError::new(
                    format!("{prefix}.client_id"),
                    "duplicate",
                    format!("client_id {:?} is registered twice", client.client_id),
                ));
            }
            by_id.insert(client.client_id.clone(), client);
        }
        Ok(Self { clients: by_id })
    }

    /// A client by id.
    pub fn get(&self, client_id: &str) -> Option<&OidcClient> {
        self.clients.get(client_id)
    }

    /// Whether no client is registered (the provider is then off).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Authenticates a request's client: it must exist, present its secret the way it is
    /// registered to, and the secret must match (compared in constant time, RFC 9700 §2.4). A
    /// public client presents only its id. Errors: `invalid_client` (RFC 6749 §5.2) for an
    /// unknown client, a wrong or missing secret, or the wrong method.
    pub fn authenticate(&self, credentials: &ClientCredentials) -> Result<&OidcClient, OAuthError> {
        let client = self
            .get(&credentials.client_id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong credentials"))?;
        if credentials.method != client.auth_method {
            return Err(OAuthError::invalid_client(format!(
                "this client authenticates with {}",
                client.auth_method.as_str()
            )));
        }
        match (&client.client_secret, &credentials.secret) {
            (None, None) => Ok(client),
            (Some(expected), Some(given))
                if bool::from(expected.expose_secret().as_bytes().ct_eq(given.expose_secret().as_bytes())) =>
            {
                Ok(client)
            }
            _ => Err(OAuthError::invalid_client("unknown client or wrong credentials")),
        }
    }
}
