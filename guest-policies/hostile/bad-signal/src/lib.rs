//! Hostile test policy: a kill policy that answers with a signal that does not exist.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

// The SDK only builds known signals; the raw contract type can say anything.
use dockhand_policy_sdk::{
    Action, ActionKind, CandidateBatch, EvalContext, KillPolicy, PolicyInfo,
};

struct Hostile;

impl KillPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-bad-signal", "0.1.0")
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|_| Action {
                kind: ActionKind::Kill("SIGBOGUS".to_owned()),
                reason: "no such signal".to_owned(),
            })
            .collect()
    }
}

dockhand_policy_sdk::export_kill!(Hostile);
