//! Carrying out the kill policy's actions: the action budget, the last-moment checks, the
//! audit intent, and each Docker call under its own deadline.
//!
//! # The budget
//!
//! `max_actions_per_sweep` is a budget per **period**, shared by periodic and on-demand
//! sweeps: at most that many destructive actions are taken by sweeps starting within any one
//! `period`. Asking for sweeps now and again (`dockhand reconcile --once`) therefore cannot
//! multiply it. Each action is counted with the start of the sweep that took it and stops
//! counting for sweeps starting a period or more later — so back-to-back periodic sweeps each
//! get the whole budget. Sweep starts are wall-clock times: a clock stepped back keeps
//! actions counted longer (the safe side).
//!
//! # Right before each action
//!
//! The mode and dry-run are read again (an activation in audit mode stops a sweep in flight
//! from acting further: outcome `now-report-only`), the tracked set is read again (a task
//! started or recovered since the listing makes its container untouchable) and the container
//! is held so that no StartTask adopts it until the action has ended, one action is
//! taken from the budget, and the intent is written to the audit file and fsynced. A failure
//! of any of these leaves the container alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use orphan_policy::{ActionKind, Signal};
use tracing::Instrument as _;

use super::Reconciler;
use super::audit::{AuditLine, AuditLog, AuditRecord, SweepFacts};
use super::report::{Outcome, SweepReport};
use super::sweep::{WorkView, bounded};
use crate::docker::{DockerApi, DockerError};

/// Actions in flight at once.
const ACTION_CONCURRENCY: usize = 4;

/// The destructive actions taken in the last period: one entry per action, the start (Unix
/// ms) of the sweep that took it.
#[derive(Debug, Default)]
pub(super) struct ActionBudget {
    taken: Mutex<VecDeque<i64>>,
}

impl ActionBudget {
    /// Takes one action for a sweep started at `sweep_ms`, if fewer than `cap` were taken by
    /// sweeps started less than `period` before it.
    fn try_take(&self, cap: u32, period: Duration, sweep_ms: i64) -> bool {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
        let since = sweep_ms.saturating_sub(period_ms);
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        while taken.front().is_some_and(|&t| t <= since) {
            taken.pop_front();
        }
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        // Entries are pushed in sweep order, but a clock stepped back may leave later ones
        // earlier: only the front is dropped, so those stay counted (the safe side).
        if taken.len() >= cap {
            return false;
        }
        taken.push_back(sweep_ms);
        true
    }
}

