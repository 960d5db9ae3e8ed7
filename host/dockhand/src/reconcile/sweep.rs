//! One sweep: list, filter, classify, inspect, decide, act.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use orphan_policy::display::escape;
use orphan_policy::{
    Action, Candidate, ContainerSnapshot, EvalContext, EvalError, LoadedPolicy, Ownership, Verdict,
    split_to_fit,
};

use super::report::{Decision, Outcome, SweepReport, SweepStatus};
use super::snapshot::{snapshot_from_summary, with_inspected_env};
use super::{POLICY_BATCH_SIZE, Reconciler, claims, execute};
use crate::config::PolicyMode;
use crate::docker::{ContainerFilter, DockerApi, DockerError};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How much later than the whole second the listing reports a container may have been
/// created: Docker's list answer truncates the creation time to seconds.
const CREATED_PRECISION_MS: i64 = 999;

/// Whether a container created at `created_ms` (whole seconds, as listed) may be younger than
/// the grace whose cutoff is `cutoff_ms` (both on the daemon's clock). The creation time is
/// rounded up, so a container is old only when even the end of its creation second is at or
/// before the cutoff.
pub(super) fn within_grace(created_ms: i64, cutoff_ms: i64) -> bool {
    created_ms.saturating_add(CREATED_PRECISION_MS) > cutoff_ms
}

/// The daemon's clock in Unix milliseconds from `docker info`'s `SystemTime` (RFC 3339 with
/// nanoseconds); `None` when absent or unparsable.
pub(super) fn daemon_time_ms(system_time: Option<&str>) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(system_time?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The daemon's clock, from `docker info`'s `SystemTime`, read beside the listing: at most the
/// duration of the info call later than the listing's start, which the creation second's
/// rounding up (up to a second towards "young") and a grace of at least a minute dwarf.
/// Containers' creation times are the daemon's, so the grace is measured on that clock, never
/// the host's.
async fn daemon_now_ms(rec: &Reconciler) -> Result<i64, String> {
    let info = bounded("info", rec.settings.docker_call_timeout, rec.docker.info())
        .await
        .map_err(|e| format!("could not read the daemon's clock: {e}"))?;
    daemon_time_ms(info.system_time.as_deref()).ok_or_else(|| {
        format!(
            "could not read the daemon's clock: docker info reported SystemTime {:?}",
            info.system_time.unwrap_or_default()
        )
    })
}

/// `call` bounded by `limit`, mapping an expiry to [`DockerError::Timeout`].
pub(super) async fn bounded<T>(
    operation: &'static str,
    limit: Duration,
    call: impl Future<Output = Result<T, DockerError>>,
) -> Result<T, DockerError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(DockerError::Timeout {
            operation,
            after: limit,
        }))
}

/// One candidate while the sweep works on it.
struct Work {
    snapshot: ContainerSnapshot,
    verdict: Option<Verdict>,
    action: Option<Action>,
    outcome: Option<Outcome>,
}

impl Work {
    fn fail(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }
}

