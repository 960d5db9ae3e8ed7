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
//! This crate carries the contract itself (its bindings are generated from
//! the `wit/` directory next to it when it compiles), so a policy crate needs
//! no copy of the WIT: it implements [`OwnershipPolicy`] or [`KillPolicy`]
//! and exports it with [`export_ownership!`] or [`export_kill!`]:
//!
//! ```ignore
//! use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};
//!
//! struct MyPolicy;
//! impl OwnershipPolicy for MyPolicy {
//!     fn describe() -> PolicyInfo { PolicyInfo::new("my-policy", "1.0.0") }
//!     fn classify(ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
//!         batch.containers().map(|c| Verdict::unknown("no opinion")).collect()
//!     }
//! }
//! dockhand_policy_sdk::export_ownership!(MyPolicy);
//! ```
//!
//! A kill policy answers with [`Action`]s:
//! `Action::stop(Signal::Term, Duration::from_secs(30)).and_remove().because("orphan")`.
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

pub use wit_bindgen;

use std::time::Duration;

// The generated export glue names this crate by its absolute path, which
// must resolve inside the crate too.
extern crate self as dockhand_policy_sdk;

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

/// Bindings of the `ownership` world, generated from the contract this crate
/// embeds (`wit/` of the dockhand repository, read when the SDK compiles).
/// A policy implements [`OwnershipPolicy`] and exports it with
/// [`export_ownership!`].
pub mod ownership {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "dockhand:policy/ownership@0.3.0",
        with: {
            "dockhand:policy/types@0.3.0": crate::types,
            "dockhand:policy/log@0.3.0": crate::log,
        },
        pub_export_macro: true,
        export_macro_name: "export_ownership_world",
        default_bindings_module: "::dockhand_policy_sdk::ownership",
        runtime_path: "::dockhand_policy_sdk::wit_bindgen::rt",
    });
}

/// Bindings of the `kill` world; a policy implements [`KillPolicy`] and
/// exports it with [`export_kill!`].
pub mod kill {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "dockhand:policy/kill@0.3.0",
        with: {
            "dockhand:policy/types@0.3.0": crate::types,
            "dockhand:policy/log@0.3.0": crate::log,
        },
        pub_export_macro: true,
        export_macro_name: "export_kill_world",
        default_bindings_module: "::dockhand_policy_sdk::kill",
        runtime_path: "::dockhand_policy_sdk::wit_bindgen::rt",
    });
}

/// A kill policy: `describe` and `decide` (one [`Action`] per candidate, in
/// input order).
pub use kill::Guest as KillPolicy;
/// An ownership policy: `describe` and `classify` (one [`Verdict`] per
/// container, in input order).
pub use ownership::Guest as OwnershipPolicy;

/// Exports a type implementing [`OwnershipPolicy`] as the policy of this
/// component: `dockhand_policy_sdk::export_ownership!(MyPolicy);`, once per
/// crate, at its root.
#[macro_export]
macro_rules! export_ownership {
    ($policy:ident) => {
        $crate::ownership::export_ownership_world!($policy with_types_in $crate::ownership);
    };
}

/// Exports a type implementing [`KillPolicy`] as the policy of this
/// component: `dockhand_policy_sdk::export_kill!(MyPolicy);`.
#[macro_export]
macro_rules! export_kill {
    ($policy:ident) => {
        $crate::kill::export_kill_world!($policy with_types_in $crate::kill);
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

/// A signal the host accepts in a kill action (the names Docker takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Alrm,
    Stop,
    Cont,
    Winch,
}

impl Signal {
    /// The name on the wire, such as `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hup => "SIGHUP",
            Self::Int => "SIGINT",
            Self::Quit => "SIGQUIT",
            Self::Kill => "SIGKILL",
            Self::Usr1 => "SIGUSR1",
            Self::Usr2 => "SIGUSR2",
            Self::Term => "SIGTERM",
            Self::Alrm => "SIGALRM",
            Self::Stop => "SIGSTOP",
            Self::Cont => "SIGCONT",
            Self::Winch => "SIGWINCH",
        }
    }
}

/// Longest stop timeout the host accepts; a longer one fails the batch.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// Milliseconds of `d`, saturating (the host refuses anything above
/// [`MAX_STOP_TIMEOUT`] anyway).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Action {
    /// Leave the container alone.
    pub fn ignore(reason: impl Into<String>) -> Self {
        Self {
            kind: ActionKind::Ignore,
            reason: reason.into(),
        }
    }

    /// Send `signal`, wait up to `timeout` for the container to exit, then
    /// SIGKILL it (as `docker stop` does). Add [`Action::and_remove`] to
    /// remove it afterwards and [`Action::because`] to give the reason.
    pub fn stop(signal: Signal, timeout: Duration) -> Self {
        Self {
            kind: ActionKind::Stop(StopSpec {
                signal: signal.name().to_owned(),
                timeout_ms: millis(timeout),
                then_remove: false,
            }),
            reason: String::new(),
        }
    }

    /// Send `signal` and nothing else.
    pub fn kill(signal: Signal) -> Self {
        Self {
            kind: ActionKind::Kill(signal.name().to_owned()),
            reason: String::new(),
        }
    }

    /// Remove the container; one that still runs is left alone by Docker
    /// (see [`Action::force_remove`]).
    pub fn remove() -> Self {
        Self {
            kind: ActionKind::Remove(RemoveSpec { force: false }),
            reason: String::new(),
        }
    }

    /// Remove the container, killing it first if it runs.
    pub fn force_remove() -> Self {
        Self {
            kind: ActionKind::Remove(RemoveSpec { force: true }),
            reason: String::new(),
        }
    }

    /// For a stop: remove the container once it has stopped. No effect on
    /// other actions.
    pub fn and_remove(mut self) -> Self {
        if let ActionKind::Stop(spec) = &mut self.kind {
            spec.then_remove = true;
        }
        self
    }

    /// Sets the reason, logged and audited with the action.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
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

    #[test]
    fn actions_carry_typed_signals_and_durations() {
        let stop = Action::stop(Signal::Term, Duration::from_secs(30))
            .and_remove()
            .because("orphan");
        assert_eq!(stop.reason, "orphan");
        assert!(matches!(
            &stop.kind,
            ActionKind::Stop(StopSpec { signal, timeout_ms: 30_000, then_remove: true })
                if signal == "SIGTERM"
        ));
        let kill = Action::kill(Signal::Kill).and_remove();
        assert!(matches!(&kill.kind, ActionKind::Kill(s) if s == "SIGKILL"));
        assert!(matches!(
            Action::force_remove().kind,
            ActionKind::Remove(RemoveSpec { force: true })
        ));
    }
}
