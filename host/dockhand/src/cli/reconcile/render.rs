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
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;

use orphan_policy::display::escape;
use serde::Serialize;

use crate::admin::{SweepDecisionMsg, SweepResponse};
use crate::cli::Status;
use crate::reconcile::format_age;

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
    pub response: SweepResponse,
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
    listed: u64,
    skipped_tracked: u64,
    skipped_young: u64,
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
    ownership: &'a str,
    alloc_id: &'a str,
    ownership_reason: Cow<'a, str>,
    action: &'a str,
    action_detail: &'a str,
    action_reason: Cow<'a, str>,
    reason: String,
    outcome: &'a str,
    outcome_detail: Cow<'a, str>,
}

impl Output {
    /// A result to print.
    pub fn new(origin: Origin, response: SweepResponse) -> Self {
        Self { origin, response }
    }

    /// Success when completed; failed when the sweep failed, was skipped, or a container's
    /// decision or action failed.
    pub fn status(&self) -> Status {
        let failures = self.response.policy_failures > 0
            || self.response.decisions.iter().any(|d| {
                matches!(
                    d.outcome.as_str(),
                    "failed" | "policy-failed" | "inspect-failed" | "audit-failed"
                )
            });
        if self.response.status == "completed" && !failures {
            Status::Success
        } else {
            Status::Failed
        }
    }

    /// The header: where the sweep ran, with which tracked set, and whether anything could be
    /// acted on.
    pub fn note(&self) -> String {
        let r = &self.response;
        match &self.origin {
            Origin::Plugin { socket } => {
                let what = if r.dry_run {
                    "dry run: nothing was acted on"
                } else if r.report_only {
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
        let r = &self.response;
        writeln!(out, "# {}", self.note())?;
        writeln!(
            out,
            "# policies: ownership {} kill {}",
            short(&r.ownership_digest),
            short(&r.kill_digest)
        )?;
        if r.status != "completed" {
            writeln!(out, "# sweep {}: {}", r.status, escape(&r.error))?;
        }
        let mut rows =
            vec![["CONTAINER", "IMAGE", "AGE", "OWNERSHIP", "ACTION", "REASON"].map(str::to_owned)];
        rows.extend(r.decisions.iter().map(table_row));
        write!(out, "{}", align(&rows))?;
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
        let r = &self.response;
        let (source, socket, tracked_set) = match &self.origin {
            Origin::Plugin { socket } => ("plugin", socket, "plugin"),
            Origin::Standalone { socket, .. } => ("standalone", socket, "none"),
        };
        let json = JsonOutput {
            source,
            socket: socket.display().to_string(),
            tracked_set,
            note: self.note(),
            dry_run: r.dry_run,
            report_only: r.report_only,
            status: &r.status,
            error: escape(&r.error),
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
                    id: &d.container_id,
                    name: escape(&d.name),
                    image: escape(&d.image),
                    created_ms: d.created_ms,
                    age_seconds: d.age_seconds,
                    ownership: &d.ownership,
                    alloc_id: &d.alloc_id,
                    ownership_reason: escape(&d.ownership_reason),
                    action: &d.action,
                    action_detail: &d.action_detail,
                    action_reason: escape(&d.action_reason),
                    reason: reason(d),
                    outcome: &d.outcome,
                    outcome_detail: escape(&d.outcome_detail),
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

/// The ownership reason, the action reason and a failure's detail, joined and escaped.
fn reason(d: &SweepDecisionMsg) -> String {
    let joined = [
        d.ownership_reason.as_str(),
        d.action_reason.as_str(),
        d.outcome_detail.as_str(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("; ");
    escape(&joined).into_owned()
}

fn table_row(d: &SweepDecisionMsg) -> [String; 6] {
    let container = if d.name.is_empty() {
        short(&d.container_id).to_owned()
    } else {
        format!("{} ({})", d.name, short(&d.container_id))
    };
    let ownership = match (d.ownership.as_str(), d.alloc_id.as_str()) {
        ("", _) => "-".to_owned(),
        (label, "") => label.to_owned(),
        (label, alloc) => format!("{label}({alloc})"),
    };
    let action = if d.action_detail.is_empty() {
        d.outcome.clone()
    } else {
        format!("{} [{}]", d.action_detail, d.outcome)
    };
    [
        container,
        d.image.clone(),
        format_age(d.age_seconds),
        ownership,
        action,
        reason(d),
    ]
}

/// The rows as aligned text; every cell is escaped (the plugin's answer carries daemon and
/// policy text).
fn align(rows: &[[String; 6]]) -> String {
    let rows: Vec<[String; 6]> = rows
        .iter()
        .map(|row| row.clone().map(|cell| escape(&cell).into_owned()))
        .collect();
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(outcome: &str) -> SweepDecisionMsg {
        SweepDecisionMsg {
            container_id: "0123456789abcdef".into(),
            name: "web-1".into(),
            image: "busybox".into(),
            age_seconds: 125,
            ownership: "owned".into(),
            alloc_id: "a1".into(),
            ownership_reason: "alloc_id label".into(),
            action: "stop".into(),
            action_detail: "stop(SIGTERM,30s)+remove".into(),
            action_reason: "orphan".into(),
            outcome: outcome.into(),
            ..SweepDecisionMsg::default()
        }
    }

    fn output(origin: Origin, outcome: &str) -> Output {
        Output::new(
            origin,
            SweepResponse {
                status: "completed".into(),
                dry_run: true,
                report_only: true,
                ownership_digest: "a".repeat(64),
                kill_digest: "b".repeat(64),
                listed: 2,
                skipped_tracked: 1,
                decisions: vec![decision(outcome)],
                ..SweepResponse::default()
            },
        )
    }

    #[test]
    fn the_standalone_table_says_there_is_no_tracked_set() {
        let out = output(
            Origin::Standalone {
                socket: "/run/x.sock".into(),
                node: NodeSource::Flag("n-1".into()),
            },
            "would-do",
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
                "would-do",
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
            "failed",
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
        assert_eq!(c["ownership"], "owned");
        assert_eq!(c["action"], "stop");
        assert_eq!(c["reason"], "alloc_id label; orphan");
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
            SweepResponse {
                status: "skipped-docker-unhealthy".into(),
                error: "sweep skipped: docker is unhealthy".into(),
                ..SweepResponse::default()
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
        let mut d = decision("would-do");
        d.name = "web\u{202e}exe.txt".into();
        d.image = "busy\u{200b}box".into();
        d.ownership_reason = "\u{2066}isolated\u{2069} \u{2067}rtl\u{2068}".into();
        d.action_reason = "bom\u{feff}".into();
        let mut out = output(
            Origin::Plugin {
                socket: "/run/p.sock".into(),
            },
            "would-do",
        );
        out.response.decisions = vec![d];
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
