//! The policies in force and where they come from.
//!
//! # One value
//!
//! The ownership and kill policies in force, each with its digest, its mode (audit or
//! enforce) and where it came from, are one [`ActivePolicies`] value behind one shared,
//! swappable [`PoliciesInForce`]. The reconciler reads it; the admin API's activations and
//! rollbacks replace it; nothing copies it anywhere else. A replacement is a single swap, so a
//! reader sees either the old pair with its modes or the new pair with its modes, never a mix.
//!
//! A sweep takes the pair once at its start and keeps that `Arc` to its end, so one sweep never
//! mixes two policy versions. The mode is read from the value in force again right before each
//! destructive action (a load of the same `Arc`): an activation in audit mode stops a sweep in
//! flight from acting further, from the moment the activation answers. The reconciler audits
//! while either policy is in audit mode ([`ActivePolicies::mode`]).
//!
//! # Where policies come from
//!
//! [`load_policy_file`] reads a configured policy file, checks its sha256 pin and loads it; the
//! plugin (falling back to the bundled default) and `dockhand reconcile` (refusing) both use it.
//! [`policy_engine`] builds the policy engine from the plugin configuration for both.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use orphan_policy::store::sha256_hex;
use orphan_policy::{EngineConfig, EngineError, LoadError, LoadedPolicy, PolicyEngine, PolicyKind};

use crate::config::{PluginConfig, PolicyFile, PolicyMode};

/// Where a policy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// The policy the plugin started with (configured file or bundled default).
    Config,
    /// Activated from the policy store.
    Store,
}

impl PolicyOrigin {
    /// `config` or `store`, as `dockhand status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Store => "store",
        }
    }
}

/// One policy in force.
#[derive(Debug, Clone)]
pub struct ActiveEntry {
    /// The loaded policy (and so its digest).
    pub policy: LoadedPolicy,
    /// Name for listings (from the upload, else what the policy reports).
    pub name: String,
    /// Version for listings.
    pub version: String,
    /// Audit or enforce.
    pub mode: PolicyMode,
    /// Where it came from.
    pub origin: PolicyOrigin,
    /// Unix seconds of the activation; 0 for the start-up policy.
    pub activated_at: u64,
}

impl ActiveEntry {
    /// An entry for a policy the plugin started with, in the configured `mode`.
    pub fn from_config(policy: LoadedPolicy, mode: PolicyMode) -> Self {
        Self {
            name: policy.info().name.clone(),
            version: policy.info().version.clone(),
            policy,
            mode,
            origin: PolicyOrigin::Config,
            activated_at: 0,
        }
    }
}

/// The ownership and kill policies in force together, each with its mode.
#[derive(Debug, Clone)]
pub struct ActivePolicies {
    /// Classifies containers.
    pub ownership: ActiveEntry,
    /// Decides what to do with owned orphans.
    pub kill: ActiveEntry,
}

impl ActivePolicies {
    /// The pair the plugin starts with: both policies in the configured `mode`.
    pub fn from_config(ownership: LoadedPolicy, kill: LoadedPolicy, mode: PolicyMode) -> Self {
        Self {
            ownership: ActiveEntry::from_config(ownership, mode),
            kill: ActiveEntry::from_config(kill, mode),
        }
    }

    /// The policy of `kind`.
    pub fn entry(&self, kind: PolicyKind) -> &ActiveEntry {
        match kind {
            PolicyKind::Ownership => &self.ownership,
            PolicyKind::Kill => &self.kill,
        }
    }

    /// This pair with `entry` in force for its kind.
    pub fn with(&self, entry: ActiveEntry) -> Self {
        let mut pair = self.clone();
        match entry.policy.kind() {
            PolicyKind::Ownership => pair.ownership = entry,
            PolicyKind::Kill => pair.kill = entry,
        }
        pair
    }

    /// The mode the reconciler runs in: audit while either policy is in audit mode.
    pub fn mode(&self) -> PolicyMode {
        if self.ownership.mode == PolicyMode::Audit || self.kill.mode == PolicyMode::Audit {
            PolicyMode::Audit
        } else {
            PolicyMode::Enforce
        }
    }
}

/// The one shared, swappable holder of the [`ActivePolicies`] in force. Cheap to clone; clones
/// share the value.
#[derive(Debug, Clone)]
pub struct PoliciesInForce {
    inner: Arc<RwLock<Arc<ActivePolicies>>>,
}

impl PoliciesInForce {
    /// A holder with `policies` in force.
    pub fn new(policies: ActivePolicies) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(policies))),
        }
    }

    /// The pair in force now. A sweep keeps this `Arc` until it ends.
    pub fn current(&self) -> Arc<ActivePolicies> {
        // The guarded value is replaced whole; a panic cannot leave it half-written.
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The mode in force now (see [`ActivePolicies::mode`]).
    pub fn mode(&self) -> PolicyMode {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .mode()
    }

    /// Puts `policies` in force, in one swap; returns the pair it replaced.
    pub fn replace(&self, policies: ActivePolicies) -> Arc<ActivePolicies> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, Arc::new(policies))
    }

    /// Puts `entry` (policy and mode together) in force for its kind, in one swap; returns the
    /// pair it replaced.
    pub fn install(&self, entry: ActiveEntry) -> Arc<ActivePolicies> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let next = Arc::new(slot.with(entry));
        std::mem::replace(&mut *slot, next)
    }
}

