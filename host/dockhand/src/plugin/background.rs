//! The reconciler's start-up inside the long-lived plugin instance.
//!
//! Called once per process from the start-once hook (first `Fingerprint` or `Init`), never
//! from `SetConfig`. Every failure on the way — a policy file that cannot be read, a sha256
//! pin that does not match, a component the engine refuses — falls back to the bundled
//! default for that kind and logs an error; a failure of the engine itself leaves the
//! reconciler off (and says so), because sweeping without working policies can only mean
//! "no action" anyway.

use std::sync::Arc;

use nomad_plugin::proto::drivers::FingerprintResponse;
use nomad_plugin::proto::drivers::fingerprint_response::HealthState;
use orphan_policy::store::{DEFAULT_KEEP_REVISIONS, PolicyStore, STORE_DIR_NAME};
use orphan_policy::{LoadedPolicy, NodeInfo, PolicyEngine, PolicyKind};
use tokio::sync::watch;

use crate::admin::{AdminState, restore_from_store, serve_admin};
use crate::config::{PluginConfig, PolicyFile};
use crate::reconcile::{
    ActivePolicies, HealthProbe, Metrics, NodeCell, PoliciesInForce, ReconcileSettings, Reconciler,
    TrackedSource, load_policy_file, policy_engine,
};

/// What stays alive while the reconciler runs.
#[derive(Debug)]
pub(crate) struct ReconcilerHandle {
    /// Counters of the running reconciler.
    pub metrics: Arc<Metrics>,
    /// The policies in force (shared with the reconciler and the admin API).
    pub policies: PoliciesInForce,
    /// The policy engine (for loading further policies).
    pub engine: PolicyEngine,
}

/// Docker health as last fingerprinted: sweeps are skipped unless it is healthy.
#[derive(Debug)]
pub(crate) struct FingerprintHealth(pub watch::Receiver<Option<FingerprintResponse>>);

impl HealthProbe for FingerprintHealth {
    fn is_healthy(&self) -> bool {
        self.0
            .borrow()
            .as_ref()
            .is_some_and(|fp| fp.health == HealthState::Healthy as i32)
    }
}

/// Everything the reconciler is built from.
pub(crate) struct ReconcilerInputs {
    pub config: PluginConfig,
    pub driver_name: String,
    pub docker: Arc<dyn crate::docker::DockerApi>,
    pub tracked: Arc<dyn TrackedSource>,
    pub health: Arc<dyn HealthProbe>,
    pub node: Arc<NodeCell>,
}

/// Compiled policies, under `data_dir`: a large policy is compiled once per engine version,
/// not at every start.
pub(crate) const POLICY_CACHE_DIR_NAME: &str = "policy-cache";

/// Builds and spawns the reconciler when `gc.dangling_containers.enabled`, with the configured
/// policies (or the bundled defaults) and, when the admin API is enabled, the store's
/// activations in force; `None` when it is disabled or could not be set up (logged).
pub(crate) fn start_reconciler(inputs: ReconcilerInputs) -> Option<ReconcilerHandle> {
    let config = &inputs.config;
    if !config.gc.dangling_containers.enabled {
        tracing::info!("dangling container reconciler disabled by configuration");
        return None;
    }
    let cache_dir = config.dockhand.data_dir.join(POLICY_CACHE_DIR_NAME);
    let engine = match policy_engine(config, Some(cache_dir)) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::error!(error = %nomad_plugin::error_chain(&e), "policy engine failed to start; reconciler not started");
            return None;
        }
    };
    let ownership = policy_or_default(
        &engine,
        PolicyKind::Ownership,
        config.dockhand.ownership_policy.as_ref(),
    )?;
    let kill = policy_or_default(
        &engine,
        PolicyKind::Kill,
        config.dockhand.kill_policy.as_ref(),
    )?;
    let mut pair = ActivePolicies::from_config(ownership, kill, config.dockhand.mode);
    let store = config
        .dockhand
        .admin
        .enabled
        .then(|| open_store(config))
        .flatten();
    if let Some(store) = &store {
        pair = restored(&engine, store, pair);
    }
    tracing::info!(
        ownership = %pair.ownership.policy.digest_hex(),
        kill = %pair.kill.policy.digest_hex(),
        mode = %pair.mode(),
        "orphan policies loaded"
    );
    let policies = PoliciesInForce::new(pair);
    let settings = ReconcileSettings::from_config(config, NodeInfo::default(), &inputs.driver_name);
    let reconciler = Reconciler::new(
        inputs.docker,
        inputs.tracked,
        policies.clone(),
        settings,
        inputs.health,
    )
    .with_node_source(inputs.node);
    let reconciler = Arc::new(reconciler);
    let metrics = reconciler.metrics();
    if let Some(store) = store {
        let state = AdminState::new(engine.clone(), store, policies.clone())
            .with_metrics(metrics.clone())
            .with_sweeper(Arc::clone(&reconciler));
        serve(config, state);
    }
    tokio::spawn(async move {
        reconciler.run_shared(std::future::pending::<()>()).await;
    });
    Some(ReconcilerHandle {
        metrics,
        policies,
        engine,
    })
}

