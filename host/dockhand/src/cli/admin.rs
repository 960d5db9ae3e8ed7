//! The operator commands that talk to a running plugin over its admin socket:
//! `dockhand policy upload|list|activate|rollback|dry-run` and `dockhand status`.
//!
//! Each command connects to `--socket` (default: the config default
//! [`DOCKHAND_ADMIN_SOCKET`]), makes one call and prints a readable table. Failures are
//! printed as one line on stderr, worded for the operator (missing socket, refused access, a
//! refused policy and why), with exit code 1.

use std::path::PathBuf;

use crate::admin::client::{AdminClient, ClientError};
use crate::admin::{ActivePolicyMsg, PolicyKindMsg, PolicyModeMsg, StoredPolicyMsg, SweepOutcome};
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

fn stored_table(policies: &[StoredPolicyMsg]) -> String {
    let mut t = Table::new([
        "DIGEST", "KIND", "NAME", "VERSION", "UPLOADED", "SIZE", "STATE",
    ]);
    for p in policies {
        t.row([
            p.digest.clone(),
            kind_name(p.kind).to_owned(),
            p.name.clone(),
            p.version.clone(),
            time_name(p.uploaded_at),
            p.size.to_string(),
            p.state.clone(),
        ]);
    }
    t.render()
}

fn active_table(active: &[ActivePolicyMsg]) -> String {
    let mut t = Table::new([
        "KIND", "DIGEST", "NAME", "VERSION", "MODE", "SOURCE", "SINCE",
    ]);
    for a in active {
        t.row([
            kind_name(a.kind).to_owned(),
            a.digest.clone(),
            a.name.clone(),
            a.version.clone(),
            mode_name(a.mode).to_owned(),
            a.source.clone(),
            time_name(a.activated_at),
        ]);
    }
    t.render()
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
                stored_table(std::slice::from_ref(&p)),
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
            Ok(stored_table(&r.policies))
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
                active_table(std::slice::from_ref(&active)),
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
                active_table(std::slice::from_ref(&active)),
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
                active_table(&r.active)
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
