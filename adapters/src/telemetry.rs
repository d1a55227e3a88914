//! Tracing across processes: the W3C Trace Context `traceparent` header
//! (<https://www.w3.org/TR/trace-context/>, version `00`), so one sign-in or one message can be
//! followed from local to the cloud in both processes' logs.
//!
//! - Inbound, [`crate::inbound::http`]'s request hoop reads a valid `traceparent` (or starts a new
//!   trace), logs its trace id as the `trace_id` field of the request span, and runs the request
//!   with it as the [`current`] trace.
//! - Outbound, the relay client ([`crate::outbound::relay`]) sends `traceparent` on every relay
//!   call: the current trace (a request being served) or a new one (a background job such as the
//!   outbox dispatcher), with a fresh parent id per call, and logs the same `trace_id`.
//!
//! Shape: `00-<trace-id: 32 lowercase hex>-<parent-id: 16 lowercase hex>-<flags: 2 hex>`; an
//! all-zero trace or parent id is invalid, as is any other version-`00` shape. Ids are random
//! (UUID v4 bytes): they carry nothing about the request.

use std::fmt;

/// The header name (lower case, as HTTP/2 and the spec write it).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A trace: the 16-byte trace id shared by every process a request crosses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// A new random trace id (never all zero).
    pub fn random() -> Self {
        let mut bytes = *uuid::Uuid::new_v4().as_bytes();
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        Self(bytes)
    }

    /// The id as 32 lowercase hex characters.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Parses a version-`00` `traceparent` value and returns its trace id; `None` when it is not a
/// valid one (wrong length or characters, upper-case hex, all-zero ids, version `ff`). Versions
/// above `00` are read by their first four fields, as the spec asks.
pub fn parse_traceparent(value: &str) -> Option<TraceId> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version = parse_hex::<1>(version)?[0];
    if version == 0xff || (version == 0 && (parts.next().is_some() || value.len() != 55)) {
        return None;
    }
    let trace = parse_hex::<16>(trace)?;
    let parent = parse_hex::<8>(parent)?;
    parse_hex::<1>(flags)?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some(TraceId(trace))
}

/// A `traceparent` value for a new call in `trace`: version `00`, a fresh random parent id,
/// flags `01` (sampled).
pub fn traceparent(trace: TraceId) -> String {
    let mut parent = [0u8; 8];
    parent.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    if parent == [0; 8] {
        parent[7] = 1;
    }
    format!("00-{}-{}-01", trace.to_hex(), hex(&parent))
}

tokio::task_local! {
    static CURRENT: TraceId;
}

/// The trace of the request this task is serving, if any.
pub fn current() -> Option<TraceId> {
    CURRENT.try_with(|t| *t).ok()
}

/// Runs `future` with `trace` as the [`current`] trace.
pub async fn in_trace<F: Future>(trace: TraceId, future: F) -> F::Output {
    CURRENT.scope(trace, future).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_specs_example_parses_and_bad_values_do_not() {
        let id = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
        // A later version may add fields; its first four are read.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").is_some());
    }

    #[test]
    fn a_generated_traceparent_round_trips_with_a_fresh_parent_each_time() {
        let trace = TraceId::random();
        let (a, b) = (traceparent(trace), traceparent(trace));
        assert_ne!(a, b);
        assert_eq!(parse_traceparent(&a), Some(trace));
        assert_eq!(a.len(), 55);
    }

    #[tokio::test]
    async fn the_current_trace_is_scoped_to_the_future() {
        assert_eq!(current(), None);
        let trace = TraceId::random();
        assert_eq!(in_trace(trace, async { current() }).await, Some(trace));
        assert_eq!(current(), None);
    }
}
