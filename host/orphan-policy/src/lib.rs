//! Sandboxed WebAssembly policies deciding about orphaned containers.
//!
//! dockhand's reconciler finds containers it does not track and asks two
//! policies about them: an **ownership** policy (does this container belong
//! to a Nomad allocation on this node?) and a **kill** policy (what to do
//! with an orphan: ignore, stop, kill or remove). Both are WebAssembly
//! components implementing the `dockhand:policy@0.3.0` contract in `wit/`,
//! so operators can replace the bundled defaults without rebuilding the
//! driver. This crate is the host: it knows nothing of Docker or gRPC.
//!
//! # Design
//!
//! * **Pure, batch contract.** A policy receives the clock, the node identity
//!   and container snapshots by value (their strings packed into one table
//!   per batch) and returns one answer per input. Its
//!   only import is a bounded `log`; no clock, files, network or randomness,
//!   so every decision can be replayed from a recorded input.
//! * **Compile once, instantiate per call.** [`PolicyEngine::load`] compiles a
//!   component once per sha256 (in memory, and optionally in an on-disk cache
//!   keyed by sha256 and the engine's compatibility hash), checks it, and
//!   keeps a typed `InstancePre`. Each call then gets a fresh `Store` from the
//!   pooling allocator with copy-on-write memory images: microseconds, and
//!   no state survives between calls.
//! * **Every resource bounded.** Memory (32 MiB), time (100 ms via epoch
//!   interruption, ticked by a thread the engine owns), stack (512 KiB),
//!   batch size, reason length, log lines and bytes — see [`limits`].
//! * **Deny by default.** The linker defines only the contract's imports, and
//!   `load` lists any other import by name ([`LoadError::ForbiddenImports`]).
//!   Core modules, garbage, precompiled code and the wrong world each have
//!   their own [`LoadError`].
//! * **Fail safe.** Any failure of a call — trap, deadline, memory, wrong
//!   answer count, a malformed answer — is an [`EvalError`], and the caller
//!   takes no action for the batch.
//! * **Own domain types.** Callers use [`EvalContext`], [`ContainerSnapshot`],
//!   [`Verdict`], [`Action`] (serde-serialisable, for fixtures and audit
//!   lines); the generated WIT types stay private.
//!
//! # Use
//!
//! ```no_run
//! use orphan_policy::{EngineConfig, EvalContext, PolicyEngine, PolicyKind};
//!
//! let engine = PolicyEngine::new(EngineConfig::default())?;
//! let ownership = engine.load_default(PolicyKind::Ownership)?;
//! let verdicts = ownership.classify(&EvalContext::default(), &[])?;
//! assert!(verdicts.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bindings;
mod cache;
mod convert;
pub mod decision;
pub mod display;
mod engine;
mod epoch;
mod guest_log;
pub mod guests;
pub mod limits;
mod load;
pub mod native;
mod pack;
mod policy;
mod sandbox;
pub mod selection;
mod slots;
pub mod snapshot;
mod split;
pub mod store;

pub use cache::CacheError;
pub use convert::OutputError;
pub use decision::{
    Action, ActionKind, Ownership, PolicyInfo, PolicyKind, Signal, UnknownSignal, Verdict,
};
pub use engine::{CompileCounts, EngineConfig, EngineError, PolicyEngine, user_cache_dir};
pub use guest_log::LogStats;
pub use load::{ALLOWED_IMPORTS, CONTRACT_VERSION, LoadError};
pub use policy::{CompileSource, EvalError, Evaluation, LoadedPolicy};
pub use selection::{InputSelection, KeySelection, MountSelection};
pub use snapshot::{Candidate, ContainerSnapshot, ContainerState, EvalContext, Mount, NodeInfo};
pub use split::{Piece, split_to_fit};
