//! Request extraction shared by every role: JSON bodies (JSON only, size-limited, duplicate keys
//! refused, malformed JSON (400) told apart from a wrong shape (422, naming the field path)), and
//! the `Idempotency-Key` header.

use std::cell::RefCell;
use std::fmt;

use salvo::http::{ParseError, StatusCode};
use salvo::prelude::*;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use validator::Validate;

use super::dto::validation_problems;
use super::error::ApiError;

/// Largest JSON request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The field name used for a problem with the whole document (e.g. an array where an object is
/// expected), in JSONPath's notation for the root.
pub const ROOT_FIELD: &str = "$";

/// Reads a JSON body of at most [`MAX_BODY_BYTES`]:
/// - 415 `unsupported_media_type` unless `Content-Type: application/json`;
/// - 413 `payload_too_large` when larger;
/// - 400 `malformed_json` for invalid JSON (syntax, trailing data);
/// - 422 `validation_failed` for a document of the wrong shape, with the field's path
///   (`recipients.dept_ids[0]`, `body.text`) as the key of `fields`: a duplicate object key
///   anywhere (code `duplicate_key`: JSON leaves its meaning open, RFC 8259 §4, so it is refused
///   rather than guessed), a missing field (`required`), an unknown field (`unknown_field`), a
///   wrong type or an out-of-range number (`invalid`).
pub async fn read_json<T: DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let is_json = req.content_type().is_some_and(|m| m.essence_str() == "application/json");
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let bytes = req.payload_with_max_size(MAX_BODY_BYTES).await.map_err(|err| match err {
        ParseError::PayloadTooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        other => ApiError::malformed_json(other),
    })?;
    parse_json(bytes)
}

/// Parses a JSON document as `T` with the rules of [`read_json`] (without the HTTP checks).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_unique_keys(bytes)?;
    // Every request body is an object; serde would also take a struct from a JSON array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::fields(vec![(
            ROOT_FIELD.to_owned(),
            "invalid".to_owned(),
            "the request body must be a JSON object".to_owned(),
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => shape_problem(&path, &inner),
            _ => ApiError::malformed_json(inner),
        }
    })?;
    de.end().map_err(ApiError::malformed_json)?;
    Ok(value)
}

/// The 422 for a data error at `path` (serde_path_to_error's dotted path; `.` for the root).
fn shape_problem(path: &str, err: &serde_json::Error) -> ApiError {
    // serde's own messages (serde::de::Error::missing_field / unknown_field) name the field:
    // "missing field `x`", "unknown field `x`, expected one of …".
    let message = strip_position(&err.to_string());
    let named = |prefix: &str| {
        message.strip_prefix(prefix).and_then(|rest| rest.split_once('`')).map(|(name, _)| join(path, name))
    };
    let (field, code) = if let Some(field) = named("missing field `") {
        (field, "required")
    } else if message.starts_with("unknown field `") {
        // serde_path_to_error's path already ends with the unknown key.
        (join(path, ""), "unknown_field")
    } else {
        (join(path, ""), "invalid")
    };
    ApiError::fields(vec![(field.clone(), code.to_owned(), format!("{field}: {message}"))])
}

/// `path` (`.` is the root) joined with `name` (may be empty).
fn join(path: &str, name: &str) -> String {
    match (path, name) {
        (".", "") | ("", "") => ROOT_FIELD.to_owned(),
        (".", name) | ("", name) => name.to_owned(),
        (path, "") => path.to_owned(),
        (path, name) => format!("{path}.{name}"),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// 422 `validation_failed` (`duplicate_key`, naming the key's path) if any object in the document
/// repeats a key; 400 `malformed_json` for a syntax error.
fn check_unique_keys(bytes: &[u8]) -> Result<(), ApiError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = UniqueKeys { path: String::new(), duplicate: &duplicate }.deserialize(&mut de).and_then(|()| de.end());
    match (result, duplicate.into_inner()) {
        (_, Some(field)) => Err(ApiError::fields(vec![(
            field.clone(),
            "duplicate_key".to_owned(),
            format!("{field} appears more than once in its object"),
        )])),
        (Err(err), None) => Err(ApiError::malformed_json(err)),
        (Ok(()), None) => Ok(()),
    }
}

/// Walks a JSON value, recording the path of the first repeated object key in `duplicate`.
struct UniqueKeys<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(UniqueKeys { path: format!("{}[{index}]", self.path), duplicate: self.duplicate })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if !seen.insert(key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(UniqueKeys { path, duplicate: self.duplicate })?;
        }
        Ok(())
    }
}

