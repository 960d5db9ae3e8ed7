//! Hostile test policy: every verdict carries a 1 MiB reason string.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

dockhand_policy_sdk::ownership_world!("../../../wit");

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-oversized-output", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let reason = "x".repeat(1 << 20);
        batch
            .containers()
            .map(|_| Verdict::unknown(reason.clone()))
            .collect()
    }
}

export!(Hostile);
