//! `dockhand record`: save the live Docker snapshot as a policy-test fixture.
//!
//! The fixture holds exactly what a sweep would hand the policies — the context and one
//! snapshot per container, with the environment filled in from `inspect` — so a policy's
//! decisions on this host can be replayed offline with `dockhand policy test`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orphan_policy::{EvalContext, NodeInfo};

use super::{CommandResult, Failure, Status};
use crate::cli::policy::fixtures::Fixture;
use crate::config::duration::parse_go_duration;
use crate::docker::{BollardDocker, ContainerFilter, DockerApi, DockerConnection};
use crate::reconcile::{snapshot_from_summary, with_inspected_env};

/// Longest a single Docker call may take while recording.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `dockhand record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Where to write the fixture (`-` for stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Docker endpoint; defaults to `DOCKER_HOST` or the local socket.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Only containers carrying this label (`key` or `key=value`).
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Stopped containers too (the reconciler only ever sees running ones).
    #[arg(long)]
    pub all: bool,
    /// Creation grace written into the fixture's context (Go duration).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub creation_grace: String,
    /// This node's Nomad node id, written into the context.
    #[arg(long, default_value = "", value_name = "ID")]
    pub node_id: String,
    /// This node's Nomad node name.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub node_name: String,
    /// This node's datacenter.
    #[arg(long, default_value = "", value_name = "DC")]
    pub datacenter: String,
    /// Driver name written into the context.
    #[arg(long, default_value = "dockhand", value_name = "NAME")]
    pub driver_name: String,
}

impl RecordArgs {
    /// Record once; exit status 2 on any failure (nothing is written then).
    pub async fn execute(&self) -> CommandResult {
        let count = self
            .run()
            .await
            .map_err(|message| Failure::unusable("dockhand record", message))?;
        eprintln!("recorded {count} containers");
        Ok(Status::Success)
    }

    async fn run(&self) -> Result<usize, String> {
        let grace = parse_go_duration(&self.creation_grace)
            .map_err(|e| format!("--creation-grace: {e}"))?;
        let docker: Arc<dyn DockerApi> = Arc::new(
            BollardDocker::new(DockerConnection {
                endpoint: self.endpoint.clone(),
                ..DockerConnection::default()
            })
            .map_err(|e| format!("cannot set up the Docker client: {e}"))?,
        );
        let mut filter = if self.all {
            ContainerFilter::all()
        } else {
            ContainerFilter::running()
        };
        if let Some(label) = &self.label {
            filter = filter.with_label(label.clone());
        }
        let listed = tokio::time::timeout(CALL_TIMEOUT, docker.list_containers(&filter))
            .await
            .map_err(|_| "listing containers timed out".to_owned())?
            .map_err(|e| format!("listing containers failed: {e}"))?;
        let mut snapshots = Vec::with_capacity(listed.len());
        for summary in &listed {
            let Some(snapshot) = snapshot_from_summary(summary) else {
                continue;
            };
            let inspected =
                tokio::time::timeout(CALL_TIMEOUT, docker.inspect_container(&snapshot.id)).await;
            match inspected {
                Ok(Ok(inspected)) => snapshots.push(with_inspected_env(snapshot, &inspected)),
                // Gone since the listing: it would not be swept either.
                Ok(Err(e)) if e.is_not_found() => {}
                Ok(Err(e)) => return Err(format!("inspecting {} failed: {e}", snapshot.id)),
                Err(_) => return Err(format!("inspecting {} timed out", snapshot.id)),
            }
        }
        let ctx = EvalContext {
            now_ms: crate::reconcile::now_ms(),
            node: NodeInfo {
                id: self.node_id.clone(),
                name: self.node_name.clone(),
                datacenter: self.datacenter.clone(),
            },
            driver_name: self.driver_name.clone(),
            creation_grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        };
        let fixture = Fixture::from_snapshots(&ctx, &snapshots);
        let json = serde_json::to_string_pretty(&fixture)
            .map_err(|e| format!("cannot encode the fixture: {e}"))?;
        write_output(&self.output, &json)?;
        Ok(snapshots.len())
    }
}

/// Writes `json` to `path` atomically (temp file in the same directory, then rename), or to
/// stdout for `-`.
fn write_output(path: &Path, json: &str) -> Result<(), String> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return writeln!(out, "{json}").map_err(|e| format!("cannot write to stdout: {e}"));
    }
    crate::atomic_file::write_atomically(path, format!("{json}\n").as_bytes())
        .map_err(|e| nomad_plugin::error_chain(&e))
}
