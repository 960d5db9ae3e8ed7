//! The admin answers between the domain types and the wire: the server turns a
//! [`SweepReport`], the reconciler's counters, a stored policy's [`PolicyState`] and a policy's
//! [`PolicyOrigin`] into messages; the client turns them back into a [`SweepAnswer`], a
//! [`MetricsSnapshot`], a [`PolicyState`] and a [`PolicyOrigin`], which the CLI renders.
//!
//! The wire carries rows, never rendered text: the CLI prints tables and JSON from the domain
//! types, so a report looks the same whether a plugin or the CLI itself ran the sweep. An enum
//! value the client does not know, or an unspecified one, makes the whole answer unusable
//! ([`AnswerError`]): it is never read as a default verdict, action, outcome, state or origin.

use std::time::Duration;

use orphan_policy::store::PolicyState;
use orphan_policy::{Action, ActionKind, Ownership, Signal, Verdict};

use super::proto;
use crate::reconcile::{
    Decision, MetricsSnapshot, Outcome, PolicyOrigin, SweepReport, SweepSkipped, SweepStatus,
};

/// A `Sweep` answer the client cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable answer from the admin API: {field}: {problem}")]
pub struct AnswerError {
    /// Which field (`decisions[2].outcome`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> AnswerError {
    AnswerError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A `Sweep` answer, checked: the report of the sweep, or why it did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepAnswer {
    /// A dry run was asked for.
    pub dry_run: bool,
    /// What happened.
    pub outcome: SweepOutcome,
}

/// Whether an asked-for sweep ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepOutcome {
    /// It ran (its listing may still have failed: [`SweepReport::status`]).
    Ran(SweepReport),
    /// It did not run.
    Skipped {
        /// `skipped-docker-unhealthy`, `skipped-startup-wait` or
        /// `skipped-tracked-set-incomplete`.
        status: &'static str,
        /// Why, and for the start-up wait when sweeps become possible.
        message: String,
    },
}

impl SweepAnswer {
    /// `completed`, `list-failed`, or the `skipped-…` status.
    pub fn status(&self) -> &'static str {
        match &self.outcome {
            SweepOutcome::Ran(report) => match report.status {
                SweepStatus::Completed => "completed",
                SweepStatus::ListFailed { .. } => "list-failed",
            },
            SweepOutcome::Skipped { status, .. } => status,
        }
    }

    /// The listing error of a failed sweep, or why a skipped one did not run; empty otherwise.
    pub fn error(&self) -> &str {
        match &self.outcome {
            SweepOutcome::Ran(SweepReport {
                status: SweepStatus::ListFailed { error },
                ..
            }) => error,
            SweepOutcome::Ran(_) => "",
            SweepOutcome::Skipped { message, .. } => message,
        }
    }

    /// Nothing was carried out: the sweep did not run, or only reported (dry run, the
    /// configured `dry_run`, or audit mode).
    pub fn report_only(&self) -> bool {
        self.report().is_none_or(|r| r.report_only)
    }

    /// The report, when the sweep ran.
    pub fn report(&self) -> Option<&SweepReport> {
        match &self.outcome {
            SweepOutcome::Ran(report) => Some(report),
            SweepOutcome::Skipped { .. } => None,
        }
    }
}

// Server side: domain to wire.

/// `report` as the `Sweep` answer; `dry_run` tells whether a dry run was asked for.
pub(super) fn sweep_response(report: &SweepReport, dry_run: bool) -> proto::SweepResponse {
    let (status, error) = match &report.status {
        SweepStatus::Completed => (proto::SweepStatus::Completed, String::new()),
        SweepStatus::ListFailed { error } => (proto::SweepStatus::ListFailed, error.clone()),
    };
    proto::SweepResponse {
        status: status as i32,
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
        decisions: report.decisions.iter().map(decision_message).collect(),
    }
}

