//! The policy engine: one wasmtime `Engine`, one deny-by-default `Linker`,
//! the compiled-policy caches, the compile permits and the concurrency slots.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use crate::cache::PrecompiledCache;
use crate::decision::PolicyKind;
use crate::epoch::EpochTicker;
use crate::limits::{
    DEFAULT_DEADLINE, DEFAULT_EPOCH_TICK, DEFAULT_MAX_CONCURRENT_EVALUATIONS, DEFAULT_MEMORY_LIMIT,
    MAX_CONCURRENT_COMPILES, MAX_DEADLINE, MAX_INSTANCES_PER_POLICY, MAX_MEMORIES_PER_POLICY,
    MAX_MEMORY_LIMIT, MAX_TABLE_ELEMENTS, MAX_TABLES_PER_POLICY, MAX_WASM_STACK,
    MEMORY_GUARD_BYTES, MEMORY_RESERVATION_BYTES, SLOT_SHARE_DIVISOR,
};
use crate::load::{self, LoadError};
use crate::policy::LoadedPolicy;
use crate::sandbox::{self, HostState};
use crate::slots::Slots;

/// Operator-tunable settings; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Guest linear-memory limit per call (at most
    /// [`MAX_MEMORY_LIMIT`](crate::limits::MAX_MEMORY_LIMIT)).
    pub memory_limit: usize,
    /// Wall-clock budget per call (at most
    /// [`MAX_DEADLINE`](crate::limits::MAX_DEADLINE)).
    pub deadline: Duration,
    /// Epoch ticker period; the deadline is rounded up to whole ticks.
    pub epoch_tick: Duration,
    /// Calls that may run at once; more wait for a slot.
    pub max_concurrent_evaluations: u32,
    /// Use wasmtime's pooling allocator (fast instantiation). Turn off on
    /// hosts with little address space or RAM (some VMs, QEMU).
    pub pooling_allocator: bool,
    /// Directory for compiled policies, keyed by digest and engine version;
    /// `None` compiles on every start. The cache is an optimisation: a
    /// directory that cannot be used is logged and the engine runs without.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            deadline: DEFAULT_DEADLINE,
            epoch_tick: DEFAULT_EPOCH_TICK,
            max_concurrent_evaluations: DEFAULT_MAX_CONCURRENT_EVALUATIONS,
            pooling_allocator: true,
            cache_dir: None,
        }
    }
}

/// Why an engine could not be created.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting is out of range.
    #[error("invalid engine config `{field}`: {problem}")]
    InvalidConfig {
        field: &'static str,
        problem: String,
    },
    /// wasmtime refused the configuration.
    #[error("creating the wasmtime engine: {0}")]
    Wasmtime(String),
    /// The ticker thread could not be spawned.
    #[error("spawning the epoch ticker thread")]
    TickerSpawn(#[source] std::io::Error),
}

/// A compiled component and what every policy loaded from it shares: the
/// engine's in-memory cache refers to it weakly, so it is dropped once no
/// loaded policy (in force, in a sweep, in a dry run or an upload) uses it.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) component: Component,
    /// The evaluation slots this component's calls may hold at once (see
    /// [`SLOT_SHARE_DIVISOR`]), taken before an engine slot.
    pub(crate) share: Slots,
}

/// State shared by the engine and every policy it loaded.
pub(crate) struct EngineShared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: EngineConfig,
    /// The deadline in epoch ticks.
    pub(crate) deadline_ticks: u64,
    pub(crate) compiled: Mutex<HashMap<[u8; 32], Weak<Compiled>>>,
    pub(crate) cache: Option<PrecompiledCache>,
    /// Makes deadlines fire for as long as the engine or a policy it loaded
    /// lives.
    pub(crate) ticker: EpochTicker,
    pub(crate) slots: Slots,
    /// Permits to compile ([`MAX_CONCURRENT_COMPILES`]).
    pub(crate) compile_permits: Slots,
    /// Compiles started (a permit held, `Component::new` called).
    pub(crate) compiles_started: AtomicU64,
    /// Compiles whose result was thrown away because their load was
    /// cancelled while they ran.
    pub(crate) compiles_discarded: AtomicU64,
}

