//! Identifiers of tenants, people and departments, valid by construction.
//!
//! String ids are 1–64 printable ASCII characters with no whitespace and no
//! comma (providers join id lists with commas), trimmed of surrounding whitespace.
//! Numeric ids are positive 64-bit integers. Each provider's adapter documents
//! where its ids come from.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The longest string id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

fn parse_str_id(field: &str, raw: &str, allowed: fn(char) -> bool) -> Result<String, ValidationError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "required", format!("{field} must not be empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            "too_long",
            format!("{field} is {} bytes; the limit is {MAX_ID_LEN}", value.len()),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(ValidationError::new(field, "invalid", format!("{field} contains the character {bad:?}")));
    }
    Ok(value.to_owned())
}

fn printable_no_comma(c: char) -> bool {
    c.is_ascii_graphic() && c != ','
}

fn corp_chars(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $allowed:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the id; the error names the field.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_str_id($field, raw, $allowed).map(Self)
            }

            /// The id as the provider spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Validates the id: it must be positive.
            pub fn new(value: i64) -> Result<Self, ValidationError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(ValidationError::new($field, "invalid", format!("{} must be a positive integer, got {value}", $field)))
                }
            }

            /// The numeric value the provider uses.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ValidationError;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

string_id!(
    /// An organization's `corpId` (usually `ding…`); letters, digits, `_` and `-` only.
    CorpId, "corp_id", corp_chars
);
string_id!(
    /// A person's `unionId`: the same for every app of one developer account, across orgs.
    UnionId, "union_id", printable_no_comma
);
string_id!(
    /// A member's `userid` inside one org: unique and immutable there.
    UserId, "userid", printable_no_comma
);
string_id!(
    /// A person's open id (per app) as the provider's current-user call returns it. Stored, never a key.
    OpenId, "open_id", printable_no_comma
);
numeric_id!(
    /// An app's `agent_id` in a tenant, used to send work notifications.
    AgentId, "agent_id"
);
numeric_id!(
    /// A department id (`dept_id`); sending to a department includes its sub-departments.
    DeptId, "dept_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_ids_trim_and_accept_realistic_values() {
        assert_eq!(CorpId::parse(" ding9f50b15bccd16741 ").map(|c| c.to_string()), Ok("ding9f50b15bccd16741".into()));
        assert!(UserId::parse("manager4220").is_ok());
        assert!(UnionId::parse("z21HjQliSzpw0Yxxxx").is_ok());
        assert!(OpenId::parse("123").is_ok());
    }

    #[test]
    fn empty_ids_are_required() {
        let err = UserId::parse("   ").err();
        assert_eq!(err.map(|e| (e.field, e.code)), Some(("userid".to_owned(), "required")));
    }

    #[test]
    fn ids_longer_than_64_bytes_are_refused() {
        assert!(UnionId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(UnionId::parse(&"a".repeat(65)).err().map(|e| e.code), Some("too_long"));
    }

    #[test]
    fn commas_whitespace_and_non_ascii_are_refused() {
        assert_eq!(UserId::parse("a,b").err().map(|e| e.code), Some("invalid"));
        assert_eq!(UserId::parse("a b").err().map(|e| e.code), Some("invalid"));
        assert_eq!(UserId::parse("张三").err().map(|e| e.code), Some("invalid"));
        assert_eq!(CorpId::parse("ding.x").err().map(|e| e.field), Some("corp_id".to_owned()));
    }

    #[test]
    fn numeric_ids_must_be_positive() {
        assert_eq!(AgentId::new(300001).map(AgentId::get), Ok(300001));
        assert_eq!(DeptId::new(0).err().map(|e| e.field), Some("dept_id".to_owned()));
        assert_eq!(DeptId::new(-1).err().map(|e| e.code), Some("invalid"));
    }

    #[test]
    fn ids_round_trip_through_serde_and_refuse_bad_input() {
        let id: Result<UserId, _> = serde_json::from_str("\"manager4220\"");
        assert!(id.is_ok());
        let bad: Result<UserId, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
        let dept: Result<DeptId, _> = serde_json::from_str("0");
        assert!(dept.is_err());
    }
}
