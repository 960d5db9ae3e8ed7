//! The JSON fixture format of `dockhand policy test`.
//!
//! A fixture is one recorded (or hand-written) reconciler input: the batch
//! context, the containers Docker listed, and optionally what the operator
//! expects a policy to answer for some of them. Every field has a default so
//! hand-written fixtures stay short; the shape mirrors what Docker's list and
//! inspect calls return, so a live snapshot can be written as a fixture
//! without loss (`serde_json::to_writer_pretty(&fixture)`).
//!
//! ```json
//! {
//!   "description": "labelled alloc container",
//!   "context": { "now_ms": 1764400000000, "node": { "id": "node-a" } },
//!   "containers": [
//!     { "id": "c1", "names": ["/web-0b5c…"], "labels": { "com.hashicorp.nomad.alloc_id": "0b5c…" },
//!       "env": ["NOMAD_ALLOC_ID=0b5c…"], "state": "running" }
//!   ],
//!   "expect": { "c1": { "ownership": "owned", "alloc_id": "0b5c…", "action": "stop" } }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orphan_policy::{ContainerSnapshot, ContainerState, EvalContext, Mount, NodeInfo, Ownership};
use serde::{Deserialize, Serialize};

/// Why a fixture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file or directory could not be read.
    #[error("{}: cannot read", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed or does not match the fixture format.
    #[error("{}: invalid fixture at `{json_path}`: {message}", .path.display())]
    Json {
        path: PathBuf,
        /// Where in the document the problem is (`containers[2].state`).
        json_path: String,
        message: String,
    },
    /// The document is well-formed but inconsistent.
    #[error("{}: invalid fixture at `{json_path}`: {message}", .path.display())]
    Invalid {
        path: PathBuf,
        json_path: String,
        message: String,
    },
    /// The fixtures directory holds no `*.json` file.
    #[error("{}: no *.json fixtures found", .path.display())]
    Empty { path: PathBuf },
}

/// One fixture file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fixture {
    /// Free text shown nowhere but useful to readers (what the case is).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The batch context; missing fields take [`FixtureContext`]'s defaults.
    pub context: FixtureContext,
    /// The containers, in Docker's listing order.
    pub containers: Vec<FixtureContainer>,
    /// Expectations by container ID. Containers without one are shown but
    /// not judged.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub expect: BTreeMap<String, Expectation>,
}

/// [`EvalContext`] with a default for every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixtureContext {
    /// Current time, Unix epoch milliseconds (default: 2025-11-29T00:00:00Z,
    /// fixed so results do not depend on when the test runs).
    pub now_ms: i64,
    /// The node the driver serves.
    pub node: FixtureNode,
    /// Default `dockhand`.
    pub driver_name: String,
    /// Default 0.
    pub creation_grace_ms: u64,
}

/// Fixed default clock of fixtures: 2025-11-29T00:00:00Z.
pub const DEFAULT_NOW_MS: i64 = 1_764_374_400_000;

impl Default for FixtureContext {
    fn default() -> Self {
        Self {
            now_ms: DEFAULT_NOW_MS,
            node: FixtureNode::default(),
            driver_name: "dockhand".to_owned(),
            creation_grace_ms: 0,
        }
    }
}

/// [`NodeInfo`] with empty defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixtureNode {
    pub id: String,
    pub name: String,
    pub datacenter: String,
}

/// One container, as Docker's list and inspect calls describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixtureContainer {
    /// Full container ID (required, unique within the fixture).
    pub id: String,
    /// Names with their leading `/`.
    pub names: Vec<String>,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Docker's `KEY=VALUE` strings from inspect; absent (or `null`) when
    /// the container was only listed. A policy answering `need-inspect` for
    /// a container without env stays `need-inspect`, as the reconciler would
    /// see it if the inspect failed.
    pub env: Option<Vec<String>>,
    pub mounts: Vec<FixtureMount>,
    /// Creation time, Unix epoch milliseconds.
    pub created_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// Docker's state (`running`, `exited`, ...); default `running`.
    pub state: FixtureState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// For kill policies: the ownership verdict that made this container a
    /// candidate (`{"kind": "owned", "alloc_id": "…"}`). When absent, the
    /// bundled default ownership policy classifies it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
}

