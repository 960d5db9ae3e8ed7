//! A plugin SIGKILLed in the middle of a sweep, relaunched, recovering its tasks: the recovered
//! tasks are untouched, the orphan the killed sweep was stopping is dealt with, and nothing
//! else is acted on — except a control task deliberately left unrecovered, which the new
//! process's sweep must stop (proof that the sweep did consider the task containers).
//!
//! The sweep is caught mid-action with an orphan whose PID 1 traps SIGTERM and keeps running:
//! the default kill policy's stop (SIGTERM, 30 s grace) then blocks the sweep for 30 s, and the
//! `got-term` line the trap prints says the stop has begun. The reconciler logs its decisions
//! only once every action of the sweep has finished, so the absence of any decision line from
//! the killed process confirms that it died mid-sweep; its audit file must nonetheless hold the
//! intent to stop the orphan (written and fsynced before the Docker call) and no outcome.
//!
//! Nomad's minimum `creation_grace` is 1m and the first sweep comes after `max(period,
//! creation_grace)`, so this test waits about a minute per plugin process.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::admin::client::AdminClient;
use dockhand::docker::DockerApi;
use dockhand::reconcile::MetricsSnapshot;
use nix::sys::signal::Signal;
use nomad_plugin::proto::drivers as pb;

use crate::harness::{Plugin, TaskDirs};
use crate::lifecycle::{destroy, inspect, start, task_config};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::reconcile::{Kind, SLEEPER, STUBBORN, dockhand_labels, make, output, state, uuid_for};
use crate::recover::recover_request;
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

/// The test case; the process id is added to it so that two runs of this test on one daemon
/// (several checkouts, a suite running beside a single test) never sweep each other's
/// containers.
const CASE: &str = "plugin_crash_sweep";
/// The node the tasks' `TaskConfig` names (see `lifecycle::task_config`).
const TASK_NODE: &str = "node";
/// Start-up, the 1m first-sweep delay and the orphan's 30 s stop grace, with room to spare.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(300);

/// `(StartedAt, RestartCount, running)` of a container.
async fn run_identity(docker: &Arc<dyn DockerApi>, id: &str) -> (String, i64, bool) {
    let c = docker
        .inspect_container(id)
        .await
        .unwrap_or_else(|e| panic!("task container {id} must still exist: {e}"));
    let s = c.state.unwrap_or_default();
    (
        s.started_at.unwrap_or_default(),
        c.restart_count.unwrap_or_default(),
        s.running.unwrap_or(false),
    )
}

/// Reconciler counters from the admin API.
async fn metrics(admin: &mut AdminClient) -> MetricsSnapshot {
    let status = admin.status().await.expect("admin status");
    assert!(status.reconciler_running, "{status:?}");
    status.metrics.expect("a reconciler's counters").into()
}

