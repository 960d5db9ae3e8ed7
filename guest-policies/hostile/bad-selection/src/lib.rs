//! Hostile test policy: a kill policy whose `describe` declares an input
//! selection the host cannot honour (a `*` in the middle of a label key).
//!
//! Used by the host's tests to check that loading refuses it; never shipped.

use dockhand_policy_sdk::{Action, CandidateBatch, EvalContext, KillPolicy, PolicyInfo};

use dockhand_policy_sdk::InputSelection;

struct Hostile;

impl KillPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-bad-selection", "0.1.0")
            .reading(InputSelection::nothing().with_labels(&["com.*.alloc_id"]))
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|_| Action::ignore("never loaded"))
            .collect()
    }
}

dockhand_policy_sdk::export_kill!(Hostile);
