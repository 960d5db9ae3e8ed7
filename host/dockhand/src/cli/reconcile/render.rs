//! How `dockhand reconcile --once` prints a sweep: a header saying where the sweep ran and
//! with which tracked set, then a table (container, image, age, ownership, action, reason) or
//! one JSON object.
//!
//! # JSON shape
//!
//! ```json
//! { "source": "plugin" | "standalone", "socket": "…", "tracked_set": "plugin" | "none",
//!   "note": "…", "dry_run": true, "report_only": true, "status": "completed", "error": "",
//!   "ownership_digest": "…", "kill_digest": "…", "listed": 3, "skipped_tracked": 1,
//!   "skipped_young": 0, "policy_failures": 0, "cap_reached": false,
//!   "containers": [ { "id": "…", "name": "…", "image": "…", "created_ms": 0,
//!     "age_seconds": 0, "ownership": "owned", "alloc_id": "…", "ownership_reason": "…",
//!     "action": "stop", "action_detail": "stop(SIGTERM,30s)+remove", "action_reason": "…",
//!     "reason": "…", "outcome": "would-do", "outcome_detail": "" } ] }
//! ```

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::PathBuf;

use orphan_policy::Ownership;
use orphan_policy::display::escape;
use serde::Serialize;

use crate::admin::SweepAnswer;
use crate::cli::Status;
use crate::reconcile::{
    Decision, Outcome, SweepReport, action_label, action_name, format_age, ownership_name,
};
use crate::table::Table;

/// Where the sweep ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The running plugin swept, with its tracked set.
    Plugin {
        /// Its admin socket.
        socket: PathBuf,
    },
    /// No plugin answered: a dry run here, every container untracked.
    Standalone {
        /// The socket where nothing answered.
        socket: PathBuf,
        /// Where the node identity the policies were given came from.
        node: NodeSource,
    },
}

/// Where a standalone dry run took this node's id from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSource {
    /// `--node-id`.
    Flag(String),
    /// The identity the plugin saved in its data dir.
    Saved {
        /// The node id.
        id: String,
        /// The node name.
        name: String,
        /// The file.
        file: PathBuf,
    },
    /// Neither: node labels are inconclusive.
    Unknown {
        /// The file that was looked for.
        file: PathBuf,
        /// Why it was not used (absent, or what is wrong with it).
        why: String,
    },
}

impl NodeSource {
    /// The header's sentence about the node.
    fn describe(&self) -> String {
        match self {
            Self::Flag(id) => format!("node id {id} (from --node-id)"),
            Self::Saved { id, file, .. } => {
                format!("node id {id} (saved by the plugin in {})", file.display())
            }
            Self::Unknown { file, why } => format!(
                "node id unknown ({} {why}; give --node-id): containers labelled with a \
                 node id are reported unknown",
                file.display()
            ),
        }
    }
}

/// One sweep's result as the command prints it.
#[derive(Debug, Clone)]
pub struct Output {
    /// Where it ran.
    pub origin: Origin,
    /// The sweep.
    pub answer: SweepAnswer,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    source: &'static str,
    socket: String,
    tracked_set: &'static str,
    note: String,
    dry_run: bool,
    report_only: bool,
    status: &'a str,
    error: Cow<'a, str>,
    ownership_digest: &'a str,
    kill_digest: &'a str,
    listed: usize,
    skipped_tracked: usize,
    skipped_young: usize,
    policy_failures: u32,
    cap_reached: bool,
    containers: Vec<JsonContainer<'a>>,
}

#[derive(Serialize)]
struct JsonContainer<'a> {
    id: &'a str,
    name: Cow<'a, str>,
    image: Cow<'a, str>,
    created_ms: i64,
    age_seconds: u64,
    ownership: &'static str,
    alloc_id: &'a str,
    ownership_reason: Cow<'a, str>,
    action: &'static str,
    action_detail: String,
    action_reason: Cow<'a, str>,
    reason: String,
    outcome: &'static str,
    outcome_detail: Cow<'a, str>,
}

/// What a skipped sweep shows: nothing listed, nothing decided.
static NOT_RUN: std::sync::LazyLock<SweepReport> = std::sync::LazyLock::new(SweepReport::not_run);

impl Output {
    /// A result to print.
    pub fn new(origin: Origin, answer: SweepAnswer) -> Self {
        Self { origin, answer }
    }

