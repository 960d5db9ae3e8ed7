//! dockhand's default kill policy: stop an orphan gracefully, then remove it.
//!
//! Every candidate the ownership stage judged `owned` gets SIGTERM, up to
//! 30 s to exit (then SIGKILL, as `docker stop` does), and is removed. This is
//! gentler than Nomad's reaper, which force-removes at once. Anything not
//! `owned` is ignored.

dockhand_policy_sdk::kill_world!("../../wit");

use dockhand_policy_sdk::{InputSelection, Ownership};

/// Grace period between SIGTERM and SIGKILL.
const STOP_TIMEOUT_MS: u64 = 30_000;

struct DefaultKill;

impl Guest for DefaultKill {
    fn describe() -> PolicyInfo {
        // The ownership verdict is all it looks at.
        PolicyInfo::new("default-kill", env!("CARGO_PKG_VERSION"))
            .reading(InputSelection::nothing())
    }

    fn decide(_ctx: EvalContext, batch: CandidateBatch) -> Vec<Action> {
        batch
            .candidates()
            .map(|c| match c.ownership {
                Ownership::Owned(alloc) => Action::stop(
                    "SIGTERM",
                    STOP_TIMEOUT_MS,
                    true,
                    format!("orphan of allocation {alloc}"),
                ),
                _ => Action::ignore("not owned by a Nomad allocation of this node"),
            })
            .collect()
    }
}

export!(DefaultKill);