pub(super) async fn run(rec: &Reconciler) -> SweepReport {
    let started = Instant::now();
    let started_ms = now_ms();
    let settings = &rec.settings;
    // The policies of this sweep and their modes, read once and kept to its end even if
    // swapped meanwhile (each action still reads the mode in force again).
    let policies = rec.policies.current();
    let mut report = SweepReport {
        started_ms,
        duration: Duration::ZERO,
        report_only: settings.dry_run || policies.mode() == PolicyMode::Audit,
        status: SweepStatus::Completed,
        listed: 0,
        skipped_tracked: 0,
        skipped_young: 0,
        ownership_digest: policies.ownership.policy.digest_hex(),
        kill_digest: policies.kill.policy.digest_hex(),
        policy_failures: 0,
        cap_reached: false,
        warned: false,
        decisions: Vec::new(),
    };

    let mut filter = ContainerFilter::running();
    if let Some(label) = &settings.label_filter {
        filter = filter.with_label(label.clone());
    }
    // The clock and the listing at once: a sweep costs about one Docker call before the
    // policies run.
    let (daemon_now_ms, listed) = tokio::join!(
        daemon_now_ms(rec),
        bounded(
            "list_containers",
            settings.docker_call_timeout,
            rec.docker.list_containers(&filter),
        )
    );
    let daemon_now_ms = match daemon_now_ms {
        Ok(now) => now,
        Err(error) => {
            report.status = SweepStatus::ListFailed { error };
            report.duration = started.elapsed();
            return report;
        }
    };
    let listed = match listed {
        Ok(list) => list,
        Err(error) => {
            report.status = SweepStatus::ListFailed {
                error: error.to_string(),
            };
            report.duration = started.elapsed();
            return report;
        }
    };
    report.listed = listed.len();
    // Taken after the listing: a task started during it is tracked by now.
    let tracked = rec.tracked.tracked_ids();
    let cutoff_ms = daemon_now_ms
        .saturating_sub(i64::try_from(settings.creation_grace.as_millis()).unwrap_or(i64::MAX));
    let mut work = Vec::new();
    for summary in &listed {
        let Some(snapshot) = snapshot_from_summary(summary) else {
            continue;
        };
        if tracked.contains(&snapshot.id) {
            report.skipped_tracked += 1;
        } else if within_grace(snapshot.created_ms, cutoff_ms) {
            report.skipped_young += 1;
        } else {
            work.push(Work {
                snapshot,
                verdict: None,
                action: None,
                outcome: None,
            });
        }
    }

    let ctx = EvalContext {
        // The daemon's clock, which the containers' creation times are on.
        now_ms: daemon_now_ms,
        node: rec.current_node(),
        driver_name: settings.driver_name.clone(),
        creation_grace_ms: u64::try_from(settings.creation_grace.as_millis()).unwrap_or(u64::MAX),
    };

    // Ownership, in batches.
    let all: Vec<usize> = (0..work.len()).collect();
    classify(
        &policies.ownership.policy,
        &ctx,
        &mut work,
        &all,
        &mut report,
    )
    .await;

    // Inspect the need-inspect ones, then classify them once more.
    let need: Vec<usize> = (0..work.len())
        .filter(|&i| {
            work[i].outcome.is_none()
                && matches!(
                    work[i].verdict.as_ref().map(|v| &v.ownership),
                    Some(Ownership::NeedInspect)
                )
        })
        .collect();
    if !need.is_empty() {
        inspect(rec, &mut work, &need).await;
        let inspected: Vec<usize> = need
            .into_iter()
            .filter(|&i| work[i].outcome.is_none())
            .collect();
        classify(
            &policies.ownership.policy,
            &ctx,
            &mut work,
            &inspected,
            &mut report,
        )
        .await;
    }

    // Every `owned` claim must be borne out by the container itself (see `claims`): no
    // policy can hand the kill policy a container that is not this node's and this driver's.
    for w in &mut work {
        if let Some(verdict) = w.verdict.take() {
            w.verdict = Some(claims::checked(
                settings.daemon,
                &ctx.node.id,
                &w.snapshot,
                verdict,
            ));
        }
    }

    // Kill policy over the owned.
    let owned: Vec<usize> = (0..work.len())
        .filter(|&i| {
            work[i].outcome.is_none()
                && matches!(
                    work[i].verdict.as_ref().map(|v| &v.ownership),
                    Some(Ownership::Owned { .. })
                )
        })
        .collect();
    decide(&policies.kill.policy, &ctx, &mut work, &owned, &mut report).await;

    // Act.
    execute::carry_out(rec, &mut work_views(&mut work), &mut report).await;

    report.decisions = work
        .into_iter()
        .map(|w| Decision {
            name: w
                .snapshot
                .names
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            id: w.snapshot.id,
            image: w.snapshot.image,
            created_ms: w.snapshot.created_ms,
            verdict: w.verdict,
            action: w.action,
            outcome: w.outcome.unwrap_or(Outcome::NoAction),
        })
        .collect();
    for d in &report.decisions {
        log_decision(&report, d);
    }
    report.duration = started.elapsed();
    report
}

