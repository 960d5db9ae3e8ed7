//! On-demand sweeps of a running reconciler (the admin API's `Sweep`, `dockhand reconcile
//! --once`).
//!
//! An on-demand sweep is the same sweep as a periodic one, on the same instance: the plugin's
//! tracked set, the node identity learnt so far, the policies in force and their modes. It
//! waits for a sweep in progress to end (sweeps never overlap, so a container is never acted on
//! twice at once) and, like a periodic tick, does not run while Docker is unhealthy.
//!
//! Nor does it run during the start-up wait ([`ReconcileSettings::startup_wait`]): right after a
//! plugin restart the running tasks are untracked until RecoverTask re-adopts them, and a sweep
//! would take them for orphans. It is refused — dry run or not, since a dry run would report
//! the live tasks as orphans — with an answer that says when sweeps become possible. The same
//! holds while the start-up scan of running sandboxes has not completed.
//!
//! [`ReconcileSettings::startup_wait`]: super::ReconcileSettings::startup_wait
//!
//! A dry run asks for a report only: it evaluates with everything above but acts on nothing,
//! writes no audit lines and leaves the counters alone; it may evaluate a stored policy in place
//! of the one in force. A real on-demand sweep is a periodic sweep brought forward: the
//! configured `dry_run`, audit mode and per-sweep cap still apply.
//!
//! A preview ([`Reconciler::preview`], `dockhand policy dry-run`) is a dry run that skips the
//! checks above and does not wait for the sweep in progress: it tries a policy on the live
//! containers at any time, acting on nothing, at the price of listing the tasks not yet
//! re-adopted as candidates during the start-up wait.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use super::{ActivePolicies, Metrics, PoliciesInForce, Reconciler, SweepReport};

/// Why an on-demand sweep did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepSkipped {
    /// The last fingerprint found Docker unhealthy (or none was taken yet).
    #[error(
        "sweep skipped: docker is unhealthy (sweeps resume once a fingerprint finds it healthy)"
    )]
    DockerUnhealthy,
    /// The plugin started less than the start-up wait ago.
    #[error(
        "sweep refused: the plugin started {}s ago and leaves its first {}s (creation_grace) to \
         RecoverTask, which re-adopts the running tasks that a sweep would otherwise take for \
         orphans; on-demand sweeps are possible in {}s (at {})",
        .elapsed.as_secs(),
        .wait.as_secs(),
        .remaining.as_secs().max(1),
        rfc3339(.possible_at)
    )]
    StartupWait {
        /// Time since the reconciler started.
        elapsed: Duration,
        /// The whole start-up wait.
        wait: Duration,
        /// Time left.
        remaining: Duration,
        /// When on-demand sweeps become possible.
        possible_at: SystemTime,
    },
    /// The start-up scan of running group network sandboxes has not completed.
    #[error(
        "sweep refused: the running group network sandboxes are not all tracked yet (the \
         start-up scan has not completed; it is retried until Docker answers)"
    )]
    TrackedSetIncomplete,
}

impl SweepSkipped {
    /// Short label for reports (`skipped-docker-unhealthy`, `skipped-startup-wait`,
    /// `skipped-tracked-set-incomplete`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::DockerUnhealthy => "skipped-docker-unhealthy",
            Self::StartupWait { .. } => "skipped-startup-wait",
            Self::TrackedSetIncomplete => "skipped-tracked-set-incomplete",
        }
    }
}

/// `at` as an RFC 3339 UTC time with whole seconds.
fn rfc3339(at: &SystemTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from(*at)
        .format(&format)
        .unwrap_or_else(|_| "unknown".to_owned())
}

impl Reconciler {
    /// Runs one sweep now, after any sweep in progress, unless the start-up wait is not over,
    /// the tracked set is incomplete or Docker is unhealthy. With `dry_run`, decisions are only
    /// reported (see the module docs).
    pub async fn sweep_now(&self, dry_run: bool) -> Result<SweepReport, SweepSkipped> {
        if dry_run {
            self.dry_run_now(None).await
        } else {
            self.on_demand(None, false).await
        }
    }

