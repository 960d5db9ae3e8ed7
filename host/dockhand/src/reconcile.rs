//! The reconciler: finds running containers this driver does not track, asks the ownership and
//! kill policies about them, and acts on the answers — carefully.
//!
//! One sweep (see [`Reconciler::sweep_once`]):
//!
//! 1. **One** `list` call for running containers, bounded by the per-call timeout.
//! 2. The tracked set (task handles and pause containers) is taken **after** the listing, so a
//!    task started while the listing was in flight is still seen as tracked.
//! 3. Tracked containers and containers created within `creation_grace` are skipped.
//! 4. The ownership policy classifies the rest in one batch; candidates it answers
//!    `need-inspect` for are inspected (bounded concurrency, each call with its timeout) and
//!    classified once more with their environment.
//! 5. The kill policy decides about the owned ones in one batch.
//! 6. Actions are carried out, each Docker call with its own timeout; one container's failure
//!    does not stop the others. Right before each, the mode in force and the tracked set are
//!    read again, one action is taken from the period's budget and the intent is fsynced to the audit file.
//! 7. Every decision is logged as a structured `tracing` event and recorded in the audit file
//!    (routine not-Nomad rows only counted); [`Metrics`] count what happened.
//!
//! # Safety: when in doubt, don't kill
//!
//! Nothing destructive happens when the listing failed or timed out (a truncated or undecodable
//! answer is a failed listing; an entry without an id is skipped, one without a creation time
//! counts as within the grace), when a policy failed for
//! the batch (trap, deadline, bad answer), in dry-run or audit mode (which report what *would*
//! be done, also when audit mode is put in force mid-sweep), beyond the `max_actions_per_sweep`
//! budget of the period (shared by periodic and on-demand sweeps), when the intent cannot be
//! recorded in the audit file, or for a container younger than the grace. Right before acting
//! on a container the tracked set is read again: a task started or recovered since the sweep
//! began makes its container untouchable.
//!
//! # Wedged Docker
//!
//! Every Docker call has its own deadline, so a daemon that accepts connections but never
//! answers makes a sweep fail after one timeout instead of hanging the loop. A failing sweep
//! logs **one** warning per failure streak (counted in [`Metrics`]); the next successful sweep
//! ends the streak.
//!
//! # Hot-swappable policies
//!
//! The policies in force, each with its mode, are one shared value, [`PoliciesInForce`]; the
//! admin API [`install`](PoliciesInForce::install)s activations into it at any time. A sweep
//! takes the current pair once at its start and keeps that `Arc` to the end, so one sweep never
//! mixes two policy versions; right before each action it reads the mode in force again (see
//! [`policies`]).

mod audit;
mod claims;
mod execute;
mod manual;
mod metrics;
mod node;
pub mod policies;
mod report;
mod snapshot;
mod sweep;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use orphan_policy::NodeInfo;
use tracing::Instrument as _;

use crate::config::{DaemonSharing, PluginConfig, PolicyMode};
use crate::docker::DockerApi;
use crate::fingerprint::Fingerprinter;
use crate::tasks::{TaskEngine, TaskStore};

pub use audit::{
    AUDIT_FILE_NAME, AuditError, AuditLine, AuditLog, AuditRecord, AuditSummary,
    DEFAULT_AUDIT_KEEP, DEFAULT_AUDIT_MAX_BYTES, RecordKind, sweep_lines,
};
pub use execute::execute_action;
pub use manual::SweepSkipped;
pub use metrics::{Metrics, MetricsSnapshot};
pub use node::{NODE_FILE_NAME, NodeCell, saved_identity};
pub use policies::{
    ActiveEntry, ActivePolicies, PoliciesInForce, PolicyFileError, PolicyOrigin, load_policy_file,
    policy_engine,
};
pub use report::{
    Decision, Outcome, SweepReport, SweepStatus, action_label, action_name, format_age,
    ownership_name,
};
pub use snapshot::{snapshot_from_summary, with_inspected_env};
pub use sweep::now_ms;

/// Inspections that may run at once when the ownership policy asks for them.
pub const DEFAULT_INSPECT_CONCURRENCY: usize = 4;
/// Largest batch handed to one policy call: the policy host's own limit. A
/// batch whose input is too large for one call is split in halves.
pub const POLICY_BATCH_SIZE: usize = orphan_policy::limits::MAX_CONTAINERS_PER_BATCH;

