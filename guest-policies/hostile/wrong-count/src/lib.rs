//! Hostile test policy: returns one verdict more than it was given containers.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-wrong-count", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        (0..=batch.len())
            .map(|_| Verdict::not_nomad("one too many"))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