impl std::fmt::Debug for EngineShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineShared")
            .field("config", &self.config)
            .field("deadline_ticks", &self.deadline_ticks)
            .field("cache", &self.cache)
            .field("ticker", &self.ticker)
            .finish_non_exhaustive()
    }
}

impl EngineShared {
    fn compiled(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Weak<Compiled>>> {
        // The map only ever holds complete entries; a panic while holding the
        // lock cannot leave it half-updated.
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The compiled component of `digest`, if a loaded policy still uses it.
    pub(crate) fn compiled_get(&self, digest: &[u8; 32]) -> Option<Arc<Compiled>> {
        self.compiled().get(digest).and_then(Weak::upgrade)
    }

    /// Remembers `compiled` for as long as a loaded policy uses it, and
    /// forgets entries nothing uses any more.
    pub(crate) fn compiled_insert(&self, digest: [u8; 32], compiled: &Arc<Compiled>) {
        let mut map = self.compiled();
        map.retain(|_, entry| entry.strong_count() > 0);
        map.insert(digest, Arc::downgrade(compiled));
    }

    /// A new entry for a freshly compiled or deserialised component.
    pub(crate) fn new_compiled(&self, component: Component) -> Arc<Compiled> {
        let share =
            PoolTotals::for_evaluations(self.config.max_concurrent_evaluations).slots_per_component;
        Arc::new(Compiled {
            component,
            share: Slots::new(share),
        })
    }
}

/// Loads and runs policies. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    pub(crate) shared: Arc<EngineShared>,
}

impl PolicyEngine {
    /// Builds the engine (Cranelift, epoch interruption, copy-on-write memory
    /// images, pooling allocator unless disabled), starts its epoch ticker
    /// thread and, if configured, opens the compiled-policy cache. The ticker
    /// runs until the engine and every policy it loaded are dropped, so a
    /// call's deadline always fires.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        validate(&config)?;
        let engine = Engine::new(&wasmtime_config(&config))
            .map_err(|e| EngineError::Wasmtime(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        // Deny by default: the linker defines the contract's imports and
        // nothing else, so instantiating anything that wants more fails.
        sandbox::add_to_linker(&mut linker).map_err(|e| EngineError::Wasmtime(e.to_string()))?;
        let cache = config.cache_dir.as_deref().and_then(|dir| {
            PrecompiledCache::open(dir, &engine)
                .inspect_err(|e| {
                    tracing::warn!(
                        error = e as &dyn std::error::Error,
                        "compiled-policy cache unusable; compiling at every load"
                    );
                })
                .ok()
        });
        let tick_ns = config.epoch_tick.as_nanos().max(1);
        let deadline_ticks = u64::try_from(config.deadline.as_nanos().div_ceil(tick_ns))
            .unwrap_or(u64::MAX)
            .max(1);
        let ticker = EpochTicker::spawn(engine.weak(), config.epoch_tick)
            .map_err(EngineError::TickerSpawn)?;
        Ok(Self {
            shared: Arc::new(EngineShared {
                engine,
                linker,
                deadline_ticks,
                compiled: Mutex::new(HashMap::new()),
                cache,
                ticker,
                slots: Slots::new(config.max_concurrent_evaluations),
                compile_permits: Slots::new(MAX_CONCURRENT_COMPILES),
                compiles_started: AtomicU64::new(0),
                compiles_discarded: AtomicU64::new(0),
                config,
            }),
        })
    }

    /// The settings this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Validates, compiles (or fetches from cache) and pre-instantiates a
    /// policy component of the given kind, then calls its `describe()`.
    ///
    /// Refuses, each with its own [`LoadError`]: oversized input, bytes that
    /// are not WebAssembly, core modules, precompiled (`.cwasm`) bytes,
    /// components importing anything beyond the contract, components of the
    /// other world, and policies whose `describe()` fails or names another
    /// contract version.
    ///
    /// Imports are checked by parsing, before anything is compiled; at most
    /// [`MAX_CONCURRENT_COMPILES`] compiles run at once (others wait).
    pub fn load(&self, kind: PolicyKind, bytes: &[u8]) -> Result<LoadedPolicy, LoadError> {
        load::load(&self.shared, kind, bytes, &AtomicBool::new(false))
    }

    /// [`load`](Self::load) for a caller that may go away (an upload whose
    /// client hung up): once `cancelled` is set, a load still waiting for a
    /// compile permit, or not yet compiling, stops with
    /// [`LoadError::Cancelled`] without compiling. A compile already running
    /// cannot be interrupted (wasmtime compiles are not preemptible); its
    /// result is then discarded, neither cached nor checked further.
    pub fn load_cancellable(
        &self,
        kind: PolicyKind,
        bytes: &[u8],
        cancelled: &AtomicBool,
    ) -> Result<LoadedPolicy, LoadError> {
        load::load(&self.shared, kind, bytes, cancelled)
    }

    /// How many compiled components the engine holds in memory: those some
    /// loaded policy still uses. A component nobody uses is dropped with
    /// its last [`LoadedPolicy`].
    pub fn compiled_in_memory(&self) -> usize {
        self.shared
            .compiled()
            .values()
            .filter(|entry| entry.strong_count() > 0)
            .count()
    }

    /// How many compiles this engine started, and how many of their results
    /// it discarded because the load was cancelled while they ran. A load
    /// served from memory or the disk cache, refused before compiling, or
    /// cancelled before its compile began counts in neither.
    pub fn compile_counts(&self) -> CompileCounts {
        CompileCounts {
            started: self.shared.compiles_started.load(Ordering::Relaxed),
            discarded: self.shared.compiles_discarded.load(Ordering::Relaxed),
        }
    }

    /// Loads the bundled default policy of `kind`.
    pub fn load_default(&self, kind: PolicyKind) -> Result<LoadedPolicy, LoadError> {
        self.load(kind, crate::guests::default_policy(kind))
    }
}

/// Compiles an engine started and discarded (see
/// [`PolicyEngine::compile_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileCounts {
    /// Compiles started.
    pub started: u64,
    /// Compiles finished after their load was cancelled, whose result was
    /// neither cached nor kept.
    pub discarded: u64,
}

/// The per-user cache of compiled policies for one-shot commands:
/// `$XDG_CACHE_HOME/dockhand/policies`, else `$HOME/.cache/dockhand/policies`.
pub fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("dockhand").join("policies"))
}

