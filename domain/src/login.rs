//! Login values: the OAuth `state`, session tokens, authorization codes,
//! `return_to` paths and the ways a login can fail.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{Timestamp, ValidationError};

/// Length in characters of a [`LoginState`] or [`SessionToken`]: 32 random
/// bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;

/// How long a login may take from start to completion, in seconds (docs/design.md: 10 minutes).
pub const LOGIN_TTL_SECS: i64 = 600;

fn encode_token(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_token(field: &str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(field, "required", format!("{field} is missing")));
    }
    let decoded = URL_SAFE_NO_PAD.decode(raw).ok().filter(|b| b.len() == 32);
    if raw.len() != TOKEN_CHARS || decoded.is_none() {
        return Err(ValidationError::new(field, "invalid", format!("{field} is not a value this service issued")));
    }
    Ok(raw.to_owned())
}

macro_rules! random_token {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Encodes 32 bytes drawn from a CSPRNG by the caller.
            pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
                Self(encode_token(bytes))
            }

            /// Parses a value received from a client: exactly 43 base64url characters.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_token($field, raw).map(Self)
            }

            /// The value to hand to the client.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// SHA-256 (lower-case hex, 64 characters): the only form stores keep.
            pub fn hash(&self) -> String {
                crate::digest::sha256_hex(self.0.as_bytes())
            }

            /// Constant-time equality (for comparing a cookie with a query value).
            pub fn ct_eq(&self, other: &Self) -> bool {
                let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

random_token!(
    /// The OAuth `state` of one login: 32 random bytes, bound to the browser by a
    /// cookie, single use, valid for [`LOGIN_TTL_SECS`].
    LoginState, "state"
);
random_token!(
    /// A session token handed to the browser in a cookie; stores keep only its hash.
    SessionToken, "session"
);
random_token!(
    /// A PKCE `code_verifier` (RFC 7636 §4.1): 32 random bytes as 43 base64url characters, drawn
    /// for each login, kept by the cloud with the login intent and sent only to the token
    /// endpoint. Providers that do not support PKCE ignore it.
    PkceVerifier, "code_verifier"
);

impl PkceVerifier {
    /// The `code_challenge` for `code_challenge_method=S256`:
    /// `BASE64URL-NOPAD(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2).
    pub fn challenge_s256(&self) -> String {
        use sha2::Digest as _;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

/// The authorization code the provider appends to the callback (`authCode` or `code`, RFC 6749
/// §4.1.2). Opaque, 1–256 printable ASCII characters, single use.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode(String);

impl AuthCode {
    /// Validates an authorization code from the callback query.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("authCode", "required", "authCode is missing"));
        }
        if raw.len() > 256 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ValidationError::new("authCode", "invalid", "authCode is malformed"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code, to send to `userAccessToken`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthCode(<redacted>)")
    }
}

/// Where the browser goes after a login: a relative path on this service, or an absolute URL on
/// one of the origins the deployment trusts (`forward_auth.return_origins`, for applications
/// behind a reverse proxy). Anything else (other absolute URLs, `//host`, backslashes, control
/// characters, credentials in the URL, over 2048 bytes) becomes `/`, which closes the
/// open-redirect hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// The longest accepted `return_to`, in bytes.
    pub const MAX_LEN: usize = 2048;

    /// Accepts `raw` if it is a safe relative path, otherwise returns `/`.
    pub fn parse_or_root(raw: Option<&str>) -> Self {
        match raw {
            Some(path) if Self::is_safe(path) => Self(path.to_owned()),
            _ => Self::root(),
        }
    }

    /// Accepts `raw` if it is a safe relative path, or an `http`/`https` URL without credentials
    /// whose origin (`scheme://host[:port]`, RFC 6454 §6.2) is exactly one of `origins`
    /// (given as `https://app.example.com`, a trailing `/` ignored); otherwise returns `/`.
    pub fn parse_with_origins(raw: Option<&str>, origins: &[String]) -> Self {
        match raw {
            Some(path) if Self::is_safe(path) => Self(path.to_owned()),
            Some(absolute) if Self::is_trusted_absolute(absolute, origins) => Self(absolute.to_owned()),
            _ => Self::root(),
        }
    }

    fn is_trusted_absolute(raw: &str, origins: &[String]) -> bool {
        if origins.is_empty()
            || raw.len() > Self::MAX_LEN
            || raw.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
        {
            return false;
        }
        let Ok(url) = url::Url::parse(raw) else { return false };
        let origin = url.origin().ascii_serialization();
        matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    }

    /// `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    fn is_safe(path: &str) -> bool {
        path.starts_with('/')
            && !path.starts_with("//")
            && path.len() <= Self::MAX_LEN
            && !path.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login started on the local side (docs/design.md "Login"): stored under the hash
/// of its `state`, taken exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// SHA-256 hex of the `state` ([`LoginState::hash`]).
    pub state_hash: String,
    /// The identity provider the person signs in with.
    pub provider: crate::ProviderKey,
    /// Where to send the browser when the login completes.
    pub return_to: ReturnTo,
    /// When the attempt stops being usable.
    pub expires_at: Timestamp,
}

/// Why a login did not produce a session. Each has a stable `code` shown to
/// the user and returned in API errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum LoginFailure {
    /// The person declined on the provider's consent page (`error=` on the callback, RFC 6749 §4.1.2.1).
    ConsentDenied {
        /// The `error` value the provider sent.
        error: String,
    },
    /// The person is not a member of a tenant the deployment serves (the provider says so, or
    /// their tenant is another one).
    NotMember,
    /// The person is a member, but the org marks them inactive (the directory's `active` is
    /// false): refused like a non-member, nothing stored.
    #[serde(rename = "inactive_member")]
    Inactive,
    /// The provider rejected the authorization code (used, expired or forged).
    InvalidCode,
    /// The provider could not be reached or failed; the person may try again.
    ProviderUnavailable,
}