    /// A dry run now, as [`sweep_now`](Self::sweep_now) with `dry_run`, evaluating `policies`
    /// in place of those in force when given.
    pub async fn dry_run_now(
        &self,
        policies: Option<ActivePolicies>,
    ) -> Result<SweepReport, SweepSkipped> {
        self.on_demand(policies, true).await
    }

    /// A dry run now without the on-demand preconditions: it neither waits for the sweep in
    /// progress nor is refused during the start-up wait, with an incomplete tracked set or an
    /// unhealthy Docker. It acts on nothing, but during the start-up wait it reports the
    /// running tasks that RecoverTask has not re-adopted yet as candidates. Evaluates
    /// `policies` in place of those in force when given (`dockhand policy dry-run`).
    pub async fn preview(&self, policies: Option<ActivePolicies>) -> SweepReport {
        self.report_only_copy(policies).sweep_once().await
    }

    async fn on_demand(
        &self,
        policies: Option<ActivePolicies>,
        dry_run: bool,
    ) -> Result<SweepReport, SweepSkipped> {
        self.check_startup_wait()?;
        let _gate = self.gate.lock().await;
        if !self.tracked.is_complete() {
            self.metrics.record_skipped();
            tracing::info!("on-demand dangling container sweep refused: tracked set incomplete");
            return Err(SweepSkipped::TrackedSetIncomplete);
        }
        if !self.health.is_healthy() {
            self.metrics.record_skipped();
            tracing::info!("on-demand dangling container sweep skipped: docker is unhealthy");
            return Err(SweepSkipped::DockerUnhealthy);
        }
        if dry_run {
            Ok(self.report_only_copy(policies).sweep_once().await)
        } else {
            tracing::info!("on-demand dangling container sweep");
            Ok(self.sweep_locked().await)
        }
    }

    /// `Err` while the start-up wait is not over.
    fn check_startup_wait(&self) -> Result<(), SweepSkipped> {
        let wait = self.settings.startup_wait();
        let elapsed = self.started.elapsed();
        let Some(remaining) = wait.checked_sub(elapsed).filter(|r| !r.is_zero()) else {
            return Ok(());
        };
        let skipped = SweepSkipped::StartupWait {
            elapsed,
            wait,
            remaining,
            possible_at: SystemTime::now() + remaining,
        };
        self.metrics.record_skipped();
        tracing::info!(reason = %skipped, "on-demand dangling container sweep refused");
        Err(skipped)
    }

    /// This reconciler in dry-run form: same Docker, tracked set and node, the policies in
    /// force unless `policies` are given; no audit file and counters of its own.
    fn report_only_copy(&self, policies: Option<ActivePolicies>) -> Reconciler {
        let mut settings = self.settings.clone();
        settings.dry_run = true;
        settings.audit_path = None;
        Reconciler {
            docker: Arc::clone(&self.docker),
            tracked: Arc::clone(&self.tracked),
            policies: policies.map_or_else(|| self.policies.clone(), PoliciesInForce::new),
            settings,
            health: Arc::clone(&self.health),
            metrics: Arc::new(Metrics::default()),
            audit: None,
            node_source: self.node_source.clone(),
            failing: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            started: self.started,
            budget: super::execute::ActionBudget::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_refusal_says_why_and_when() {
        let skipped = SweepSkipped::StartupWait {
            elapsed: Duration::from_secs(12),
            wait: Duration::from_secs(60),
            remaining: Duration::from_millis(48_200),
            possible_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        assert_eq!(skipped.label(), "skipped-startup-wait");
        assert_eq!(
            skipped.to_string(),
            "sweep refused: the plugin started 12s ago and leaves its first 60s \
             (creation_grace) to RecoverTask, which re-adopts the running tasks that a sweep \
             would otherwise take for orphans; on-demand sweeps are possible in 48s (at \
             2027-01-15T08:00:00Z)"
        );
        assert_eq!(
            SweepSkipped::TrackedSetIncomplete.label(),
            "skipped-tracked-set-incomplete"
        );
    }
}
