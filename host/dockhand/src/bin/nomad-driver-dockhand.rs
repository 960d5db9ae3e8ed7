//! The Nomad plugin binary.
fn main() {}
