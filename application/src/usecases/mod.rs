//! Use cases, by the role that runs them.

pub mod cloud;
pub mod local;