/// Why a configured policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("cannot read {kind} policy {}", .path.display())]
    Read {
        /// The kind it was configured as.
        kind: PolicyKind,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file's sha256 is not the pinned one.
    #[error("{kind} policy {}: sha256 mismatch: pinned {pinned}, file has {actual}", .path.display())]
    PinMismatch {
        /// The kind it was configured as.
        kind: PolicyKind,
        /// The file.
        path: PathBuf,
        /// The configured pin.
        pinned: String,
        /// The file's sha256.
        actual: String,
    },
    /// The engine refused the component.
    #[error("{kind} policy {} refused", .path.display())]
    Load {
        /// The kind it was configured as.
        kind: PolicyKind,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: LoadError,
    },
}

/// Reads the policy file `file`, checks its sha256 pin (when it has one) and loads it as a
/// `kind` policy. Blocking (file I/O and compiling).
pub fn load_policy_file(
    engine: &PolicyEngine,
    kind: PolicyKind,
    file: &PolicyFile,
) -> Result<LoadedPolicy, PolicyFileError> {
    let path = || file.path.clone();
    let bytes = std::fs::read(&file.path).map_err(|source| PolicyFileError::Read {
        kind,
        path: path(),
        source,
    })?;
    if let Some(pinned) = &file.sha256 {
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(pinned) {
            return Err(PolicyFileError::PinMismatch {
                kind,
                path: path(),
                pinned: pinned.clone(),
                actual,
            });
        }
    }
    engine
        .load(kind, &bytes)
        .map_err(|source| PolicyFileError::Load {
            kind,
            path: path(),
            source,
        })
}

/// The policy engine with the plugin configuration's limits (`dockhand.policy_memory_mib`,
/// `dockhand.policy_deadline`), caching compiled policies in `cache_dir`. Its epoch ticker runs
/// for as long as the engine or a policy it loaded lives.
pub fn policy_engine(
    config: &PluginConfig,
    cache_dir: Option<PathBuf>,
) -> Result<PolicyEngine, EngineError> {
    PolicyEngine::new(EngineConfig {
        memory_limit: usize::try_from(config.dockhand.policy_memory_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024),
        deadline: config.dockhand.policy_deadline,
        cache_dir,
        ..EngineConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> PolicyEngine {
        PolicyEngine::new(EngineConfig {
            pooling_allocator: false,
            ..EngineConfig::default()
        })
        .expect("engine")
    }

    #[test]
    fn a_pin_mismatch_refuses_the_file_and_says_both_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kill.wasm");
        std::fs::write(&path, orphan_policy::guests::DEFAULT_KILL).expect("write");
        let engine = engine();
        let pinned = "0".repeat(64);
        let file = PolicyFile {
            path: path.clone(),
            sha256: Some(pinned.clone()),
        };
        let err = load_policy_file(&engine, PolicyKind::Kill, &file).expect_err("refused");
        let actual = sha256_hex(orphan_policy::guests::DEFAULT_KILL);
        assert_eq!(
            err.to_string(),
            format!(
                "kill policy {}: sha256 mismatch: pinned {pinned}, file has {actual}",
                path.display()
            )
        );
        // The right pin, in either case, loads it.
        let file = PolicyFile {
            path: path.clone(),
            sha256: Some(actual.to_ascii_uppercase()),
        };
        let policy = load_policy_file(&engine, PolicyKind::Kill, &file).expect("loads");
        assert_eq!(policy.digest_hex(), actual);
        // A missing file and the wrong kind each say so.
        let missing = PolicyFile {
            path: dir.path().join("missing.wasm"),
            sha256: None,
        };
        let err = load_policy_file(&engine, PolicyKind::Kill, &missing).expect_err("missing");
        assert!(matches!(err, PolicyFileError::Read { .. }), "{err:?}");
        let file = PolicyFile { path, sha256: None };
        let err = load_policy_file(&engine, PolicyKind::Ownership, &file).expect_err("kind");
        assert!(
            err.to_string().starts_with("ownership policy ")
                && err.to_string().ends_with(" refused"),
            "{err}"
        );
    }

    #[test]
    fn one_swap_changes_a_policy_and_the_mode_together() {
        let engine = engine();
        let ownership = engine
            .load_default(PolicyKind::Ownership)
            .expect("ownership");
        let kill = engine.load_default(PolicyKind::Kill).expect("kill");
        let in_force = PoliciesInForce::new(ActivePolicies::from_config(
            ownership,
            kill.clone(),
            PolicyMode::Enforce,
        ));
        let before = in_force.current();
        assert_eq!(in_force.mode(), PolicyMode::Enforce);

        let mut audit = ActiveEntry::from_config(kill, PolicyMode::Audit);
        audit.origin = PolicyOrigin::Store;
        let replaced = in_force.install(audit);
        assert!(
            Arc::ptr_eq(&before, &replaced),
            "returns the pair it replaced"
        );
        assert_eq!(in_force.mode(), PolicyMode::Audit, "either in audit: audit");
        let now = in_force.current();
        assert_eq!(now.kill.origin, PolicyOrigin::Store);
        assert_eq!(now.ownership.mode, PolicyMode::Enforce);
        // The pair a sweep took before the swap is unchanged.
        assert_eq!(before.mode(), PolicyMode::Enforce);
        assert_eq!(before.kill.origin, PolicyOrigin::Config);
        // A clone shares the value.
        assert!(Arc::ptr_eq(&in_force.clone().current(), &now));
    }
}
