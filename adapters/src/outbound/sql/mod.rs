//! What the SQLite and PostgreSQL stores share: the tables (`schema`, one `diesel::table!` set both
//! backends' migrations create), the row structs and their conversions (`rows`, `oidc_rows`), and
//! the port implementations written with diesel's query DSL only (`ON CONFLICT`, `RETURNING` and
//! transactions exist on both) as macros each backend applies to its store: `stores`
//! (`impl_store_ports!`), `oidc_stores`, `ledger_stores`, `claims` (the claim queue) and `ops`
//! (the outbox gauges). Each backend's own module (`outbound::sqlite`, `outbound::postgres`) keeps
//! what is its own: the URL, the pool, the migrations, the mapping of its errors, its hot-write path.
//!
//! The test bodies both backends run (`store_tests`, `outbox_tests`, `event_tests`,
//! `oidc_store_tests`, with `fixtures`) live here too.

pub(crate) mod claims;
pub(crate) mod event_stores;
pub(crate) mod ledger_stores;
pub(crate) mod login_stores;
pub(crate) mod member_stores;
pub(crate) mod oidc_rows;
pub(crate) mod oidc_stores;
pub mod ops;
pub(crate) mod outbox_stores;
pub(crate) mod quota_stores;
pub(crate) mod relay_stores;
pub(crate) mod rows;
pub(crate) mod schema;
pub(crate) mod stores;

#[cfg(test)]
pub(crate) mod event_tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
pub(crate) mod oidc_store_tests;
#[cfg(test)]
pub(crate) mod outbox_tests;
#[cfg(test)]
pub(crate) mod store_tests;