/// Container ids named by the plugin's `reconciler decision` log lines. Read leniently: the
/// last line of a SIGKILLed process may be cut short.
fn decided_on(plugin: &Plugin) -> Vec<String> {
    plugin
        .stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["@message"] == "reconciler decision")
        .map(|l| l["container_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The audit file's lines (absent file: none).
fn audit_records(data_dir: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(data_dir.join("audit.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .collect()
}

/// Container ids in the audit file's per-container lines (absent file: none).
fn audited(data_dir: &Path) -> Vec<String> {
    audit_records(data_dir)
        .into_iter()
        .filter(|record| record["record"] != "summary")
        .map(|record| {
            record["container_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn sigkill_mid_sweep_then_recovery_leaves_recovered_tasks_untouched() {
    let Some(docker) = docker_with_image(CASE).await else {
        return;
    };
    let case = format!("{CASE}-{}", std::process::id());
    let guard = TestContainers::new(&docker, &case).await;

    // Created first, so it is past the 1m grace when the first sweep comes.
    let alloc = uuid_for(&case, 1);
    let orphan = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-web-{alloc}"),
            labels: dockhand_labels(alloc, TASK_NODE),
            start: true,
            script: Some(STUBBORN),
            ..Kind::default()
        },
    )
    .await;

    let private = Private::new();
    let config = private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        "gc {\n dangling_containers {\n enabled = true\n dry_run = false\n \
         period = \"1m\"\n creation_grace = \"1m\"\n }\n}\n",
    );
    let mut plugin_a = started(&config).await;
    let mut driver = plugin_a.driver();
    // `web` and `db` are recovered after the crash. `cache` is not: it is the control that
    // shows the new process's sweep really considers these containers and would stop a task
    // that recovery did not re-adopt.
    let mut tasks = Vec::new();
    let mut dirs = Vec::new();
    let mut known = BTreeSet::from([orphan.clone()]);
    for name in ["web", "db", "cache"] {
        let task_dirs = TaskDirs::create(name);
        let task = task_config(&guard, &task_dirs, name, SLEEPER, Vec::new());
        let handle = start(&mut driver, task)
            .await
            .unwrap_or_else(|e| panic!("StartTask {name}: {e}"))
            .handle
            .expect("handle");
        let created: Vec<String> = guard
            .remaining()
            .await
            .into_iter()
            .filter(|id| !known.contains(id))
            .collect();
        assert_eq!(created.len(), 1, "{name}: one container per task");
        known.insert(created[0].clone());
        let identity = run_identity(&docker, &created[0]).await;
        assert!(identity.2, "{name} runs");
        tasks.push((handle, created[0].clone(), identity));
        dirs.push(task_dirs);
    }
    let control = tasks.pop().expect("the control task");
    let control_id = control.1;

    // The first sweep finds the orphan and starts stopping it.
    let deadline = Instant::now() + SWEEP_TIMEOUT;
    while !output(&docker, &orphan).await.contains("got-term") {
        assert!(
            Instant::now() < deadline,
            "the sweep never began stopping the orphan; plugin log: {:?}",
            plugin_a.stderr_lines()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    plugin_a.signal(Signal::SIGKILL);
    assert!(plugin_a.wait_exit(Duration::from_secs(10)).await.is_some());
    assert_eq!(
        decided_on(&plugin_a),
        Vec::<String>::new(),
        "the killed process must have died before its sweep finished"
    );
    // Its audit file still says what it was doing: the intent, written before the stop call.
    let records = audit_records(&private.data_dir());
    let of = |kind: &str| {
        records
            .iter()
            .filter(|r| r["record"] == kind && r["container_id"] == orphan.as_str())
            .count()
    };
    assert_eq!(
        (of("intent"), of("outcome")),
        (1, 0),
        "the killed sweep's stop must be recorded as begun, not finished: {records:?}"
    );

    // A new process, as the agent starts after a crash, recovers the two tasks at once.
    let plugin_b = started(&config).await;
    let mut driver = plugin_b.driver();
    for (handle, _, _) in &tasks {
        driver
            .recover_task(recover_request(handle))
            .await
            .expect("RecoverTask");
    }
    let mut admin = admin_client(&plugin_b, &private.socket()).await;
    let deadline = Instant::now() + SWEEP_TIMEOUT;
    let counters = loop {
        let m = metrics(&mut admin).await;
        if m.sweeps >= 1 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the relaunched plugin never finished a sweep: {m:?}; log: {:?}",
            plugin_b.stderr_lines()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(counters.sweeps_failed, 0, "{counters:?}");
    assert_eq!(counters.policy_failures, 0, "{counters:?}");
    assert_eq!(counters.action_failures, 0, "{counters:?}");

    // The recovered tasks: same containers, running, never restarted, tracked by the new process.
    for (handle, id, before) in &tasks {
        let task_id = &handle.config.as_ref().expect("config").id;
        assert_eq!(
            &run_identity(&docker, id).await,
            before,
            "recovered task {task_id} (container {id}) was touched"
        );
        let status = inspect(&mut driver, task_id)
            .await
            .expect("InspectTask after recovery")
            .task
            .expect("task");
        assert_eq!(status.state, pb::TaskState::Running as i32, "{task_id}");
    }
    // The control, never recovered, was an orphan to the new process and was stopped.
    let decided = decided_on(&plugin_b);
    assert!(
        decided.contains(&control_id),
        "the new sweep did not act on the unrecovered task {control_id}: {decided:?}; \
         counters {counters:?}"
    );
    assert_ne!(state(&docker, &control_id).await, Some(true));

    // The orphan: stopped by the daemon finishing the first stop, or by the new sweep.
    let orphan_state = state(&docker, &orphan).await;
    assert_ne!(
        orphan_state,
        Some(true),
        "the orphan must be gone or stopped"
    );
    eprintln!(
        "orphan after recovery: {} (decisions of the new process: {decided:?}); counters: \
         {counters:?}",
        if orphan_state.is_none() {
            "removed"
        } else {
            "stopped"
        },
    );
    // Nothing but the orphan and the control was ever decided on.
    for id in decided.into_iter().chain(audited(&private.data_dir())) {
        assert!(
            id == orphan || id == control_id,
            "{id}, neither the orphan nor the control, was acted on"
        );
    }

    for (handle, _, _) in &tasks {
        let task_id = &handle.config.as_ref().expect("config").id;
        destroy(&mut driver, task_id, true)
            .await
            .expect("DestroyTask");
    }
    drop(dirs);
}
