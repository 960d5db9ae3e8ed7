//! On-demand sweeps of a running reconciler (the admin API's `Sweep`, `dockhand reconcile
//! --once`).
//!
//! An on-demand sweep is the same sweep as a periodic one, on the same instance: the plugin's
//! tracked set, the node identity learnt so far, the policies in force and the mode switch. It
//! waits for a sweep in progress to end (sweeps never overlap, so a container is never acted on
//! twice at once) and, like a periodic tick, does not run while Docker is unhealthy.
//!
//! A dry run asks for a report only: it evaluates with everything above but acts on nothing,
//! writes no audit lines and leaves the counters alone. A real on-demand sweep is a periodic
//! sweep brought forward: the configured `dry_run`, audit mode and per-sweep cap still apply.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{Metrics, Reconciler, SweepReport};

/// Why an on-demand sweep did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepSkipped {
    /// The last fingerprint found Docker unhealthy (or none was taken yet).
    #[error(
        "sweep skipped: docker is unhealthy (sweeps resume once a fingerprint finds it healthy)"
    )]
    DockerUnhealthy,
}

impl SweepSkipped {
    /// Short label for reports (`skipped-docker-unhealthy`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::DockerUnhealthy => "skipped-docker-unhealthy",
        }
    }
}

impl Reconciler {
    /// Runs one sweep now, after any sweep in progress, unless Docker is unhealthy. With
    /// `dry_run`, decisions are only reported (see the module docs).
    pub async fn sweep_now(&self, dry_run: bool) -> Result<SweepReport, SweepSkipped> {
        let _gate = self.gate.lock().await;
        if !self.health.is_healthy() {
            self.metrics.record_skipped();
            tracing::info!("on-demand dangling container sweep skipped: docker is unhealthy");
            return Err(SweepSkipped::DockerUnhealthy);
        }
        if dry_run {
            Ok(self.report_only_copy().sweep_once().await)
        } else {
            tracing::info!("on-demand dangling container sweep");
            Ok(self.sweep_locked().await)
        }
    }

    /// This reconciler in dry-run form: same Docker, tracked set, policies, node and mode; no
    /// audit file and counters of its own.
    fn report_only_copy(&self) -> Reconciler {
        let mut settings = self.settings.clone();
        settings.dry_run = true;
        settings.audit_path = None;
        Reconciler {
            docker: Arc::clone(&self.docker),
            tracked: Arc::clone(&self.tracked),
            policies: self.policies.clone(),
            settings,
            health: Arc::clone(&self.health),
            metrics: Arc::new(Metrics::default()),
            audit: None,
            node_source: self.node_source.clone(),
            mode: Arc::clone(&self.mode),
            failing: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            budget: super::execute::ActionBudget::default(),
        }
    }
}