/// The `Sweep` answer of a sweep that did not run.
pub(super) fn skipped_response(skipped: &SweepSkipped, dry_run: bool) -> proto::SweepResponse {
    let status = match skipped {
        SweepSkipped::DockerUnhealthy => proto::SweepStatus::SkippedDockerUnhealthy,
        SweepSkipped::StartupWait { .. } => proto::SweepStatus::SkippedStartupWait,
        SweepSkipped::TrackedSetIncomplete => proto::SweepStatus::SkippedTrackedSetIncomplete,
    };
    proto::SweepResponse {
        status: status as i32,
        error: skipped.to_string(),
        dry_run,
        report_only: true,
        ..proto::SweepResponse::default()
    }
}

fn decision_message(d: &Decision) -> proto::SweepDecision {
    let (outcome, outcome_detail) = outcome_message(&d.outcome);
    proto::SweepDecision {
        container_id: d.id.clone(),
        name: d.name.clone(),
        image: d.image.clone(),
        created_ms: d.created_ms,
        verdict: d.verdict.as_ref().map(verdict_message),
        action: d.action.as_ref().map(action_message),
        outcome: outcome as i32,
        outcome_detail,
    }
}

fn verdict_message(v: &Verdict) -> proto::Verdict {
    let (ownership, alloc_id) = match &v.ownership {
        Ownership::Owned { alloc_id } => (proto::Ownership::Owned, alloc_id.clone()),
        Ownership::NotNomad => (proto::Ownership::NotNomad, String::new()),
        Ownership::Unknown => (proto::Ownership::Unknown, String::new()),
        Ownership::NeedInspect => (proto::Ownership::NeedInspect, String::new()),
    };
    proto::Verdict {
        ownership: ownership as i32,
        alloc_id,
        reason: v.reason.clone(),
    }
}

fn action_message(a: &Action) -> proto::Action {
    let mut message = proto::Action {
        reason: a.reason.clone(),
        ..proto::Action::default()
    };
    let kind = match &a.kind {
        ActionKind::Ignore => proto::ActionKind::Ignore,
        ActionKind::Stop {
            signal,
            timeout,
            then_remove,
        } => {
            message.signal = signal.name().to_owned();
            message.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            message.then_remove = *then_remove;
            proto::ActionKind::Stop
        }
        ActionKind::Kill { signal } => {
            message.signal = signal.name().to_owned();
            proto::ActionKind::Kill
        }
        ActionKind::Remove { force } => {
            message.force = *force;
            proto::ActionKind::Remove
        }
    };
    message.kind = kind as i32;
    message
}

fn outcome_message(o: &Outcome) -> (proto::Outcome, String) {
    let outcome = match o {
        Outcome::NoAction => proto::Outcome::NoAction,
        Outcome::WouldDo => proto::Outcome::WouldDo,
        Outcome::Done => proto::Outcome::Done,
        Outcome::Gone => proto::Outcome::Gone,
        Outcome::Failed(_) => proto::Outcome::Failed,
        Outcome::CapReached => proto::Outcome::CapReached,
        Outcome::NowReportOnly => proto::Outcome::NowReportOnly,
        Outcome::AuditFailed(_) => proto::Outcome::AuditFailed,
        Outcome::NowTracked => proto::Outcome::NowTracked,
        Outcome::PolicyFailed(_) => proto::Outcome::PolicyFailed,
        Outcome::InspectFailed(_) => proto::Outcome::InspectFailed,
    };
    (outcome, o.detail().unwrap_or_default().to_owned())
}

/// A stored policy's standing as `StoredPolicy.state` carries it.
pub(super) fn state_message(s: PolicyState) -> proto::PolicyState {
    match s {
        PolicyState::ActiveEnforce => proto::PolicyState::ActiveEnforce,
        PolicyState::ActiveAudit => proto::PolicyState::ActiveAudit,
        PolicyState::Previous => proto::PolicyState::Previous,
        PolicyState::Inactive => proto::PolicyState::Inactive,
    }
}

/// Where a policy in force came from, as `ActivePolicy.source` carries it.
pub(super) fn origin_message(o: PolicyOrigin) -> proto::PolicyOrigin {
    match o {
        PolicyOrigin::Store => proto::PolicyOrigin::Store,
        PolicyOrigin::Config => proto::PolicyOrigin::Config,
    }
}