/// The pieces of each candidate that execution needs.
pub(super) struct WorkView<'a> {
    pub(super) id: &'a str,
    pub(super) snapshot: &'a ContainerSnapshot,
    pub(super) verdict: Option<&'a Verdict>,
    pub(super) action: Option<&'a Action>,
    pub(super) outcome: &'a mut Option<Outcome>,
}

fn work_views(work: &mut [Work]) -> Vec<WorkView<'_>> {
    work.iter_mut()
        .map(|w| WorkView {
            id: &w.snapshot.id,
            snapshot: &w.snapshot,
            verdict: w.verdict.as_ref(),
            action: w.action.as_ref(),
            outcome: &mut w.outcome,
        })
        .collect()
}

async fn classify(
    policy: &LoadedPolicy,
    ctx: &EvalContext,
    work: &mut [Work],
    indices: &[usize],
    report: &mut SweepReport,
) {
    let batches = Batches {
        kind: "ownership",
        policy,
        ctx,
        input: |w: &Work| w.snapshot.clone(),
        call: |p: &LoadedPolicy, c: &EvalContext, batch: &[ContainerSnapshot]| p.classify(c, batch),
        store: |w: &mut Work, v: Verdict| w.verdict = Some(v),
    };
    batches.run(work, indices, report).await;
}

async fn decide(
    policy: &LoadedPolicy,
    ctx: &EvalContext,
    work: &mut [Work],
    indices: &[usize],
    report: &mut SweepReport,
) {
    let batches = Batches {
        kind: "kill",
        policy,
        ctx,
        // The policy runs on the blocking pool, so the batch owns its inputs.
        input: |w: &Work| {
            let ownership = w
                .verdict
                .as_ref()
                .map_or(Ownership::Unknown, |v| v.ownership.clone());
            (w.snapshot.clone(), ownership)
        },
        call: |p: &LoadedPolicy, c: &EvalContext, batch: &[(ContainerSnapshot, Ownership)]| {
            let candidates: Vec<Candidate<'_>> = batch
                .iter()
                .map(|(container, ownership)| Candidate {
                    container,
                    ownership,
                })
                .collect();
            p.decide(c, &candidates)
        },
        store: |w: &mut Work, a: Action| w.action = Some(a),
    };
    batches.run(work, indices, report).await;
}

/// One policy applied to candidates in batches of [`POLICY_BATCH_SIZE`]. A batch whose input
/// is too large for one call is split in halves until it fits; any other failed batch (or a
/// single container still too large) is counted, logged with the policy digest and leaves
/// every container in it alone.
struct Batches<'a, I, C, S> {
    kind: &'static str,
    policy: &'a LoadedPolicy,
    ctx: &'a EvalContext,
    input: I,
    call: C,
    store: S,
}

