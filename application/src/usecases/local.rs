//! Local-side use cases.
