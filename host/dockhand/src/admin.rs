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
//! and only then install the policy with its mode into the reconciler's [`PoliciesInForce`], in
//! one swap before the activation answers: the next sweep uses the new pair, a sweep in flight
//! keeps the policies it started with, and a switch to audit stops it from acting further
//! (each action reads the mode in force). Writes are serialised, so the store's pointer and the
//! policies in force never disagree.
//!
//! # Wiring
//!
//! The plugin builds an [`AdminState`] over the same [`PoliciesInForce`] its reconciler reads
//! and runs [`serve_admin`] until shutdown.
//!
//! A dry run is a sweep of the running reconciler in report-only form, so it evaluates with
//! the node identity, tracked set and settings its sweeps use (the learnt identity), and
//! reports what enforce mode would do.
//!
//! # On the wire
//!
//! Each thing is said once: answers carry typed rows (verdicts, actions, outcomes, sweep
//! statuses, stored policies' states and policies' origins are enums, the counters are
//! fields), never rendered text; `convert` maps them to and from the domain types and refuses
//! unspecified values on the client, and the CLI renders tables and JSON from the domain types.

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
use std::sync::Arc;

use orphan_policy::store::{PolicyStore, StoreError};
use orphan_policy::{LoadError, PolicyEngine, PolicyKind};

use crate::reconcile::{ActiveEntry, Metrics, PoliciesInForce, PolicyOrigin, Reconciler};

pub use convert::{AnswerError, SweepAnswer, SweepOutcome, active_origin, stored_state};
pub use proto::{
    ActivePolicy as ActivePolicyMsg, ListResponse, PolicyKind as PolicyKindMsg,
    PolicyMode as PolicyModeMsg, PolicyOrigin as PolicyOriginMsg, PolicyState as PolicyStateMsg,
    StatusResponse, StoredPolicy as StoredPolicyMsg, UploadResponse,
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

/// Everything the admin methods work with.
#[derive(Debug)]
pub struct AdminState {
    engine: PolicyEngine,
    store: Arc<PolicyStore>,
    policies: PoliciesInForce,
    metrics: Option<Arc<Metrics>>,
    /// The running reconciler, for on-demand sweeps; `None` when it is disabled.
    sweeper: Option<Arc<Reconciler>>,
    /// Serialises the store's writes: an upload's record, and each activation or rollback
    /// (load, record, install as one step, so the store and the policies in force agree). An
    /// upload's compile runs before it takes the lock.
    writes: tokio::sync::Mutex<()>,
}

impl AdminState {
    /// State over an engine, a store and the policies in force (the reconciler's, if one runs).
    pub fn new(engine: PolicyEngine, store: Arc<PolicyStore>, policies: PoliciesInForce) -> Self {
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
    pub fn policies(&self) -> &PoliciesInForce {
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
