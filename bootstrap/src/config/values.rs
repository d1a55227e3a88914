//! The values every section uses: the deploy [`Mode`], [`Secret`] (redacted when shown) and the
//! lenient string readers (a number in the environment is read as a string).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which role this process plays (docs/design.md "modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cloud and local in one process, on SQLite (the seed's `DEV_DEBUG`).
    Dev,
    /// The public relay that talks to DingTalk and holds the secrets.
    Cloud,
    /// Inside the protected network: users, sessions, outbox; calls only the cloud.
    Local,
}

impl Mode {
    /// Parses `dev`/`cloud`/`local` and the seed's `DEV_DEBUG`/`CLOUD`/`LOCAL`, case-insensitively.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "dev" | "dev_debug" => Some(Self::Dev),
            "cloud" => Some(Self::Cloud),
            "local" => Some(Self::Local),
            _ => None,
        }
    }

    /// `dev`, `cloud` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Cloud => "cloud",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Mode::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown mode {raw:?}; expected dev, cloud or local")))
    }
}

/// A secret from configuration: never printed (`Debug` and `Serialize` show
/// `<redacted>`). Accepts numbers too, since environment values that look
/// numeric arrive as numbers (docs/stack-notes.md F8).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// The secret value (only for passing to the code that uses it).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The wrapped `SecretString`.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(|s| Self(SecretString::from(s)))
    }
}

/// Deserializes a string, or a number / boolean as its text.
pub(super) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
        Raw::U(u) => u.to_string(),
        Raw::F(f) => f.to_string(),
        Raw::B(b) => b.to_string(),
    })
}

pub(super) fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_string")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}
