//! `dockhand reconcile --once [--dry-run]`: one sweep of the local Docker, printed as a table or
//! as JSON.
//!
//! # With a running plugin
//!
//! When a plugin answers on the admin socket, the command asks it to sweep now (the admin API's
//! `Sweep`): the sweep uses the plugin's tracked set (its task and pause containers are never
//! candidates), the node identity it learnt, the policies in force and its configuration. A
//! real sweep (`--once` without `--dry-run`) runs under the plugin's mode, dry-run setting and
//! per-sweep cap, after any periodic sweep in progress; it is skipped while Docker is
//! unhealthy. Any sweep, dry run or not, is refused for `creation_grace` after the plugin
//! started (until RecoverTask has re-adopted the running tasks), and the answer says when it
//! becomes possible.
//!
//! # Without one
//!
//! Without a plugin there is no tracked set: the containers of live tasks cannot be told from
//! orphans. The command then evaluates a **dry run only**, with the configured (or bundled)
//! policies, treats every container as untracked and says so in its output. A real sweep is
//! refused: it could kill the running tasks of a live Nomad client. The node id handed to the
//! policies is `--node-id`, else the one a plugin with this configuration saved in
//! `<data_dir>/node.json`; the header says which, or that none is known.
//!
//! # Settings
//!
//! `--config` names a Nomad agent config holding the plugin stanza; it is read and validated
//! like `dockhand config validate` does. From it come the `gc.dangling_containers` settings
//! (creation grace, …), the Docker endpoint, the admin socket, the policy files with their
//! sha256 pins and the label filter. Without it the built-in defaults apply. When a plugin
//! answers, only the socket is taken from the file: the plugin sweeps with its own settings.
//!
//! Exit status: 0 when the sweep completed, 1 when it failed, was skipped or left failures
//! behind, 2 for usage, configuration and connection errors.

mod render;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nomad_plugin::error_chain;
use orphan_policy::{LoadedPolicy, NodeInfo, PolicyEngine, PolicyKind};

use super::{CommandResult, Failure};
use crate::admin::client::{AdminClient, ClientError};
use crate::admin::{SweepAnswer, SweepOutcome};
use crate::config::defaults::DOCKHAND_ADMIN_SOCKET;
use crate::config::hcl_file;
use crate::config::{PluginConfig, PolicyFile};
use crate::docker::{BollardDocker, DockerApi};
use crate::reconcile::{
    ActivePolicies, NODE_FILE_NAME, PoliciesInForce, ReconcileSettings, TrackedFn, dry_run_report,
    load_policy_file, policy_engine, saved_identity,
};

pub use render::{NodeSource, Origin, Output};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header, one row per candidate, a summary line.
    Table,
    /// One JSON object: the header fields and `containers`, one object per candidate.
    Json,
}