/// Where the reconciler learns which containers are tracked (task handles, pause containers).
pub trait TrackedSource: Send + Sync + std::fmt::Debug {
    /// Ids of every container the driver currently tracks.
    fn tracked_ids(&self) -> BTreeSet<String>;

    /// False while the set is known to be incomplete (the start-up scan of running sandboxes
    /// has not completed): no sweep runs then.
    fn is_complete(&self) -> bool {
        true
    }

    /// Right before an action on container `id`: `None` if it is tracked now (leave it
    /// alone), else a guard held until the action has ended, during which the driver does not
    /// adopt the container (see [`TaskStore::hold_for_action`]).
    fn hold_for_action(&self, id: &str) -> Option<ActionGuard> {
        (!self.tracked_ids().contains(id)).then(|| Box::new(()) as ActionGuard)
    }
}

/// What [`TrackedSource::hold_for_action`] returns: dropped when the action has ended.
pub type ActionGuard = Box<dyn Send>;

impl TrackedSource for TaskStore {
    fn tracked_ids(&self) -> BTreeSet<String> {
        self.tracked_container_ids()
    }

    fn is_complete(&self) -> bool {
        TaskStore::is_complete(self)
    }

    fn hold_for_action(&self, id: &str) -> Option<ActionGuard> {
        TaskStore::hold_for_action(self, id).map(|hold| Box::new(hold) as ActionGuard)
    }
}

impl TrackedSource for TaskEngine {
    fn tracked_ids(&self) -> BTreeSet<String> {
        self.store().tracked_container_ids()
    }

    fn is_complete(&self) -> bool {
        self.store().is_complete()
    }

    fn hold_for_action(&self, id: &str) -> Option<ActionGuard> {
        self.store()
            .hold_for_action(id)
            .map(|hold| Box::new(hold) as ActionGuard)
    }
}

/// A [`TrackedSource`] from a closure (e.g. task store ids united with pause containers).
pub struct TrackedFn<F>(pub F);

impl<F> std::fmt::Debug for TrackedFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrackedFn")
    }
}

impl<F> TrackedSource for TrackedFn<F>
where
    F: Fn() -> BTreeSet<String> + Send + Sync,
{
    fn tracked_ids(&self) -> BTreeSet<String> {
        (self.0)()
    }
}

/// Whether Docker is healthy enough to sweep.
pub trait HealthProbe: Send + Sync + std::fmt::Debug {
    /// `false` skips the sweep.
    fn is_healthy(&self) -> bool;
}

impl HealthProbe for Fingerprinter {
    fn is_healthy(&self) -> bool {
        Fingerprinter::is_healthy(self)
    }
}

/// A probe that always answers healthy (tests, the CLI dry-run).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysHealthy;

impl HealthProbe for AlwaysHealthy {
    fn is_healthy(&self) -> bool {
        true
    }
}

/// How the reconciler behaves. Validation of operator input lives in the config layer; this
/// type accepts any value (tests use sub-second graces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Time between sweeps.
    pub period: Duration,
    /// Containers created less than this long ago are never touched.
    pub creation_grace: Duration,
    /// Log what would be done; do nothing. (Audit mode, which does the same, belongs to the
    /// policies in force: [`ActivePolicies::mode`].)
    pub dry_run: bool,
    /// Most destructive actions taken by the sweeps (periodic and on-demand) of one
    /// `period`; 0 means never act.
    pub max_actions_per_sweep: u32,
    /// Deadline of each Docker call (list, inspect, kill, remove); a stop gets its grace on top.
    pub docker_call_timeout: Duration,
    /// This node, for the policies.
    pub node: NodeInfo,
    /// The driver's name, for the policies (`docker` when replacing the built-in driver).
    pub driver_name: String,
    /// Only consider containers carrying this label (`key` or `key=value`). An operator
    /// feature for daemons shared with other tools; `None` considers every running container.
    pub label_filter: Option<String>,
    /// Who else uses the daemon: bounds which `owned` verdicts the host accepts.
    pub daemon: DaemonSharing,
    /// Inspections in flight at once for `need-inspect` verdicts.
    pub inspect_concurrency: usize,
    /// The JSON-lines audit file; `None` disables it.
    pub audit_path: Option<PathBuf>,
    /// Size at which the audit file is rotated to `<path>.1`.
    pub audit_max_bytes: u64,
}