/// A container state defaulting to `running` (what the reconciler sweeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FixtureState(pub ContainerState);

impl Default for FixtureState {
    fn default() -> Self {
        Self(ContainerState::Running)
    }
}

/// A mount; `type` defaults to `bind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixtureMount {
    pub source: String,
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Default for FixtureMount {
    fn default() -> Self {
        Self {
            source: String::new(),
            destination: String::new(),
            kind: "bind".to_owned(),
        }
    }
}

/// The verdict kind an ownership policy should give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedOwnership {
    Owned,
    NotNomad,
    Unknown,
    NeedInspect,
}

impl ExpectedOwnership {
    /// The kebab-case name used in fixtures and output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Owned => "owned",
            Self::NotNomad => "not-nomad",
            Self::Unknown => "unknown",
            Self::NeedInspect => "need-inspect",
        }
    }
}

/// The action kind a kill policy should give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedAction {
    Ignore,
    Stop,
    Kill,
    Remove,
}

impl ExpectedAction {
    /// The kebab-case name used in fixtures and output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ignore => "ignore",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Remove => "remove",
        }
    }
}

/// What an operator expects for one container. Only the fields that apply
/// to the policy under test are judged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expectation {
    /// Expected ownership verdict kind (ownership policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<ExpectedOwnership>,
    /// Expected allocation ID of an `owned` verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alloc_id: Option<String>,
    /// Expected action kind (kill policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ExpectedAction>,
}

impl FixtureContext {
    /// The policy input.
    pub fn to_eval_context(&self) -> EvalContext {
        EvalContext {
            now_ms: self.now_ms,
            node: NodeInfo {
                id: self.node.id.clone(),
                name: self.node.name.clone(),
                datacenter: self.node.datacenter.clone(),
            },
            driver_name: self.driver_name.clone(),
            creation_grace_ms: self.creation_grace_ms,
        }
    }
}

impl FixtureContainer {
    /// The policy input (env split at the first `=`, like the reconciler).
    pub fn to_snapshot(&self) -> ContainerSnapshot {
        let mut snapshot = ContainerSnapshot {
            id: self.id.clone(),
            names: self.names.clone(),
            image: self.image.clone(),
            labels: self.labels.clone(),
            env: None,
            mounts: self
                .mounts
                .iter()
                .map(|m| Mount {
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    kind: m.kind.clone(),
                })
                .collect(),
            created_ms: self.created_ms,
            started_ms: self.started_ms,
            state: self.state.0,
            exit_code: self.exit_code,
        };
        if let Some(env) = &self.env {
            snapshot.set_env_from_docker(env);
        }
        snapshot
    }

    /// A fixture entry from a snapshot (what `dockhand record` writes).
    pub fn from_snapshot(snapshot: &ContainerSnapshot) -> Self {
        Self {
            id: snapshot.id.clone(),
            names: snapshot.names.clone(),
            image: snapshot.image.clone(),
            labels: snapshot.labels.clone(),
            env: snapshot
                .env
                .as_ref()
                .map(|env| env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            mounts: snapshot
                .mounts
                .iter()
                .map(|m| FixtureMount {
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    kind: m.kind.clone(),
                })
                .collect(),
            created_ms: snapshot.created_ms,
            started_ms: snapshot.started_ms,
            state: FixtureState(snapshot.state),
            exit_code: snapshot.exit_code,
            ownership: None,
        }
    }
}

impl Fixture {
    /// A fixture without expectations from a live batch (what `dockhand
    /// record` writes with `serde_json::to_writer_pretty`).
    pub fn from_snapshots(ctx: &EvalContext, snapshots: &[ContainerSnapshot]) -> Self {
        Self {
            description: String::new(),
            context: FixtureContext {
                now_ms: ctx.now_ms,
                node: FixtureNode {
                    id: ctx.node.id.clone(),
                    name: ctx.node.name.clone(),
                    datacenter: ctx.node.datacenter.clone(),
                },
                driver_name: ctx.driver_name.clone(),
                creation_grace_ms: ctx.creation_grace_ms,
            },
            containers: snapshots
                .iter()
                .map(FixtureContainer::from_snapshot)
                .collect(),
            expect: BTreeMap::new(),
        }
    }

