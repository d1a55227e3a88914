//! The `dingbridge` binary.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::cli::run().await
}
