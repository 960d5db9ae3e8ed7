//! Example kill policy: never acts, only logs what the default would do.
//!
//! Useful to watch a new ownership policy in production before letting it
//! reap anything.

use dockhand_policy_sdk::{Action, CandidateBatch, EvalContext, KillPolicy, PolicyInfo};

use dockhand_policy_sdk::logging::info;
use dockhand_policy_sdk::{InputSelection, Ownership};

struct AuditOnly;

impl KillPolicy for AuditOnly {
    fn describe() -> PolicyInfo {
        // It logs IDs and allocations only.
        PolicyInfo::new("example-audit-only", env!("CARGO_PKG_VERSION"))
            .reading(InputSelection::nothing())
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|c| {
                if let Ownership::Owned(alloc) = c.ownership {
                    info(&format!(
                        "audit: would stop and remove {} (alloc {alloc})",
                        c.container.id()
                    ));
                }
                Action::ignore("audit-only policy never acts")
            })
            .collect()
    }
}

dockhand_policy_sdk::export_kill!(AuditOnly);
