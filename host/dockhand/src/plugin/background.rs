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

use crate::config::{PluginConfig, PolicySource};
use crate::reconcile::{
    ActivePolicies, HealthProbe, Metrics, NodeCell, PolicySlot, ReconcileSettings, Reconciler,
    TrackedSource,
};

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
        ..EngineConfig::default()
    };
    let engine = match PolicyEngine::new(engine_config) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::error!(error = %e, "policy engine failed to start; reconciler not started");
            return None;
        }
    };
    let ticker = match engine.start_epoch_ticker() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "policy epoch ticker failed to start; reconciler not started");
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
    let metrics = reconciler.metrics();
    tracing::info!(
        ownership = %policies.current().ownership.digest_hex(),
        kill = %policies.current().kill.digest_hex(),
        "orphan policies loaded"
    );
    tokio::spawn(reconciler.run(std::future::pending::<()>()));
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
    source: Option<&PolicySource>,
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
            tracing::error!(kind = ?kind, error = %e, "bundled policy failed to load; reconciler not started");
            None
        }
    }
}

fn load_configured(
    engine: &PolicyEngine,
    kind: PolicyKind,
    source: &PolicySource,
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
