//! Who may be claimed as owned, through the real plugin binary on the real daemon: every
//! container dockhand creates carries its driver label and its node's id, and the host accepts
//! an `owned` verdict only when the container bears it out — so two Nomad clients sharing a
//! daemon, Nomad's builtin driver beside dockhand, a policy that claims everything and plain
//! `docker run` containers never cost anyone a running container. Activations that name no
//! mode audit.
//!
//! Nomad's minimum `creation_grace` is 1m: the sweep tests wait for their containers to be a
//! minute old, then ask each plugin for a sweep through its admin API (the first periodic one
//! would come only after the 5m default period). Every sweep is fenced with `label_filter` to
//! the test's own containers.

use std::path::Path;
use std::time::{Duration, Instant};

use dockhand::admin::client::AdminClient;
use dockhand::admin::{PolicyKindMsg, PolicyModeMsg};
use dockhand::reconcile::{SweepReport, ownership_name};
use nomad_plugin::proto::drivers as pb;
use orphan_policy::guests;
use orphan_policy::store::sha256_hex;

use crate::harness::{Plugin, TaskDirs};
use crate::lifecycle::{start, task_config};
use crate::plugin_reconciler::{Private, admin_client, long_lived, started};
use crate::reconcile::{
    ALLOC_LABEL, Kind, NODE_LABEL, SLEEPER, labelled_orphan, make, plain_container, state,
    task_dir_binds, uuid_for,
};
use crate::reconcile_cli::dockhand;
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

/// Past the 1m creation grace, with a margin.
pub(crate) const AGED: Duration = Duration::from_secs(62);

/// The plugin config body: defaults but for the fence and Nomad's minimum grace; `extra` goes
/// inside `dockhand { }`.
pub(crate) fn config(private: &Private, case: &str, extra: &str) -> String {
    private.config(
        &format!(" label_filter = \"{TEST_CASE_LABEL}={case}\"\n{extra}"),
        "gc {\n dangling_containers {\n creation_grace = \"1m\"\n }\n}\n",
    )
}

/// Writes `<data_dir>/node.json`, as a plugin that ran a task of `node` before leaves it.
pub(crate) fn remember_node(private: &Private, node: &str) {
    let dir = private.data_dir();
    std::fs::create_dir_all(&dir).expect("data dir");
    let json = serde_json::json!({ "id": node, "name": node });
    std::fs::write(dir.join("node.json"), json.to_string()).expect("node.json");
}

/// A Nomad `TaskConfig` of `node` for allocation `alloc`.
pub(crate) fn node_task(
    guard: &TestContainers,
    dirs: &TaskDirs,
    name: &str,
    node: &str,
    alloc: &str,
) -> pb::TaskConfig {
    let mut task = task_config(guard, dirs, name, SLEEPER, Vec::new());
    task.alloc_id = alloc.to_owned();
    task.id = format!("{alloc}/{name}/5eed5eed");
    task.node_id = node.to_owned();
    task.node_name = node.to_owned();
    task
}

/// Starts `task` through `plugin`; returns its container id.
async fn start_task(plugin: &Plugin, guard: &TestContainers, task: pb::TaskConfig) -> String {
    let before = guard.remaining().await;
    let name = task.name.clone();
    start(&mut plugin.driver(), task)
        .await
        .unwrap_or_else(|e| panic!("StartTask {name}: {e}"));
    let created: Vec<String> = guard
        .remaining()
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(created.len(), 1, "{name}: one container per task");
    created[0].clone()
}

