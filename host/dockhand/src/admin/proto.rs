//! Generated protobuf messages and gRPC stubs of `dockhand.admin.v1`, fenced into this one
//! module. Lint allowances for generated code live here and nowhere else.

// Generated code is not ours to document, and prost/tonic output trips a few lints
// (e.g. `missing_debug_implementations` on the tonic server wrappers); these allowances apply
// only to the generated module.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/dockhand.admin.v1.rs"));
}

pub use generated::*;
