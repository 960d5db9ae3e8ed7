//! Shared fixtures: engines, guest bytes, snapshots.

use std::collections::BTreeMap;
use std::path::Path;

use orphan_policy::{
    ContainerSnapshot, ContainerState, EngineConfig, EvalContext, Mount, NodeInfo, PolicyEngine,
};

pub const NODE_ID: &str = "9d5741c1-3954-4b57-8a4c-d7a1e5a1a001";
pub const OTHER_NODE_ID: &str = "0b8c2f4e-7d19-4c3a-9e6b-5f0a2d7c8e02";
pub const ALLOC: &str = "72bfa388-024e-a903-45b8-2bc28b74ed69";

/// An engine (its epoch ticker runs for as long as it or a policy it loaded lives).
pub struct Harness {
    pub engine: PolicyEngine,
}

pub fn harness() -> Harness {
    harness_with(EngineConfig::default())
}

pub fn harness_with(config: EngineConfig) -> Harness {
    Harness {
        engine: PolicyEngine::new(config).expect("engine"),
    }
}

/// A component (or module) built by `build.rs`.
pub fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("OUT_DIR"))
        .join("guests")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn ctx() -> EvalContext {
    EvalContext {
        now_ms: 1_700_000_000_000,
        node: NodeInfo {
            id: NODE_ID.into(),
            name: "client-1".into(),
            datacenter: "dc1".into(),
        },
        driver_name: "dockhand".into(),
        creation_grace_ms: 300_000,
    }
}

pub fn container(id: &str, name: &str) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        names: vec![name.into()],
        image: "busybox:test".into(),
        labels: BTreeMap::new(),
        env: None,
        mounts: Vec::new(),
        created_ms: 1_600_000_000_000,
        started_ms: Some(1_600_000_000_500),
        state: ContainerState::Running,
        exit_code: None,
    }
}

pub fn with_label(mut c: ContainerSnapshot, key: &str, value: &str) -> ContainerSnapshot {
    c.labels.insert(key.into(), value.into());
    c
}

pub fn with_mounts(mut c: ContainerSnapshot, destinations: &[&str]) -> ContainerSnapshot {
    c.mounts = destinations
        .iter()
        .map(|d| Mount {
            source: format!("/var/nomad/alloc{d}"),
            destination: (*d).into(),
            kind: "bind".into(),
        })
        .collect();
    c
}

pub fn with_env(mut c: ContainerSnapshot, env: &[&str]) -> ContainerSnapshot {
    c.set_env_from_docker(env);
    c
}

/// An ordinary container of another project, for "normal batch" checks.
pub fn plain_batch() -> Vec<ContainerSnapshot> {
    vec![
        with_label(
            container("a1", &format!("/web-{ALLOC}")),
            "com.hashicorp.nomad.alloc_id",
            ALLOC,
        ),
        container("b2", "/serene_keller"),
    ]
}
