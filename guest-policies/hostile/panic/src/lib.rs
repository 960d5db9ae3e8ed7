//! Hostile test policy: `classify` panics (an abort, so a trap).
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-panic", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        if std::hint::black_box(true) {
            panic!("hostile policy panics on purpose");
        }
        batch
            .containers()
            .map(|_| Verdict::unknown("unreachable"))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
