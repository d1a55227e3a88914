//! Use cases, by the role that runs them.

pub mod cloud;
pub mod in_process;
pub mod local;
