//! What one sweep found and did: [`SweepReport`], one [`Decision`] per candidate.

use std::fmt::Write as _;
use std::time::Duration;

use orphan_policy::display::escape;
use orphan_policy::{Action, ActionKind, Ownership, Verdict};
use serde::Serialize;

use crate::table::Table;

/// Whether the sweep got as far as deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SweepStatus {
    /// The listing worked; decisions follow (some may still have failed).
    Completed,
    /// The listing failed or timed out: nothing was decided or done.
    ListFailed {
        /// The Docker error.
        error: String,
    },
}

/// What became of one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "kebab-case")]
pub enum Outcome {
    /// The policies chose no destructive action (not owned, or `ignore`).
    NoAction,
    /// Dry run or audit mode: the action was only reported.
    WouldDo,
    /// The action was carried out.
    Done,
    /// The container disappeared before or while acting (counts as done).
    Gone,
    /// A Docker call of the action failed; the error text.
    Failed(String),
    /// The destructive-action budget of the period (`max_actions_per_sweep`, shared by
    /// periodic and on-demand sweeps) was used up; left alone.
    CapReached,
    /// Audit mode or dry run was put in force while the sweep ran; left alone.
    NowReportOnly,
    /// The intent to act could not be recorded in the audit file; left alone.
    AuditFailed(String),
    /// The container became tracked since the sweep started; left alone.
    NowTracked,
    /// A policy call failed for its batch; the error text. Left alone.
    PolicyFailed(String),
    /// The ownership policy wanted the environment, but the inspection failed; left alone.
    InspectFailed(String),
}

impl Outcome {
    /// The error text of a failed outcome.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Failed(e)
            | Self::PolicyFailed(e)
            | Self::InspectFailed(e)
            | Self::AuditFailed(e) => Some(e),
            _ => None,
        }
    }

    /// Short label for tables and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoAction => "no-action",
            Self::WouldDo => "would-do",
            Self::Done => "done",
            Self::Gone => "gone",
            Self::Failed(_) => "failed",
            Self::CapReached => "cap-reached",
            Self::NowReportOnly => "now-report-only",
            Self::AuditFailed(_) => "audit-failed",
            Self::NowTracked => "now-tracked",
            Self::PolicyFailed(_) => "policy-failed",
            Self::InspectFailed(_) => "inspect-failed",
        }
    }
}

/// The reconciler's decision about one untracked, old-enough running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Container id.
    pub id: String,
    /// First name, without the leading `/`.
    pub name: String,
    /// Image reference as listed.
    pub image: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// The ownership verdict; `None` when the ownership policy failed.
    pub verdict: Option<Verdict>,
    /// The kill policy's action; `None` when not owned or the kill policy failed.
    pub action: Option<Action>,
    /// What happened.
    pub outcome: Outcome,
}

impl Decision {
    /// The container's age at `now_ms` (the sweep's start), in whole seconds.
    pub fn age_seconds(&self, now_ms: i64) -> u64 {
        u64::try_from(now_ms.saturating_sub(self.created_ms) / 1000).unwrap_or(0)
    }

    /// True when the action is destructive (whether or not it was carried out).
    pub fn is_destructive(&self) -> bool {
        self.action.as_ref().is_some_and(Action::is_destructive)
    }
}

#[cfg(test)]
impl Decision {
    /// Container `web-1` (`0123456789abcdef`), created 125 s before 1 000 000 ms, owned by
    /// allocation `a1`, chosen for `stop(SIGTERM,30s)+remove`, ending in `outcome`: the one
    /// row the report and CLI table tests render.
    pub(crate) fn stop_of_owned_orphan(outcome: Outcome) -> Self {
        Self {
            id: "0123456789abcdef".into(),
            name: "web-1".into(),
            image: "busybox".into(),
            created_ms: 1_000_000 - 125_000,
            verdict: Some(Verdict {
                ownership: Ownership::Owned {
                    alloc_id: "a1".into(),
                },
                reason: "alloc_id label".into(),
            }),
            action: Some(Action {
                kind: ActionKind::Stop {
                    signal: orphan_policy::Signal::Term,
                    timeout: Duration::from_secs(30),
                    then_remove: true,
                },
                reason: "orphan".into(),
            }),
            outcome,
        }
    }
}

