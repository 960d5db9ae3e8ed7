//! dockhand's default kill policy: stop an orphan gracefully, then remove it.
//!
//! Every candidate the ownership stage judged `owned` gets SIGTERM, up to
//! 30 s to exit (then SIGKILL, as `docker stop` does), and is removed. This is
//! gentler than Nomad's reaper, which force-removes at once. Anything not
//! `owned` is ignored.

use std::time::Duration;

use dockhand_policy_sdk::{
    Action, CandidateBatch, EvalContext, InputSelection, KillPolicy, Ownership, PolicyInfo, Signal,
};

/// Grace period between SIGTERM and SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

struct DefaultKill;

impl KillPolicy for DefaultKill {
    fn describe() -> PolicyInfo {
        // The ownership verdict is all it looks at.
        PolicyInfo::new("default-kill", env!("CARGO_PKG_VERSION"))
            .reading(InputSelection::nothing())
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|c| match c.ownership {
                Ownership::Owned(alloc) => Action::stop(Signal::Term, STOP_TIMEOUT)
                    .and_remove()
                    .because(format!("orphan of allocation {alloc}")),
                _ => Action::ignore("not owned by a Nomad allocation of this node"),
            })
            .collect()
    }
}

dockhand_policy_sdk::export_kill!(DefaultKill);
