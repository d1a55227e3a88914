//! What the use-case tests share: a fixed clock, the test corps, ids and bodies, and a store
//! failure. Each test file `use`s it; a file needing another shape defines its own beside it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use domain::{CorpId, MessageBody, Timestamp, UserId};

use crate::ports::{MockClock, StoreError};

/// The tests' "now", in ms since the epoch (2025-06-15).
pub(crate) const NOW_MS: i64 = 1_750_000_000_000;

/// [`NOW_MS`] as a timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MS)
}

/// A clock that always answers [`now`].
pub(crate) fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    Arc::new(clock)
}

/// A corp id (panics when invalid).
pub(crate) fn corp(raw: &str) -> CorpId {
    CorpId::parse(raw).unwrap()
}

/// The first test corp.
pub(crate) fn corp_a() -> CorpId {
    corp("dingcorpa")
}

/// The second test corp.
pub(crate) fn corp_b() -> CorpId {
    corp("dingcorpb")
}

/// A userid (panics when invalid).
pub(crate) fn uid(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

/// A text body (panics when invalid).
pub(crate) fn text(content: &str) -> MessageBody {
    MessageBody::text(content).unwrap()
}

/// The store error the tests make a store answer.
pub(crate) fn store_down() -> StoreError {
    StoreError::Unavailable("pool timed out".to_owned())
}