impl LoginFailure {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ConsentDenied { .. } => "consent_denied",
            Self::NotMember => "not_member",
            Self::Inactive => "inactive_member",
            Self::InvalidCode => "invalid_code",
            Self::ProviderUnavailable => "provider_unavailable",
        }
    }

    /// A sentence for the person who tried to sign in.
    pub fn message(&self) -> &'static str {
        match self {
            Self::ConsentDenied { .. } => "You declined the consent request, so you were not signed in.",
            Self::NotMember => "Your account is not a member of an organization this service serves.",
            Self::Inactive => "Your account is not active in the organization; ask your administrator to activate it.",
            Self::InvalidCode => {
                "The sign-in provider did not accept the sign-in code; please start the sign-in again."
            }
            Self::ProviderUnavailable => "The sign-in provider could not be reached; please try again in a moment.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_43_base64url_chars_and_parse_back() {
        let state = LoginState::from_random_bytes(&[7u8; 32]);
        assert_eq!(state.expose().len(), TOKEN_CHARS);
        assert_eq!(LoginState::parse(state.expose()).ok(), Some(state));
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        // RFC 7636 Appendix B.
        let verifier = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            verifier.map(|v| v.challenge_s256()).ok().as_deref(),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
    }

    #[test]
    fn malformed_states_are_refused() {
        assert_eq!(LoginState::parse("").err().map(|e| e.code), Some("required"));
        assert_eq!(LoginState::parse("abc").err().map(|e| e.code), Some("invalid"));
        assert_eq!(LoginState::parse(&"!".repeat(43)).err().map(|e| e.code), Some("invalid"));
        assert_eq!(LoginState::parse(&"A".repeat(44)).err().map(|e| e.field), Some("state".to_owned()));
    }

    #[test]
    fn hashes_are_stable_sha256_hex() {
        let token = SessionToken::from_random_bytes(&[0u8; 32]);
        assert_eq!(token.hash().len(), 64);
        assert_eq!(token.hash(), SessionToken::from_random_bytes(&[0u8; 32]).hash());
        assert_ne!(token.hash(), SessionToken::from_random_bytes(&[1u8; 32]).hash());
    }

    #[test]
    fn constant_time_equality() {
        let a = LoginState::from_random_bytes(&[1u8; 32]);
        let b = LoginState::from_random_bytes(&[2u8; 32]);
        assert!(a.ct_eq(&a.clone()));
        assert!(!a.ct_eq(&b));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let state = LoginState::from_random_bytes(&[9u8; 32]);
        assert!(!format!("{state:?}").contains(state.expose()));
        let code = AuthCode::parse("f85c6abc").ok();
        assert_eq!(format!("{code:?}"), "Some(AuthCode(<redacted>))");
    }

    #[test]
    fn return_to_accepts_relative_paths_only() {
        assert_eq!(ReturnTo::parse_or_root(Some("/x?y=1#z")).as_str(), "/x?y=1#z");
        for bad in ["https://evil.example/", "//evil.example", "/\\evil.example", "evil", "/a b", "/a\nb", ""] {
            assert_eq!(ReturnTo::parse_or_root(Some(bad)).as_str(), "/", "{bad:?}");
        }
        assert_eq!(ReturnTo::parse_or_root(Some(&format!("/{}", "a".repeat(2048)))).as_str(), "/");
        assert_eq!(ReturnTo::parse_or_root(None).as_str(), "/");
    }

    #[test]
    fn return_to_accepts_absolute_urls_on_trusted_origins_only() {
        let origins = vec!["https://app.example.com".to_owned(), "http://127.0.0.1:8080/".to_owned()];
        let ok = |raw: &str| ReturnTo::parse_with_origins(Some(raw), &origins).as_str() == raw;
        assert!(ok("https://app.example.com/dashboards?x=1"));
        assert!(ok("http://127.0.0.1:8080/"));
        assert!(ok("/relative/still"));
        for bad in [
            "https://app.example.com.evil.example/",
            "https://evil.example/?https://app.example.com",
            "http://app.example.com/",
            "https://app.example.com:444/",
            "https://user:pw@app.example.com/",
            "javascript:alert(1)",
            "https://app.example.com/a b",
        ] {
            assert_eq!(ReturnTo::parse_with_origins(Some(bad), &origins).as_str(), "/", "{bad:?}");
        }
        assert_eq!(ReturnTo::parse_with_origins(Some("https://app.example.com/"), &[]).as_str(), "/");
    }

    #[test]
    fn auth_codes_are_bounded() {
        assert!(AuthCode::parse("f85c6").is_ok());
        assert_eq!(AuthCode::parse("").err().map(|e| e.code), Some("required"));
        assert_eq!(AuthCode::parse(&"a".repeat(257)).err().map(|e| e.code), Some("invalid"));
        assert_eq!(AuthCode::parse("a b").err().map(|e| e.code), Some("invalid"));
    }

    #[test]
    fn failures_have_stable_codes() {
        assert_eq!(LoginFailure::NotMember.code(), "not_member");
        assert_eq!(LoginFailure::ConsentDenied { error: "access_denied".into() }.code(), "consent_denied");
    }
}
