//! Adapters that are called: the HTTP API.

pub mod http;
