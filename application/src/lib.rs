//! dingbridge application layer: ports (the traits adapters implement) and
//! use cases (small structs with one `execute`).
//!
//! Depends on `domain` only. Ports are `#[async_trait]` traits held as
//! `Arc<dyn Port>` because the deploy mode, and so the adapter, is chosen at
//! run time; with the `mock` feature each port has a mockall `Mock…` type.

pub mod ports;
/// Use cases: cloud side and local side.
pub mod usecases;