impl ReconcileSettings {
    /// Settings with the plugin config's defaults for `period` and `creation_grace`
    /// (10 actions per sweep, a Docker call timeout of `max(30 s, period)`),
    /// driver name `docker`, and no audit file.
    pub fn new(period: Duration, creation_grace: Duration) -> Self {
        let defaults = PluginConfig::default();
        Self {
            period,
            creation_grace,
            docker_call_timeout: defaults.dockhand.docker_call_timeout.max(period),
            audit_path: None,
            ..Self::from_config(&defaults, NodeInfo::default(), "docker")
        }
    }

    /// Settings from the validated plugin config. The Docker call timeout is
    /// `max(dockhand.docker_call_timeout, period)`, which with the 30 s default is upstream's
    /// `max(30 s, period)`. The audit file is `<data_dir>/audit.jsonl`; the label filter is
    /// `dockhand.label_filter`. (`dockhand.mode` is the mode of the configured policies:
    /// [`ActivePolicies::from_config`].)
    pub fn from_config(config: &PluginConfig, node: NodeInfo, driver_name: &str) -> Self {
        let gc = &config.gc.dangling_containers;
        let own = &config.dockhand;
        Self {
            period: gc.period,
            creation_grace: gc.creation_grace,
            dry_run: gc.dry_run,
            max_actions_per_sweep: own.max_actions_per_sweep,
            docker_call_timeout: own.docker_call_timeout.max(gc.period),
            node,
            driver_name: driver_name.to_owned(),
            label_filter: own.label_filter.clone(),
            daemon: own.daemon,
            inspect_concurrency: DEFAULT_INSPECT_CONCURRENCY,
            audit_path: Some(own.data_dir.join(AUDIT_FILE_NAME)),
            audit_max_bytes: DEFAULT_AUDIT_MAX_BYTES,
        }
    }

    /// The start-up wait: `creation_grace` after the reconciler starts, no sweep — periodic
    /// or on demand — runs, so that RecoverTask can re-adopt the running tasks of a previous
    /// plugin process first (until then they look like untracked orphans).
    pub fn startup_wait(&self) -> Duration {
        self.creation_grace
    }

    /// Delay before the first periodic sweep: `max(period, startup_wait)`.
    pub fn first_delay(&self) -> Duration {
        self.period.max(self.startup_wait())
    }
}

/// The dangling-container reconciler. Build it only when `gc.dangling_containers.enabled`.
#[derive(Debug)]
pub struct Reconciler {
    docker: Arc<dyn DockerApi>,
    tracked: Arc<dyn TrackedSource>,
    /// The policies in force and their modes (shared with the admin API).
    policies: PoliciesInForce,
    settings: ReconcileSettings,
    health: Arc<dyn HealthProbe>,
    metrics: Arc<Metrics>,
    audit: Option<Arc<AuditLog>>,
    /// Where the node identity is learnt at run time (overrides `settings.node` once known).
    node_source: Option<Arc<NodeCell>>,
    /// Set while sweeps keep failing: suppresses repeated warnings.
    failing: AtomicBool,
    /// Held for the whole of a sweep: periodic and on-demand sweeps never overlap.
    gate: tokio::sync::Mutex<()>,
    /// When the reconciler was built: the start-up wait counts from here.
    started: std::time::Instant,
    /// Destructive actions taken in the last period, by periodic and on-demand sweeps.
    budget: execute::ActionBudget,
}

impl Reconciler {
    /// A reconciler; nothing runs until [`run`](Self::run) or [`sweep_once`](Self::sweep_once).
    pub fn new(
        docker: Arc<dyn DockerApi>,
        tracked: Arc<dyn TrackedSource>,
        policies: PoliciesInForce,
        settings: ReconcileSettings,
        health: Arc<dyn HealthProbe>,
    ) -> Self {
        let audit = settings
            .audit_path
            .clone()
            .map(|path| Arc::new(AuditLog::new(path, settings.audit_max_bytes)));
        Self {
            docker,
            tracked,
            policies,
            settings,
            health,
            metrics: Arc::new(Metrics::default()),
            audit,
            node_source: None,
            failing: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            started: std::time::Instant::now(),
            budget: execute::ActionBudget::default(),
        }
    }

