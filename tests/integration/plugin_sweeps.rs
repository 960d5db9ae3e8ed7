//! A sweep of the real plugin binary racing the operator and Nomad: an activation in audit
//! mode arriving while an enforce-mode sweep is acting, and a StartTask adopting a container
//! by name while a sweep runs. The in-process versions (`reconcile::records`,
//! `restart::adopt`) pin the mechanisms; these pin them through the plugin's own wiring (the
//! admin API's mode switch, the task engine's tracked set as the reconciler reads it).
//!
//! Both sweep containers a minute old (Nomad's minimum `creation_grace`), fenced with
//! `label_filter` to the test's own, and ask for the sweep through the admin API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::admin::client::AdminClient;
use dockhand::admin::{PolicyKindMsg, PolicyModeMsg};
use dockhand::docker::DockerApi;
use dockhand::reconcile::Outcome;
use orphan_policy::{Ownership, PolicyKind, guests};

use crate::claims::{decision, node_task, remember_node, sweep, until_aged};
use crate::harness::TaskDirs;
use crate::lifecycle::{destroy, start};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::reconcile::{Kind, STUBBORN, dockhand_labels, make, state, uuid_for};
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

/// This node's id, as the plugin learnt it from an earlier task (`node.json`).
const NODE: &str = "node-a";

/// An enforce-mode plugin config fenced to `case`, with the 1m grace; `outside` goes before
/// the `gc` block.
fn enforcing(private: &Private, case: &str, outside: &str) -> String {
    private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        &format!("{outside}gc {{\n dangling_containers {{\n creation_grace = \"1m\"\n }}\n}}\n"),
    )
}