fn validate(config: &EngineConfig) -> Result<(), EngineError> {
    let invalid = |field, problem: String| Err(EngineError::InvalidConfig { field, problem });
    if config.memory_limit < 2 * 1024 * 1024 || config.memory_limit > MAX_MEMORY_LIMIT {
        return invalid(
            "memory_limit",
            format!(
                "{} bytes is outside 2 MiB..={MAX_MEMORY_LIMIT}",
                config.memory_limit
            ),
        );
    }
    if config.deadline.is_zero() || config.deadline > MAX_DEADLINE {
        return invalid(
            "deadline",
            format!("{:?} is outside (0, {MAX_DEADLINE:?}]", config.deadline),
        );
    }
    if config.epoch_tick < Duration::from_millis(1) || config.epoch_tick > config.deadline {
        return invalid(
            "epoch_tick",
            format!(
                "{:?} must be at least 1 ms and at most the deadline",
                config.epoch_tick
            ),
        );
    }
    if config.max_concurrent_evaluations == 0 || config.max_concurrent_evaluations > 1024 {
        return invalid(
            "max_concurrent_evaluations",
            format!("{} is outside 1..=1024", config.max_concurrent_evaluations),
        );
    }
    Ok(())
}

/// Bytes of each pooled linear memory kept resident (zeroed in place) when
/// an instance is torn down.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// What the pooling allocator and the evaluation slots are sized to, from
/// `max_concurrent_evaluations` (the limits table of
/// `docs/policy-authoring.md` states the defaults' figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolTotals {
    /// Component instances in the pool: one per evaluation slot.
    pub(crate) component_instances: u32,
    /// Core instances: every slot may hold the largest policy allowed
    /// ([`MAX_INSTANCES_PER_POLICY`]).
    pub(crate) core_instances: u32,
    /// Linear memories ([`MAX_MEMORIES_PER_POLICY`] per slot).
    pub(crate) memories: u32,
    /// Tables ([`MAX_TABLES_PER_POLICY`] per slot).
    pub(crate) tables: u32,
    /// Largest memory one slot may grow to ([`MAX_MEMORY_LIMIT`]).
    pub(crate) max_memory_bytes: usize,
    /// Address space reserved for the linear memories: each memory's
    /// [`MEMORY_RESERVATION_BYTES`] and [`MEMORY_GUARD_BYTES`]. Reserved,
    /// not resident.
    pub(crate) reserved_memory_bytes: u64,
    /// Evaluation slots one component may hold at once (see
    /// [`SLOT_SHARE_DIVISOR`]).
    pub(crate) slots_per_component: u32,
}

