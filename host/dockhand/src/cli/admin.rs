//! The operator commands that talk to a running plugin over its admin socket:
//! `dockhand policy upload|list|activate|rollback|dry-run` and `dockhand status`.
//!
//! Each command connects to `--socket` (default: the config default
//! [`DOCKHAND_ADMIN_SOCKET`]), makes one call and prints a readable table. Failures are
//! printed as one line on stderr, worded for the operator (missing socket, refused access, a
//! refused policy and why), with exit code 1.

use std::path::PathBuf;

use crate::admin::client::{AdminClient, ClientError};
use crate::admin::{
    ActivePolicyMsg, AnswerError, PolicyKindMsg, PolicyModeMsg, StoredPolicyMsg, SweepOutcome,
    active_origin, stored_state,
};
use crate::config::defaults::DOCKHAND_ADMIN_SOCKET;
use crate::reconcile::{MetricsSnapshot, SweepStatus};
use crate::table::Table;
use orphan_policy::display::escape;

use super::policy::check::KindArg;
use super::{CommandResult, Failure, Status};

/// The admin socket option shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The plugin's admin socket (`dockhand.admin.socket`).
    #[arg(long, value_name = "PATH", default_value = DOCKHAND_ADMIN_SOCKET)]
    pub socket: PathBuf,
}

impl KindArg {
    fn to_proto(self) -> PolicyKindMsg {
        match self {
            Self::Ownership => PolicyKindMsg::Ownership,
            Self::Kill => PolicyKindMsg::Kill,
        }
    }
}

/// A policy mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Log and count decisions, carry nothing out.
    Audit,
    /// Carry decisions out.
    Enforce,
}

/// Arguments of `dockhand policy upload`.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The policy component (.wasm).
    pub file: PathBuf,
    /// Which world it implements.
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Name for listings (default: the name the policy reports).
    #[arg(long)]
    pub name: Option<String>,
    /// Version for listings (default: the version the policy reports).
    #[arg(long = "version", value_name = "VERSION")]
    pub policy_version: Option<String>,
    /// Expected sha256 of the file; the upload is refused if it differs.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `dockhand policy list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `dockhand policy activate`.
#[derive(Debug, clap::Args)]
pub struct ActivateArgs {
    /// sha256 of a stored policy (see `dockhand policy list`).
    pub digest: String,
    /// Carry its decisions out (`enforce`) or only log them (`audit`, the default: enforcing
    /// is always explicit).
    #[arg(long, value_enum, default_value = "audit")]
    pub mode: ModeArg,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `dockhand policy rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Which policy to roll back.
    #[arg(long, value_enum)]
    pub kind: KindArg,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `dockhand policy dry-run`.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {
    /// The kind of `--digest` (checked).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Evaluate this stored policy in place of the active one of its kind.
    #[arg(long, value_name = "SHA256")]
    pub digest: Option<String>,
    /// Print the full report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `dockhand status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub socket: SocketArg,
}

fn fail(e: ClientError) -> Failure {
    Failure::new("dockhand", e, Status::Failed)
}

/// Connects, runs `call`, prints its output; errors become one line on stderr.
async fn run<F, Fut>(socket: &SocketArg, call: F) -> CommandResult
where
    F: FnOnce(AdminClient) -> Fut,
    Fut: std::future::Future<Output = Result<String, ClientError>>,
{
    let client = AdminClient::connect(&socket.socket).await.map_err(fail)?;
    let out = call(client).await.map_err(fail)?;
    print!("{out}");
    Ok(Status::Success)
}

fn kind_name(value: i32) -> &'static str {
    match PolicyKindMsg::try_from(value) {
        Ok(PolicyKindMsg::Ownership) => "ownership",
        Ok(PolicyKindMsg::Kill) => "kill",
        _ => "?",
    }
}

fn mode_name(value: i32) -> &'static str {
    match PolicyModeMsg::try_from(value) {
        Ok(PolicyModeMsg::Audit) => "audit",
        Ok(PolicyModeMsg::Enforce) => "enforce",
        _ => "?",
    }
}

fn time_name(unix_seconds: u64) -> String {
    if unix_seconds == 0 {
        return "-".to_owned();
    }
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix_seconds.to_string())
}

/// Where each row of a repeated answer field sits (`policies[0]`, `policies[1]`, …), for the
/// error about an unusable one.
fn each_at<'a, T>(field: &str, rows: &'a [T]) -> impl Iterator<Item = (String, &'a T)> {
    rows.iter()
        .enumerate()
        .map(move |(i, row)| (format!("{field}[{i}]"), row))
}

