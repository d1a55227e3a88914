//! The one validation error every constructor in this crate returns.

use std::fmt;

/// Why a value could not be constructed: the field it concerns (a dotted path
/// such as `body.text.content`), a stable machine `code` and a human message.
///
/// Codes in use: `required`, `too_long`, `too_short`, `too_many`, `invalid`,
/// `too_large`, `not_allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the offending field, e.g. `recipients.dept_ids`.
    pub field: String,
    /// Stable machine code (see the type docs for the vocabulary).
    pub code: &'static str,
    /// Human-readable explanation that names the field and the limit.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field` with `code` and `message`.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }

    /// Re-roots the error under `prefix` (`text.content` → `body.text.content`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Checks a required, length-bounded text field (length counted in characters).
pub(crate) fn text(field: &str, value: &str, max_chars: usize) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "required", format!("{field} must not be empty")));
    }
    let len = trimmed.chars().count();
    if len > max_chars {
        return Err(ValidationError::new(
            field,
            "too_long",
            format!("{field} is {len} characters; the limit is {max_chars}"),
        ));
    }
    Ok(trimmed.to_owned())
}
