//! `dockhand sweep --dry-run`: what the reconciler would do with the local Docker right now.
//!
//! The CLI never acts on containers: only the plugin's reconciler does, under its configured
//! mode and caps. This command runs one dry-run sweep with the bundled default policies (or
//! the policy files given) and prints the decision table.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use orphan_policy::{EngineConfig, LoadedPolicy, NodeInfo, PolicyEngine, PolicyKind};

use crate::config::duration::parse_go_duration;
use crate::docker::{BollardDocker, DockerApi, DockerConnection};
use crate::reconcile::{
    ActivePolicies, PolicySlot, ReconcileSettings, SweepStatus, TrackedFn, dry_run_report,
};

/// Arguments of `dockhand sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Only report; required, because the CLI never acts (the plugin's reconciler does).
    #[arg(long, required = true)]
    pub dry_run: bool,
    /// Docker endpoint; defaults to `DOCKER_HOST` or the local socket.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Containers created more recently than this are left alone (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub creation_grace: Duration,
    /// Only consider containers carrying this label (`key` or `key=value`).
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// This node's Nomad node id (containers labelled with another node's id are not ours).
    #[arg(long, default_value = "", value_name = "ID")]
    pub node_id: String,
    /// This node's Nomad node name.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub node_name: String,
    /// This node's datacenter.
    #[arg(long, default_value = "", value_name = "DC")]
    pub datacenter: String,
    /// Driver name passed to the policies.
    #[arg(long, default_value = "dockhand", value_name = "NAME")]
    pub driver_name: String,
    /// Ownership policy component (default: the bundled one).
    #[arg(long, value_name = "FILE")]
    pub ownership_policy: Option<PathBuf>,
    /// Kill policy component (default: the bundled one).
    #[arg(long, value_name = "FILE")]
    pub kill_policy: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

impl SweepArgs {
    /// Run one dry-run sweep and print it; exit status 1 when the sweep could not complete.
    pub async fn execute(&self) -> ExitCode {
        match self.run().await {
            Ok(code) => code,
            Err(message) => {
                eprintln!("dockhand sweep: {message}");
                ExitCode::from(2)
            }
        }
    }

    async fn run(&self) -> Result<ExitCode, String> {
        let engine = PolicyEngine::new(EngineConfig::default())
            .map_err(|e| format!("cannot start the policy engine: {e}"))?;
        let _ticker = engine
            .start_epoch_ticker()
            .map_err(|e| format!("cannot start the policy engine's ticker: {e}"))?;
        let ownership = load_policy(
            &engine,
            PolicyKind::Ownership,
            self.ownership_policy.as_deref(),
        )?;
        let kill = load_policy(&engine, PolicyKind::Kill, self.kill_policy.as_deref())?;

        let connection = DockerConnection {
            endpoint: self.endpoint.clone(),
            ..DockerConnection::default()
        };
        let docker: Arc<dyn DockerApi> = Arc::new(
            BollardDocker::new(connection)
                .map_err(|e| format!("cannot set up the Docker client: {e}"))?,
        );

        let node = NodeInfo {
            id: self.node_id.clone(),
            name: self.node_name.clone(),
            datacenter: self.datacenter.clone(),
        };
        let mut settings = ReconcileSettings::new(Duration::from_secs(300), self.creation_grace);
        settings.node = node;
        settings.driver_name = self.driver_name.clone();
        settings.label_filter = self.label.clone();
        // A standalone CLI sees no plugin's task handles: every untracked container is a
        // candidate, which is what an operator wants to see before enabling the reconciler.
        let tracked = Arc::new(TrackedFn(BTreeSet::<String>::new));
        let report = dry_run_report(
            docker,
            tracked,
            PolicySlot::new(ActivePolicies { ownership, kill }),
            settings,
        )
        .await;

        let mut out = io::stdout().lock();
        let written = if self.json {
            serde_json::to_string_pretty(&report)
                .map_err(io::Error::other)
                .and_then(|s| writeln!(out, "{s}"))
        } else {
            write!(out, "{}", report.render_table())
        };
        written.map_err(|e| format!("cannot write the report: {e}"))?;
        Ok(match report.status {
            SweepStatus::Completed => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        })
    }
}

fn load_policy(
    engine: &PolicyEngine,
    kind: PolicyKind,
    path: Option<&Path>,
) -> Result<LoadedPolicy, String> {
    match path {
        None => engine
            .load_default(kind)
            .map_err(|e| format!("bundled {kind:?} policy failed to load: {e}")),
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read policy {}: {e}", path.display()))?;
            engine
                .load(kind, &bytes)
                .map_err(|e| format!("policy {} rejected: {e}", path.display()))
        }
    }
}