    /// Whether an action taken now would only be reported: dry run, or audit mode in force
    /// (read from the policies in force now, not from a sweep's pair).
    pub fn report_only(&self) -> bool {
        self.settings.dry_run || self.policies.mode() == PolicyMode::Audit
    }

    /// Take the node identity from `cell` once it is known (see [`NodeCell`]).
    pub fn with_node_source(mut self, cell: Arc<NodeCell>) -> Self {
        self.node_source = Some(cell);
        self
    }

    /// The node identity a sweep starting now hands to the policies: the learnt one when
    /// known, else the configured one. Fields the learnt identity lacks are taken from the
    /// configuration (e.g. the datacenter).
    pub fn current_node(&self) -> NodeInfo {
        let configured = &self.settings.node;
        let Some(learnt) = self.node_source.as_ref().map(|c| c.get()) else {
            return configured.clone();
        };
        NodeInfo {
            id: if learnt.id.is_empty() {
                configured.id.clone()
            } else {
                learnt.id
            },
            name: if learnt.name.is_empty() {
                configured.name.clone()
            } else {
                learnt.name
            },
            datacenter: if learnt.datacenter.is_empty() {
                configured.datacenter.clone()
            } else {
                learnt.datacenter
            },
        }
    }

    /// The counters (shared; the admin API and `dockhand status` read snapshots).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The policies in force (shared: installing into a clone reaches this reconciler).
    pub fn policies(&self) -> &PoliciesInForce {
        &self.policies
    }

    /// The settings.
    pub fn settings(&self) -> &ReconcileSettings {
        &self.settings
    }

    /// Sweeps after [`ReconcileSettings::first_delay`], then every `period`, until `shutdown`
    /// completes. Ticks while Docker is unhealthy are skipped. A sweep in progress when
    /// `shutdown` completes is abandoned at its next await point.
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        self.run_shared(shutdown).await;
    }

    /// [`run`](Self::run) on a shared reconciler, so that the admin API can ask the same
    /// instance for on-demand sweeps ([`sweep_now`](Self::sweep_now)) meanwhile.
    pub async fn run_shared<F>(&self, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        let mut delay = self.settings.first_delay();
        tracing::info!(
            first_sweep_in = ?delay,
            period = ?self.settings.period,
            dry_run = self.settings.dry_run,
            mode = %self.policies.mode(),
            "dangling container reconciler started"
        );
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
            delay = self.settings.period;
            if !self.health.is_healthy() {
                self.metrics.record_skipped();
                tracing::debug!("skipping dangling container sweep: docker is unhealthy");
                continue;
            }
            if !self.tracked.is_complete() {
                self.metrics.record_skipped();
                tracing::info!(
                    "skipping dangling container sweep: the running group network sandboxes \
                     are not all tracked yet"
                );
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                _report = self.sweep_once() => {}
            }
        }
        tracing::info!("dangling container reconciler stopped");
    }

    /// Runs one sweep now (ignoring the health probe) and reports what happened. Waits for a
    /// sweep in progress to end first.
    pub async fn sweep_once(&self) -> SweepReport {
        let _gate = self.gate.lock().await;
        self.sweep_locked().await
    }

    /// One sweep; the caller holds `gate`. Everything it logs carries its `sweep_id` (one
    /// number per sweep of the process, periodic or on-demand). The span is at `ERROR` level so
    /// that no log filter that lets any line through drops it.
    async fn sweep_locked(&self) -> SweepReport {
        static NEXT_SWEEP_ID: AtomicU64 = AtomicU64::new(1);
        let sweep_id = NEXT_SWEEP_ID.fetch_add(1, Ordering::Relaxed);
        async {
            let mut report = sweep::run(self).await;
            self.finish_sweep(&mut report);
            self.write_audit(&report).await;
            report
        }
        .instrument(tracing::error_span!("sweep", sweep_id))
        .await
    }

    /// Logs the streak warning and updates the counters for `report`.
    fn finish_sweep(&self, report: &mut SweepReport) {
        self.metrics.record_sweep(report);
        match report.status.clone() {
            SweepStatus::ListFailed { error } => {
                if !self.failing.swap(true, Ordering::SeqCst) {
                    self.metrics.record_warning();
                    tracing::warn!(
                        error = %error,
                        "failed to list containers; dangling container sweep aborted (further \
                         failures are not logged until a sweep succeeds)"
                    );
                    report.warned = true;
                } else {
                    tracing::debug!(error = %error, "dangling container sweep failed again");
                }
            }
            SweepStatus::Completed => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("dangling container sweeps succeed again");
                }
            }
        }
    }

    /// Appends the audit lines of `report` (file I/O off the async threads).
    async fn write_audit(&self, report: &SweepReport) {
        let Some(audit) = self.audit.clone() else {
            return;
        };
        let records = sweep_lines(report);
        let written = tokio::task::spawn_blocking(move || audit.append(&records))
            .await
            .unwrap_or_else(|join| {
                Err(AuditError::Io {
                    path: PathBuf::new(),
                    action: "append (the writer did not complete)",
                    source: std::io::Error::other(join.to_string()),
                })
            });
        if let Err(error) = written {
            self.metrics.record_audit_failure();
            tracing::error!(
                error = %nomad_plugin::error_chain(&error),
                "failed to append to the reconciler audit file"
            );
        }
    }
}

