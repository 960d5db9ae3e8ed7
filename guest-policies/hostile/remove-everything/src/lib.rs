//! Hostile test kill policy: force-removes every candidate it is given, whatever its
//! ownership.
//!
//! Used by the host's tests, beside a policy that claims everything, to check that only the
//! claims the host accepts ever reach a kill policy; never shipped.

use dockhand_policy_sdk::{Action, CandidateBatch, EvalContext, KillPolicy, PolicyInfo};

use dockhand_policy_sdk::InputSelection;

struct Hostile;

impl KillPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-remove-everything", "0.1.0").reading(InputSelection::nothing())
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|_| Action::force_remove().because("everything goes"))
            .collect()
    }
}

dockhand_policy_sdk::export_kill!(Hostile);
