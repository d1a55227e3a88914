//! Cloud-side use cases.
