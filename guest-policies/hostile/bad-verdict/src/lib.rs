//! Hostile test policy: claims ownership with an empty allocation ID.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-bad-verdict", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch
            .containers()
            .map(|_| Verdict::owned("", "empty alloc id"))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
