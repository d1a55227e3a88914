//! Which identity provider a login, a user or a tenant belongs to.
//!
//! dingbridge serves several providers side by side (docs/design.md "Providers side by side");
//! each is named by a short key that appears in routes (`/auth/{provider}/login`), in stores
//! (the `provider` column of users and login records) and in configuration. The core only
//! compares keys: which keys exist and what they mean is the adapters' business.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The longest provider key, in bytes.
pub const MAX_PROVIDER_KEY_LEN: usize = 32;

/// A provider key: 1–32 characters of `[a-z0-9-]`, starting with a letter (for example the
/// key of each provider adapter). Valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderKey(String);

impl ProviderKey {
    /// Parses a key. Errors (field `provider`): `required` when empty, `too_long` over
    /// [`MAX_PROVIDER_KEY_LEN`] bytes, `invalid` for any other character or a leading non-letter.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("provider", "required", "provider must not be empty"));
        }
        if raw.len() > MAX_PROVIDER_KEY_LEN {
            return Err(ValidationError::new(
                "provider",
                "too_long",
                format!("provider is {} bytes; the limit is {MAX_PROVIDER_KEY_LEN}", raw.len()),
            ));
        }
        let valid = raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(ValidationError::new(
                "provider",
                "invalid",
                format!("provider {raw:?} must be lower-case letters, digits and '-', starting with a letter"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A key written in the code (an adapter's own key).
    ///
    /// # Panics
    /// When `raw` is not a valid key: a programming error every test of that adapter catches.
    pub fn from_static(raw: &'static str) -> Self {
        Self::parse(raw).expect("a provider key written in the code is valid")
    }

    /// The key as routes and stores spell it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderKey {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ProviderKey> for String {
    fn from(key: ProviderKey) -> String {
        key.0
    }
}

impl fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_lower_case_words() {
        assert_eq!(ProviderKey::parse("idp-intl2").map(|k| k.to_string()), Ok("idp-intl2".to_owned()));
        for (raw, code) in [("", "required"), ("Upper", "invalid"), ("9x", "invalid"), ("a b", "invalid")] {
            assert_eq!(ProviderKey::parse(raw).map_err(|e| e.code).err(), Some(code), "{raw:?}");
        }
        assert_eq!(ProviderKey::parse(&"a".repeat(33)).map_err(|e| e.code).err(), Some("too_long"));
    }
}
