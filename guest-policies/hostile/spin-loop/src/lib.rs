//! Hostile test policy: `classify` never returns (an infinite loop); the epoch deadline must stop it.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-spin-loop", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
            if std::hint::black_box(n) == u64::MAX && batch.is_empty() {
                break;
            }
        }
        Vec::new()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
