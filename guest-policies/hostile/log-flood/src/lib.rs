//! Hostile test policy: logs far more lines, and far longer ones, than the host allows; the host must drop the excess and still serve the batch.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

use dockhand_policy_sdk::logging;

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-log-flood", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let long = "\x1b[31mred\x1b[0m ".repeat(4096);
        for i in 0..5_000 {
            logging::error(&format!("flood line {i}"));
        }
        logging::warn(&long);
        batch
            .containers()
            .map(|_| Verdict::not_nomad("flooded the log"))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
