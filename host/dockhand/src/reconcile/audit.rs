//! The append-only, size-bounded, fsynced audit file: what the reconciler decided and did.
//!
//! `<data_dir>/audit.jsonl` holds one JSON object per line, with a `record` field:
//!
//! * `intent`: a destructive action about to be taken — written and fsynced **before** the
//!   Docker call, so a crash mid-sweep still leaves a record of what was being done. When the
//!   intent cannot be written the action is not taken (outcome `audit-failed`);
//! * `outcome`: what became of it (`done`, `gone`, `failed` with the error), fsynced after the
//!   call;
//! * `decision`: every other candidate of a sweep worth a line (would-do in dry run or audit
//!   mode, cap reached, policy or inspection failed, unknown, owned but ignored, …), written
//!   when the sweep ends;
//! * `summary`: per sweep, how many containers were routinely "not Nomad's, nothing done".
//!   Those are counted, not written one per sweep, so a node with many unrelated containers
//!   does not rotate the record of its stops out of the file within hours.
//!
//! Before an append would take the file over its limit it is rotated: `audit.jsonl.<k>`
//! becomes `.<k+1>` (the oldest, `.<keep>`, is dropped) and the file becomes `.1`. Every
//! append is fsynced, and the directory too when the file was created or rotated. The file
//! is opened, appended to and closed for each write: nothing is held open between writes,
//! and an operator may delete or move it at any time.
//!
//! Text from policies and the daemon (names, images, reasons, errors) is escaped with
//! [`orphan_policy::display::escape`] so a line cannot hide or reorder what it shows.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use orphan_policy::display::escape;
use orphan_policy::{Action, ContainerSnapshot, Ownership, Verdict};
use serde::Serialize;

use super::report::{Decision, Outcome, SweepReport, action_label, ownership_label};

/// File name of the audit log inside the data directory.
pub const AUDIT_FILE_NAME: &str = "audit.jsonl";
/// Default rotation limit: 16 MiB.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Rotated files kept next to the current one (`audit.jsonl.1` … `.5`).
pub const DEFAULT_AUDIT_KEEP: u32 = 5;

/// Why the audit file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Creating the directory, opening, rotating, writing or syncing failed.
    #[error("audit file {path}: cannot {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("audit record could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// What an audit line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A candidate's decision, written when its sweep ends.
    Decision,
    /// A destructive action about to be taken (before the Docker call).
    Intent,
    /// What became of an action whose intent was recorded.
    Outcome,
}

/// One audit line about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// What this line records.
    pub record: RecordKind,
    /// Sweep start, Unix milliseconds.
    pub sweep_ms: i64,
    /// Container id.
    pub container_id: String,
    /// Container name (escaped).
    pub name: String,
    /// Image (escaped).
    pub image: String,
    /// Ownership policy sha256.
    pub ownership_digest: String,
    /// Kill policy sha256.
    pub kill_digest: String,
    /// Ownership verdict label (`owned(<alloc>)`, `not-nomad`, …), or `-`.
    pub verdict: String,
    /// The ownership policy's reason (escaped).
    pub verdict_reason: String,
    /// Action label (`stop(SIGTERM,30s)+remove`, …), or `-`.
    pub action: String,
    /// The kill policy's reason (escaped).
    pub action_reason: String,
    /// Outcome label (`done`, `would-do`, `failed`, …); `acting` in an intent.
    pub outcome: String,
    /// Error text for failures (escaped).
    pub detail: Option<String>,
    /// Nothing was executed (dry run or audit mode).
    pub report_only: bool,
}

/// Per sweep: the routine rows that were counted instead of written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Always `summary`.
    pub record: &'static str,
    /// Sweep start, Unix milliseconds.
    pub sweep_ms: i64,
    /// Ownership policy sha256.
    pub ownership_digest: String,
    /// Kill policy sha256.
    pub kill_digest: String,
    /// Candidates the ownership policy found not to be Nomad's, with nothing done.
    pub not_nomad_no_action: u64,
    /// Nothing was executed (dry run or audit mode).
    pub report_only: bool,
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuditLine {
    /// About one container.
    Record(AuditRecord),
    /// About a sweep's routine rows.
    Summary(AuditSummary),
}

/// The sweep-level facts every record repeats.
#[derive(Debug, Clone, Copy)]
pub(super) struct SweepFacts<'a> {
    pub(super) sweep_ms: i64,
    pub(super) ownership_digest: &'a str,
    pub(super) kill_digest: &'a str,
    pub(super) report_only: bool,
}

impl<'a> SweepFacts<'a> {
    pub(super) fn of(report: &'a SweepReport) -> Self {
        Self {
            sweep_ms: report.started_ms,
            ownership_digest: &report.ownership_digest,
            kill_digest: &report.kill_digest,
            report_only: report.report_only,
        }
    }
}

/// The first name of a container, without the leading `/`.
pub(super) fn first_name(snapshot: &ContainerSnapshot) -> &str {
    snapshot
        .names
        .first()
        .map_or("", |n| n.trim_start_matches('/'))
}

impl AuditRecord {
    /// The `decision` record of `decision` in `report`.
    pub fn new(report: &SweepReport, decision: &Decision) -> Self {
        Self::build(
            RecordKind::Decision,
            SweepFacts::of(report),
            (&decision.id, &decision.name, &decision.image),
            decision.verdict.as_ref(),
            decision.action.as_ref(),
            &decision.outcome,
        )
    }

