//! The store ports on [`PgStore`]: the SQLite adapter's implementations
//! (diesel's query DSL only), applied to PostgreSQL connections.

use super::PgStore;
use crate::outbound::sql::stores::impl_store_ports;

impl_store_ports!(PgStore, super::Conn, super::db_error);
crate::outbound::sql::oidc_stores::impl_oidc_stores!(PgStore, super::db_error);
crate::outbound::sql::ledger_stores::impl_ledger_store!(PgStore, super::db_error);