/// One real sweep through `admin`, once the plugin's start-up wait (a `creation_grace` from
/// its start, which the containers' own ageing may end a little earlier) allows one.
pub(crate) async fn sweep(admin: &mut AdminClient) -> SweepReport {
    let deadline = Instant::now() + Duration::from_secs(90);
    let answer = loop {
        let answer = admin.sweep(false).await.expect("Sweep");
        if answer.status() != "skipped-startup-wait" || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(answer.status(), "completed", "{answer:?}");
    let report = answer.report().expect("a report").clone();
    assert_eq!(report.policy_failures, 0, "{report:?}");
    report
}

/// `(ownership, ownership reason, outcome)` of container `id` in `report`.
pub(crate) fn decision(report: &SweepReport, id: &str) -> (String, String, String) {
    let d = report
        .decisions
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no decision about {id}: {report:?}"));
    let (ownership, reason) = d.verdict.as_ref().map_or(("", ""), |v| {
        (ownership_name(&v.ownership), v.reason.as_str())
    });
    (
        ownership.to_owned(),
        reason.to_owned(),
        d.outcome.label().to_owned(),
    )
}

/// Asserts that the host refused a claim on `id` and left it running.
async fn assert_refused(
    docker: &std::sync::Arc<dyn dockhand::docker::DockerApi>,
    report: &SweepReport,
    id: &str,
    why: &str,
) {
    let (ownership, reason, outcome) = decision(report, id);
    assert_eq!(
        (ownership.as_str(), outcome.as_str()),
        ("unknown", "no-action"),
        "{id}: {reason}"
    );
    assert!(
        reason.starts_with("ownership claim refused by the host") && reason.contains(why),
        "{id}: {reason}"
    );
    assert_eq!(state(docker, id).await, Some(true), "{id} must still run");
}

/// The audit record of container `id` in the sweep that started at `sweep_ms`.
fn audited(data_dir: &Path, sweep_ms: i64, id: &str) -> serde_json::Value {
    std::fs::read_to_string(data_dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .find(|l| l["sweep_ms"] == sweep_ms && l["container_id"] == id)
        .unwrap_or_else(|| panic!("no audit line about {id}"))
}

/// Waits until `created` is [`AGED`] ago.
pub(crate) async fn until_aged(created: Instant) {
    tokio::time::sleep(AGED.saturating_sub(created.elapsed())).await;
}

#[tokio::test]
async fn shared_daemon_with_default_config_each_client_reaps_only_its_own_orphan() {
    let Some(docker) = docker_with_image("claims_shared_daemon").await else {
        return;
    };
    // With the process id: two runs on one daemon never sweep each other's containers.
    let case = format!("claims_shared_daemon-{}", std::process::id());
    let guard = TestContainers::new(&docker, &case).await;
    let mut dirs = Vec::new();
    // Per client: (plugin, admin socket dir, its running task, its orphan).
    let mut clients = Vec::new();
    for (n, node) in [(1, "client-a"), (2, "client-b")] {
        let private = Private::new();
        let body = config(&private, &case, "");
        // An earlier process of this client started a task, then died with it untracked.
        let orphan = {
            let dead = long_lived(&body).await;
            let task_dirs = TaskDirs::create("orphan");
            let alloc = uuid_for(&case, 10 + n);
            let task = node_task(&guard, &task_dirs, "orphan", node, &alloc);
            let id = start_task(&dead, &guard, task).await;
            dirs.push(task_dirs);
            id
        };
        // The client's plugin now, with a task of its own.
        let plugin = started(&body).await;
        let task_dirs = TaskDirs::create("web");
        let alloc = uuid_for(&case, 20 + n);
        let task = node_task(&guard, &task_dirs, "web", node, &alloc);
        let web = start_task(&plugin, &guard, task).await;
        dirs.push(task_dirs);
        // Labelled as dockhand's, for this client, with default `extra_labels`.
        let labels = docker
            .inspect_container(&web)
            .await
            .expect("inspect task")
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default();
        assert_eq!(labels.get(NODE_LABEL).map(String::as_str), Some(node));
        assert!(
            labels.contains_key(dockhand::tasks::LABEL_DRIVER),
            "{labels:?}"
        );
        clients.push((plugin, private, web, orphan));
    }
    let created = Instant::now();
    until_aged(created).await;

    for (i, (plugin, private, web, orphan)) in clients.iter().enumerate() {
        let (_, _, other_web, other_orphan) = &clients[1 - i];
        let mut admin = admin_client(plugin, &private.socket()).await;
        let report = sweep(&mut admin).await;
        eprintln!("client {i}: {report:?}");
        // Its own task is tracked; its orphan is stopped and removed.
        assert!(report.decisions.iter().all(|d| &d.id != web), "{report:?}");
        assert_eq!(decision(&report, orphan).2, "done", "{report:?}");
        assert_eq!(state(&docker, orphan).await, None, "own orphan removed");
        // The other client's running task is left alone (its orphan is gone or left alone).
        let (ownership, reason, outcome) = decision(&report, other_web);
        assert_eq!(
            (ownership.as_str(), outcome.as_str()),
            ("not-nomad", "no-action"),
            "{reason}"
        );
        assert!(reason.contains("another node"), "{reason}");
        assert_eq!(state(&docker, other_web).await, Some(true));
        if i == 0 {
            assert_eq!(decision(&report, other_orphan).2, "no-action");
            assert_eq!(state(&docker, other_orphan).await, Some(true));
        }
        assert_eq!(state(&docker, web).await, Some(true));
    }
    for (_, _, web, _) in &clients {
        assert_eq!(state(&docker, web).await, Some(true), "tasks run on");
    }
    drop(clients);
    drop(dirs);
}

#[tokio::test]
async fn a_policy_claiming_everything_cannot_reap_plain_or_other_nodes_containers() {
    let case = "claims_claim_everything";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let node = "node-a";
    let created = Instant::now();
    let plain = plain_container(&docker, &guard).await;
    let other_node = labelled_orphan(&docker, &guard, 2, "node-b").await;
    let own = labelled_orphan(&docker, &guard, 3, node).await;

    let private = Private::new();
    remember_node(&private, node);
    let plugin = started(&config(&private, case, " mode = \"enforce\"\n")).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    // Uploaded and put in force in enforce mode, beside a kill policy that removes
    // everything it is handed.
    let mut digests = Vec::new();
    for (kind, name) in [
        (PolicyKindMsg::Ownership, "hostile-claim-everything"),
        (PolicyKindMsg::Kill, "hostile-remove-everything"),
    ] {
        let policy = guests::test_guest(name).expect("test guest");
        let digest = sha256_hex(&policy);
        admin
            .upload(kind, policy, Some(digest.clone()), None, None)
            .await
            .expect("upload");
        let activated = admin
            .activate(digest.clone(), PolicyModeMsg::Enforce)
            .await
            .expect("activate");
        assert!(activated.applied, "{activated:?}");
        digests.push(digest);
    }
    until_aged(created).await;

    let report = sweep(&mut admin).await;
    eprintln!("{report:?}");
    assert_eq!(
        [&report.ownership_digest, &report.kill_digest],
        [&digests[0], &digests[1]]
    );
    assert!(!report.report_only, "{report:?}");
    assert_refused(&docker, &report, &plain, "carries no such allocation id").await;
    assert_refused(&docker, &report, &other_node, "another node").await;
    // The audit line says so too.
    let line = audited(&private.data_dir(), report.started_ms, &plain);
    assert_eq!(line["verdict"], "unknown", "{line}");
    assert!(
        line["verdict_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("ownership claim refused by the host")
                && r.ends_with("the policy said: everything is mine")),
        "{line}"
    );
    // A claim the container bears out is carried out: the enforce-mode kill policy acts.
    let (ownership, _, outcome) = decision(&report, &own);
    assert_eq!((ownership.as_str(), outcome.as_str()), ("owned", "done"));
    assert_eq!(state(&docker, &own).await, None, "own orphan removed");
}

/// A container shaped exactly like one of the builtin driver's tasks on this node: Nomad's
/// labels (`extra_labels = ["*"]`, so even the node id), the name `<task>-<alloc id>`, the
/// `alloc`, `local` and `secrets` mounts and Nomad's task environment.
async fn builtin_driver_task(
    docker: &std::sync::Arc<dyn dockhand::docker::DockerApi>,
    guard: &TestContainers,
    dir: &Path,
    node: &str,
    alloc: &str,
) -> String {
    let binds = task_dir_binds(dir, "");
    make(
        docker,
        guard,
        Kind {
            name: format!("redis-{alloc}"),
            labels: vec![
                (ALLOC_LABEL, alloc.to_owned()),
                (NODE_LABEL, node.to_owned()),
                ("com.hashicorp.nomad.node_name", node.to_owned()),
                ("com.hashicorp.nomad.job_name", "cache".to_owned()),
                ("com.hashicorp.nomad.job_id", "cache".to_owned()),
                ("com.hashicorp.nomad.task_group_name", "cache".to_owned()),
                ("com.hashicorp.nomad.task_name", "redis".to_owned()),
                ("com.hashicorp.nomad.namespace", "default".to_owned()),
            ],
            env: vec![
                format!("NOMAD_ALLOC_ID={alloc}"),
                "NOMAD_TASK_NAME=redis".to_owned(),
                "NOMAD_GROUP_NAME=cache".to_owned(),
                "NOMAD_ALLOC_DIR=/alloc".to_owned(),
                "NOMAD_TASK_DIR=/local".to_owned(),
                "NOMAD_SECRETS_DIR=/secrets".to_owned(),
            ],
            binds,
            start: true,
            ..Kind::default()
        },
    )
    .await
}

#[tokio::test]
async fn builtin_driver_tasks_beside_dockhand_are_left_running_unless_the_daemon_is_exclusive() {
    let case = "claims_builtin_driver";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let node = "node-a";
    let dir = tempfile::tempdir().expect("tempdir");
    let created = Instant::now();
    let alloc = uuid_for(case, 1);
    let builtin = builtin_driver_task(&docker, &guard, dir.path(), node, &alloc).await;

    // The default configuration: left running.
    let shared = Private::new();
    remember_node(&shared, node);
    let plugin = started(&config(&shared, case, "")).await;
    let mut admin = admin_client(&plugin, &shared.socket()).await;
    until_aged(created).await;
    let report = sweep(&mut admin).await;
    eprintln!("default: {report:?}");
    assert!(!report.report_only, "{report:?}");
    assert_refused(&docker, &report, &builtin, "another Nomad driver").await;
    let line = audited(&shared.data_dir(), report.started_ms, &builtin);
    assert!(
        line["verdict_reason"]
            .as_str()
            .is_some_and(|r| r.contains("ownership claim refused by the host")),
        "{line}"
    );
    drop(plugin);

    // Once the operator says no other Nomad driver uses the daemon, it is an orphan like any.
    let exclusive = Private::new();
    remember_node(&exclusive, node);
    let plugin = started(&config(&exclusive, case, " daemon = \"exclusive\"\n")).await;
    let mut admin = admin_client(&plugin, &exclusive.socket()).await;
    let report = sweep(&mut admin).await;
    eprintln!("exclusive: {report:?}");
    let (ownership, _, outcome) = decision(&report, &builtin);
    assert_eq!((ownership.as_str(), outcome.as_str()), ("owned", "done"));
    assert_eq!(state(&docker, &builtin).await, None, "stopped and removed");
}

#[tokio::test]
async fn an_activation_that_names_no_mode_audits() {
    let private = Private::new();
    let plugin = started(&private.config("", "")).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    let socket = private.socket();
    let socket = socket.to_str().expect("utf-8 path");
    let mode_of = |status: &str, kind: &str| {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{kind} ")))
            .unwrap_or_else(|| panic!("no {kind} line: {status}"))
            .to_owned()
    };

    // The admin API: an unspecified mode is audit, and the reconciler audits.
    let policy = guests::test_guest("example-label-allowlist").expect("example policy");
    let digest = sha256_hex(&policy);
    admin
        .upload(PolicyKindMsg::Ownership, policy, None, None, None)
        .await
        .expect("upload");
    let activated = admin
        .activate(digest.clone(), PolicyModeMsg::Unspecified)
        .await
        .expect("activate");
    let active = activated.active.expect("active policy");
    assert_eq!(active.mode, PolicyModeMsg::Audit as i32, "{active:?}");
    let answer = admin.sweep(false).await.expect("sweep");
    assert!(!answer.dry_run && answer.report_only(), "{answer:?}");
    let (code, status, err) = dockhand(&["status", "--socket", socket]);
    assert_eq!(code, 0, "{err}");
    let line = mode_of(&status, "ownership");
    assert!(
        line.contains("audit") && !line.contains("enforce"),
        "{status}"
    );

    // The CLI: `policy activate` without `--mode` audits too; enforcing is asked for.
    let (code, out, err) = dockhand(&["policy", "activate", &digest, "--socket", socket]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, status, _) = dockhand(&["status", "--socket", socket]);
    let line = mode_of(&status, "ownership");
    assert!(
        line.contains("audit") && !line.contains("enforce"),
        "{status}"
    );
    let (code, out, err) = dockhand(&[
        "policy", "activate", &digest, "--mode", "enforce", "--socket", socket,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, status, _) = dockhand(&["status", "--socket", socket]);
    assert!(
        mode_of(&status, "ownership").contains("enforce"),
        "{status}"
    );
}
