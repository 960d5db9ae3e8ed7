//! Hostile test policy: a kill policy that answers with a signal that does not exist.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

dockhand_policy_sdk::kill_world!("../../../wit");

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-bad-signal", "0.1.0")
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|_| Action::kill("SIGBOGUS", "no such signal"))
            .collect()
    }
}

export!(Hostile);
