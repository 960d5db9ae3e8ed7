//! Hostile test policy: claims every container it is shown as `owned` — by the allocation its
//! `alloc_id` label names, or by a made-up one when it has none.
//!
//! Used by the host's tests to check that the reconciler accepts no claim the container does
//! not bear out (another node's containers, plain `docker run` ones); never shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

use dockhand_policy_sdk::InputSelection;
use dockhand_policy_sdk::labels::ALLOC_ID;

/// The allocation claimed for a container without an `alloc_id` label.
const MADE_UP: &str = "00000000-0000-4000-8000-000000000000";

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-claim-everything", "0.1.0")
            .reading(InputSelection::nothing().with_labels(&[ALLOC_ID]))
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch
            .containers()
            .map(|c| {
                let alloc = c
                    .label(ALLOC_ID)
                    .filter(|a| !a.is_empty())
                    .unwrap_or(MADE_UP);
                Verdict::owned(alloc, "everything is mine")
            })
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