/// One dry-run sweep against `docker`: what the reconciler would do now. Used by the admin
/// API's `DryRun` and by `dockhand reconcile --once --dry-run` when no plugin runs. Forces
/// `dry_run`, writes no audit file, ignores health.
///
/// `tracked` must be the running plugin's tracked set (from its admin API): with an empty set,
/// the containers of live tasks are reported as orphans too.
pub async fn dry_run_report(
    docker: Arc<dyn DockerApi>,
    tracked: Arc<dyn TrackedSource>,
    policies: PoliciesInForce,
    mut settings: ReconcileSettings,
) -> SweepReport {
    settings.dry_run = true;
    settings.audit_path = None;
    let reconciler = Reconciler::new(docker, tracked, policies, settings, Arc::new(AlwaysHealthy));
    reconciler.sweep_once().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawPluginConfig;

    #[test]
    fn settings_from_the_default_config_match_upstream() {
        let (mut config, errors) = PluginConfig::build(RawPluginConfig::default());
        assert!(errors.is_empty(), "{errors:?}");
        let node = NodeInfo {
            id: "n1".into(),
            ..NodeInfo::default()
        };
        let s = ReconcileSettings::from_config(&config, node.clone(), "docker");
        assert_eq!(s.period, Duration::from_secs(300));
        assert_eq!(s.creation_grace, Duration::from_secs(300));
        assert_eq!(s.first_delay(), Duration::from_secs(300));
        assert_eq!(
            s.docker_call_timeout,
            Duration::from_secs(300),
            "max(30s, period)"
        );
        assert_eq!(s.max_actions_per_sweep, 10);
        assert_eq!(s.node, node);
        assert_eq!(s.label_filter, None);
        assert_eq!(s.daemon, DaemonSharing::SharedWithBuiltinDriver);
        assert_eq!(
            s.audit_path,
            Some(config.dockhand.data_dir.join(AUDIT_FILE_NAME))
        );
        assert!(!s.dry_run);

        config.gc.dangling_containers.period = Duration::from_secs(10);
        config.gc.dangling_containers.creation_grace = Duration::from_secs(120);
        config.gc.dangling_containers.dry_run = true;
        let s = ReconcileSettings::from_config(&config, node, "docker");
        assert_eq!(s.docker_call_timeout, Duration::from_secs(30));
        assert_eq!(s.first_delay(), Duration::from_secs(120));
        assert!(s.dry_run);
    }

    #[test]
    fn settings_for_a_period_take_the_other_values_from_the_config_defaults() {
        let s = ReconcileSettings::new(Duration::from_secs(3), Duration::from_secs(1));
        assert_eq!(
            (s.period, s.creation_grace),
            (Duration::from_secs(3), Duration::from_secs(1))
        );
        assert_eq!(s.docker_call_timeout, Duration::from_secs(30));
        assert_eq!(s.max_actions_per_sweep, 10);
        assert!(!s.dry_run);
        assert_eq!(s.driver_name, "docker");
        assert_eq!(s.label_filter, None);
        assert_eq!(s.daemon, DaemonSharing::SharedWithBuiltinDriver);
        assert_eq!(s.audit_path, None);
        let long = ReconcileSettings::new(Duration::from_secs(600), Duration::ZERO);
        assert_eq!(long.docker_call_timeout, Duration::from_secs(600));
    }
}
