//! Policy components built from `guest-policies/` by `build.rs`.
//!
//! The two defaults are embedded in the binary. The examples and the
//! hostile test guests stay in the build directory; other crates' tests can
//! read them through `test_guest` with the `test-guests` feature.

use crate::decision::PolicyKind;

/// The default ownership policy (Nomad's rules, safe on a shared daemon).
pub const DEFAULT_OWNERSHIP: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/guests/default-ownership.wasm"));

/// The default kill policy (SIGTERM, 30 s, then remove).
pub const DEFAULT_KILL: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/guests/default-kill.wasm"));

/// The bundled default of `kind`.
pub fn default_policy(kind: PolicyKind) -> &'static [u8] {
    match kind {
        PolicyKind::Ownership => DEFAULT_OWNERSHIP,
        PolicyKind::Kill => DEFAULT_KILL,
    }
}

#[cfg(feature = "test-guests")]
include!(concat!(env!("OUT_DIR"), "/test_guests.rs"));

/// Bytes of a test guest built alongside this crate (see [`TEST_GUESTS`]).
#[cfg(feature = "test-guests")]
pub fn test_guest(name: &str) -> std::io::Result<Vec<u8>> {
    if !TEST_GUESTS.contains(&name) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no test guest named {name:?}"),
        ));
    }
    std::fs::read(
        std::path::Path::new(env!("OUT_DIR"))
            .join("guests")
            .join(format!("{name}.wasm")),
    )
}
