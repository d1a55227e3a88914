//! Build script: the PostgreSQL probe of `adapters/build.rs` (see there), for the end-to-end
//! tests that run local on PostgreSQL: when the test server is unreachable outside CI they are
//! built with `--cfg pg_unavailable`, which marks them `#[ignore]`d.

#[path = "../adapters/build.rs"]
mod probe;

fn main() {
    probe::main();
}
