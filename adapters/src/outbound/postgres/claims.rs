//! PostgreSQL's [`ClaimQueue`](crate::outbound::sqlite::stores::ClaimQueue): the shared claim
//! queries (`outbound::sqlite::claims`) with `FOR UPDATE SKIP LOCKED`, so several instances claim
//! from one queue at once without blocking each other or sharing a row.

use super::PgStore;
use crate::outbound::sqlite::claims::impl_claim_queue;

impl_claim_queue!(PgStore, crate::outbound::postgres, [.for_update().skip_locked()]);
