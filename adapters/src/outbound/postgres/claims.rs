//! PostgreSQL's [`ClaimQueue`](crate::outbound::sql::stores::ClaimQueue): the shared claim
//! queries (`outbound::sql::claims`) with `FOR UPDATE SKIP LOCKED`, so several instances claim
//! from one queue at once without blocking each other or sharing a row.

use super::PgStore;
use crate::outbound::sql::claims::impl_claim_queue;

impl_claim_queue!(PgStore, crate::outbound::postgres, [.for_update().skip_locked()]);
