//! SDK for dockhand orphan policies.
//!
//! A policy is a WebAssembly component built for `wasm32-unknown-unknown`
//! and turned into a component with `wit-component` (or `wasm-tools component
//! new`). It implements one of two worlds of the `dockhand:policy@0.3.0`
//! contract (see `wit/policy.wit` in the dockhand repository):
//!
//! * `ownership` — `classify(ctx, batch) -> verdicts`, one per container;
//! * `kill` — `decide(ctx, batch) -> actions`, one per candidate.
//!
//! A batch packs its strings into one table; [`ContainerBatch::containers`]
//! and [`CandidateBatch::candidates`] iterate over borrowed views
//! ([`ContainerRef`], [`CandidateRef`]) that resolve them (see [`batch`]).
//!
//! This crate owns the contract's shared types and the `log` import, so that
//! every policy uses the same Rust types and the helpers below work for both
//! worlds. A policy crate declares its world with [`ownership_world!`] or
//! [`kill_world!`], implements the generated `Guest` trait and calls the
//! generated `export!` macro:
//!
//! ```ignore
//! dockhand_policy_sdk::ownership_world!("../wit");
//! use dockhand_policy_sdk::{ContainerBatch, EvalContext, PolicyInfo, Verdict};
//!
//! struct MyPolicy;
//! impl Guest for MyPolicy {
//!     fn describe() -> PolicyInfo { PolicyInfo::new("my-policy", "1.0.0") }
//!     fn classify(ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
//!         batch.containers().map(|c| Verdict::unknown("no opinion")).collect()
//!     }
//! }
//! export!(MyPolicy);
//! ```
//!
//! Rules the host enforces (a policy breaking them gets no effect at all for
//! the batch): exactly one output per input, in order; reasons at most
//! [`MAX_REASON_BYTES`]; non-empty allocation IDs; known signal names;
//! bounded memory (32 MiB by default) and time (100 ms by default).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "dockhand:policy/imports@0.3.0",
        generate_all,
    });
}

pub mod batch;
pub mod helpers;
pub mod labels;
pub mod logging;
pub mod mem;

pub use wit_bindgen;

/// The `log` import (`dockhand:policy/log`); see [`logging`] for shorthands.
pub use bindings::dockhand::policy::log;
/// The contract's shared types (`dockhand:policy/types`).
pub use bindings::dockhand::policy::types;

pub use batch::{CandidateRef, ContainerRef, MountRef, Strings};
pub use types::{
    Action, ActionKind, Candidate, CandidateBatch, Container, ContainerBatch, ContainerState,
    EvalContext, InputSelection, KeySelection, MountSelection, NodeInfo, Ownership, PolicyInfo,
    RemoveSpec, StopSpec, StrRun, StringTable, Verdict,
};

/// Version of the `dockhand:policy` contract this SDK implements.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Longest reason string the host accepts, in bytes (longer output fails the
/// whole batch).
pub const MAX_REASON_BYTES: usize = 1024;

/// Declares an ownership policy: expands to the `wit-bindgen` bindings of the
/// `ownership` world (a `Guest` trait and an `export!` macro) reusing this
/// SDK's types. The argument is the path of the contract's `wit/` directory,
/// relative to the policy crate's `Cargo.toml`.
#[macro_export]
macro_rules! ownership_world {
    ($wit:literal) => {
        $crate::wit_bindgen::generate!({
            path: $wit,
            world: "dockhand:policy/ownership@0.3.0",
            with: {
                "dockhand:policy/types@0.3.0": ::dockhand_policy_sdk::types,
                "dockhand:policy/log@0.3.0": ::dockhand_policy_sdk::log,
            },
            runtime_path: "::dockhand_policy_sdk::wit_bindgen::rt",
        });
    };
}

/// Declares a kill policy: like [`ownership_world!`] for the `kill` world.
#[macro_export]
macro_rules! kill_world {
    ($wit:literal) => {
        $crate::wit_bindgen::generate!({
            path: $wit,
            world: "dockhand:policy/kill@0.3.0",
            with: {
                "dockhand:policy/types@0.3.0": ::dockhand_policy_sdk::types,
                "dockhand:policy/log@0.3.0": ::dockhand_policy_sdk::log,
            },
            runtime_path: "::dockhand_policy_sdk::wit_bindgen::rt",
        });
    };
}

impl PolicyInfo {
    /// Describes a policy built against this SDK's contract version that
    /// reads every input; narrow that with [`PolicyInfo::reading`].
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            contract_version: CONTRACT_VERSION.to_owned(),
            reads: InputSelection::all(),
        }
    }

    /// Declares the inputs the policy reads. The host sends nothing else: an
    /// unselected label or environment variable reads as absent, and an
    /// unselected field as empty.
    pub fn reading(mut self, reads: InputSelection) -> Self {
        self.reads = reads;
        self
    }
}

impl InputSelection {
    /// Every input.
    pub fn all() -> Self {
        Self {
            names: true,
            image: true,
            labels: KeySelection::All,
            env: KeySelection::All,
            mounts: MountSelection::All,
        }
    }