/// Stored policies, each with where it sits in the answer.
fn stored_table<'a>(
    policies: impl IntoIterator<Item = (String, &'a StoredPolicyMsg)>,
) -> Result<String, AnswerError> {
    let mut t = Table::new([
        "DIGEST", "KIND", "NAME", "VERSION", "UPLOADED", "SIZE", "STATE",
    ]);
    for (at, p) in policies {
        t.row([
            p.digest.clone(),
            kind_name(p.kind).to_owned(),
            p.name.clone(),
            p.version.clone(),
            time_name(p.uploaded_at),
            p.size.to_string(),
            stored_state(p, &at)?.to_string(),
        ]);
    }
    Ok(t.render())
}

/// Policies in force, each with where it sits in the answer.
fn active_table<'a>(
    active: impl IntoIterator<Item = (String, &'a ActivePolicyMsg)>,
) -> Result<String, AnswerError> {
    let mut t = Table::new([
        "KIND", "DIGEST", "NAME", "VERSION", "MODE", "SOURCE", "SINCE",
    ]);
    for (at, a) in active {
        t.row([
            kind_name(a.kind).to_owned(),
            a.digest.clone(),
            a.name.clone(),
            a.version.clone(),
            mode_name(a.mode).to_owned(),
            active_origin(a, &at)?.as_str().to_owned(),
            time_name(a.activated_at),
        ]);
    }
    Ok(t.render())
}

/// The counters, one row each, by name.
fn metrics_table(metrics: &MetricsSnapshot) -> String {
    let mut t = Table::new(["COUNTER", "VALUE"]);
    for (name, value) in metrics.by_name() {
        t.row([name.to_owned(), value.to_string()]);
    }
    t.render()
}

/// The `node:` line of `dockhand status`.
fn node_line(id: &str, name: &str) -> String {
    match (id, name) {
        ("", _) => {
            "not known yet (learnt from the first task the plugin starts or recovers)".to_owned()
        }
        (id, "") => id.to_owned(),
        (id, name) => format!("{id} ({name})"),
    }
}

fn applied_note(applied: bool) -> &'static str {
    if applied {
        "in force from the next sweep\n"
    } else {
        "stored; the reconciler is not running, so it applies from the next plugin start\n"
    }
}

impl UploadArgs {
    /// Runs the command.
    pub async fn execute(self) -> CommandResult {
        let bytes = std::fs::read(&self.file).map_err(|e| {
            Failure::new(
                format!("dockhand: {}: cannot read", self.file.display()),
                e,
                Status::Failed,
            )
        })?;
        let (kind, sha, name, version) = (
            self.kind.to_proto(),
            self.sha256,
            self.name,
            self.policy_version,
        );
        run(&self.socket, |mut c| async move {
            let r = c.upload(kind, bytes, sha, name, version).await?;
            let p = r.policy.unwrap_or_default();
            Ok(format!(
                "uploaded {}\n{}describe(): {} {} (contract {})\nreads: {}\nactivate with: dockhand policy activate {}\n",
                p.digest,
                stored_table([("policy".to_owned(), &p)])?,
                escape(&r.described_name),
                escape(&r.described_version),
                r.contract_version,
                escape(&r.reads),
                p.digest
            ))
        })
        .await
    }
}

impl ListArgs {
    /// Runs the command.
    pub async fn execute(self) -> CommandResult {
        run(&self.socket, |mut c| async move {
            let r = c.list().await?;
            if r.policies.is_empty() {
                return Ok("no policies stored\n".to_owned());
            }
            Ok(stored_table(each_at("policies", &r.policies))?)
        })
        .await
    }
}

impl ActivateArgs {
    /// Runs the command.
    pub async fn execute(self) -> CommandResult {
        let mode = match self.mode {
            ModeArg::Audit => PolicyModeMsg::Audit,
            ModeArg::Enforce => PolicyModeMsg::Enforce,
        };
        let digest = self.digest;
        run(&self.socket, |mut c| async move {
            let r = c.activate(digest, mode).await?;
            let active = r.active.unwrap_or_default();
            Ok(format!(
                "activated\n{}{}",
                active_table([("active".to_owned(), &active)])?,
                applied_note(r.applied)
            ))
        })
        .await
    }
}

impl RollbackArgs {
    /// Runs the command.
    pub async fn execute(self) -> CommandResult {
        let kind = self.kind.to_proto();
        run(&self.socket, |mut c| async move {
            let r = c.rollback(kind).await?;
            let active = r.active.unwrap_or_default();
            Ok(format!(
                "rolled back\n{}{}",
                active_table([("active".to_owned(), &active)])?,
                applied_note(r.applied)
            ))
        })
        .await
    }
}

