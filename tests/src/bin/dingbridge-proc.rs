//! The `dingbridge` command line, built inside the tests package so end-to-end
//! tests can start it as a real process (`CARGO_BIN_EXE_dingbridge-proc`).
//! Identical to `bootstrap`'s `dingbridge` binary.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::cli::run().await
}
