//! Every size and duration a policy (or its input) can influence, named and
//! bounded in one place.
//!
//! A policy is untrusted code: it may loop, allocate, recurse, log or answer
//! without bound. Each limit below says which attack it stops. Limits that an
//! operator may tune live in [`crate::EngineConfig`], whose defaults are the
//! `DEFAULT_*` values here; the `MAX_*` values are hard ceilings.

use std::time::Duration;

/// Largest policy component accepted by `load`, in bytes. Rust policies are
/// tens of KiB; a Python policy built by `componentize-py` carries its
/// interpreter and is about 18 MiB. This stops compile-time denial of service
/// through huge uploads (compiling is not preemptible; an 18 MiB Python
/// policy takes about half a minute on 2 cores), and a compiled policy is
/// cached by digest so the cost is paid once per engine version.
pub const MAX_POLICY_BYTES: usize = 32 * 1024 * 1024;

/// Most containers (or candidates) in one call. Every call pays for a fresh
/// instance, so bigger batches cost less per container; this bound keeps a
/// batch inside [`DEFAULT_DEADLINE`] (measured: under 3 µs per fully
/// inspected snapshot through ownership and kill when every input is sent,
/// so about 3 ms per full batch) and its input inside
/// [`MAX_BATCH_INPUT_BYTES`] for ordinary snapshots. Callers split larger
/// sets into batches.
pub const MAX_CONTAINERS_PER_BATCH: usize = 1024;

/// Components at least this large embed an interpreter (a Rust policy is
/// tens of KiB, a `componentize-py` one about 18 MiB).
pub const INTERPRETER_POLICY_BYTES: usize = 4 * 1024 * 1024;

/// Most containers (or candidates) in one call of a policy of at least
/// [`INTERPRETER_POLICY_BYTES`]. Interpreted code is about a hundred times
/// slower per container than compiled code (measured for the default rules
/// in Python: about 0.17 ms per container against 2 µs); batches this size
/// keep each call well inside [`DEFAULT_DEADLINE`]. Larger batches are split
/// into several calls, each with its own deadline.
pub const MAX_CONTAINERS_PER_INTERPRETED_BATCH: usize = 128;

/// Most containers per call of a policy whose component is `component_bytes`
/// long.
pub fn policy_batch_size(component_bytes: usize) -> usize {
    if component_bytes >= INTERPRETER_POLICY_BYTES {
        MAX_CONTAINERS_PER_INTERPRETED_BATCH
    } else {
        MAX_CONTAINERS_PER_BATCH
    }
}

/// Most bytes of strings (IDs, names, labels, env, mounts) in one batch's
/// input. A batch of snapshots bigger than this could not fit a guest's
/// memory next to its own data and would only fail inside the guest.
pub const MAX_BATCH_INPUT_BYTES: usize = 8 * 1024 * 1024;

/// Longest `reason` a policy may return, in bytes. Reasons go to logs and
/// audit lines; an oversized one fails the batch instead of flooding them.
pub const MAX_REASON_BYTES: usize = 1024;

/// Longest allocation ID an `owned` verdict may carry, in bytes (Nomad's are
/// 36-byte UUIDs).
pub const MAX_ALLOC_ID_BYTES: usize = 128;

/// Longest field of `describe()`'s answer (name, version), in bytes.
pub const MAX_POLICY_INFO_FIELD_BYTES: usize = 256;

/// Most bytes one entry of an answer (a verdict or an action) may make the
/// host allocate when it is copied out of the guest: its slot in the answer
/// list plus its strings at their limits (allocation ID, signal name,
/// reason). Part of [`hostcall_budget`].
pub const MAX_ANSWER_BYTES_PER_INPUT: usize = 2 * 1024;

/// Hostcall budget of every call on top of the per-input share: covers
/// `describe()`'s largest legal answer (three 256-byte fields and two lists
/// of [`MAX_SELECTED_KEYS`](crate::selection::MAX_SELECTED_KEYS) keys of
/// [`MAX_SELECTED_KEY_BYTES`](crate::selection::MAX_SELECTED_KEY_BYTES)),
/// and is the most one guest `log` message may span before it is cut.
pub const MIN_HOSTCALL_BUDGET: usize = 64 * 1024;

/// Most bytes a call's answer (or one of its log messages) may make the host
/// copy out of guest memory, for a batch of `inputs`. wasmtime counts every
/// string and list it lifts against this budget *before* copying it, so an
/// answer whose strings all point at one large region of guest memory fails
/// the call ([`EvalError::AnswerTooLarge`](crate::EvalError::AnswerTooLarge))
/// instead of being copied many times over. With the defaults this is at
/// most 2 MiB + 64 KiB per call, so 16 calls at once stay under 35 MiB.
pub const fn hostcall_budget(inputs: usize) -> usize {
    MIN_HOSTCALL_BUDGET + inputs * MAX_ANSWER_BYTES_PER_INPUT
}

/// Most policy compiles running at once in one engine. Compiling is not
/// preemptible and uses every core (parallel compilation), so uploads queue
/// for a permit rather than all compiling together.
pub const MAX_CONCURRENT_COMPILES: u32 = 2;

/// Longest stop timeout a kill policy may ask for. Stops a policy from
/// parking the reaper on one container for hours.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Most guest log lines kept per call; the rest are counted and dropped.
pub const MAX_LOG_LINES_PER_BATCH: usize = 100;

