//! Request body extraction shared by every role: JSON only, size-limited,
//! malformed JSON (400) told apart from a wrong shape (422).

use salvo::http::{ParseError, StatusCode};
use salvo::prelude::*;
use serde::de::DeserializeOwned;
use validator::Validate;

use super::dto::validation_problems;
use super::error::ApiError;

/// Largest JSON request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads a JSON body of at most [`MAX_BODY_BYTES`]: 415 unless `Content-Type: application/json`,
/// 413 when larger, 400 `malformed_json` for invalid JSON, 422 `validation_failed` for a JSON
/// value of the wrong shape (unknown or missing fields, wrong types).
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
    serde_json::from_slice(bytes).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            ApiError::fields(vec![("body".to_owned(), "invalid".to_owned(), format!("request body: {err}"))])
        }
        _ => ApiError::malformed_json(err),
    })
}

/// Runs `validator` rules; 422 `validation_failed` with a field map when they fail.
pub fn validated<T: Validate>(input: T) -> Result<T, ApiError> {
    input.validate().map_err(|errors| ApiError::fields(validation_problems(&errors, "")))?;
    Ok(input)
}