/// Runs `validator` rules; 422 `validation_failed` with a field map when they fail.
pub fn validated<T: Validate>(input: T) -> Result<T, ApiError> {
    input.validate().map_err(|errors| ApiError::fields(validation_problems(&errors, "")))?;
    Ok(input)
}

/// Largest page a listing returns (`limit`).
pub const MAX_PAGE: u32 = 500;

/// The paging parameters `limit` (1–[`MAX_PAGE`], default 100) and `offset` (0–2³¹−1, an
/// int32 as the OpenAPI document says; default 0) of a listing. A value that is not a whole
/// number or lies outside its range is refused with 422 `validation_failed` naming the
/// parameter — never clamped.
pub fn page(req: &Request) -> Result<(u32, u32), ApiError> {
    let number = |name: &str, min: i64, max: i64, default: u32| -> Result<u32, ApiError> {
        let Some(raw) = req.query::<String>(name) else { return Ok(default) };
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::fields(vec![(
                    name.to_owned(),
                    "out_of_range".to_owned(),
                    format!("{name} must be a whole number from {min} to {max}"),
                )])
            })
    };
    Ok((number("limit", 1, i64::from(MAX_PAGE), 100)?, number("offset", 0, i64::from(i32::MAX), 0)?))
}

/// Longest `Idempotency-Key` accepted, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The request's `Idempotency-Key` header: `None` when absent; the key (surrounding blanks
/// trimmed) when it is 1–[`MAX_IDEMPOTENCY_KEY`] printable ASCII characters. Anything else — a
/// non-ASCII or control byte, an empty or over-long key, the header sent twice — is refused with
/// 400 `invalid_idempotency_key`, never ignored (an ignored key would let a retry send twice).
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    let refuse = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("the Idempotency-Key header {why}; it must be 1–{MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        )
    };
    if values.next().is_some() {
        return Err(refuse("is sent more than once"));
    }
    let key = std::str::from_utf8(value.as_bytes()).map_err(|_| refuse("is not ASCII"))?.trim();
    if !key.is_ascii() {
        return Err(refuse("is not ASCII"));
    }
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(refuse("is empty, too long or has spaces or control characters"));
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Deserialize;

    use super::parse_json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        to_all: Option<bool>,
        #[serde(default)]
        dept_ids: Vec<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        recipients: Inner,
        body: Option<serde_json::Value>,
    }

    fn field(json: &str) -> (String, String) {
        let err = parse_json::<Outer>(json.as_bytes()).unwrap_err();
        assert_eq!(err.status.as_u16(), 422, "{json}: {err:?}");
        let (field, problem) = err.body.fields.iter().next().unwrap();
        (field.clone(), problem.code.clone())
    }

    #[test]
    fn type_and_range_errors_name_the_field_path() {
        assert_eq!(field(r#"{"recipients":{"to_all":"yes"}}"#), ("recipients.to_all".into(), "invalid".into()));
        assert_eq!(field(r#"{"recipients":{"dept_ids":["2"]}}"#), ("recipients.dept_ids[0]".into(), "invalid".into()));
        assert_eq!(
            field(r#"{"recipients":{"dept_ids":[1, 1.5]}}"#),
            ("recipients.dept_ids[1]".into(), "invalid".into())
        );
        assert_eq!(
            field(r#"{"recipients":{"dept_ids":[9223372036854775808]}}"#),
            ("recipients.dept_ids[0]".into(), "invalid".into())
        );
        assert_eq!(field(r#"{"body":{}}"#), ("recipients".into(), "required".into()));
        assert_eq!(field(r#"{"recipients":{"x":1}}"#), ("recipients.x".into(), "unknown_field".into()));
        assert_eq!(field(r#""text""#), ("$".into(), "invalid".into()));
        assert_eq!(field("[{}]"), ("$".into(), "invalid".into()));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(field(r#"{"recipients":{},"recipients":{}}"#), ("recipients".into(), "duplicate_key".into()));
        assert_eq!(
            field(r#"{"recipients":{},"body":{"text":{"content":"a","content":"b"}}}"#),
            ("body.text.content".into(), "duplicate_key".into())
        );
        assert_eq!(
            field(r#"{"recipients":{},"body":{"list":[{"a":1},{"a":1,"a":2}]}}"#),
            ("body.list[1].a".into(), "duplicate_key".into())
        );
        assert!(parse_json::<Outer>(br#"{"recipients":{},"body":{"a":{"x":1},"b":{"x":1}}}"#).is_ok());
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for json in [r#"{"recipients":"#, r#"{"recipients":{}} trailing"#, ""] {
            let err = parse_json::<Outer>(json.as_bytes()).unwrap_err();
            assert_eq!((err.status.as_u16(), err.body.code.as_str()), (400, "malformed_json"), "{json}");
        }
    }
}