/// The reconciler's counters as the `Status` answer carries them.
pub(super) fn metrics_message(s: &MetricsSnapshot) -> proto::Metrics {
    proto::Metrics {
        sweeps: s.sweeps,
        sweeps_failed: s.sweeps_failed,
        sweeps_skipped: s.sweeps_skipped,
        warnings: s.warnings,
        candidates: s.candidates,
        actions_stop: s.actions_stop,
        actions_kill: s.actions_kill,
        actions_remove: s.actions_remove,
        actions_would_do: s.actions_would_do,
        action_failures: s.action_failures,
        policy_failures: s.policy_failures,
        cap_reached: s.cap_reached,
        audit_failures: s.audit_failures,
        last_success_ms: s.last_success_ms,
    }
}

// Client side: wire to domain.

impl From<proto::Metrics> for MetricsSnapshot {
    fn from(m: proto::Metrics) -> Self {
        Self {
            sweeps: m.sweeps,
            sweeps_failed: m.sweeps_failed,
            sweeps_skipped: m.sweeps_skipped,
            warnings: m.warnings,
            candidates: m.candidates,
            actions_stop: m.actions_stop,
            actions_kill: m.actions_kill,
            actions_remove: m.actions_remove,
            actions_would_do: m.actions_would_do,
            action_failures: m.action_failures,
            policy_failures: m.policy_failures,
            cap_reached: m.cap_reached,
            audit_failures: m.audit_failures,
            last_success_ms: m.last_success_ms,
        }
    }
}

impl TryFrom<proto::SweepResponse> for SweepAnswer {
    type Error = AnswerError;

    fn try_from(r: proto::SweepResponse) -> Result<Self, AnswerError> {
        let status = match proto::SweepStatus::try_from(r.status) {
            Ok(proto::SweepStatus::Completed) => SweepStatus::Completed,
            Ok(proto::SweepStatus::ListFailed) => SweepStatus::ListFailed { error: r.error },
            Ok(skipped) => {
                let status = match skipped {
                    proto::SweepStatus::SkippedDockerUnhealthy => "skipped-docker-unhealthy",
                    proto::SweepStatus::SkippedStartupWait => "skipped-startup-wait",
                    proto::SweepStatus::SkippedTrackedSetIncomplete => {
                        "skipped-tracked-set-incomplete"
                    }
                    _ => return Err(bad("status", "unspecified")),
                };
                return Ok(Self {
                    dry_run: r.dry_run,
                    outcome: SweepOutcome::Skipped {
                        status,
                        message: r.error,
                    },
                });
            }
            Err(_) => return Err(bad("status", format!("unknown value {}", r.status))),
        };
        let decisions = r
            .decisions
            .into_iter()
            .enumerate()
            .map(|(i, d)| decision(d).map_err(|e| bad(format!("decisions[{i}].{}", e.0), e.1)))
            .collect::<Result<Vec<_>, _>>()?;
        let count = |field: &str, n: u64| {
            usize::try_from(n).map_err(|_| bad(field, format!("{n} does not fit this platform")))
        };
        Ok(Self {
            dry_run: r.dry_run,
            outcome: SweepOutcome::Ran(SweepReport {
                started_ms: r.started_ms,
                duration: Duration::from_millis(r.duration_ms),
                report_only: r.report_only,
                status,
                listed: count("listed", r.listed)?,
                skipped_tracked: count("skipped_tracked", r.skipped_tracked)?,
                skipped_young: count("skipped_young", r.skipped_young)?,
                ownership_digest: r.ownership_digest,
                kill_digest: r.kill_digest,
                policy_failures: r.policy_failures,
                cap_reached: r.cap_reached,
                warned: false,
                decisions,
            }),
        })
    }
}