/// Arguments of `dockhand reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Run one sweep and exit (the only mode the CLI has; the plugin sweeps periodically).
    #[arg(long, required = true)]
    pub once: bool,
    /// Report what would be done; act on nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Nomad agent config with the driver's `plugin` stanza (defaults when absent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's Nomad node id, for a standalone dry run (containers labelled with another
    /// node's id are not ours). Without it, the id the plugin saved in its data dir
    /// (`<data_dir>/node.json`) is used. A running plugin uses the id it learnt from its tasks.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Only consider containers carrying this label (`key` or `key=value`) in a standalone dry
    /// run; overrides the config's `label_filter`.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The plugin's admin socket; overrides the config's `dockhand.admin.socket`.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Why the command could not produce a report (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The config file is unusable.
    #[error("config {}: {message}", .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A real sweep was asked for and no plugin answers.
    #[error(
        "no dockhand plugin answers on {}: without the plugin's tracked set a real sweep could \
         kill the running tasks of a live Nomad client; refusing. Run with --dry-run to see what \
         would be done, or start the plugin with its admin API enabled",
        .0.display()
    )]
    NoPluginForRealSweep(PathBuf),
    /// The plugin could not be asked.
    #[error(transparent)]
    Admin(#[from] ClientError),
    /// A policy could not be loaded.
    #[error("{0}")]
    Policy(String),
    /// The Docker client could not be set up.
    #[error("cannot set up the Docker client: {0}")]
    Docker(String),
    /// The output could not be written.
    #[error("cannot write the report")]
    Write(#[from] io::Error),
}

impl ReconcileArgs {
    /// Runs the command and prints its result.
    pub async fn execute(&self) -> CommandResult {
        match self.run(&mut io::stdout().lock()).await {
            Ok(output) => Ok(output.status()),
            Err(error) => Err(Failure::unusable("dockhand reconcile", error)),
        }
    }

    /// Runs the command, printing to `out`.
    pub async fn run(&self, out: &mut dyn Write) -> Result<Output, ReconcileError> {
        let (config, driver_name) = match &self.config {
            Some(path) => load_config(path)?,
            None => (PluginConfig::default(), "docker".to_owned()),
        };
        let socket = self
            .socket
            .clone()
            .or_else(|| {
                self.config
                    .is_some()
                    .then(|| config.dockhand.admin.socket.clone())
            })
            .unwrap_or_else(|| PathBuf::from(DOCKHAND_ADMIN_SOCKET));
        let output = match AdminClient::connect(&socket).await {
            Ok(mut client) => {
                if self.node_id.is_some() || self.label.is_some() {
                    eprintln!(
                        "dockhand reconcile: --node-id and --label are ignored: the running \
                         plugin sweeps with its own node identity and label filter"
                    );
                }
                let answer = client.sweep(self.dry_run).await?;
                Output::new(Origin::Plugin { socket }, answer)
            }
            Err(ClientError::SocketMissing(_) | ClientError::Connect { .. }) => {
                if !self.dry_run {
                    return Err(ReconcileError::NoPluginForRealSweep(socket));
                }
                let node = self.standalone_node(&config);
                let answer = self.standalone(&config, &driver_name, &node).await?;
                Output::new(Origin::Standalone { socket, node }, answer)
            }
            Err(other) => return Err(other.into()),
        };
        match self.format {
            Format::Table => output.write_table(out)?,
            Format::Json => output.write_json(out)?,
        }
        Ok(output)
    }

    /// This node for a standalone dry run: `--node-id`, else the identity a plugin with this
    /// configuration saved in its data dir, else unknown.
    fn standalone_node(&self, config: &PluginConfig) -> NodeSource {
        if let Some(id) = &self.node_id {
            return NodeSource::Flag(id.clone());
        }
        let file = config.dockhand.data_dir.join(NODE_FILE_NAME);
        match saved_identity(&file) {
            Ok(Some(node)) => NodeSource::Saved {
                id: node.id,
                name: node.name,
                file,
            },
            Ok(None) => NodeSource::Unknown {
                file,
                why: "does not exist".to_owned(),
            },
            Err(why) => NodeSource::Unknown {
                file,
                why: format!("is unusable: {why}"),
            },
        }
    }

    /// A dry run here, with no tracked set.
    async fn standalone(
        &self,
        config: &PluginConfig,
        driver_name: &str,
        node: &NodeSource,
    ) -> Result<SweepAnswer, ReconcileError> {
        let engine = policy_engine(config, orphan_policy::user_cache_dir()).map_err(|e| {
            ReconcileError::Policy(format!(
                "cannot start the policy engine: {}",
                error_chain(&e)
            ))
        })?;
        let policies = ActivePolicies::from_config(
            load_policy(
                &engine,
                PolicyKind::Ownership,
                config.dockhand.ownership_policy.as_ref(),
            )?,
            load_policy(
                &engine,
                PolicyKind::Kill,
                config.dockhand.kill_policy.as_ref(),
            )?,
            config.dockhand.mode,
        );
        let connection = crate::plugin::convert::docker_connection(config);
        let docker: Arc<dyn DockerApi> = Arc::new(
            BollardDocker::new(connection).map_err(|e| ReconcileError::Docker(e.to_string()))?,
        );
        let node = match node {
            NodeSource::Flag(id) => NodeInfo {
                id: id.clone(),
                ..NodeInfo::default()
            },
            NodeSource::Saved { id, name, .. } => NodeInfo {
                id: id.clone(),
                name: name.clone(),
                ..NodeInfo::default()
            },
            NodeSource::Unknown { .. } => NodeInfo::default(),
        };
        let mut settings = ReconcileSettings::from_config(config, node, driver_name);
        if let Some(label) = &self.label {
            settings.label_filter = Some(label.clone());
        }
        // No plugin, no task handles: every running container counts as untracked.
        let tracked = Arc::new(TrackedFn(std::collections::BTreeSet::<String>::new));
        let report =
            dry_run_report(docker, tracked, PoliciesInForce::new(policies), settings).await;
        Ok(SweepAnswer {
            dry_run: true,
            outcome: SweepOutcome::Ran(report),
        })
    }
}

/// The validated plugin config of the docker-compatible `plugin` stanza in `path`, and the
/// stanza's name (the driver name handed to the policies).
fn load_config(path: &Path) -> Result<(PluginConfig, String), ReconcileError> {
    let error = |message: String| ReconcileError::Config {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read it: {e}")))?;
    let parsed = hcl_file::parse_file(&text).map_err(|e| error(e.to_string()))?;
    let stanza = match parsed.plugins.as_slice() {
        [] => {
            return Err(error(
                "no docker-compatible plugin stanza (plugin \"docker\" or plugin \"dockhand\")"
                    .to_owned(),
            ));
        }
        [one] => one,
        several => several
            .iter()
            .find(|s| s.name != "docker")
            .ok_or_else(|| error("several plugin stanzas for the same driver".to_owned()))?,
    };
    let (config, findings) = crate::cli::config_validate::check_plugin(&stanza.config);
    match config {
        Some(config) => Ok((config, stanza.name.clone())),
        None => {
            let problems: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == nomad_plugin::hcldec::Severity::Error)
                .map(|f| match f.field.as_str() {
                    "" => f.message.clone(),
                    field => format!("{field}: {}", f.message),
                })
                .collect();
            Err(error(format!(
                "plugin {:?} ({}): {}",
                stanza.name,
                stanza.location,
                problems.join("; ")
            )))
        }
    }
}

/// The configured policy of `kind` (read, its sha256 pin checked and loaded as the plugin
/// does), or the bundled default.
fn load_policy(
    engine: &PolicyEngine,
    kind: PolicyKind,
    source: Option<&PolicyFile>,
) -> Result<LoadedPolicy, ReconcileError> {
    match source {
        Some(source) => load_policy_file(engine, kind, source)
            .map_err(|e| ReconcileError::Policy(error_chain(&e))),
        None => engine.load_default(kind).map_err(|e| {
            ReconcileError::Policy(format!("bundled {kind} policy: {}", error_chain(&e)))
        }),
    }
}
