//! The admin API: a gRPC service (`dockhand.admin.v1.PolicyAdmin`) on a local unix socket
//! through which operators upload, list, activate and roll back orphan policies and read the
//! reconciler's status while the plugin runs, and through which `dockhand reconcile --once`
//! and `dockhand policy dry-run` ask the running reconciler for a sweep now (`Sweep`, a dry run
//! of which may try a stored policy in place of the one in force).
//!
//! # Access control
//!
//! The socket is created `0600` (bound under a temporary name, `chmod`ed, then renamed into
//! place, so it is never reachable with looser permissions), in a parent directory created
//! `0700` if it does not exist. Every accepted connection's peer credentials are read with
//! `SO_PEERCRED` ([`peer`]) and travel with each request; an interceptor refuses a peer whose
//! uid is not in `dockhand.admin.allowed_uids` with `PERMISSION_DENIED` naming the uid, before
//! any method runs.
//!
//! # Policy changes
//!
//! An upload is streamed in chunks and refused as soon as it exceeds
//! [`MAX_POLICY_BYTES`](orphan_policy::limits::MAX_POLICY_BYTES); the complete component is
//! validated with [`PolicyEngine::load`] (world, imports, contract version, compile limits)
//! **before** it reaches the [`PolicyStore`], so a refused upload changes nothing. Activation and
//! rollback load the stored bytes again (the store re-hashes them), persist the new pointer,
//! and only then swap the policy into the [`ActivePolicySet`], which takes effect at the next
//! sweep (a sweep in flight keeps the policies it started with). Writes are serialised, so the
//! store's pointer and the policies in force never disagree.
//!
//! # Wiring
//!
//! The plugin builds an [`AdminState`] and runs [`serve_admin`] until shutdown. The reconciler
//! has one mode for both policies; the per-policy modes chosen through the API are kept in the
//! [`ActivePolicySet`] ([`ActivePolicySet::modes`], [`ActivePolicySet::subscribe_modes`]), which
//! sets the reconciler's [`ModeSwitch`] itself ([`ActivePolicySet::with_mode_switch`]) before
//! an activation answers.
//!
//! A dry run is a sweep of the running reconciler in report-only form, so it evaluates with
//! the node identity, tracked set and settings its sweeps use (the learnt identity), and
//! reports what enforce mode would do.
//!
//! # On the wire
//!
//! Each thing is said once: answers carry typed rows (verdicts, actions, outcomes and sweep
//! statuses are enums, the counters are fields), never rendered text; `convert` maps them to
//! and from the domain types and refuses unspecified values on the client, and the CLI renders
//! tables and JSON from the domain types.

pub mod client;
mod convert;
mod on_demand;
pub mod peer;
mod proto;
mod server;

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use orphan_policy::store::{PolicyMode, PolicyStore, StoreError};
use orphan_policy::{LoadError, LoadedPolicy, PolicyEngine, PolicyKind};
use tokio::sync::watch;

use crate::reconcile::{ActivePolicies, Metrics, ModeSwitch, PolicySlot, Reconciler};

pub use convert::{AnswerError, SweepAnswer, SweepOutcome};
pub use proto::{
    ActivePolicy as ActivePolicyMsg, ListResponse, PolicyKind as PolicyKindMsg,
    PolicyMode as PolicyModeMsg, StatusResponse, StoredPolicy as StoredPolicyMsg, UploadResponse,
};

/// Why the admin server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The socket path is relative or has no parent directory.
    #[error("admin socket path {} must be absolute and name a file", .0.display())]
    BadPath(PathBuf),
    /// The socket's directory could not be created.
    #[error("cannot create the admin socket directory {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Something other than a socket is at the socket path; it is left alone.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// Another server answers on the socket.
    #[error("admin socket {} is in use by another running process", .0.display())]
    InUse(PathBuf),
    /// A socket file operation failed.
    #[error("admin socket {}: cannot {op}", .path.display())]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("admin server failed")]
    Serve(#[from] tonic::transport::Error),
    /// The policy store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A policy activated in the store no longer loads.
    #[error("stored active {kind} policy {digest} no longer loads")]
    Load {
        /// Its kind.
        kind: PolicyKind,
        /// Its digest.
        digest: String,
        /// Why it was refused.
        #[source]
        source: LoadError,
    },
}

/// Where a policy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// The policy the plugin started with (configured file or bundled default).
    Config,
    /// Activated from the policy store.
    Store,
}

impl PolicyOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Store => "store",
        }
    }
}