/// The `state` of the stored policy `p`, found at `at` in its answer (`policies[2]`, `policy`).
pub fn stored_state(p: &proto::StoredPolicy, at: &str) -> Result<PolicyState, AnswerError> {
    match proto::PolicyState::try_from(p.state) {
        Ok(proto::PolicyState::ActiveEnforce) => Ok(PolicyState::ActiveEnforce),
        Ok(proto::PolicyState::ActiveAudit) => Ok(PolicyState::ActiveAudit),
        Ok(proto::PolicyState::Previous) => Ok(PolicyState::Previous),
        Ok(proto::PolicyState::Inactive) => Ok(PolicyState::Inactive),
        Ok(proto::PolicyState::Unspecified) => Err(bad(format!("{at}.state"), "unspecified")),
        Err(_) => Err(bad(
            format!("{at}.state"),
            format!("unknown value {}", p.state),
        )),
    }
}

/// The `source` of the policy in force `a`, found at `at` in its answer (`active[0]`,
/// `active`).
pub fn active_origin(a: &proto::ActivePolicy, at: &str) -> Result<PolicyOrigin, AnswerError> {
    match proto::PolicyOrigin::try_from(a.source) {
        Ok(proto::PolicyOrigin::Store) => Ok(PolicyOrigin::Store),
        Ok(proto::PolicyOrigin::Config) => Ok(PolicyOrigin::Config),
        Ok(proto::PolicyOrigin::Unspecified) => Err(bad(format!("{at}.source"), "unspecified")),
        Err(_) => Err(bad(
            format!("{at}.source"),
            format!("unknown value {}", a.source),
        )),
    }
}