    /// Nothing beyond what is always sent: container IDs, times, state and
    /// exit code (and, for a kill policy, each candidate's ownership).
    pub fn nothing() -> Self {
        Self {
            names: false,
            image: false,
            labels: KeySelection::Only(Vec::new()),
            env: KeySelection::Only(Vec::new()),
            mounts: MountSelection::None,
        }
    }

    /// Adds the container names.
    pub fn with_names(mut self) -> Self {
        self.names = true;
        self
    }

    /// Adds the image.
    pub fn with_image(mut self) -> Self {
        self.image = true;
        self
    }

    /// Adds the mounts, complete.
    pub fn with_mounts(mut self) -> Self {
        self.mounts = MountSelection::All;
        self
    }

    /// Adds the mount destinations (sources and types arrive empty), unless
    /// complete mounts are selected already.
    pub fn with_mount_destinations(mut self) -> Self {
        if self.mounts == MountSelection::None {
            self.mounts = MountSelection::Destinations;
        }
        self
    }

    /// Adds these labels; a key ending in `*` selects a prefix
    /// (`"com.hashicorp.nomad.*"`).
    pub fn with_labels(mut self, keys: &[&str]) -> Self {
        add_keys(&mut self.labels, keys);
        self
    }

    /// Adds every label.
    pub fn with_all_labels(mut self) -> Self {
        self.labels = KeySelection::All;
        self
    }

    /// Adds these environment variables; a name ending in `*` selects a
    /// prefix (`"NOMAD_*"`). The host then sends each selected variable
    /// once, with its last value, sorted by name.
    pub fn with_env(mut self, names: &[&str]) -> Self {
        add_keys(&mut self.env, names);
        self
    }

    /// Adds the whole environment.
    pub fn with_all_env(mut self) -> Self {
        self.env = KeySelection::All;
        self
    }
}

fn add_keys(selection: &mut KeySelection, keys: &[&str]) {
    if let KeySelection::Only(selected) = selection {
        selected.extend(keys.iter().map(|k| (*k).to_owned()));
    }
}

impl Verdict {
    /// The container belongs to this allocation on this node.
    pub fn owned(alloc_id: &str, reason: impl Into<String>) -> Self {
        Self {
            ownership: Ownership::Owned(alloc_id.to_owned()),
            reason: reason.into(),
        }
    }

    /// Not a Nomad container of this node.
    pub fn not_nomad(reason: impl Into<String>) -> Self {
        Self {
            ownership: Ownership::NotNomad,
            reason: reason.into(),
        }
    }

    /// The policy cannot tell (the host leaves the container alone).
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            ownership: Ownership::Unknown,
            reason: reason.into(),
        }
    }

    /// Ask the host to inspect the container (fill in `env`) and ask again.
    pub fn need_inspect(reason: impl Into<String>) -> Self {
        Self {
            ownership: Ownership::NeedInspect,
            reason: reason.into(),
        }
    }
}

impl Action {
    /// Leave the container alone.
    pub fn ignore(reason: impl Into<String>) -> Self {
        Self {
            kind: ActionKind::Ignore,
            reason: reason.into(),
        }
    }

    /// Send `signal`, wait up to `timeout_ms`, SIGKILL, and optionally remove.
    pub fn stop(
        signal: &str,
        timeout_ms: u64,
        then_remove: bool,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind: ActionKind::Stop(StopSpec {
                signal: signal.to_owned(),
                timeout_ms,
                then_remove,
            }),
            reason: reason.into(),
        }
    }

    /// Send `signal` and nothing else.
    pub fn kill(signal: &str, reason: impl Into<String>) -> Self {
        Self {
            kind: ActionKind::Kill(signal.to_owned()),
            reason: reason.into(),
        }
    }

    /// Remove the container (`force` kills it first if it runs).
    pub fn remove(force: bool, reason: impl Into<String>) -> Self {
        Self {
            kind: ActionKind::Remove(RemoveSpec { force }),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_everything_unless_they_narrow_it() {
        let info = PolicyInfo::new("p", "1");
        assert_eq!(info.contract_version, CONTRACT_VERSION);
        assert!(matches!(info.reads.labels, KeySelection::All));
        let reads = InputSelection::nothing()
            .with_names()
            .with_labels(&["a", "com.x.*"])
            .with_labels(&["b"])
            .with_env(&["NOMAD_ALLOC_ID"]);
        assert!(reads.names && !reads.image && reads.mounts == MountSelection::None);
        let mounts = InputSelection::nothing().with_mount_destinations();
        assert_eq!(mounts.mounts, MountSelection::Destinations);
        assert_eq!(
            mounts.with_mounts().with_mount_destinations().mounts,
            MountSelection::All
        );
        assert!(matches!(&reads.labels, KeySelection::Only(k) if k == &["a", "com.x.*", "b"]));
        assert!(matches!(&reads.env, KeySelection::Only(k) if k == &["NOMAD_ALLOC_ID"]));
        // Adding keys to an `all` selection keeps it `all`.
        let all = InputSelection::nothing().with_all_env().with_env(&["X"]);
        assert!(matches!(all.env, KeySelection::All));
        let narrowed = PolicyInfo::new("p", "1").reading(reads);
        assert!(!narrowed.reads.image);
    }
}
