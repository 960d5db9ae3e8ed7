//! Hostile test policy: every verdict carries a 1 MiB reason string.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-oversized-output", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let reason = "x".repeat(1 << 20);
        batch
            .containers()
            .map(|_| Verdict::unknown(reason.clone()))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