impl<I, C, S, T, R> Batches<'_, I, C, S>
where
    I: Fn(&Work) -> T,
    C: Fn(&LoadedPolicy, &EvalContext, &[T]) -> Result<Vec<R>, EvalError> + Clone + Send + 'static,
    S: Fn(&mut Work, R),
    T: Send + 'static,
    R: Send + 'static,
{
    async fn run(&self, work: &mut [Work], indices: &[usize], report: &mut SweepReport) {
        for chunk in indices.chunks(POLICY_BATCH_SIZE) {
            let batch: Vec<T> = chunk.iter().map(|&i| (self.input)(&work[i])).collect();
            let (p, c, call) = (self.policy.clone(), self.ctx.clone(), self.call.clone());
            // One span per policy call, inside the sweep's (at `ERROR` level like it).
            let span = tracing::error_span!(
                "policy_call",
                policy = self.kind,
                digest = %self.policy.digest_hex(),
                batch = chunk.len()
            );
            let call_span = span.clone();
            // Off the async threads; a panicked or cancelled task is a policy failure.
            let pieces = tokio::task::spawn_blocking(move || {
                call_span.in_scope(|| split_to_fit(&batch, |piece| call(&p, &c, piece)))
            })
            .await
            .unwrap_or_else(|join| {
                let message = format!("its task did not complete: {join}");
                vec![(0..chunk.len(), Err(EvalError::Failed { message }))]
            });
            for (range, answer) in pieces {
                let piece = &chunk[range];
                match answer {
                    Ok(outputs) => {
                        for (&i, out) in piece.iter().zip(outputs) {
                            (self.store)(&mut work[i], out);
                        }
                    }
                    Err(error) => {
                        report.policy_failures += 1;
                        let _in_call = span.enter();
                        tracing::error!(
                            policy = self.kind,
                            digest = %self.policy.digest_hex(),
                            batch = piece.len(),
                            error_kind = error.kind(),
                            error = &error as &dyn std::error::Error,
                            "{} policy failed; no action for its batch",
                            self.kind
                        );
                        for &i in piece {
                            work[i].fail(Outcome::PolicyFailed(format!(
                                "{} policy ({}): {}",
                                self.kind,
                                error.kind(),
                                nomad_plugin::error_chain(&error)
                            )));
                        }
                    }
                }
            }
        }
    }
}

async fn inspect(rec: &Reconciler, work: &mut [Work], indices: &[usize]) {
    let docker: &dyn DockerApi = rec.docker.as_ref();
    let limit = rec.settings.docker_call_timeout;
    let results: Vec<(usize, Result<_, DockerError>)> =
        futures::stream::iter(indices.iter().copied())
            .map(|i| {
                let id = work[i].snapshot.id.clone();
                async move {
                    let r =
                        bounded("inspect_container", limit, docker.inspect_container(&id)).await;
                    (i, r)
                }
            })
            .buffer_unordered(rec.settings.inspect_concurrency.max(1))
            .collect()
            .await;
    for (i, result) in results {
        match result {
            Ok(inspected) => {
                let snap = std::mem::take(&mut work[i].snapshot);
                work[i].snapshot = with_inspected_env(snap, &inspected);
            }
            Err(e) if e.is_not_found() => work[i].fail(Outcome::Gone),
            Err(e) => {
                tracing::warn!(
                    container_id = %work[i].snapshot.id,
                    error = %e,
                    "inspecting a candidate failed; leaving it alone"
                );
                work[i].fail(Outcome::InspectFailed(e.to_string()));
            }
        }
    }
}

fn log_decision(report: &SweepReport, d: &Decision) {
    let verdict = d
        .verdict
        .as_ref()
        .map_or_else(|| "-".to_owned(), super::report::ownership_label);
    let verdict_reason = escape(d.verdict.as_ref().map_or("", |v| v.reason.as_str()));
    let action = d
        .action
        .as_ref()
        .map_or_else(|| "-".to_owned(), super::report::action_label);
    let action_reason = escape(d.action.as_ref().map_or("", |a| a.reason.as_str()));
    let detail = escape(d.outcome.detail().unwrap_or_default());
    // `tracing` needs the level at compile time; one field list serves both levels.
    macro_rules! decision {
        ($level:ident) => {
            tracing::$level!(
                container_id = %d.id,
                container_name = %escape(&d.name),
                image = %escape(&d.image),
                ownership_digest = %report.ownership_digest,
                kill_digest = %report.kill_digest,
                verdict = %verdict,
                verdict_reason = %verdict_reason,
                action = %action,
                action_reason = %action_reason,
                outcome = d.outcome.label(),
                detail = %detail,
                dry_run = report.report_only,
                "reconciler decision"
            )
        };
    }
    // Containers nobody claims show up in every sweep: their lines are debug-level.
    if d.outcome == Outcome::NoAction {
        decision!(debug);
    } else {
        decision!(info);
    }
}

#[cfg(test)]
mod tests;
