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