impl PoolTotals {
    pub(crate) fn for_evaluations(n: u32) -> Self {
        let per_slot = |max: usize| n.saturating_mul(u32::try_from(max).unwrap_or(u32::MAX));
        let memories = per_slot(MAX_MEMORIES_PER_POLICY);
        Self {
            component_instances: n,
            core_instances: per_slot(MAX_INSTANCES_PER_POLICY),
            memories,
            tables: per_slot(MAX_TABLES_PER_POLICY),
            max_memory_bytes: MAX_MEMORY_LIMIT,
            reserved_memory_bytes: u64::from(memories)
                .saturating_mul(MEMORY_RESERVATION_BYTES + MEMORY_GUARD_BYTES),
            slots_per_component: (n / SLOT_SHARE_DIVISOR).max(1),
        }
    }
}

fn wasmtime_config(config: &EngineConfig) -> Config {
    let mut cfg = Config::new();
    cfg.strategy(Strategy::Cranelift)
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_nan_canonicalization(true)
        .wasm_memory64(false)
        .memory_reservation(MEMORY_RESERVATION_BYTES)
        .memory_guard_size(MEMORY_GUARD_BYTES);
    if config.pooling_allocator {
        let n = config.max_concurrent_evaluations;
        // Room for `n` calls of the largest policy allowed at once (an
        // embedded interpreter's dozens of core instances), so one policy's
        // instances cannot exhaust the pool for another call that holds a
        // slot; an unused core-instance slot costs address space, not memory.
        let totals = PoolTotals::for_evaluations(n);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(totals.component_instances)
            .total_core_instances(totals.core_instances)
            .total_memories(totals.memories)
            .total_tables(totals.tables)
            .max_memories_per_component(u32::try_from(MAX_MEMORIES_PER_POLICY).unwrap_or(2))
            .max_tables_per_component(u32::try_from(MAX_TABLES_PER_POLICY).unwrap_or(8))
            .max_core_instances_per_component(u32::try_from(MAX_INSTANCES_PER_POLICY).unwrap_or(48))
            .max_memory_size(totals.max_memory_bytes)
            .table_elements(MAX_TABLE_ELEMENTS)
            .max_unused_warm_slots(n)
            // A batch's input is about a megabyte: resetting that much of a
            // reused memory with memset is cheaper than faulting fresh
            // zero pages back in on every call.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

#[cfg(test)]
mod tests;
