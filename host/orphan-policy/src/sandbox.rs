//! Per-call store state (the resource limiter and the guest log sink) and
//! the linker's only definitions: the contract's imports.

use wasmtime::component::{Linker, WasmStr};
use wasmtime::{ResourceLimiter, StoreContextMut};

use crate::bindings::wit_log;
use crate::guest_log::{GuestLog, bounded_line};
use crate::limits::{
    MAX_INSTANCES_PER_POLICY, MAX_MEMORIES_PER_POLICY, MAX_TABLE_ELEMENTS, MAX_TABLES_PER_POLICY,
};

/// The `T` of every `Store<T>`; one per call, dropped with the store.
#[derive(Debug)]
pub(crate) struct HostState {
    pub(crate) limiter: PolicyLimiter,
    pub(crate) log: GuestLog,
}

/// Defines the contract's imports and nothing else (deny by default).
///
/// `log` is defined by hand rather than through the generated bindings so
/// that its message is taken as a [`WasmStr`]: a view of guest memory that
/// is cut to [`MAX_LOG_LINE_BYTES`](crate::limits::MAX_LOG_LINE_BYTES)
/// before a byte of it is copied into the host. (wasmtime still checks the
/// message's length against the call's hostcall budget.)
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // `types` has no functions: an empty instance satisfies the import.
    linker.instance("dockhand:policy/types@0.3.0")?;
    linker.instance("dockhand:policy/log@0.3.0")?.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, HostState>, (level, message): (wit_log::Level, WasmStr)| {
            let (line, truncated) = bounded_line(&message.to_str(&store)?);
            store.data_mut().log.emit(level, line, truncated);
            Ok(())
        },
    )?;
    Ok(())
}

/// Caps guest memory and tables, and remembers whether the memory cap was
/// hit so the failure can be reported as such (the trap itself is generic).
#[derive(Debug)]
pub(crate) struct PolicyLimiter {
    memory_limit: usize,
    pub(crate) memory_exceeded: bool,
    /// Largest size a memory was created with (its declared minimum, or the
    /// size of its pre-initialised image): what the policy needs at start.
    pub(crate) largest_initial_memory: usize,
}

impl PolicyLimiter {
    pub(crate) fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_exceeded: false,
            largest_initial_memory: 0,
        }
    }
}

/// Error a refused `memory.grow` traps with.
#[derive(Debug, thiserror::Error)]
#[error("policy memory limit of {limit} bytes reached (asked for {desired})")]
pub(crate) struct MemoryLimitHit {
    limit: usize,
    desired: usize,
}

impl ResourceLimiter for PolicyLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if current == 0 {
            self.largest_initial_memory = self.largest_initial_memory.max(desired);
        }
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            // Trapping (rather than letting `memory.grow` return -1) makes the
            // failure immediate and attributable instead of a later abort.
            return Err(wasmtime::Error::new(MemoryLimitHit {
                limit: self.memory_limit,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES_PER_POLICY
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_POLICY
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_POLICY
    }
}
