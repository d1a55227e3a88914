//! emulator
fn main() {}
