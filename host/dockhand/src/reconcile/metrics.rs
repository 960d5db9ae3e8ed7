//! Reconciler counters, readable at any time through [`Metrics::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use orphan_policy::ActionKind;
use serde::Serialize;

use super::report::{Outcome, SweepReport, SweepStatus};

/// Counters since the reconciler was built. All updates are relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    sweeps: AtomicU64,
    sweeps_failed: AtomicU64,
    sweeps_skipped: AtomicU64,
    warnings: AtomicU64,
    candidates: AtomicU64,
    actions_stop: AtomicU64,
    actions_kill: AtomicU64,
    actions_remove: AtomicU64,
    actions_would_do: AtomicU64,
    action_failures: AtomicU64,
    policy_failures: AtomicU64,
    cap_reached: AtomicU64,
    audit_failures: AtomicU64,
    last_success_ms: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Sweeps run (failed ones included, skipped ones not).
    pub sweeps: u64,
    /// Sweeps whose listing failed.
    pub sweeps_failed: u64,
    /// Ticks skipped because Docker was unhealthy.
    pub sweeps_skipped: u64,
    /// Failure-streak warnings logged (one per streak).
    pub warnings: u64,
    /// Candidates considered (untracked, older than the grace).
    pub candidates: u64,
    /// Stops carried out (including stop-then-remove).
    pub actions_stop: u64,
    /// Kills carried out.
    pub actions_kill: u64,
    /// Removals carried out.
    pub actions_remove: u64,
    /// Destructive actions only reported (dry run, audit mode).
    pub actions_would_do: u64,
    /// Actions whose Docker call failed.
    pub action_failures: u64,
    /// Policy calls that failed.
    pub policy_failures: u64,
    /// Sweeps that hit the per-sweep action cap.
    pub cap_reached: u64,
    /// Audit file appends that failed.
    pub audit_failures: u64,
    /// Unix milliseconds of the last sweep whose listing succeeded; 0 if none yet.
    pub last_success_ms: u64,
}

impl MetricsSnapshot {
    /// Every counter with its name, in the names' alphabetical order.
    pub fn by_name(&self) -> [(&'static str, u64); 14] {
        let mut all = [
            ("sweeps", self.sweeps),
            ("sweeps_failed", self.sweeps_failed),
            ("sweeps_skipped", self.sweeps_skipped),
            ("warnings", self.warnings),
            ("candidates", self.candidates),
            ("actions_stop", self.actions_stop),
            ("actions_kill", self.actions_kill),
            ("actions_remove", self.actions_remove),
            ("actions_would_do", self.actions_would_do),
            ("action_failures", self.action_failures),
            ("policy_failures", self.policy_failures),
            ("cap_reached", self.cap_reached),
            ("audit_failures", self.audit_failures),
            ("last_success_ms", self.last_success_ms),
        ];
        all.sort_unstable_by_key(|(name, _)| *name);
        all
    }
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            sweeps: get(&self.sweeps),
            sweeps_failed: get(&self.sweeps_failed),
            sweeps_skipped: get(&self.sweeps_skipped),
            warnings: get(&self.warnings),
            candidates: get(&self.candidates),
            actions_stop: get(&self.actions_stop),
            actions_kill: get(&self.actions_kill),
            actions_remove: get(&self.actions_remove),
            actions_would_do: get(&self.actions_would_do),
            action_failures: get(&self.action_failures),
            policy_failures: get(&self.policy_failures),
            cap_reached: get(&self.cap_reached),
            audit_failures: get(&self.audit_failures),
            last_success_ms: get(&self.last_success_ms),
        }
    }

    fn bump(c: &AtomicU64, by: u64) {
        c.fetch_add(by, Ordering::Relaxed);
    }

    pub(super) fn record_skipped(&self) {
        Self::bump(&self.sweeps_skipped, 1);
    }

    pub(super) fn record_warning(&self) {
        Self::bump(&self.warnings, 1);
    }

    pub(super) fn record_audit_failure(&self) {
        Self::bump(&self.audit_failures, 1);
    }

    pub(super) fn record_sweep(&self, report: &SweepReport) {
        Self::bump(&self.sweeps, 1);
        if let SweepStatus::ListFailed { .. } = report.status {
            Self::bump(&self.sweeps_failed, 1);
            return;
        }
        self.last_success_ms.store(
            u64::try_from(report.started_ms).unwrap_or(0),
            Ordering::Relaxed,
        );
        Self::bump(&self.candidates, report.decisions.len() as u64);
        Self::bump(&self.policy_failures, u64::from(report.policy_failures));
        if report.cap_reached {
            Self::bump(&self.cap_reached, 1);
        }
        for d in &report.decisions {
            match (&d.outcome, d.action.as_ref().map(|a| &a.kind)) {
                (Outcome::WouldDo, _) => Self::bump(&self.actions_would_do, 1),
                (Outcome::Failed(_), _) => Self::bump(&self.action_failures, 1),
                (Outcome::Done | Outcome::Gone, Some(ActionKind::Stop { .. })) => {
                    Self::bump(&self.actions_stop, 1);
                }
                (Outcome::Done | Outcome::Gone, Some(ActionKind::Kill { .. })) => {
                    Self::bump(&self.actions_kill, 1);
                }
                (Outcome::Done | Outcome::Gone, Some(ActionKind::Remove { .. })) => {
                    Self::bump(&self.actions_remove, 1);
                }
                _ => {}
            }
        }
    }
}

/// Every counter distinct (1, 2, 3, … in field order), for tests of what carries them.
#[cfg(test)]
impl MetricsSnapshot {
    pub(crate) fn counting_up() -> Self {
        Self {
            sweeps: 1,
            sweeps_failed: 2,
            sweeps_skipped: 3,
            warnings: 4,
            candidates: 5,
            actions_stop: 6,
            actions_kill: 7,
            actions_remove: 8,
            actions_would_do: 9,
            action_failures: 10,
            policy_failures: 11,
            cap_reached: 12,
            audit_failures: 13,
            last_success_ms: 14,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_lists_every_counter_once_in_alphabetical_order() {
        let snapshot = MetricsSnapshot::counting_up();
        let serde_json::Value::Object(fields) = serde_json::to_value(snapshot).unwrap() else {
            panic!("a snapshot serializes as an object");
        };
        let from_serde: Vec<(String, u64)> = fields
            .into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap()))
            .collect();
        let listed: Vec<(String, u64)> = snapshot
            .by_name()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(listed, from_serde);
    }
}