impl DryRunArgs {
    /// Runs the command: a preview sweep of the plugin (see [`AdminClient::preview`]).
    pub async fn execute(self) -> CommandResult {
        let kind = self
            .kind
            .map_or(PolicyKindMsg::Unspecified, KindArg::to_proto);
        let (digest, json) = (self.digest, self.json);
        run(&self.socket, |mut c| async move {
            let answer = c.preview(kind, digest).await?;
            let report = match answer.outcome {
                SweepOutcome::Ran(report) => report,
                SweepOutcome::Skipped { status, message } => {
                    return Err(ClientError::Rpc(format!("{status}: {message}")));
                }
            };
            if json {
                let text = serde_json::to_string(&report)
                    .map_err(|e| ClientError::Rpc(format!("cannot print the report: {e}")))?;
                return Ok(format!("{text}\n"));
            }
            let mut out = format!(
                "dry run (nothing is done): ownership {} kill {}\n",
                report.ownership_digest, report.kill_digest
            );
            if let SweepStatus::ListFailed { error } = &report.status {
                out.push_str(&format!("listing containers failed: {}\n", escape(error)));
            }
            out.push_str(&report.render_table());
            Ok(out)
        })
        .await
    }
}

impl StatusArgs {
    /// Runs the command.
    pub async fn execute(self) -> CommandResult {
        run(&self.socket, |mut c| async move {
            let r = c.status().await?;
            let mut out = format!(
                "reconciler: {}\nlast successful sweep: {}\nnode: {}\npolicy compiles: {} \
                 started, {} discarded (cancelled uploads)\n\nactive policies:\n{}",
                if r.reconciler_running {
                    "running"
                } else {
                    "not running"
                },
                match r.metrics.as_ref().map_or(0, |m| m.last_success_ms) {
                    0 => "-".to_owned(),
                    ms => time_name(ms / 1000),
                },
                node_line(&r.node_id, &r.node_name),
                r.policy_compiles_started,
                r.policy_compiles_discarded,
                active_table(each_at("active", &r.active))?
            );
            for a in &r.active {
                out.push_str(&format!(
                    "{} policy reads: {}\n",
                    kind_name(a.kind),
                    a.reads
                ));
            }
            if let Some(metrics) = r.metrics {
                out.push_str("\nmetrics:\n");
                out.push_str(&metrics_table(&MetricsSnapshot::from(metrics)));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{PolicyOriginMsg, PolicyStateMsg};

    fn stored(state: PolicyStateMsg) -> StoredPolicyMsg {
        StoredPolicyMsg {
            digest: "d".into(),
            kind: PolicyKindMsg::Kill as i32,
            name: "n".into(),
            version: "v".into(),
            state: state as i32,
            ..StoredPolicyMsg::default()
        }
    }

    fn active(source: PolicyOriginMsg) -> ActivePolicyMsg {
        ActivePolicyMsg {
            kind: PolicyKindMsg::Ownership as i32,
            digest: "d".into(),
            name: "n".into(),
            version: "v".into(),
            mode: PolicyModeMsg::Audit as i32,
            source: source as i32,
            ..ActivePolicyMsg::default()
        }
    }

    /// The cell `from_end` columns before the last of each row under the header.
    fn column(table: &str, from_end: usize) -> Vec<&str> {
        table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().rev().nth(from_end).unwrap())
            .collect()
    }

    #[test]
    fn states_and_sources_print_as_the_words_operators_know() {
        let policies = [
            PolicyStateMsg::ActiveEnforce,
            PolicyStateMsg::ActiveAudit,
            PolicyStateMsg::Previous,
            PolicyStateMsg::Inactive,
        ]
        .map(stored);
        let table = stored_table(each_at("policies", &policies)).unwrap();
        assert_eq!(
            column(&table, 0),
            ["active-enforce", "active-audit", "previous", "inactive"],
            "{table}"
        );

        let in_force = [PolicyOriginMsg::Store, PolicyOriginMsg::Config].map(active);
        let table = active_table(each_at("active", &in_force)).unwrap();
        assert_eq!(column(&table, 1), ["store", "config"], "{table}");
    }

    #[test]
    fn an_unspecified_state_or_source_fails_the_command_naming_the_field() {
        let policies = [
            stored(PolicyStateMsg::Inactive),
            stored(PolicyStateMsg::Unspecified),
        ];
        let err = stored_table(each_at("policies", &policies)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unusable answer from the admin API: policies[1].state: unspecified"
        );

        let unspecified = active(PolicyOriginMsg::Unspecified);
        let err = active_table([("active".to_owned(), &unspecified)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unusable answer from the admin API: active.source: unspecified"
        );
    }
}
