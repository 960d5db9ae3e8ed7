//! The append-only, size-bounded audit file: one JSON line per decision.
//!
//! `<data_dir>/audit.jsonl` grows by appends only. Before an append would take it over its
//! limit, it is renamed to `audit.jsonl.1` (replacing an older `.1`), so at most twice the limit
//! is kept on disk. The file is opened, appended to and closed for each sweep: nothing is held
//! open between sweeps, and an operator may delete or move it at any time.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::report::{Decision, SweepReport, action_label, ownership_label};

/// File name of the audit log inside the data directory.
pub const AUDIT_FILE_NAME: &str = "audit.jsonl";
/// Default rotation limit: 16 MiB.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Why the audit file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Creating the directory, opening, rotating or writing failed.
    #[error("audit file {path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("audit record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Sweep start, Unix milliseconds.
    pub sweep_ms: i64,
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Ownership policy sha256.
    pub ownership_digest: String,
    /// Kill policy sha256.
    pub kill_digest: String,
    /// Ownership verdict label (`owned(<alloc>)`, `not-nomad`, …), or `-`.
    pub verdict: String,
    /// The ownership policy's reason.
    pub verdict_reason: String,
    /// Action label (`stop(SIGTERM,30s)+remove`, …), or `-`.
    pub action: String,
    /// The kill policy's reason.
    pub action_reason: String,
    /// Outcome label (`done`, `would-do`, `failed`, …).
    pub outcome: String,
    /// Error text for failures.
    pub detail: Option<String>,
    /// Nothing was executed (dry run or audit mode).
    pub report_only: bool,
}

impl AuditRecord {
    /// The record of `decision` in `report`.
    pub fn new(report: &SweepReport, decision: &Decision) -> Self {
        use super::report::Outcome;
        let detail = match &decision.outcome {
            Outcome::Failed(e) | Outcome::PolicyFailed(e) | Outcome::InspectFailed(e) => {
                Some(e.clone())
            }
            _ => None,
        };
        Self {
            sweep_ms: report.started_ms,
            container_id: decision.id.clone(),
            name: decision.name.clone(),
            image: decision.image.clone(),
            ownership_digest: report.ownership_digest.clone(),
            kill_digest: report.kill_digest.clone(),
            verdict: decision
                .verdict
                .as_ref()
                .map_or_else(|| "-".to_owned(), ownership_label),
            verdict_reason: decision
                .verdict
                .as_ref()
                .map(|v| v.reason.clone())
                .unwrap_or_default(),
            action: decision
                .action
                .as_ref()
                .map_or_else(|| "-".to_owned(), action_label),
            action_reason: decision
                .action
                .as_ref()
                .map(|a| a.reason.clone())
                .unwrap_or_default(),
            outcome: decision.outcome.label().to_owned(),
            detail,
            report_only: report.report_only,
        }
    }
}

/// Appends records to the audit file, rotating it at `max_bytes`.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    lock: Mutex<()>,
}

impl AuditLog {
    /// An audit log at `path` (created on first append).
    pub fn new(path: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            max_bytes,
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per record (nothing for an empty slice).
    pub fn append(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
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
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create its directory"))?;
        }
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io("read its size")(e)),
        };
        if current > 0 && current + buf.len() as u64 > self.max_bytes {
            std::fs::rename(&self.path, rotated(&self.path)).map_err(io("rotate it"))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io("open it for appending"))?;
        file.write_all(&buf).map_err(io("append to it"))?;
        Ok(())
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            sweep_ms: 1,
            container_id: id.to_owned(),
            name: "n".into(),
            image: "i".into(),
            ownership_digest: "o".into(),
            kill_digest: "k".into(),
            verdict: "not-nomad".into(),
            verdict_reason: "r".into(),
            action: "-".into(),
            action_reason: String::new(),
            outcome: "no-action".into(),
            detail: None,
            report_only: false,
        }
    }

    #[test]
    fn appends_json_lines_and_rotates_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(AUDIT_FILE_NAME);
        let log = AuditLog::new(path.clone(), 400);
        log.append(&[record("a"), record("b")]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["container_id"], "b");
        log.append(&[record("c")]).unwrap();
        // Two records take more than 400 bytes with the third: the first file was rotated.
        let rotated_text = std::fs::read_to_string(rotated(&path)).unwrap();
        assert_eq!(rotated_text, text);
        let now = std::fs::read_to_string(&path).unwrap();
        assert_eq!(now.lines().count(), 1);
        assert!(now.contains("\"container_id\":\"c\""));
        log.append(&[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), now);
    }
}
