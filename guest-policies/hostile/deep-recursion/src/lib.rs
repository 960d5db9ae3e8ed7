//! Hostile test policy: `classify` recurses without bound; the Wasm stack limit must stop it.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

fn descend(depth: u64) -> u64 {
    let next = std::hint::black_box(depth.wrapping_add(1));
    if next == 0 {
        return 0;
    }
    descend(next).wrapping_add(std::hint::black_box(depth))
}

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-deep-recursion", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let depth = descend(std::hint::black_box(1));
        batch
            .containers()
            .map(|_| Verdict::unknown(format!("{depth}")))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