/// The result of one sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// When the sweep started, Unix milliseconds.
    pub started_ms: i64,
    /// How long it took.
    #[serde(serialize_with = "duration_ms")]
    pub duration: Duration,
    /// Dry run or audit mode: nothing was executed.
    pub report_only: bool,
    /// Listing outcome.
    pub status: SweepStatus,
    /// Running containers listed.
    pub listed: usize,
    /// Skipped because tracked.
    pub skipped_tracked: usize,
    /// Skipped because younger than the grace (or without a creation time).
    pub skipped_young: usize,
    /// Hex sha256 of the ownership policy used.
    pub ownership_digest: String,
    /// Hex sha256 of the kill policy used.
    pub kill_digest: String,
    /// Policy calls that failed.
    pub policy_failures: u32,
    /// The per-sweep cap stopped at least one action.
    pub cap_reached: bool,
    /// This sweep logged the warning that opens a failure streak (the reconciler's own
    /// logging, not part of the report an operator reads).
    #[serde(skip)]
    pub warned: bool,
    /// One entry per candidate, in listing order.
    pub decisions: Vec<Decision>,
}

fn duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl SweepReport {
    /// The report of a sweep that did not run: nothing listed, nothing decided, nothing acted
    /// on.
    pub fn not_run() -> Self {
        Self {
            started_ms: 0,
            duration: std::time::Duration::ZERO,
            report_only: true,
            status: SweepStatus::Completed,
            listed: 0,
            skipped_tracked: 0,
            skipped_young: 0,
            ownership_digest: String::new(),
            kill_digest: String::new(),
            policy_failures: 0,
            cap_reached: false,
            warned: false,
            decisions: Vec::new(),
        }
    }

    /// The decision about container `id` (full id or a prefix of at least 12 characters).
    pub fn decision(&self, id: &str) -> Option<&Decision> {
        self.decisions
            .iter()
            .find(|d| d.id == id || (id.len() >= 12 && d.id.starts_with(id)))
    }

    /// Ids whose destructive action was carried out (`Done` or `Gone`).
    pub fn acted_on(&self) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| d.is_destructive() && matches!(d.outcome, Outcome::Done | Outcome::Gone))
            .map(|d| d.id.as_str())
            .collect()
    }

    /// Ids with a destructive action only reported (dry run / audit).
    pub fn would_act_on(&self) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| d.outcome == Outcome::WouldDo)
            .map(|d| d.id.as_str())
            .collect()
    }

    /// A plain-text table: container, name, image, age, verdict, reason, action, would-do;
    /// then a summary line.
    pub fn render_table(&self) -> String {
        let mut table = Table::new([
            "CONTAINER",
            "NAME",
            "IMAGE",
            "AGE",
            "VERDICT",
            "REASON",
            "ACTION",
            "WOULD-DO",
        ]);
        for d in &self.decisions {
            let (verdict, reason) = match &d.verdict {
                Some(v) => (ownership_label(v), v.reason.clone()),
                None => ("-".to_owned(), String::new()),
            };
            let (action, action_reason) = match &d.action {
                Some(a) => (action_label(a), a.reason.clone()),
                None => ("-".to_owned(), String::new()),
            };
            let reason = if action_reason.is_empty() {
                reason
            } else {
                format!("{reason}; {action_reason}")
            };
            table.row([
                d.id.chars().take(12).collect(),
                d.name.clone(),
                d.image.clone(),
                format_age(d.age_seconds(self.started_ms)),
                verdict,
                reason,
                action,
                would_do(d),
            ]);
        }
        let mut out = table.render();
        let _ = writeln!(
            out,
            "{} listed, {} tracked, {} within grace, {} candidates{}",
            self.listed,
            self.skipped_tracked,
            self.skipped_young,
            self.decisions.len(),
            match &self.status {
                SweepStatus::Completed => String::new(),
                SweepStatus::ListFailed { error } => {
                    format!(" (listing failed: {})", escape(error))
                }
            }
        );
        out
    }
}