    /// The report, or an empty one when the sweep did not run.
    fn report(&self) -> &SweepReport {
        self.answer.report().unwrap_or(&NOT_RUN)
    }

    /// Success when completed; failed when the sweep failed, was skipped, or a container's
    /// decision or action failed.
    pub fn status(&self) -> Status {
        let r = self.report();
        let failures = r.policy_failures > 0
            || r.decisions.iter().any(|d| {
                matches!(
                    d.outcome,
                    Outcome::Failed(_)
                        | Outcome::PolicyFailed(_)
                        | Outcome::InspectFailed(_)
                        | Outcome::AuditFailed(_)
                )
            });
        if self.answer.status() == "completed" && !failures {
            Status::Success
        } else {
            Status::Failed
        }
    }

    /// The header: where the sweep ran, with which tracked set, and whether anything could be
    /// acted on.
    pub fn note(&self) -> String {
        let r = self.report();
        match &self.origin {
            Origin::Plugin { socket } => {
                let what = if self.answer.dry_run {
                    "dry run: nothing was acted on"
                } else if self.answer.report_only() {
                    "real sweep, but the plugin only reports (gc dry_run or audit mode): \
                     nothing was acted on"
                } else {
                    "real sweep: actions were carried out under the plugin's mode and caps"
                };
                format!(
                    "sweep run by the dockhand plugin on {} with its tracked set \
                     ({} tracked containers skipped); {what}",
                    socket.display(),
                    r.skipped_tracked
                )
            }
            Origin::Standalone { socket, node } => format!(
                "standalone dry run: no dockhand plugin answers on {}, so there is no tracked \
                 set and every container is treated as untracked (containers of running \
                 tasks are listed as candidates); {}; nothing was acted on",
                socket.display(),
                node.describe()
            ),
        }
    }

