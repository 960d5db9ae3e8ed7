//! Containers, policies and settings shared by the reconciler and wedged-daemon tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dockhand::config::PolicyMode;
use dockhand::docker::models::{ContainerCreateBody, HostConfig};
use dockhand::docker::{DockerApi, LogsRequest};
use dockhand::reconcile::{
    ActivePolicies, PoliciesInForce, ReconcileSettings, TrackedFn, TrackedSource,
};
use futures::StreamExt as _;
use orphan_policy::{EngineConfig, NodeInfo, PolicyEngine, PolicyKind};

use crate::support::{TEST_CASE_LABEL, TEST_IMAGE, TestContainers};

/// This node's id in every test.
pub const NODE: &str = "node-a";
/// The alloc-id label.
pub const ALLOC_LABEL: &str = "com.hashicorp.nomad.alloc_id";
/// The node-id label.
pub const NODE_LABEL: &str = "com.hashicorp.nomad.node_id";
/// dockhand's driver label, on every container dockhand creates.
pub const DRIVER_LABEL: &str = dockhand::tasks::LABEL_DRIVER;

/// The labels of a container dockhand created for `alloc` on `node`.
pub fn dockhand_labels(alloc: String, node: &str) -> Vec<(&'static str, String)> {
    vec![
        (ALLOC_LABEL, alloc),
        (NODE_LABEL, node.to_owned()),
        (DRIVER_LABEL, dockhand::tasks::DRIVER_LABEL_VALUE.to_owned()),
    ]
}
/// A long-running command that exits promptly on SIGTERM (busybox as PID 1 ignores it).
pub const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 0.2; done";

pub fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::new(EngineConfig::default()).expect("policy engine"))
}

/// The bundled default policies, in enforce mode.
pub fn default_policies() -> PoliciesInForce {
    default_policies_in(PolicyMode::Enforce)
}

/// The bundled default policies, both in `mode`.
pub fn default_policies_in(mode: PolicyMode) -> PoliciesInForce {
    let engine = engine();
    PoliciesInForce::new(ActivePolicies::from_config(
        engine
            .load_default(PolicyKind::Ownership)
            .expect("default ownership"),
        engine.load_default(PolicyKind::Kill).expect("default kill"),
        mode,
    ))
}

/// Settings for tests: enforce, grace `grace`, restricted to `guard`'s containers.
pub fn settings(guard: &TestContainers, grace: Duration) -> ReconcileSettings {
    ReconcileSettings {
        node: NodeInfo {
            id: NODE.to_owned(),
            name: "node-a".to_owned(),
            datacenter: "dc1".to_owned(),
        },
        docker_call_timeout: Duration::from_secs(20),
        label_filter: Some(format!("{TEST_CASE_LABEL}={}", guard.case())),
        ..ReconcileSettings::new(Duration::from_secs(3600), grace)
    }
}

