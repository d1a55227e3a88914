//! dingbridge test support: the DingTalk emulator (library + `dingtalk-emulator` binary) used by
//! tests, benchmarks and the developer sandbox, and [`stack`], which starts the emulator and a
//! dev-mode dingbridge wired to it (the `sandbox` binary and the end-to-end tests use it).
//! [`feishu_emulator`] is the Feishu / Lark (飞书) emulator, following `docs/feishu-api.md`.

pub mod cluster;
pub mod emulator;
pub mod feishu_emulator;
pub mod procs;
pub mod split;
pub mod stack;

/// Logs of an emulator binary to stderr: `RUST_LOG` (default `info`), coloured on a terminal.
pub fn init_emulator_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
