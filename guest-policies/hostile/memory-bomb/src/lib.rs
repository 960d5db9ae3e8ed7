//! Hostile test policy: `classify` allocates until memory runs out; the store's memory limit must stop it.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

struct Hostile;

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-memory-bomb", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Reserve without filling: memory grows as fast as the allocator
            // can ask, with no time spent writing pages.
            let mut chunk: Vec<u8> = Vec::with_capacity(1 << 20);
            chunk.push(0xA5);
            hoard.push(std::hint::black_box(chunk));
            if std::hint::black_box(hoard.len()) == usize::MAX {
                break;
            }
        }
        batch
            .containers()
            .map(|_| Verdict::unknown(format!("{}", hoard.len())))
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
