//! Hostile test kill policy: force-removes every candidate it is given, whatever its
//! ownership.
//!
//! Used by the host's tests, beside a policy that claims everything, to check that only the
//! claims the host accepts ever reach a kill policy; never shipped.

dockhand_policy_sdk::kill_world!("../../../wit");

use dockhand_policy_sdk::InputSelection;

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-remove-everything", "0.1.0").reading(InputSelection::nothing())
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|_| Action::remove(true, "everything goes"))
            .collect()
    }
}

export!(Hostile);