    /// Prints the header, the table and a summary.
    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let r = self.report();
        writeln!(out, "# {}", self.note())?;
        writeln!(
            out,
            "# policies: ownership {} kill {}",
            short(&r.ownership_digest),
            short(&r.kill_digest)
        )?;
        let status = self.answer.status();
        if status != "completed" {
            writeln!(out, "# sweep {status}: {}", escape(self.answer.error()))?;
        }
        let mut table = Table::new(["CONTAINER", "IMAGE", "AGE", "OWNERSHIP", "ACTION", "REASON"]);
        for d in &r.decisions {
            table.row(table_row(d, r.started_ms));
        }
        write!(out, "{}", table.render())?;
        writeln!(
            out,
            "{} listed, {} tracked, {} within grace, {} candidates{}",
            r.listed,
            r.skipped_tracked,
            r.skipped_young,
            r.decisions.len(),
            if r.cap_reached {
                ", per-sweep action cap reached"
            } else {
                ""
            }
        )
    }

    /// Prints one JSON object (see the module docs).
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        let r = self.report();
        let (source, socket, tracked_set) = match &self.origin {
            Origin::Plugin { socket } => ("plugin", socket, "plugin"),
            Origin::Standalone { socket, .. } => ("standalone", socket, "none"),
        };
        let json = JsonOutput {
            source,
            socket: socket.display().to_string(),
            tracked_set,
            note: self.note(),
            dry_run: self.answer.dry_run,
            report_only: self.answer.report_only(),
            status: self.answer.status(),
            error: escape(self.answer.error()),
            ownership_digest: &r.ownership_digest,
            kill_digest: &r.kill_digest,
            listed: r.listed,
            skipped_tracked: r.skipped_tracked,
            skipped_young: r.skipped_young,
            policy_failures: r.policy_failures,
            cap_reached: r.cap_reached,
            containers: r
                .decisions
                .iter()
                .map(|d| JsonContainer {
                    id: &d.id,
                    name: escape(&d.name),
                    image: escape(&d.image),
                    created_ms: d.created_ms,
                    age_seconds: d.age_seconds(r.started_ms),
                    ownership: d
                        .verdict
                        .as_ref()
                        .map_or("", |v| ownership_name(&v.ownership)),
                    alloc_id: alloc_id(d),
                    ownership_reason: escape(ownership_reason(d)),
                    action: d.action.as_ref().map_or("", |a| action_name(&a.kind)),
                    action_detail: d.action.as_ref().map(action_label).unwrap_or_default(),
                    action_reason: escape(action_reason(d)),
                    reason: reason(d),
                    outcome: d.outcome.label(),
                    outcome_detail: escape(d.outcome.detail().unwrap_or_default()),
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut *out, &json).map_err(io::Error::other)?;
        writeln!(out)
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn alloc_id(d: &Decision) -> &str {
    match d.verdict.as_ref().map(|v| &v.ownership) {
        Some(Ownership::Owned { alloc_id }) => alloc_id,
        _ => "",
    }
}

fn ownership_reason(d: &Decision) -> &str {
    d.verdict.as_ref().map_or("", |v| v.reason.as_str())
}

fn action_reason(d: &Decision) -> &str {
    d.action.as_ref().map_or("", |a| a.reason.as_str())
}

/// The ownership reason, the action reason and a failure's detail, joined and escaped.
fn reason(d: &Decision) -> String {
    let joined = [
        ownership_reason(d),
        action_reason(d),
        d.outcome.detail().unwrap_or_default(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("; ");
    escape(&joined).into_owned()
}

fn table_row(d: &Decision, started_ms: i64) -> [String; 6] {
    let container = if d.name.is_empty() {
        short(&d.id).to_owned()
    } else {
        format!("{} ({})", d.name, short(&d.id))
    };
    let ownership = match (&d.verdict, alloc_id(d)) {
        (None, _) => "-".to_owned(),
        (Some(v), "") => ownership_name(&v.ownership).to_owned(),
        (Some(v), alloc) => format!("{}({alloc})", ownership_name(&v.ownership)),
    };
    let action = match &d.action {
        None => d.outcome.label().to_owned(),
        Some(a) => format!("{} [{}]", action_label(a), d.outcome.label()),
    };
    [
        container,
        d.image.clone(),
        format_age(d.age_seconds(started_ms)),
        ownership,
        action,
        reason(d),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admin::SweepOutcome;
    use crate::reconcile::SweepStatus;

    fn output(origin: Origin, outcome: Outcome) -> Output {
        Output::new(
            origin,
            SweepAnswer {
                dry_run: true,
                outcome: SweepOutcome::Ran(SweepReport {
                    started_ms: 1_000_000,
                    duration: Duration::from_millis(5),
                    report_only: true,
                    status: SweepStatus::Completed,
                    listed: 2,
                    skipped_tracked: 1,
                    skipped_young: 0,
                    ownership_digest: "a".repeat(64),
                    kill_digest: "b".repeat(64),
                    policy_failures: 0,
                    cap_reached: false,
                    warned: false,
                    decisions: vec![Decision::stop_of_owned_orphan(outcome)],
                }),
            },
        )
    }

    fn decisions(out: &mut Output) -> &mut Vec<Decision> {
        match &mut out.answer.outcome {
            SweepOutcome::Ran(report) => &mut report.decisions,
            SweepOutcome::Skipped { .. } => panic!("a report"),
        }
    }

    #[test]
    fn the_standalone_table_says_there_is_no_tracked_set() {
        let out = output(
            Origin::Standalone {
                socket: "/run/x.sock".into(),
                node: NodeSource::Flag("n-1".into()),
            },
            Outcome::WouldDo,
        );
        let mut text = Vec::new();
        out.write_table(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# standalone dry run"), "{text}");
        assert!(lines[0].contains("every container is treated as untracked"));
        assert!(lines[0].contains("/run/x.sock"));
        assert!(
            lines[0].contains("; node id n-1 (from --node-id); "),
            "{text}"
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["CONTAINER", "IMAGE", "AGE", "OWNERSHIP", "ACTION", "REASON"]
        );
        assert!(lines[3].starts_with("web-1 (0123456789ab)"), "{text}");
        assert!(lines[3].contains("2m5s"), "{text}");
        assert!(lines[3].contains("owned(a1)"), "{text}");
        assert!(
            lines[3].contains("stop(SIGTERM,30s)+remove [would-do]"),
            "{text}"
        );
        assert!(lines[3].ends_with("alloc_id label; orphan"), "{text}");
        assert_eq!(
            lines[4], "2 listed, 1 tracked, 0 within grace, 1 candidates",
            "{text}"
        );
        assert_eq!(out.status(), Status::Success);
    }

    #[test]
    fn the_standalone_header_says_where_the_node_id_came_from() {
        let note = |node: NodeSource| {
            output(
                Origin::Standalone {
                    socket: "/run/x.sock".into(),
                    node,
                },
                Outcome::WouldDo,
            )
            .note()
        };
        assert!(
            note(NodeSource::Saved {
                id: "n-2".into(),
                name: "client-2".into(),
                file: "/var/lib/dockhand/node.json".into(),
            })
            .contains("; node id n-2 (saved by the plugin in /var/lib/dockhand/node.json); ")
        );
        let unknown = note(NodeSource::Unknown {
            file: "/d/node.json".into(),
            why: "does not exist".into(),
        });
        assert!(
            unknown.contains(
                "; node id unknown (/d/node.json does not exist; give --node-id): containers \
                 labelled with a node id are reported unknown; "
            ),
            "{unknown}"
        );
    }

    #[test]
    fn json_carries_the_header_and_one_object_per_container() {
        let out = output(
            Origin::Plugin {
                socket: "/run/p.sock".into(),
            },
            Outcome::Failed("daemon said no".into()),
        );
        let mut text = Vec::new();
        out.write_json(&mut text).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["source"], "plugin");
        assert_eq!(v["tracked_set"], "plugin");
        assert_eq!(v["skipped_tracked"], 1);
        let c = &v["containers"][0];
        assert_eq!(c["id"], "0123456789abcdef");
        assert_eq!(c["name"], "web-1");
        assert_eq!(c["age_seconds"], 125);
        assert_eq!(c["ownership"], "owned");
        assert_eq!(c["alloc_id"], "a1");
        assert_eq!(c["action"], "stop");
        assert_eq!(c["action_detail"], "stop(SIGTERM,30s)+remove");
        assert_eq!(c["outcome"], "failed");
        assert_eq!(c["outcome_detail"], "daemon said no");
        assert_eq!(c["reason"], "alloc_id label; orphan; daemon said no");
        assert_eq!(
            out.status(),
            Status::Failed,
            "a failed action makes the run partial"
        );
    }

    #[test]
    fn a_skipped_sweep_is_said_in_the_header_and_exits_1() {
        let out = Output::new(
            Origin::Plugin {
                socket: "/run/p.sock".into(),
            },
            SweepAnswer {
                dry_run: false,
                outcome: SweepOutcome::Skipped {
                    status: "skipped-docker-unhealthy",
                    message: "sweep skipped: docker is unhealthy".into(),
                },
            },
        );
        let mut text = Vec::new();
        out.write_table(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("# sweep skipped-docker-unhealthy: sweep skipped: docker is unhealthy"),
            "{text}"
        );
        assert_eq!(out.status(), Status::Failed);
    }

    #[test]
    fn format_characters_in_names_and_reasons_are_escaped_in_the_table_and_json() {
        let mut d = Decision::stop_of_owned_orphan(Outcome::WouldDo);
        d.name = "web\u{202e}exe.txt".into();
        d.image = "busy\u{200b}box".into();
        if let Some(v) = &mut d.verdict {
            v.reason = "\u{2066}isolated\u{2069} \u{2067}rtl\u{2068}".into();
        }
        if let Some(a) = &mut d.action {
            a.reason = "bom\u{feff}".into();
        }
        let mut out = output(
            Origin::Plugin {
                socket: "/run/p.sock".into(),
            },
            Outcome::WouldDo,
        );
        *decisions(&mut out) = vec![d];
        let mut text = Vec::new();
        out.write_table(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.lines()
                .all(|l| !l.chars().any(orphan_policy::display::needs_escape)),
            "{text:?}"
        );
        assert!(
            text.contains("web\\u{202e}exe.txt (0123456789ab)"),
            "{text}"
        );
        assert!(text.contains("busy\\u{200b}box"), "{text}");
        assert!(
            text.contains("\\u{2066}isolated\\u{2069} \\u{2067}rtl\\u{2068}; bom\\u{feff}"),
            "{text}"
        );
        let mut json = Vec::new();
        out.write_json(&mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let c = &v["containers"][0];
        assert_eq!(c["name"], "web\\u{202e}exe.txt");
        assert_eq!(c["image"], "busy\\u{200b}box");
        assert_eq!(c["action_reason"], "bom\\u{feff}");
    }
}
