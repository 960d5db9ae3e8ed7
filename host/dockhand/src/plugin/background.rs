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
use orphan_policy::store::sha256_hex;
use orphan_policy::{EngineConfig, EpochTicker, LoadedPolicy, NodeInfo, PolicyEngine, PolicyKind};
use tokio::sync::watch;

use crate::admin::{ActiveEntry, ActivePolicySet, AdminState, restore_from_store, serve_admin};
use crate::config::{PluginConfig, PolicyFile};
use crate::reconcile::{
    ActivePolicies, HealthProbe, Metrics, ModeSwitch, NodeCell, PolicySlot, ReconcileSettings,
    Reconciler, TrackedSource,
};
use orphan_policy::store::{DEFAULT_KEEP_REVISIONS, PolicyStore, STORE_DIR_NAME};

/// What stays alive while the reconciler runs.
#[derive(Debug)]
pub(crate) struct ReconcilerHandle {
    /// Counters of the running reconciler.
    pub metrics: Arc<Metrics>,
    /// The policies it uses (hot-swappable).
    pub policies: PolicySlot,
    /// The policy engine (for loading further policies).
    pub engine: PolicyEngine,
    /// Keeps the engine's epoch ticker running.
    _ticker: EpochTicker,
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

/// Builds and spawns the reconciler when `gc.dangling_containers.enabled`; `None` when it is
/// disabled or could not be set up (logged).
/// Compiled policies, under `data_dir`: a large policy is compiled once per engine version,
/// not at every start.
pub(crate) const POLICY_CACHE_DIR_NAME: &str = "policy-cache";

pub(crate) fn start_reconciler(inputs: ReconcilerInputs) -> Option<ReconcilerHandle> {
    let config = &inputs.config;
    if !config.gc.dangling_containers.enabled {
        tracing::info!("dangling container reconciler disabled by configuration");
        return None;
    }
    let engine_config = EngineConfig {
        memory_limit: usize::try_from(config.dockhand.policy_memory_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024),
        deadline: config.dockhand.policy_deadline,
        cache_dir: Some(config.dockhand.data_dir.join(POLICY_CACHE_DIR_NAME)),
        ..EngineConfig::default()
    };
    let engine = match PolicyEngine::new(engine_config) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::error!(error = %nomad_plugin::error_chain(&e), "policy engine failed to start; reconciler not started");
            return None;
        }
    };
    let ticker = match engine.start_epoch_ticker() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %nomad_plugin::error_chain(&e), "policy epoch ticker failed to start; reconciler not started");
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
    let policies = PolicySlot::new(ActivePolicies { ownership, kill });
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
    if config.dockhand.admin.enabled {
        let admin = AdminInputs {
            engine: &engine,
            policies: &policies,
            mode: reconciler.mode_switch(),
            metrics: metrics.clone(),
            sweeper: Arc::clone(&reconciler),
        };
        start_admin(config, admin);
    }
    tracing::info!(
        ownership = %policies.current().ownership.digest_hex(),
        kill = %policies.current().kill.digest_hex(),
        "orphan policies loaded"
    );
    tokio::spawn(async move {
        reconciler.run_shared(std::future::pending::<()>()).await;
    });
    Some(ReconcilerHandle {
        metrics,
        policies,
        engine,
        _ticker: ticker,
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
        match load_configured(engine, kind, source) {
            Ok(policy) => {
                tracing::info!(
                    kind = ?kind,
                    path = %source.path.display(),
                    digest = %policy.digest_hex(),
                    "configured policy loaded"
                );
                return Some(policy);
            }
            Err(reason) => tracing::error!(
                kind = ?kind,
                path = %source.path.display(),
                "configured policy refused, using the bundled default: {reason}"
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

fn load_configured(
    engine: &PolicyEngine,
    kind: PolicyKind,
    source: &PolicyFile,
) -> Result<LoadedPolicy, String> {
    let bytes = std::fs::read(&source.path).map_err(|e| format!("cannot read it: {e}"))?;
    if let Some(pin) = &source.sha256 {
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(pin) {
            return Err(format!("sha256 mismatch: pinned {pin}, file has {actual}"));
        }
    }
    engine.load(kind, &bytes).map_err(|e| e.to_string())
}

/// What the admin API is built from.
struct AdminInputs<'a> {
    engine: &'a PolicyEngine,
    policies: &'a PolicySlot,
    mode: Arc<ModeSwitch>,
    metrics: Arc<Metrics>,
    sweeper: Arc<Reconciler>,
}

/// Opens the policy store, puts its activations (which survive restarts) in force, and serves
/// the admin API. Any failure leaves the reconciler running on the policies it has and is
/// logged.
fn start_admin(config: &PluginConfig, inputs: AdminInputs<'_>) {
    let store_dir = config.dockhand.data_dir.join(STORE_DIR_NAME);
    let store = match PolicyStore::open(&store_dir, DEFAULT_KEEP_REVISIONS) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            tracing::error!(error = %nomad_plugin::error_chain(&e), dir = %store_dir.display(), "policy store unavailable; admin API not started");
            return;
        }
    };
    let mode = config.dockhand.mode;
    let current = inputs.policies.current();
    let entry = |kind: PolicyKind, configured: &LoadedPolicy| match restore_from_store(
        inputs.engine,
        &store,
        kind,
    ) {
        Ok(Some(entry)) => {
            tracing::info!(kind = ?kind, digest = %entry.policy.digest_hex(), "activated policy restored from the store");
            entry
        }
        Ok(None) => ActiveEntry::from_config(configured.clone(), mode),
        Err(e) => {
            tracing::error!(kind = ?kind, error = %nomad_plugin::error_chain(&e), "stored activation unusable; keeping the configured policy");
            ActiveEntry::from_config(configured.clone(), mode)
        }
    };
    let ownership = entry(PolicyKind::Ownership, &current.ownership);
    let kill = entry(PolicyKind::Kill, &current.kill);
    // Activations choose audit or enforce per policy: the reconciler audits while either does,
    // from the moment an activation answers.
    let set = ActivePolicySet::new(ownership, kill, Some(inputs.policies.clone()))
        .with_mode_switch(inputs.mode);

    let state = AdminState::new(inputs.engine.clone(), store, set)
        .with_metrics(inputs.metrics)
        .with_sweeper(inputs.sweeper);
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
