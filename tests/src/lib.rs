//! dingbridge test support: the DingTalk emulator (library + `dingtalk-emulator` binary) used by
//! tests, benchmarks and the developer sandbox.

pub mod emulator;