    /// Parses and checks a fixture; errors name the JSON path.
    pub fn parse(path: &Path, text: &str) -> Result<Self, FixtureError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let fixture: Fixture = serde_path_to_error::deserialize(de).map_err(|e| {
            let json_path = e.path().to_string();
            FixtureError::Json {
                path: path.to_owned(),
                json_path,
                message: e.into_inner().to_string(),
            }
        })?;
        fixture.check(path)?;
        Ok(fixture)
    }

    /// Reads and parses one fixture file.
    pub fn read(path: &Path) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn check(&self, path: &Path) -> Result<(), FixtureError> {
        let invalid = |json_path: String, message: String| FixtureError::Invalid {
            path: path.to_owned(),
            json_path,
            message,
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.containers.iter().enumerate() {
            if c.id.is_empty() {
                return Err(invalid(
                    format!("containers[{i}].id"),
                    "missing or empty container id".into(),
                ));
            }
            if !seen.insert(c.id.as_str()) {
                return Err(invalid(
                    format!("containers[{i}].id"),
                    format!("duplicate container id {:?}", c.id),
                ));
            }
        }
        if let Some(id) = self.expect.keys().find(|id| !seen.contains(id.as_str())) {
            return Err(invalid(
                format!("expect.{id}"),
                "no container with this id in `containers`".into(),
            ));
        }
        Ok(())
    }
}

/// The `*.json` files of `dir`, sorted by name (or `dir` itself if it is a
/// file).
pub fn fixture_files(dir: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let read = |source| FixtureError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(FixtureError::Empty {
            path: dir.to_owned(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_fixture_takes_defaults() {
        let f = Fixture::parse(Path::new("f.json"), r#"{"containers":[{"id":"c1"}]}"#).unwrap();
        assert_eq!(f.context.now_ms, DEFAULT_NOW_MS);
        assert_eq!(f.context.driver_name, "dockhand");
        let s = f.containers[0].to_snapshot();
        assert_eq!(s.state, ContainerState::Running);
        assert_eq!(s.env, None);
    }

    #[test]
    fn errors_name_the_json_path() {
        let e = Fixture::parse(
            Path::new("bad.json"),
            r#"{"containers":[{"id":"a"},{"id":"b","state":"sleeping"}]}"#,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("bad.json: invalid fixture at `containers[1].state`"),
            "{msg}"
        );

        let e = Fixture::parse(
            Path::new("x.json"),
            r#"{"containers":[{"id":"a"}],"expect":{"b":{}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`expect.b`"), "{e}");
    }

    #[test]
    fn snapshot_round_trips_through_a_fixture() {
        let mut s = ContainerSnapshot {
            id: "c".into(),
            names: vec!["/x".into()],
            state: ContainerState::Exited,
            exit_code: Some(3),
            ..Default::default()
        };
        s.set_env_from_docker(["A=1=2", "B"]);
        let ctx = EvalContext {
            now_ms: 42,
            driver_name: "dockhand".into(),
            ..Default::default()
        };
        let fixture = Fixture::from_snapshots(&ctx, std::slice::from_ref(&s));
        let json = serde_json::to_string_pretty(&fixture).unwrap();
        let back = Fixture::parse(Path::new("rec.json"), &json).unwrap();
        assert_eq!(back.context.to_eval_context(), ctx);
        assert_eq!(back.containers[0].to_snapshot(), s);
    }
}