/// Decides which destructive actions run (budget, report-only) and runs them.
pub(super) async fn carry_out(
    rec: &Reconciler,
    work: &mut [WorkView<'_>],
    report: &mut SweepReport,
) {
    let settings = &rec.settings;
    let mut chosen = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let Some(action) = w.action else { continue };
        if w.outcome.is_some() || !action.is_destructive() {
            continue;
        }
        if report.report_only {
            *w.outcome = Some(Outcome::WouldDo);
        } else {
            chosen.push(i);
        }
    }
    let docker: &dyn DockerApi = rec.docker.as_ref();
    let limit = settings.docker_call_timeout;
    let facts = SweepFacts::of(report);
    let views: &[WorkView<'_>] = work;
    let outcomes: Vec<(usize, Outcome)> = futures::stream::iter(chosen)
        .map(|i| async move {
            let span = tracing::error_span!("action", container_id = %views[i].id);
            (
                i,
                act(rec, docker, &views[i], facts, limit)
                    .instrument(span)
                    .await,
            )
        })
        .buffer_unordered(ACTION_CONCURRENCY)
        .collect()
        .await;
    for (i, outcome) in outcomes {
        if outcome == Outcome::CapReached {
            report.cap_reached = true;
        }
        *work[i].outcome = Some(outcome);
    }
    if report.cap_reached {
        tracing::warn!(
            max_actions_per_sweep = settings.max_actions_per_sweep,
            period = ?settings.period,
            "destructive-action budget of the period used up; remaining orphans are left \
             for later sweeps"
        );
    }
}

/// The checks right before one action, its audit intent, the action and its outcome record.
async fn act(
    rec: &Reconciler,
    docker: &dyn DockerApi,
    w: &WorkView<'_>,
    facts: SweepFacts<'_>,
    limit: Duration,
) -> Outcome {
    let Some(action) = w.action else {
        return Outcome::NoAction;
    };
    // Audit mode or dry run put in force since the sweep started: act on nothing more.
    if rec.report_only() {
        return Outcome::NowReportOnly;
    }
    // A task started or recovered since the listing makes the container untouchable; from
    // here until the action has ended the driver does not adopt it.
    let Some(_hold) = rec.tracked.hold_for_action(w.id) else {
        return Outcome::NowTracked;
    };
    let settings = &rec.settings;
    if !rec.budget.try_take(
        settings.max_actions_per_sweep,
        settings.period,
        facts.sweep_ms,
    ) {
        return Outcome::CapReached;
    }
    if let Some(audit) = &rec.audit {
        let intent = AuditRecord::intent(facts, w.snapshot, w.verdict, action);
        if let Err(error) = append(audit, intent).await {
            rec.metrics.record_audit_failure();
            tracing::error!(
                container_id = %w.id,
                error = %error,
                "cannot record the intent to act in the audit file; leaving the container alone"
            );
            return Outcome::AuditFailed(format!("intent not recorded: {error}"));
        }
    }
    let outcome = match execute_action(docker, w.id, &action.kind, limit).await {
        Ok(()) => Outcome::Done,
        Err(e) if e.is_not_found() => Outcome::Gone,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    if let Some(audit) = &rec.audit {
        let record = AuditRecord::outcome(facts, w.snapshot, w.verdict, action, &outcome);
        if let Err(error) = append(audit, record).await {
            rec.metrics.record_audit_failure();
            tracing::error!(
                container_id = %w.id,
                error = %error,
                "cannot record the outcome of an action in the audit file"
            );
        }
    }
    outcome
}

/// Appends one record, fsynced, off the async threads.
async fn append(audit: &Arc<AuditLog>, record: AuditRecord) -> Result<(), String> {
    let audit = Arc::clone(audit);
    tokio::task::spawn_blocking(move || audit.append(&[AuditLine::Record(record)]))
        .await
        .map_err(|join| format!("the writer did not complete: {join}"))?
        .map_err(|e| nomad_plugin::error_chain(&e))
}

/// Carries out one action against container `id`: each Docker call bounded by `limit` (a stop
/// by its timeout plus `limit`). `NotFound` means the container is already gone.
pub async fn execute_action(
    docker: &dyn DockerApi,
    id: &str,
    kind: &ActionKind,
    limit: Duration,
) -> Result<(), DockerError> {
    match kind {
        ActionKind::Ignore => Ok(()),
        ActionKind::Kill { signal } => {
            bounded(
                "kill_container",
                limit,
                docker.kill_container(id, signal.name()),
            )
            .await
        }
        ActionKind::Remove { force } => {
            bounded(
                "remove_container",
                limit,
                docker.remove_container(id, *force),
            )
            .await
        }
        ActionKind::Stop {
            signal,
            timeout,
            then_remove,
        } => {
            stop(docker, id, *signal, *timeout, limit).await?;
            if *then_remove {
                // Stopped by us: force only covers a restart policy racing the removal.
                bounded("remove_container", limit, docker.remove_container(id, true)).await?;
            }
            Ok(())
        }
    }
}

/// Stops `id` with `signal`, escalating to SIGKILL after `timeout`. API 1.41 has no stop
/// signal parameter, so any signal but SIGTERM is sent with `kill`, followed by a bounded wait
/// and then a zero-grace stop.
async fn stop(
    docker: &dyn DockerApi,
    id: &str,
    signal: Signal,
    timeout: Duration,
    limit: Duration,
) -> Result<(), DockerError> {
    if signal == Signal::Term {
        return bounded(
            "stop_container",
            timeout.saturating_add(limit),
            docker.stop_container(id, timeout),
        )
        .await;
    }
    match bounded(
        "kill_container",
        limit,
        docker.kill_container(id, signal.name()),
    )
    .await
    {
        Ok(()) => {}
        // Not running any more: nothing to signal; the stop below is then a no-op.
        Err(e) if e.is_conflict() => {}
        Err(e) => return Err(e),
    }
    match tokio::time::timeout(timeout, docker.wait_container(id)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_not_found() => Err(e),
        // Still running after the timeout, or the wait failed: force it.
        Ok(Err(_)) | Err(_) => {
            bounded(
                "stop_container",
                limit,
                docker.stop_container(id, Duration::ZERO),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(60);

    #[test]
    fn the_action_budget_is_shared_by_every_sweep_of_a_period() {
        let budget = ActionBudget::default();
        // Three sweeps within one period: two actions in all.
        assert!(budget.try_take(2, PERIOD, 1_000));
        assert!(budget.try_take(2, PERIOD, 1_000));
        assert!(!budget.try_take(2, PERIOD, 1_000));
        assert!(!budget.try_take(2, PERIOD, 5_000));
        assert!(!budget.try_take(2, PERIOD, 60_999));
        // A sweep a whole period after the first gets the budget again.
        assert!(budget.try_take(2, PERIOD, 61_000));
        assert!(budget.try_take(2, PERIOD, 61_000));
        assert!(!budget.try_take(2, PERIOD, 61_000));
        // A zero cap never acts.
        assert!(!ActionBudget::default().try_take(0, PERIOD, 0));
    }
}