/// The plugin's audit file, one JSON object per line (none when it does not exist yet).
fn audit_lines(private: &Private) -> Vec<serde_json::Value> {
    std::fs::read_to_string(private.data_dir().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// Ids of the containers with an `intent` record in the audit file.
fn intents(private: &Private) -> Vec<String> {
    audit_lines(private)
        .iter()
        .filter(|l| l["record"] == "intent")
        .map(|l| l["container_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `(StartedAt, running)` of a container that must still exist.
async fn run_identity(docker: &Arc<dyn DockerApi>, id: &str) -> (String, bool) {
    let c = docker
        .inspect_container(id)
        .await
        .unwrap_or_else(|e| panic!("container {id} must still exist: {e}"));
    let s = c.state.unwrap_or_default();
    (s.started_at.unwrap_or_default(), s.running.unwrap_or(false))
}

#[tokio::test]
async fn switching_to_audit_mid_sweep_through_the_plugin_leaves_the_rest_running() {
    let case = "plugin_audit_mid_sweep";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let private = Private::new();
    remember_node(&private, NODE);
    let plugin = started(&enforcing(&private, case, "")).await;
    // Six orphans of this node whose PID 1 ignores SIGTERM: each stop waits out the default
    // kill policy's 30 s, four at once, so the first wave is still under way when the
    // operator switches to audit.
    let created = Instant::now();
    let orphans: Vec<String> = futures::future::join_all((1..=6).map(|n| {
        let alloc = uuid_for(case, n);
        make(
            &docker,
            &guard,
            Kind {
                name: format!("{case}-web-{alloc}"),
                labels: dockhand_labels(alloc, NODE),
                start: true,
                script: Some(STUBBORN),
                ..Kind::default()
            },
        )
    }))
    .await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    until_aged(created).await;

    let sweeping = tokio::spawn({
        let mut admin = admin.clone();
        async move { sweep(&mut admin).await }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while intents(&private).is_empty() {
        assert!(
            !sweeping.is_finished() && Instant::now() < deadline,
            "no action began: {:?}",
            audit_lines(&private)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The operator activates a kill policy in audit mode while the first stops wait.
    let kill = guests::default_policy(PolicyKind::Kill).to_vec();
    let digest = admin
        .upload(PolicyKindMsg::Kill, kill, None, None, None)
        .await
        .expect("upload")
        .policy
        .expect("stored")
        .digest;
    let activated = admin
        .activate(digest, PolicyModeMsg::Audit)
        .await
        .expect("activate");
    assert!(activated.applied, "{activated:?}");
    let begun_at_switch = intents(&private).len();

    let report = sweeping.await.expect("join");
    assert!(!report.report_only, "the sweep began in enforce mode");
    let outcome = |id: &str| decision(&report, id).2;
    let acted: Vec<&String> = orphans.iter().filter(|id| outcome(id) == "done").collect();
    let halted: Vec<&String> = orphans
        .iter()
        .filter(|id| outcome(id) == "now-report-only")
        .collect();
    let begun = intents(&private);
    eprintln!(
        "{} acted on, {} halted, {begun_at_switch} begun at the switch",
        acted.len(),
        halted.len()
    );
    // No action began after the switch: only (part of) the first wave of four was carried out.
    assert_eq!(acted.len(), begun.len(), "{report:?}");
    assert!(acted.iter().all(|id| begun.contains(id)), "{report:?}");
    assert!(
        (begun_at_switch..=4).contains(&begun.len()),
        "{} actions began, {begun_at_switch} before the activation answered",
        begun.len()
    );
    assert!(
        !halted.is_empty() && acted.len() + halted.len() == orphans.len(),
        "{report:?}"
    );
    // The rest still run, and the audit file says why they were left.
    let lines = audit_lines(&private);
    for id in &halted {
        assert_eq!(state(&docker, id).await, Some(true), "{id} was acted on");
        let recorded: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["container_id"] == id.as_str() && l["sweep_ms"] == report.started_ms)
            .collect();
        assert_eq!(recorded.len(), 1, "{id}: {recorded:?}");
        assert_eq!(recorded[0]["record"], "decision", "{}", recorded[0]);
        assert_eq!(recorded[0]["outcome"], "now-report-only", "{}", recorded[0]);
    }
    for id in &acted {
        assert_eq!(state(&docker, id).await, None, "{id} stopped and removed");
    }
}

/// Polls the admin dry run until it no longer reports `id` (the plugin tracks it), failing
/// if `start_task` ends first.
async fn until_tracked(
    admin: &mut AdminClient,
    id: &str,
    start_task: &tokio::task::JoinHandle<Result<(), tonic::Status>>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = admin
            .preview(PolicyKindMsg::Unspecified, None)
            .await
            .expect("dry run");
        let dry = answer.report().expect("a report");
        if dry.decision(id).is_none() {
            return;
        }
        assert!(
            !start_task.is_finished() && Instant::now() < deadline,
            "{id} was not tracked while its adoption was under way: {}",
            dry.render_table()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_container_adopted_by_name_is_never_stopped_by_a_sweep_during_the_adoption() {
    let case = "plugin_adopt_during_sweep";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("web");
    let alloc = uuid_for(case, 1);
    let task = node_task(&guard, &dirs, "web", NODE, &alloc);
    let task_id = task.id.clone();
    // The task's container from an earlier start, running, untracked and past the grace: an
    // orphan of this node by every rule, until a StartTask of its task adopts it.
    let created = Instant::now();
    let existing = make(
        &docker,
        &guard,
        Kind {
            name: format!("web-{alloc}"),
            labels: dockhand_labels(alloc.clone(), NODE),
            start: true,
            ..Kind::default()
        },
    )
    .await;
    // The plugin reaches Docker through a proxy that can hold the adoption's inspection of
    // the container by id: the StartTask is then mid-adoption for as long as the test needs.
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let private = Private::new();
    remember_node(&private, NODE);
    let endpoint = format!("endpoint = \"{}\"\n", proxy.endpoint());
    let plugin = started(&enforcing(&private, case, &endpoint)).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    until_aged(created).await;
    let before = run_identity(&docker, &existing).await;
    let answer = admin
        .preview(PolicyKindMsg::Unspecified, None)
        .await
        .expect("dry run");
    let dry = answer.report().expect("a report");
    let row = dry.decision(&existing).unwrap_or_else(|| {
        panic!(
            "a sweep now would not judge {existing}: {}",
            dry.render_table()
        )
    });
    assert!(
        matches!(
            row.verdict.as_ref().map(|v| &v.ownership),
            Some(Ownership::Owned { .. })
        ) && row.outcome == Outcome::WouldDo,
        "{}",
        dry.render_table()
    );

    // Nomad starts the task: its create meets the name, and the adoption's second look at
    // the container is held.
    let held: &'static str = Box::leak(format!("/containers/{existing}/json").into_boxed_str());
    proxy.set_mode(FaultMode::HoldMatching(held));
    let start_task = tokio::spawn({
        let mut driver = plugin.driver();
        async move { start(&mut driver, task).await.map(|_| ()) }
    });
    until_tracked(&mut admin, &existing, &start_task).await;

    // A sweep now leaves it alone.
    let report = sweep(&mut admin).await;
    assert!(!report.report_only, "{report:?}");
    assert!(
        report.decisions.iter().all(|d| d.id != existing),
        "the container being adopted was judged: {report:?}"
    );
    assert_eq!(report.skipped_tracked, 1, "{report:?}");
    assert_eq!(run_identity(&docker, &existing).await, before);

    // The adoption completes: the task runs in the same container.
    proxy.set_mode(FaultMode::Pass);
    start_task
        .await
        .expect("join")
        .expect("StartTask adopts the running container");
    assert!(
        plugin
            .wait_for_log(
                "adopting running container with the task's name",
                Duration::from_secs(5)
            )
            .await,
        "{:?}",
        plugin.stderr_lines()
    );
    assert_eq!(guard.remaining().await, vec![existing.clone()]);
    assert_eq!(run_identity(&docker, &existing).await, before);
    let report = sweep(&mut admin).await;
    assert!(
        report.decisions.iter().all(|d| d.id != existing),
        "{report:?}"
    );
    destroy(&mut plugin.driver(), &task_id, true)
        .await
        .expect("DestroyTask");
    assert_eq!(state(&docker, &existing).await, None);
}