/// Most guest log bytes kept per call; the rest are counted and dropped.
pub const MAX_LOG_BYTES_PER_BATCH: usize = 16 * 1024;

/// Longest single guest log line; longer lines are truncated.
pub const MAX_LOG_LINE_BYTES: usize = 1024;

/// Sustained guest log lines per second per policy, across calls, so a
/// policy called in a tight loop cannot flood the host log either.
pub const LOG_LINES_PER_SECOND: u32 = 50;

/// Burst allowance of the per-policy log rate limiter.
pub const LOG_BURST_LINES: u32 = 200;

/// Default guest linear-memory limit per call. A Rust guest needs about
/// 1.1 MiB; the rest is room for the batch and its answers.
pub const DEFAULT_MEMORY_LIMIT: usize = 32 * 1024 * 1024;

/// Highest memory limit an operator may configure, and the ceiling of every
/// policy's derived limit (see [`policy_memory_limit`]); also the size of
/// each pooling-allocator memory slot.
pub const MAX_MEMORY_LIMIT: usize = 128 * 1024 * 1024;

/// The memory limit of one policy: the configured `memory_limit`, or, for a
/// policy whose memory starts larger (an embedded interpreter's
/// pre-initialised heap), its initial size plus half the configured limit as
/// room for batches and answers. A policy that starts small thus gets exactly
/// the configured limit; none gets more than [`MAX_MEMORY_LIMIT`] (`None`:
/// the policy cannot run within the ceiling).
pub fn policy_memory_limit(configured: usize, initial: usize) -> Option<usize> {
    let limit = configured.max(initial.saturating_add(configured / 2));
    (limit <= MAX_MEMORY_LIMIT).then_some(limit)
}

/// Address space reserved for each guest linear memory. With 4 GiB a 32-bit
/// memory's every address falls inside its reservation, so compiled code
/// needs no bounds checks (out-of-bounds accesses hit unmapped pages). It is
/// reserved, not backed by memory. wasmtime's default on 64-bit hosts, named
/// and set here so the instance pool's address space is ours to state.
pub const MEMORY_RESERVATION_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Unmapped guard region after each memory's reservation (wasmtime's default
/// on 64-bit hosts).
pub const MEMORY_GUARD_BYTES: u64 = 32 * 1024 * 1024;

/// Default wall-clock budget of one call. Decisions take microseconds; the
/// deadline is the kill switch for loops.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);

/// Longest deadline an operator may configure.
pub const MAX_DEADLINE: Duration = Duration::from_secs(2);

/// Period of the epoch ticker; deadlines are counted in these ticks, so a
/// runaway guest stops within deadline + one tick.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);

/// Wasm stack size; deep recursion traps instead of exhausting the host
/// thread's stack.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// Default number of calls that may run at once (the pooling allocator is
/// sized for this many instances of the largest policy allowed; further
/// callers wait for a slot).
pub const DEFAULT_MAX_CONCURRENT_EVALUATIONS: u32 = 16;

/// Share of the evaluation slots one policy may hold at once: at most
/// `max(1, slots / SLOT_SHARE_DIVISOR)`. A policy that spins to its deadline
/// or fills its memory in every call, called from many threads, then leaves
/// the other slots to other policies (a sweep's, a dry run's).
pub const SLOT_SHARE_DIVISOR: u32 = 4;

/// Most core instances, memories and tables a single policy may create.
/// Rust guests use one of each; a Python policy built by `componentize-py`
/// links its interpreter from 38 core instances (libc, libpython, the
/// bindings, stubs for every WASI function) sharing one memory and one table.
pub const MAX_INSTANCES_PER_POLICY: usize = 48;

/// See [`MAX_INSTANCES_PER_POLICY`].
pub const MAX_MEMORIES_PER_POLICY: usize = 2;

/// See [`MAX_INSTANCES_PER_POLICY`].
pub const MAX_TABLES_PER_POLICY: usize = 8;

/// Most elements of one guest table.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

// One answer entry's share must hold its strings at their limits plus the
// host-side list slot wasmtime counts for it.
const _: () = assert!(
    MAX_ANSWER_BYTES_PER_INPUT >= MAX_REASON_BYTES + MAX_ALLOC_ID_BYTES + 32 + 256,
    "MAX_ANSWER_BYTES_PER_INPUT must cover a legal answer entry"
);
#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn a_policy_that_starts_small_gets_exactly_the_configured_memory() {
        assert_eq!(
            policy_memory_limit(32 * MIB, MIB + MIB / 10),
            Some(32 * MIB)
        );
        assert_eq!(policy_memory_limit(8 * MIB, 2 * MIB), Some(8 * MIB));
    }

    #[test]
    fn a_policy_that_starts_large_gets_room_for_its_batches_under_the_ceiling() {
        assert_eq!(policy_memory_limit(32 * MIB, 40 * MIB), Some(56 * MIB));
        assert_eq!(
            policy_memory_limit(32 * MIB, 112 * MIB),
            Some(MAX_MEMORY_LIMIT)
        );
        assert_eq!(policy_memory_limit(32 * MIB, 113 * MIB), None);
    }

    #[test]
    fn only_components_embedding_an_interpreter_get_smaller_batches() {
        assert_eq!(policy_batch_size(40 * 1024), MAX_CONTAINERS_PER_BATCH);
        assert_eq!(
            policy_batch_size(18 * MIB),
            MAX_CONTAINERS_PER_INTERPRETED_BATCH
        );
    }
}