/// The configured policy of `kind`, or the bundled default when none is configured or the
/// configured one is refused. `None` only when even the bundled default fails to load.
fn policy_or_default(
    engine: &PolicyEngine,
    kind: PolicyKind,
    source: Option<&PolicyFile>,
) -> Option<LoadedPolicy> {
    if let Some(source) = source {
        match load_policy_file(engine, kind, source) {
            Ok(policy) => {
                tracing::info!(
                    kind = ?kind,
                    path = %source.path.display(),
                    digest = %policy.digest_hex(),
                    "configured policy loaded"
                );
                return Some(policy);
            }
            Err(e) => tracing::error!(
                kind = ?kind,
                path = %source.path.display(),
                "configured policy refused, using the bundled default: {}",
                nomad_plugin::error_chain(&e)
            ),
        }
    }
    match engine.load_default(kind) {
        Ok(policy) => Some(policy),
        Err(e) => {
            tracing::error!(kind = ?kind, error = %nomad_plugin::error_chain(&e), "bundled policy failed to load; reconciler not started");
            None
        }
    }
}

/// The policy store under `data_dir`; `None` (logged) when it cannot be opened, and then the
/// admin API does not start.
fn open_store(config: &PluginConfig) -> Option<Arc<PolicyStore>> {
    let store_dir = config.dockhand.data_dir.join(STORE_DIR_NAME);
    match PolicyStore::open(&store_dir, DEFAULT_KEEP_REVISIONS) {
        Ok(store) => Some(Arc::new(store)),
        Err(e) => {
            tracing::error!(error = %nomad_plugin::error_chain(&e), dir = %store_dir.display(), "policy store unavailable; admin API not started");
            None
        }
    }
}

/// `configured` with the store's activations (which survive restarts) put in force, each in
/// its recorded mode; a stored activation that no longer loads keeps the configured policy
/// (logged).
fn restored(
    engine: &PolicyEngine,
    store: &PolicyStore,
    configured: ActivePolicies,
) -> ActivePolicies {
    let mut pair = configured;
    for kind in [PolicyKind::Ownership, PolicyKind::Kill] {
        match restore_from_store(engine, store, kind) {
            Ok(Some(entry)) => {
                tracing::info!(kind = ?kind, digest = %entry.policy.digest_hex(), "activated policy restored from the store");
                pair = pair.with(entry);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(kind = ?kind, error = %nomad_plugin::error_chain(&e), "stored activation unusable; keeping the configured policy");
            }
        }
    }
    pair
}

/// Serves the admin API over `state`; a failure is logged and leaves the reconciler running
/// on the policies it has.
fn serve(config: &PluginConfig, state: AdminState) {
    let socket = config.dockhand.admin.socket.clone();
    let allowed = config.dockhand.admin.allowed_uids.clone();
    tokio::spawn(async move {
        tracing::info!(socket = %socket.display(), allowed_uids = ?allowed, "admin API serving");
        if let Err(e) = serve_admin(
            &socket,
            allowed,
            Arc::new(state),
            std::future::pending::<()>(),
        )
        .await
        {
            tracing::error!(error = %nomad_plugin::error_chain(&e), socket = %socket.display(), "admin API stopped");
        }
    });
}