    /// The `intent` record of acting on `snapshot`.
    pub(super) fn intent(
        facts: SweepFacts<'_>,
        snapshot: &ContainerSnapshot,
        verdict: Option<&Verdict>,
        action: &Action,
    ) -> Self {
        let mut record = Self::build(
            RecordKind::Intent,
            facts,
            (&snapshot.id, first_name(snapshot), &snapshot.image),
            verdict,
            Some(action),
            &Outcome::NoAction,
        );
        "acting".clone_into(&mut record.outcome);
        record
    }

    /// The `outcome` record that follows an intent.
    pub(super) fn outcome(
        facts: SweepFacts<'_>,
        snapshot: &ContainerSnapshot,
        verdict: Option<&Verdict>,
        action: &Action,
        outcome: &Outcome,
    ) -> Self {
        Self::build(
            RecordKind::Outcome,
            facts,
            (&snapshot.id, first_name(snapshot), &snapshot.image),
            verdict,
            Some(action),
            outcome,
        )
    }

    fn build(
        record: RecordKind,
        facts: SweepFacts<'_>,
        (id, name, image): (&str, &str, &str),
        verdict: Option<&Verdict>,
        action: Option<&Action>,
        outcome: &Outcome,
    ) -> Self {
        Self {
            record,
            sweep_ms: facts.sweep_ms,
            container_id: id.to_owned(),
            name: escape(name).into_owned(),
            image: escape(image).into_owned(),
            ownership_digest: facts.ownership_digest.to_owned(),
            kill_digest: facts.kill_digest.to_owned(),
            verdict: verdict.map_or_else(|| "-".to_owned(), ownership_label),
            verdict_reason: verdict.map_or_else(String::new, |v| escape(&v.reason).into_owned()),
            action: action.map_or_else(|| "-".to_owned(), action_label),
            action_reason: action.map_or_else(String::new, |a| escape(&a.reason).into_owned()),
            outcome: outcome.label().to_owned(),
            detail: outcome.detail().map(|e| escape(e).into_owned()),
            report_only: facts.report_only,
        }
    }
}

/// Whether the action path already wrote this decision's `intent` and `outcome` lines.
pub(super) fn recorded_by_action(decision: &Decision) -> bool {
    decision.is_destructive()
        && matches!(
            decision.outcome,
            Outcome::Done | Outcome::Gone | Outcome::Failed(_)
        )
}

/// A routine row: not Nomad's, nothing done. Counted in the sweep's summary line.
fn routine(decision: &Decision) -> bool {
    decision.outcome == Outcome::NoAction
        && decision
            .verdict
            .as_ref()
            .is_some_and(|v| v.ownership == Ownership::NotNomad)
}

/// The lines a finished sweep adds: a `decision` record for each candidate not recorded by
/// the action path and not routine, then a `summary` when routine rows were counted.
pub fn sweep_lines(report: &SweepReport) -> Vec<AuditLine> {
    let mut lines: Vec<AuditLine> = Vec::new();
    let mut not_nomad = 0u64;
    for d in &report.decisions {
        if routine(d) {
            not_nomad += 1;
        } else if !recorded_by_action(d) {
            lines.push(AuditLine::Record(AuditRecord::new(report, d)));
        }
    }
    if not_nomad > 0 {
        lines.push(AuditLine::Summary(AuditSummary {
            record: "summary",
            sweep_ms: report.started_ms,
            ownership_digest: report.ownership_digest.clone(),
            kill_digest: report.kill_digest.clone(),
            not_nomad_no_action: not_nomad,
            report_only: report.report_only,
        }));
    }
    lines
}

/// Appends lines to the audit file, fsynced, rotating it at `max_bytes` and keeping `keep`
/// rotated files.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    lock: Mutex<()>,
}

impl AuditLog {
    /// An audit log at `path` (created on first append), keeping [`DEFAULT_AUDIT_KEEP`]
    /// rotated files.
    pub fn new(path: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            max_bytes,
            keep: DEFAULT_AUDIT_KEEP,
            lock: Mutex::new(()),
        }
    }

    /// Keeps `keep` rotated files (at least one).
    pub fn with_keep(mut self, keep: u32) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one JSON line per entry and fsyncs it (nothing for an empty slice). Blocking.
    pub fn append(&self, lines: &[AuditLine]) -> Result<(), AuditError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut buf, line)?;
            buf.push(b'\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let io = |action: &'static str| {
            let path = self.path.clone();
            move |source| AuditError::Io {
                path,
                action,
                source,
            }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io("create its directory"))?;
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read its size")(e)),
        };
        let mut new_entry = current.is_none();
        if let Some(size) = current
            && size > 0
            && size + buf.len() as u64 > self.max_bytes
        {
            self.rotate().map_err(io("rotate it"))?;
            new_entry = true;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io("open it for appending"))?;
        file.write_all(&buf).map_err(io("append to it"))?;
        file.sync_data().map_err(io("sync it"))?;
        if new_entry {
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync its directory"))?;
        }
        Ok(())
    }

    /// `.<keep-1>` → `.<keep>`, …, `.1` → `.2`, the file → `.1`.
    fn rotate(&self) -> std::io::Result<()> {
        for k in (1..self.keep).rev() {
            match std::fs::rename(rotated(&self.path, k), rotated(&self.path, k + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
    }
}

/// `<path>.<k>`.
pub fn rotated(path: &Path, k: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{k}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests;
