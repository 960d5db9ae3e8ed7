//! Carrying out the kill policy's actions: the cap, the last-moment tracked check, and each
//! Docker call under its own deadline.

use std::time::Duration;

use futures::StreamExt as _;
use orphan_policy::{ActionKind, Signal};

use super::Reconciler;
use super::report::{Outcome, SweepReport};
use super::sweep::{WorkView, bounded};
use crate::docker::{DockerApi, DockerError};

/// Actions in flight at once.
const ACTION_CONCURRENCY: usize = 4;

/// Decides which destructive actions run (cap, report-only) and runs them.
pub(super) async fn carry_out(
    rec: &Reconciler,
    work: &mut [WorkView<'_>],
    report: &mut SweepReport,
) {
    let settings = &rec.settings;
    let cap = usize::try_from(settings.max_actions_per_sweep).unwrap_or(usize::MAX);
    let mut chosen = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let Some(action) = w.action else { continue };
        if w.outcome.is_some() || !action.is_destructive() {
            continue;
        }
        if report.report_only {
            *w.outcome = Some(Outcome::WouldDo);
        } else if chosen.len() >= cap {
            *w.outcome = Some(Outcome::CapReached);
            report.cap_reached = true;
        } else {
            chosen.push((i, w.id.to_owned(), action.kind.clone()));
        }
    }
    if report.cap_reached {
        tracing::warn!(
            max_actions_per_sweep = settings.max_actions_per_sweep,
            "per-sweep action cap reached; remaining orphans are left for later sweeps"
        );
    }
    let docker: &dyn DockerApi = rec.docker.as_ref();
    let limit = settings.docker_call_timeout;
    let outcomes: Vec<(usize, Outcome)> = futures::stream::iter(chosen)
        .map(|(i, id, kind)| async move {
            // A task started or recovered since the listing makes the container untouchable.
            if rec.tracked.tracked_ids().contains(&id) {
                return (i, Outcome::NowTracked);
            }
            let outcome = match execute_action(docker, &id, &kind, limit).await {
                Ok(()) => Outcome::Done,
                Err(e) if e.is_not_found() => Outcome::Gone,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            (i, outcome)
        })
        .buffer_unordered(ACTION_CONCURRENCY)
        .collect()
        .await;
    for (i, outcome) in outcomes {
        *work[i].outcome = Some(outcome);
    }
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
