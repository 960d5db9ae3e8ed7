//! Inputs of a policy call, as plain Rust values (not the WIT types).
//!
//! The reconciler builds these from Docker's answers; JSON fixtures and
//! audit lines serialise them with serde.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::Ownership;

/// Identity of the Nomad client node the driver serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Nomad node ID (a UUID).
    pub id: String,
    /// Nomad node name.
    pub name: String,
    /// Datacenter of the node.
    pub datacenter: String,
}

/// Inputs common to one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalContext {
    /// Current time, Unix epoch milliseconds.
    pub now_ms: i64,
    /// The node this driver instance serves.
    pub node: NodeInfo,
    /// Name the driver registered with Nomad.
    pub driver_name: String,
    /// Containers younger than this are never reaped by the host.
    pub creation_grace_ms: u64,
}

/// A mount as Docker reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: String,
    pub destination: String,
    /// `bind`, `volume`, `tmpfs`, ...
    #[serde(rename = "type")]
    pub kind: String,
}

/// Lifecycle state reported by Docker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// Anything else Docker reports.
    #[default]
    Unknown,
}

impl ContainerState {
    /// Parses Docker's `State` string (`running`, `exited`, ...); anything
    /// unrecognised is [`ContainerState::Unknown`].
    pub fn from_docker(state: &str) -> Self {
        match state.to_ascii_lowercase().as_str() {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }
}

/// A snapshot of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSnapshot {
    /// Full container ID.
    pub id: String,
    /// Names as Docker lists them, each with its leading `/`.
    pub names: Vec<String>,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Environment, `None` until the container has been inspected (listing
    /// does not return it). Kept as `(name, value)` pairs in Docker's order.
    pub env: Option<Vec<(String, String)>>,
    pub mounts: Vec<Mount>,
    /// Creation time, Unix epoch milliseconds.
    pub created_ms: i64,
    /// Last start time, Unix epoch milliseconds, if known.
    pub started_ms: Option<i64>,
    pub state: ContainerState,
    /// Exit code of the last run, if it has exited.
    pub exit_code: Option<i32>,
}

impl ContainerSnapshot {
    /// Sets `env` from Docker's `KEY=VALUE` strings (a string without `=`
    /// becomes a name with an empty value).
    pub fn set_env_from_docker<I, S>(&mut self, env: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let pairs = env
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref();
                match entry.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (entry.to_owned(), String::new()),
                }
            })
            .collect();
        self.env = Some(pairs);
    }

    /// Bytes of string data this snapshot puts into guest memory for a policy
    /// that reads every input (what [`crate::limits::MAX_BATCH_INPUT_BYTES`]
    /// bounds; a narrower input selection sends less).
    pub fn input_bytes(&self) -> usize {
        let pairs = |kv: &mut dyn Iterator<Item = (&String, &String)>| -> usize {
            kv.map(|(k, v)| k.len() + v.len()).sum()
        };
        self.id.len()
            + self.image.len()
            + self.names.iter().map(String::len).sum::<usize>()
            + pairs(&mut self.labels.iter())
            + self
                .env
                .as_ref()
                .map_or(0, |env| pairs(&mut env.iter().map(|(k, v)| (k, v))))
            + self
                .mounts
                .iter()
                .map(|m| m.source.len() + m.destination.len() + m.kind.len())
                .sum::<usize>()
    }
}

/// A container the host considers an orphan, passed to a kill policy.
///
/// Borrows the snapshot and verdict the ownership stage already holds, so
/// building a kill batch copies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Candidate<'a> {
    pub container: &'a ContainerSnapshot,
    /// The ownership verdict that made it a candidate.
    pub ownership: &'a Ownership,
}