/// One policy in force, as the admin API reports it.
#[derive(Debug, Clone)]
pub struct ActiveEntry {
    /// The loaded policy.
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
    /// An entry for a policy the plugin started with.
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

/// The policy of `kind` last activated through the admin API (in this or an earlier run),
/// loaded and verified, in its recorded mode; `None` if none was ever activated. The plugin
/// calls this at start-up so activations survive restarts. Blocking: call it from
/// `spawn_blocking` (or before the runtime's hot path).
pub fn restore_from_store(
    engine: &PolicyEngine,
    store: &PolicyStore,
    kind: PolicyKind,
) -> Result<Option<ActiveEntry>, AdminError> {
    let Some((record, stored, bytes)) = store.load_active(kind)? else {
        return Ok(None);
    };
    let policy = engine
        .load(kind, &bytes)
        .map_err(|source| AdminError::Load {
            kind,
            digest: record.digest.clone(),
            source,
        })?;
    Ok(Some(ActiveEntry {
        policy,
        name: stored.name,
        version: stored.version,
        mode: record.mode,
        origin: PolicyOrigin::Store,
        activated_at: record.activated_at,
    }))
}

/// The mode of each policy kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyModes {
    /// Mode of the ownership policy.
    pub ownership: PolicyMode,
    /// Mode of the kill policy.
    pub kill: PolicyMode,
}

impl PolicyModes {
    /// The mode the reconciler should run in: audit if either policy is in audit.
    pub fn effective(&self) -> PolicyMode {
        if self.ownership == PolicyMode::Audit || self.kill == PolicyMode::Audit {
            PolicyMode::Audit
        } else {
            PolicyMode::Enforce
        }
    }
}

#[derive(Debug)]
struct Entries {
    ownership: ActiveEntry,
    kill: ActiveEntry,
}

impl Entries {
    fn get_mut(&mut self, kind: PolicyKind) -> &mut ActiveEntry {
        match kind {
            PolicyKind::Ownership => &mut self.ownership,
            PolicyKind::Kill => &mut self.kill,
        }
    }
}

/// The policies in force and their modes, optionally tied to the reconciler's [`PolicySlot`].
#[derive(Debug)]
pub struct ActivePolicySet {
    slot: Option<PolicySlot>,
    /// The running reconciler's mode, set in the same call as the policies.
    switch: Option<Arc<ModeSwitch>>,
    entries: Mutex<Entries>,
    modes: watch::Sender<PolicyModes>,
}

impl ActivePolicySet {
    /// A set starting with `ownership` and `kill`. With a `slot` (the running reconciler's),
    /// the pair is swapped into it now and every later change too; without one (reconciler
    /// disabled) changes are only recorded (and persisted by the store for the next start).
    pub fn new(ownership: ActiveEntry, kill: ActiveEntry, slot: Option<PolicySlot>) -> Self {
        let modes = PolicyModes {
            ownership: ownership.mode,
            kill: kill.mode,
        };
        if let Some(slot) = &slot {
            slot.swap(ActivePolicies {
                ownership: ownership.policy.clone(),
                kill: kill.policy.clone(),
            });
        }
        Self {
            slot,
            switch: None,
            entries: Mutex::new(Entries { ownership, kill }),
            modes: watch::Sender::new(modes),
        }
    }

    /// Drives the running reconciler's `switch`: it is set now to the effective mode, and by
    /// every activation before the activation returns — switching to audit stops the sweep
    /// in flight from acting further (the reconciler reads the switch before each action).
    pub fn with_mode_switch(mut self, switch: Arc<ModeSwitch>) -> Self {
        switch.set(self.modes().effective());
        self.switch = Some(switch);
        self
    }

    /// A set for a running reconciler: starts from what `slot` holds, both in `mode`.
    pub fn from_slot(slot: PolicySlot, mode: PolicyMode) -> Self {
        let current = slot.current();
        Self::new(
            ActiveEntry::from_config(current.ownership.clone(), mode),
            ActiveEntry::from_config(current.kill.clone(), mode),
            Some(slot),
        )
    }

    /// Whether changes reach a running reconciler.
    pub fn has_slot(&self) -> bool {
        self.slot.is_some()
    }

    /// The policy of `kind` in force.
    pub fn entry(&self, kind: PolicyKind) -> ActiveEntry {
        self.lock().get_mut(kind).clone()
    }

    /// The pair in force, as a sweep would use it.
    pub fn pair(&self) -> ActivePolicies {
        let entries = self.lock();
        ActivePolicies {
            ownership: entries.ownership.policy.clone(),
            kill: entries.kill.policy.clone(),
        }
    }

