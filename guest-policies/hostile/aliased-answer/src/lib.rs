//! Hostile test policy: every string of its answer (allocation IDs and
//! reasons) points into one 24 MiB region of its memory, so a tiny answer in
//! guest memory asks the host to copy 48 MiB per verdict. Given a container
//! whose ID is `log-region`, it logs the whole region as one message
//! instead. The host must refuse the copy before making it.
//!
//! Used by the host's tests to check that the sandbox contains it; never
//! shipped.

use dockhand_policy_sdk::{
    ContainerBatch, EvalContext, Ownership, OwnershipPolicy, PolicyInfo, Verdict, logging,
};

struct Hostile;

/// Size of the region every answer string aliases.
const REGION_BYTES: usize = 24 << 20;

/// The shared region, filled with ASCII so every alias is a valid string.
fn region() -> &'static str {
    let bytes: &'static mut [u8] = Vec::leak(vec![b'x'; REGION_BYTES]);
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// A `String` over the shared region. Deliberately aliased: the canonical
/// ABI lowers it as the region's pointer and length without copying. It is
/// never freed, because the host must reject the answer before the
/// post-return function would run.
fn alias(region: &'static str) -> String {
    // SAFETY: not sound Rust on purpose; this guest exists to hand the host
    // many answer strings that share one allocation. Nothing in the guest
    // reads or frees them after `classify` returns.
    unsafe { String::from_raw_parts(region.as_ptr().cast_mut(), region.len(), region.len()) }
}

impl OwnershipPolicy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("hostile-aliased-answer", "0.1.0")
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        let region = region();
        if batch.containers().any(|c| c.id() == "log-region") {
            logging::info(region);
            return batch
                .containers()
                .map(|_| Verdict::unknown("logged the region"))
                .collect();
        }
        batch
            .containers()
            .map(|_| Verdict {
                ownership: Ownership::Owned(alias(region)),
                reason: alias(region),
            })
            .collect()
    }
}

dockhand_policy_sdk::export_ownership!(Hostile);
