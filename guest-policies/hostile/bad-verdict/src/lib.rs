//! Hostile test policy: claims ownership with an empty allocation ID.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

dockhand_policy_sdk::ownership_world!("../../../wit");

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-bad-verdict", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch
            .containers()
            .map(|_| Verdict::owned("", "empty alloc id"))
            .collect()
    }
}

export!(Hostile);