fn would_do(d: &Decision) -> String {
    match (&d.outcome, &d.action) {
        (Outcome::WouldDo, Some(a)) => action_label(a),
        (Outcome::NoAction, _) => "nothing".to_owned(),
        (other, _) => other.label().to_owned(),
    }
}

/// `owned(<alloc>)`, `not-nomad`, `unknown`, `need-inspect`.
pub(super) fn ownership_label(v: &Verdict) -> String {
    match &v.ownership {
        Ownership::Owned { alloc_id } => format!("owned({alloc_id})"),
        other => ownership_name(other).to_owned(),
    }
}

/// `owned`, `not-nomad`, `unknown` or `need-inspect`.
pub fn ownership_name(ownership: &Ownership) -> &'static str {
    match ownership {
        Ownership::Owned { .. } => "owned",
        Ownership::NotNomad => "not-nomad",
        Ownership::Unknown => "unknown",
        Ownership::NeedInspect => "need-inspect",
    }
}

/// `ignore`, `stop`, `kill` or `remove`: the action without its parameters.
pub fn action_name(kind: &ActionKind) -> &'static str {
    match kind {
        ActionKind::Ignore => "ignore",
        ActionKind::Stop { .. } => "stop",
        ActionKind::Kill { .. } => "kill",
        ActionKind::Remove { .. } => "remove",
    }
}

/// `stop(SIGTERM,30s)+remove`, `kill(SIGKILL)`, `remove(force)`, `ignore`.
pub fn action_label(a: &Action) -> String {
    match &a.kind {
        ActionKind::Ignore => "ignore".to_owned(),
        ActionKind::Stop {
            signal,
            timeout,
            then_remove,
        } => format!(
            "stop({signal},{}s){}",
            timeout.as_secs(),
            if *then_remove { "+remove" } else { "" }
        ),
        ActionKind::Kill { signal } => format!("kill({signal})"),
        ActionKind::Remove { force } => {
            if *force {
                "remove(force)".to_owned()
            } else {
                "remove".to_owned()
            }
        }
    }
}

/// An age in seconds, shortest readable form (`42s`, `3m5s`, `2h10m`, `4d3h`).
pub fn format_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_every_column_and_the_would_do_action() {
        let report = SweepReport {
            started_ms: 1_000_000,
            duration: Duration::from_millis(5),
            report_only: true,
            status: SweepStatus::Completed,
            listed: 3,
            skipped_tracked: 1,
            skipped_young: 0,
            ownership_digest: "aa".into(),
            kill_digest: "bb".into(),
            policy_failures: 0,
            cap_reached: false,
            warned: false,
            decisions: vec![Decision::stop_of_owned_orphan(Outcome::WouldDo)],
        };
        let table = report.render_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("CONTAINER"), "{table}");
        assert!(lines[0].ends_with("WOULD-DO"), "{table}");
        assert!(lines[1].starts_with("0123456789ab "), "{table}");
        assert!(lines[1].contains("2m5s"), "{table}");
        assert!(lines[1].contains("owned(a1)"), "{table}");
        assert!(lines[1].contains("alloc_id label; orphan"), "{table}");
        assert!(lines[1].ends_with("stop(SIGTERM,30s)+remove"), "{table}");
        assert!(lines[2].starts_with("3 listed, 1 tracked"), "{table}");
        assert_eq!(report.would_act_on(), vec!["0123456789abcdef"]);
        assert!(report.acted_on().is_empty());
    }
}
