//! Hostile test policy: imports `wasi:filesystem/preopens` besides the
//! contract's interfaces. The host must refuse to load it and name the
//! import.
//!
//! Used by the host's tests to check the deny-by-default linker; never
//! shipped.

dockhand_policy_sdk::wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "dockhand-test:wasi-import/ownership-with-filesystem",
    with: {
        "dockhand:policy/types@0.3.0": ::dockhand_policy_sdk::types,
        "dockhand:policy/log@0.3.0": ::dockhand_policy_sdk::log,
    },
    generate_all,
    runtime_path: "::dockhand_policy_sdk::wit_bindgen::rt",
});

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-wasi-import", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let dirs = wasi::filesystem::preopens::get_directories();
        batch
            .containers()
            .map(|_| Verdict::unknown(format!("saw {} dirs", dirs.len())))
            .collect()
    }
}

export!(Hostile);
