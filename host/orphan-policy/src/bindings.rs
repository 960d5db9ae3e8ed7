//! The only place `wasmtime::component::bindgen!` output lives.
//!
//! Both worlds share the `types` and `log` interfaces: the `kill` bindings
//! reuse the `ownership` ones through `with`, so one set of WIT types and one
//! linker serve both (the `log` import itself is defined in `sandbox.rs`).
//! Nothing generated is re-exported outside the crate; `convert.rs` maps to
//! the domain types.

/// Bindings of the `ownership` world (and the shared interfaces).
pub(crate) mod ownership {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "dockhand:policy/ownership",
    });
}

/// Bindings of the `kill` world.
pub(crate) mod kill {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "dockhand:policy/kill",
        with: {
            "dockhand:policy/types": super::ownership::dockhand::policy::types,
            "dockhand:policy/log": super::ownership::dockhand::policy::log,
        },
    });
}

pub(crate) use kill::KillPre;
pub(crate) use ownership::OwnershipPre;
pub(crate) use ownership::dockhand::policy::log as wit_log;
pub(crate) use ownership::dockhand::policy::types as wit;