/// A field of a decision (relative to it) and what is wrong with it.
struct FieldError(&'static str, String);

fn decision(d: proto::SweepDecision) -> Result<Decision, FieldError> {
    let verdict = d.verdict.map(verdict).transpose()?;
    let action = d.action.map(action).transpose()?;
    let detail = d.outcome_detail;
    let outcome = match proto::Outcome::try_from(d.outcome) {
        Ok(proto::Outcome::NoAction) => Outcome::NoAction,
        Ok(proto::Outcome::WouldDo) => Outcome::WouldDo,
        Ok(proto::Outcome::Done) => Outcome::Done,
        Ok(proto::Outcome::Gone) => Outcome::Gone,
        Ok(proto::Outcome::Failed) => Outcome::Failed(detail),
        Ok(proto::Outcome::CapReached) => Outcome::CapReached,
        Ok(proto::Outcome::NowReportOnly) => Outcome::NowReportOnly,
        Ok(proto::Outcome::AuditFailed) => Outcome::AuditFailed(detail),
        Ok(proto::Outcome::NowTracked) => Outcome::NowTracked,
        Ok(proto::Outcome::PolicyFailed) => Outcome::PolicyFailed(detail),
        Ok(proto::Outcome::InspectFailed) => Outcome::InspectFailed(detail),
        Ok(proto::Outcome::Unspecified) => {
            return Err(FieldError("outcome", "unspecified".to_owned()));
        }
        Err(_) => {
            return Err(FieldError(
                "outcome",
                format!("unknown value {}", d.outcome),
            ));
        }
    };
    Ok(Decision {
        id: d.container_id,
        name: d.name,
        image: d.image,
        created_ms: d.created_ms,
        verdict,
        action,
        outcome,
    })
}

fn verdict(v: proto::Verdict) -> Result<Verdict, FieldError> {
    let ownership = match proto::Ownership::try_from(v.ownership) {
        Ok(proto::Ownership::Owned) => Ownership::Owned {
            alloc_id: v.alloc_id,
        },
        Ok(proto::Ownership::NotNomad) => Ownership::NotNomad,
        Ok(proto::Ownership::Unknown) => Ownership::Unknown,
        Ok(proto::Ownership::NeedInspect) => Ownership::NeedInspect,
        Ok(proto::Ownership::Unspecified) => {
            return Err(FieldError("verdict.ownership", "unspecified".to_owned()));
        }
        Err(_) => {
            return Err(FieldError(
                "verdict.ownership",
                format!("unknown value {}", v.ownership),
            ));
        }
    };
    Ok(Verdict {
        ownership,
        reason: v.reason,
    })
}

fn action(a: proto::Action) -> Result<Action, FieldError> {
    let signal = |name: &str| -> Result<Signal, FieldError> {
        name.parse()
            .map_err(|e| FieldError("action.signal", format!("{e}")))
    };
    let kind = match proto::ActionKind::try_from(a.kind) {
        Ok(proto::ActionKind::Ignore) => ActionKind::Ignore,
        Ok(proto::ActionKind::Stop) => ActionKind::Stop {
            signal: signal(&a.signal)?,
            timeout: Duration::from_millis(a.timeout_ms),
            then_remove: a.then_remove,
        },
        Ok(proto::ActionKind::Kill) => ActionKind::Kill {
            signal: signal(&a.signal)?,
        },
        Ok(proto::ActionKind::Remove) => ActionKind::Remove { force: a.force },
        Ok(proto::ActionKind::Unspecified) => {
            return Err(FieldError("action.kind", "unspecified".to_owned()));
        }
        Err(_) => {
            return Err(FieldError(
                "action.kind",
                format!("unknown value {}", a.kind),
            ));
        }
    };
    Ok(Action {
        kind,
        reason: a.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(decisions: Vec<Decision>) -> SweepReport {
        SweepReport {
            started_ms: 1_000_000,
            duration: Duration::from_millis(7),
            report_only: true,
            status: SweepStatus::Completed,
            listed: 4,
            skipped_tracked: 1,
            skipped_young: 1,
            ownership_digest: "a".repeat(64),
            kill_digest: "b".repeat(64),
            policy_failures: 1,
            cap_reached: true,
            warned: false,
            decisions,
        }
    }

    fn every_kind_of_decision() -> Vec<Decision> {
        let decision = |n: usize, verdict, action, outcome| Decision {
            id: format!("{n:064}"),
            name: format!("c-{n}"),
            image: "busybox".into(),
            created_ms: 500_000,
            verdict,
            action,
            outcome,
        };
        let owned = Some(Verdict {
            ownership: Ownership::Owned {
                alloc_id: "a1".into(),
            },
            reason: "alloc label".into(),
        });
        let action = |kind| {
            Some(Action {
                kind,
                reason: "orphan".into(),
            })
        };
        vec![
            decision(
                1,
                owned.clone(),
                action(ActionKind::Stop {
                    signal: Signal::Term,
                    timeout: Duration::from_secs(30),
                    then_remove: true,
                }),
                Outcome::WouldDo,
            ),
            decision(
                2,
                owned.clone(),
                action(ActionKind::Kill {
                    signal: Signal::Kill,
                }),
                Outcome::Failed("no such container".into()),
            ),
            decision(
                3,
                owned.clone(),
                action(ActionKind::Remove { force: true }),
                Outcome::AuditFailed("disk full".into()),
            ),
            decision(4, owned, action(ActionKind::Ignore), Outcome::NoAction),
            decision(
                5,
                Some(Verdict {
                    ownership: Ownership::NotNomad,
                    reason: "no labels".into(),
                }),
                None,
                Outcome::NoAction,
            ),
            decision(6, None, None, Outcome::PolicyFailed("trapped".into())),
            decision(7, None, None, Outcome::InspectFailed("timeout".into())),
            decision(8, None, None, Outcome::CapReached),
            decision(9, None, None, Outcome::NowReportOnly),
            decision(10, None, None, Outcome::NowTracked),
            decision(11, None, None, Outcome::Done),
            decision(12, None, None, Outcome::Gone),
        ]
    }

    #[test]
    fn a_report_comes_back_from_the_wire_unchanged() {
        let sent = report(every_kind_of_decision());
        let answer = SweepAnswer::try_from(sweep_response(&sent, true)).unwrap();
        assert!(answer.dry_run);
        assert_eq!(answer.status(), "completed");
        assert_eq!(answer.report(), Some(&sent));

        let mut failed = report(Vec::new());
        failed.status = SweepStatus::ListFailed {
            error: "daemon gone".into(),
        };
        let answer = SweepAnswer::try_from(sweep_response(&failed, false)).unwrap();
        assert_eq!(
            (answer.status(), answer.error()),
            ("list-failed", "daemon gone")
        );
        assert_eq!(answer.report(), Some(&failed));
    }

    #[test]
    fn a_skipped_sweep_keeps_its_status_and_message() {
        let answer =
            SweepAnswer::try_from(skipped_response(&SweepSkipped::TrackedSetIncomplete, true))
                .unwrap();
        assert_eq!(answer.status(), "skipped-tracked-set-incomplete");
        assert_eq!(
            answer.error(),
            SweepSkipped::TrackedSetIncomplete.to_string()
        );
        assert_eq!(answer.report(), None);
        assert!(answer.report_only());
    }

    #[test]
    fn unspecified_or_unknown_enum_values_are_refused_never_defaulted() {
        let good = sweep_response(&report(every_kind_of_decision()), true);
        let refused = |edit: &dyn Fn(&mut proto::SweepResponse)| {
            let mut r = good.clone();
            edit(&mut r);
            SweepAnswer::try_from(r).unwrap_err().to_string()
        };
        assert_eq!(
            refused(&|r| r.decisions[0].verdict.as_mut().unwrap().ownership = 0),
            "unusable answer from the admin API: decisions[0].verdict.ownership: unspecified"
        );
        assert_eq!(
            refused(&|r| r.decisions[4].verdict.as_mut().unwrap().ownership = 99),
            "unusable answer from the admin API: decisions[4].verdict.ownership: unknown value 99"
        );
        assert_eq!(
            refused(&|r| r.decisions[1].action.as_mut().unwrap().kind = 0),
            "unusable answer from the admin API: decisions[1].action.kind: unspecified"
        );
        assert!(
            refused(&|r| r.decisions[0].action.as_mut().unwrap().signal = "SIGNOPE".into())
                .starts_with("unusable answer from the admin API: decisions[0].action.signal: ")
        );
        assert_eq!(
            refused(&|r| r.decisions[2].outcome = 0),
            "unusable answer from the admin API: decisions[2].outcome: unspecified"
        );
        assert_eq!(
            refused(&|r| r.status = 0),
            "unusable answer from the admin API: status: unspecified"
        );
        assert_eq!(
            refused(&|r| r.status = 42),
            "unusable answer from the admin API: status: unknown value 42"
        );
    }

    #[test]
    fn policy_states_and_origins_come_back_from_the_wire_unchanged() {
        for state in [
            PolicyState::ActiveEnforce,
            PolicyState::ActiveAudit,
            PolicyState::Previous,
            PolicyState::Inactive,
        ] {
            let p = proto::StoredPolicy {
                state: state_message(state) as i32,
                ..proto::StoredPolicy::default()
            };
            assert_eq!(stored_state(&p, "policy"), Ok(state));
        }
        for origin in [PolicyOrigin::Store, PolicyOrigin::Config] {
            let a = proto::ActivePolicy {
                source: origin_message(origin) as i32,
                ..proto::ActivePolicy::default()
            };
            assert_eq!(active_origin(&a, "active"), Ok(origin));
        }
    }

    #[test]
    fn an_unspecified_or_unknown_state_or_origin_is_refused_naming_the_field() {
        let stored = |state| proto::StoredPolicy {
            state,
            ..proto::StoredPolicy::default()
        };
        let active = |source| proto::ActivePolicy {
            source,
            ..proto::ActivePolicy::default()
        };
        let refused = [
            stored_state(&stored(0), "policies[2]").map(drop),
            stored_state(&stored(9), "policy").map(drop),
            active_origin(&active(0), "active[1]").map(drop),
            active_origin(&active(7), "active").map(drop),
        ]
        .map(|r| r.unwrap_err().to_string());
        assert_eq!(
            refused,
            [
                "unusable answer from the admin API: policies[2].state: unspecified",
                "unusable answer from the admin API: policy.state: unknown value 9",
                "unusable answer from the admin API: active[1].source: unspecified",
                "unusable answer from the admin API: active.source: unknown value 7",
            ]
        );
    }

    #[test]
    fn metrics_come_back_from_the_wire_unchanged() {
        let snapshot = MetricsSnapshot::counting_up();
        assert_eq!(MetricsSnapshot::from(metrics_message(&snapshot)), snapshot);
    }
}
