//! Hostile test policy: `classify` panics (an abort, so a trap).
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

dockhand_policy_sdk::ownership_world!("../../../wit");

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-panic", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        if std::hint::black_box(true) {
            panic!("hostile policy panics on purpose");
        }
        batch
            .containers()
            .map(|_| Verdict::unknown("unreachable"))
            .collect()
    }
}

export!(Hostile);