    /// The current per-kind modes.
    pub fn modes(&self) -> PolicyModes {
        *self.modes.borrow()
    }

    /// A receiver that sees every mode change (for wiring the reconciler's mode).
    pub fn subscribe_modes(&self) -> watch::Receiver<PolicyModes> {
        self.modes.subscribe()
    }

    /// Puts `entry` in force for its kind; returns whether a reconciler slot was updated.
    pub fn install(&self, entry: ActiveEntry) -> bool {
        let kind = entry.policy.kind();
        let mode = entry.mode;
        let mut modes = self.modes();
        match kind {
            PolicyKind::Ownership => modes.ownership = mode,
            PolicyKind::Kill => modes.kill = mode,
        }
        // Into audit before the new policy is in force; into enforce only after.
        let effective = modes.effective();
        if effective == PolicyMode::Audit
            && let Some(switch) = &self.switch
        {
            switch.set(effective);
        }
        let pair = {
            let mut entries = self.lock();
            *entries.get_mut(kind) = entry;
            ActivePolicies {
                ownership: entries.ownership.policy.clone(),
                kill: entries.kill.policy.clone(),
            }
        };
        let applied = match &self.slot {
            Some(slot) => {
                slot.swap(pair);
                true
            }
            None => false,
        };
        self.modes.send_replace(modes);
        if let Some(switch) = &self.switch {
            switch.set(effective);
        }
        applied
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The guarded value is replaced whole; a panic cannot leave it half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the admin methods work with.
#[derive(Debug)]
pub struct AdminState {
    engine: PolicyEngine,
    store: Arc<PolicyStore>,
    policies: ActivePolicySet,
    metrics: Option<Arc<Metrics>>,
    /// The running reconciler, for on-demand sweeps; `None` when it is disabled.
    sweeper: Option<Arc<Reconciler>>,
    /// Serialises uploads, activations and rollbacks.
    writes: tokio::sync::Mutex<()>,
}

impl AdminState {
    /// State over an engine (with a running epoch ticker), a store and the policies in force.
    pub fn new(engine: PolicyEngine, store: Arc<PolicyStore>, policies: ActivePolicySet) -> Self {
        Self {
            engine,
            store,
            policies,
            metrics: None,
            sweeper: None,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds the reconciler's counters for `Status`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Enables `Sweep`, dry runs included, on the plugin's running reconciler (the one
    /// sweeping periodically).
    pub fn with_sweeper(mut self, reconciler: Arc<Reconciler>) -> Self {
        self.sweeper = Some(reconciler);
        self
    }

    /// The policies in force.
    pub fn policies(&self) -> &ActivePolicySet {
        &self.policies
    }

    /// The policy store.
    pub fn store(&self) -> &Arc<PolicyStore> {
        &self.store
    }
}

/// Serves the admin API on `socket` until `shutdown` resolves, admitting only peers whose uid
/// is in `allowed_uids`. Removes the socket file when it stops.
pub async fn serve_admin(
    socket: &Path,
    allowed_uids: Vec<u32>,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AdminError> {
    let listener = bind_socket(socket).await?;
    tracing::info!(socket = %socket.display(), allowed_uids = ?allowed_uids, "admin API listening");
    let result = server::run(listener, allowed_uids, state, shutdown).await;
    if let Err(error) = std::fs::remove_file(socket)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %socket.display(), %error, "cannot remove the admin socket");
    }
    result
}

/// Prepares the directory, clears a stale socket and binds `socket` with mode 0600.
async fn bind_socket(socket: &Path) -> Result<tokio::net::UnixListener, AdminError> {
    let parent = match socket.parent() {
        Some(p) if socket.is_absolute() && socket.file_name().is_some() => p,
        _ => return Err(AdminError::BadPath(socket.to_owned())),
    };
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| AdminError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
    }
    let socket_err = |op, source| AdminError::Socket {
        op,
        path: socket.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(socket).await.is_ok() {
                return Err(AdminError::InUse(socket.to_owned()));
            }
            tracing::info!(socket = %socket.display(), "removing a stale admin socket");
            std::fs::remove_file(socket).map_err(|e| socket_err("remove the stale socket", e))?;
        }
        Ok(_) => return Err(AdminError::NotASocket(socket.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_err("inspect", e)),
    }
    // Bind under a temporary name, restrict, then rename: the socket is never reachable
    // at its real path with the umask's looser permissions.
    let mut tmp_name = socket.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = parent.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(|e| socket_err("bind", e))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| socket_err("set mode 0600 on", e))
        .and_then(|()| std::fs::rename(&tmp, socket).map_err(|e| socket_err("rename into", e)));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}
