//! On-demand sweeps (the admin `Sweep` method): one sweep of the running reconciler now,
//! reported per container. The periodic sweep itself is `reconcile::sweep`.

use orphan_policy::{Action, ActionKind, Ownership, Verdict};
use tonic::Status;

use super::AdminState;
use super::proto;
use crate::reconcile::{Decision, SweepReport, SweepSkipped, SweepStatus, action_label};

/// Message of the `FAILED_PRECONDITION` answer when no reconciler runs.
pub(super) const RECONCILER_DISABLED: &str = "sweep unavailable: the dangling container \
     reconciler is disabled in this plugin (gc.dangling_containers.enabled = false)";

/// Runs the sweep the request asks for and reports it.
pub(super) async fn sweep(
    state: &AdminState,
    request: proto::SweepRequest,
) -> Result<proto::SweepResponse, Status> {
    let Some(reconciler) = state.sweeper.as_ref() else {
        return Err(Status::failed_precondition(RECONCILER_DISABLED));
    };
    let dry_run = request.dry_run;
    Ok(match reconciler.sweep_now(dry_run).await {
        Ok(report) => sweep_response(&report, dry_run),
        Err(skipped) => skipped_response(&skipped, dry_run),
    })
}

fn skipped_response(skipped: &SweepSkipped, dry_run: bool) -> proto::SweepResponse {
    proto::SweepResponse {
        status: skipped.label().to_owned(),
        error: skipped.to_string(),
        dry_run,
        report_only: true,
        ..proto::SweepResponse::default()
    }
}

/// `report` in the `Sweep` answer's shape; `dry_run` tells whether a dry run was asked for.
/// Also used by `dockhand reconcile --once` for its standalone dry run, so both print alike.
pub fn sweep_response(report: &SweepReport, dry_run: bool) -> proto::SweepResponse {
    let (status, error) = match &report.status {
        SweepStatus::Completed => ("completed", String::new()),
        SweepStatus::ListFailed { error } => ("list-failed", error.clone()),
    };
    proto::SweepResponse {
        status: status.to_owned(),
        error,
        dry_run,
        report_only: report.report_only,
        ownership_digest: report.ownership_digest.clone(),
        kill_digest: report.kill_digest.clone(),
        started_ms: report.started_ms,
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        listed: report.listed as u64,
        skipped_tracked: report.skipped_tracked as u64,
        skipped_young: report.skipped_young as u64,
        policy_failures: report.policy_failures,
        cap_reached: report.cap_reached,
        decisions: report
            .decisions
            .iter()
            .map(|d| decision(d, report.started_ms))
            .collect(),
    }
}

/// `(ownership label, alloc id, reason)` of a verdict: `owned`, `not-nomad`, `unknown`,
/// `need-inspect`; empty strings when the ownership policy failed.
pub(super) fn verdict_parts(verdict: Option<&Verdict>) -> (String, String, String) {
    let Some(v) = verdict else {
        return (String::new(), String::new(), String::new());
    };
    let (label, alloc) = match &v.ownership {
        Ownership::Owned { alloc_id } => ("owned", alloc_id.clone()),
        Ownership::NotNomad => ("not-nomad", String::new()),
        Ownership::Unknown => ("unknown", String::new()),
        Ownership::NeedInspect => ("need-inspect", String::new()),
    };
    (label.to_owned(), alloc, v.reason.clone())
}

/// `ignore`, `stop`, `kill` or `remove`.
pub(super) fn action_kind(action: &Action) -> &'static str {
    match action.kind {
        ActionKind::Ignore => "ignore",
        ActionKind::Stop { .. } => "stop",
        ActionKind::Kill { .. } => "kill",
        ActionKind::Remove { .. } => "remove",
    }
}

fn decision(d: &Decision, now_ms: i64) -> proto::SweepDecision {
    let (ownership, alloc_id, ownership_reason) = verdict_parts(d.verdict.as_ref());
    let (action, action_detail, action_reason) = match &d.action {
        None => (String::new(), String::new(), String::new()),
        Some(a) => (action_kind(a).to_owned(), action_label(a), a.reason.clone()),
    };
    let outcome_detail = d.outcome.detail().unwrap_or_default().to_owned();
    let age_ms = now_ms.saturating_sub(d.created_ms).max(0);
    proto::SweepDecision {
        container_id: d.id.clone(),
        name: d.name.clone(),
        image: d.image.clone(),
        created_ms: d.created_ms,
        age_seconds: u64::try_from(age_ms / 1000).unwrap_or(0),
        ownership,
        alloc_id,
        ownership_reason,
        action,
        action_detail,
        action_reason,
        outcome: d.outcome.label().to_owned(),
        outcome_detail,
    }
}