/// A UUID-shaped id, distinct per (case, n).
pub fn uuid_for(case: &str, n: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(n);
    for b in case.bytes().chain(n.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let x = format!("{h:016x}{:016x}", h.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// What a test container looks like.
#[derive(Debug, Default)]
pub struct Kind<'a> {
    pub name: String,
    pub labels: Vec<(&'a str, String)>,
    pub env: Vec<String>,
    pub binds: Vec<String>,
    pub start: bool,
    /// Shell script to run instead of the default sleeper.
    pub script: Option<&'a str>,
}

/// Creates (and optionally starts) a container of `guard`'s case; returns its id.
pub async fn make(docker: &Arc<dyn DockerApi>, guard: &TestContainers, kind: Kind<'_>) -> String {
    let mut labels: BTreeMap<String, String> = guard.labels();
    labels.extend(kind.labels.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let body = ContainerCreateBody {
        image: Some(TEST_IMAGE.to_owned()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            kind.script.unwrap_or(SLEEPER).into(),
        ]),
        labels: Some(labels.into_iter().collect()),
        env: Some(kind.env),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            binds: Some(kind.binds),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let asked = std::time::Instant::now();
    let id = docker
        .create_container(&kind.name, body)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", kind.name));
    guard.track(id.clone());
    if kind.start {
        docker.start_container(&id).await.expect("start container");
        // Until the shell has installed its trap, PID 1 ignores SIGTERM and a stop would wait
        // out its whole grace.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A sweep rounds the listed creation second up: even with no grace, a container is a
    // candidate only once the second it was created in is over.
    let creation_second_over = asked + Duration::from_millis(1100);
    tokio::time::sleep(creation_second_over.saturating_duration_since(std::time::Instant::now()))
        .await;
    id
}

/// A running alloc container dockhand created on `node` for allocation `n` of `guard`'s case,
/// named `<case>-web-<alloc>`.
fn web_orphan(guard: &TestContainers, n: u32, node: &str) -> Kind<'static> {
    let alloc = uuid_for(guard.case(), n);
    Kind {
        name: format!("{}-web-{alloc}", guard.case()),
        labels: dockhand_labels(alloc, node),
        start: true,
        ..Kind::default()
    }
}

/// An orphaned alloc container dockhand created on `node`.
pub async fn labelled_orphan(
    docker: &Arc<dyn DockerApi>,
    guard: &TestContainers,
    n: u32,
    node: &str,
) -> String {
    make(docker, guard, web_orphan(guard, n, node)).await
}

/// A [`labelled_orphan`] whose PID 1 ignores SIGTERM ([`STUBBORN`]): stopping it waits out
/// its whole grace.
pub async fn stubborn_orphan(
    docker: &Arc<dyn DockerApi>,
    guard: &TestContainers,
    n: u32,
    node: &str,
) -> String {
    let kind = Kind {
        script: Some(STUBBORN),
        ..web_orphan(guard, n, node)
    };
    make(docker, guard, kind).await
}

/// A running container with nothing of Nomad about it, named `<case>-plain`.
pub async fn plain_container(docker: &Arc<dyn DockerApi>, guard: &TestContainers) -> String {
    make(
        docker,
        guard,
        Kind {
            name: format!("{}-plain", guard.case()),
            start: true,
            ..Kind::default()
        },
    )
    .await
}

/// Binds of the `/alloc`, `/local` and `/secrets` a Nomad task container has, from directories
/// `<dir>/<prefix><mount>` made here.
pub fn task_dir_binds(dir: &Path, prefix: &str) -> Vec<String> {
    ["alloc", "local", "secrets"]
        .iter()
        .map(|m| {
            let host = dir.join(format!("{prefix}{m}"));
            std::fs::create_dir_all(&host).expect("task dir");
            format!("{}:/{m}", host.display())
        })
        .collect()
}

/// An unlabelled pre-0.10 style alloc container: `/alloc`, `/local`, `/secrets` binds from
/// temp dirs and a `<name>-<uuid>` name.
pub async fn unlabelled_orphan(
    docker: &Arc<dyn DockerApi>,
    guard: &TestContainers,
    dir: &Path,
    n: u32,
) -> String {
    let alloc = uuid_for(guard.case(), n);
    let binds = task_dir_binds(dir, &format!("{n}-"));
    make(
        docker,
        guard,
        Kind {
            name: format!("{}-redis-{alloc}", guard.case()),
            env: vec![
                format!("NOMAD_ALLOC_ID={alloc}"),
                "NOMAD_GROUP_NAME=cache".into(),
            ],
            binds,
            start: true,
            ..Kind::default()
        },
    )
    .await
}

/// Whether `id` still exists, and whether it runs.
pub async fn state(docker: &Arc<dyn DockerApi>, id: &str) -> Option<bool> {
    match docker.inspect_container(id).await {
        Ok(c) => Some(c.state.and_then(|s| s.running).unwrap_or(false)),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("inspect {id}: {e}"),
    }
}

/// Asserts that every container of `ids` still runs; `why` ends the message.
pub async fn assert_still_running<S: AsRef<str>>(
    docker: &Arc<dyn DockerApi>,
    ids: &[S],
    why: &str,
) {
    for id in ids {
        let id = id.as_ref();
        assert_eq!(state(docker, id).await, Some(true), "{id}: {why}");
    }
}

pub fn no_tracked() -> Arc<dyn TrackedSource> {
    Arc::new(TrackedFn(BTreeSet::new))
}

/// PID 1 of a container that reports SIGTERM and keeps running, so a stop waits out its
/// whole grace (30 s with the default kill policy).
pub const STUBBORN: &str = "trap 'echo got-term' TERM; echo up; while true; do sleep 0.2; done";

/// What container `id`'s PID 1 has printed so far (empty if the logs cannot be read).
pub async fn output(docker: &Arc<dyn DockerApi>, id: &str) -> String {
    let request = LogsRequest {
        follow: false,
        since_unix: 0,
        timestamps: false,
    };
    let Ok(mut stream) = docker.logs(id, request).await else {
        return String::new();
    };
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    text
}
