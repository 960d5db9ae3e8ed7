//! Timing around plugin restarts and task start/stop, through the real plugin binary: the
//! start-up wait of on-demand sweeps, group-network sandboxes re-tracked at start, the
//! network containers tasks join, and a DestroyTask whose Docker calls fail. The grace on the
//! daemon's clock is checked with an in-process reconciler against the real daemon.
//!
//! Nomad's minimum `creation_grace` is 1m, and the start-up wait of a relaunched plugin lasts
//! that long: the tests that sweep after a restart wait about a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::docker::DockerApi;
use dockhand::plugin::convert::SANDBOX_CONTAINER_LABEL;
use dockhand::reconcile::{AlwaysHealthy, Reconciler, now_ms};
use nix::sys::signal::Signal;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use tonic::transport::Channel;

use crate::harness::{Plugin, TaskDirs};
use crate::lifecycle::{destroy, inspect, start, task_config};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::reconcile::{ALLOC_LABEL, NODE, SLEEPER, labelled_orphan, settings, state};
use crate::recover::recover_request;
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::image::SANDBOX_IMAGE;
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

mod adopt;

/// Past a 1m grace or start-up wait, with a margin.
const PAST_THE_GRACE: Duration = Duration::from_secs(63);

/// The `gc` block of every test here: a 1m grace, the default 5m period (so no periodic sweep
/// runs during a test), and the group network's infra image.
fn outside() -> String {
    format!(
        "gc {{\n dangling_containers {{\n creation_grace = \"1m\"\n }}\n}}\n\
         infra_image = \"{SANDBOX_IMAGE}\"\n"
    )
}

/// Sleeps until `since + PAST_THE_GRACE`.
async fn until_past_the_grace(since: Instant) {
    let left = (since + PAST_THE_GRACE).saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
}

async fn kill(mut plugin: Plugin) {
    plugin.signal(Signal::SIGKILL);
    assert!(plugin.wait_exit(Duration::from_secs(10)).await.is_some());
}

/// `(StartedAt, running)` of a container.
async fn run_identity(docker: &Arc<dyn DockerApi>, id: &str) -> (String, bool) {
    let c = docker
        .inspect_container(id)
        .await
        .unwrap_or_else(|e| panic!("container {id} must still exist: {e}"));
    let s = c.state.unwrap_or_default();
    (s.started_at.unwrap_or_default(), s.running.unwrap_or(false))
}

/// The full id of the container named `name`.
async fn id_of(docker: &Arc<dyn DockerApi>, name: &str) -> String {
    docker
        .inspect_container(name)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
        .id
        .expect("id")
}

async fn create_network(driver: &mut DriverClient<Channel>, alloc_id: &str) -> String {
    let response = driver
        .create_network(pb::CreateNetworkRequest {
            alloc_id: alloc_id.to_owned(),
            hostname: String::new(),
        })
        .await
        .expect("CreateNetwork")
        .into_inner();
    response
        .isolation_spec
        .expect("isolation spec")
        .labels
        .get(SANDBOX_CONTAINER_LABEL)
        .expect("sandbox id")
        .clone()
}

async fn destroy_network(driver: &mut DriverClient<Channel>, alloc_id: &str) {
    driver
        .destroy_network(pb::DestroyNetworkRequest {
            alloc_id: alloc_id.to_owned(),
            isolation_spec: None,
        })
        .await
        .expect("DestroyNetwork");
}

#[tokio::test]
async fn an_on_demand_sweep_right_after_a_restart_waits_for_recovery() {
    let case = format!("restart_sweep_wait-{}", std::process::id());
    let Some(docker) = docker_with_image(&case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, &case).await;
    let private = Private::new();
    let config = private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        &outside(),
    );
    let plugin_a = started(&config).await;
    let dirs = TaskDirs::create("web");
    let task = task_config(&guard, &dirs, "web", SLEEPER, Vec::new());
    let task_id = task.id.clone();
    let handle = start(&mut plugin_a.driver(), task)
        .await
        .expect("StartTask")
        .handle
        .expect("handle");
    let created = Instant::now();
    let containers = guard.remaining().await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    let container = containers[0].clone();
    let before = run_identity(&docker, &container).await;
    assert!(before.1, "the task runs");
    kill(plugin_a).await;
    // The task is past the grace: a sweep would judge it.
    until_past_the_grace(created).await;

    // The agent relaunches the plugin; a sweep is asked for before RecoverTask.
    let plugin_b = started(&config).await;
    let mut admin = admin_client(&plugin_b, &private.socket()).await;
    for dry_run in [false, true] {
        let answer = admin.sweep(dry_run).await.expect("Sweep");
        assert_eq!(answer.status(), "skipped-startup-wait", "{answer:?}");
        assert!(
            answer.error().contains("RecoverTask") && answer.error().contains("possible in"),
            "the answer says why and when: {}",
            answer.error()
        );
        assert!(answer.report().is_none(), "{answer:?}");
    }
    assert_eq!(
        run_identity(&docker, &container).await,
        before,
        "the unrecovered task was touched"
    );

    let mut driver = plugin_b.driver();
    driver
        .recover_task(recover_request(&handle))
        .await
        .expect("RecoverTask");
    destroy(&mut driver, &task_id, true)
        .await
        .expect("DestroyTask");
}

#[tokio::test]
async fn a_group_network_sandbox_without_tasks_survives_a_plugin_restart() {
    let case = "restart_sandbox";
    let Some((docker, _guard, alloc_id)) = crate::network::setup(case).await else {
        return;
    };
    let private = Private::new();
    let config = private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{ALLOC_LABEL}={alloc_id}\"\n"),
        &outside(),
    );
    let plugin_a = started(&config).await;
    let sandbox = create_network(&mut plugin_a.driver(), &alloc_id).await;
    // No task joins it: a restart backoff, a prestart phase, or only non-docker tasks.
    kill(plugin_a).await;

    let plugin_b = started(&config).await;
    let relaunched = Instant::now();
    let mut admin = admin_client(&plugin_b, &private.socket()).await;
    until_past_the_grace(relaunched).await;
    let answer = admin.sweep(false).await.expect("Sweep");
    assert_eq!(answer.status(), "completed", "{answer:?}");
    let report = answer.report().expect("a report");
    assert_eq!(
        (report.listed, report.skipped_tracked),
        (1, 1),
        "{answer:?}"
    );
    assert!(report.decisions.is_empty(), "{answer:?}");
    assert_eq!(state(&docker, &sandbox).await, Some(true), "sandbox kept");

    destroy_network(&mut plugin_b.driver(), &alloc_id).await;
    assert_eq!(state(&docker, &sandbox).await, None);
}

#[tokio::test]
async fn a_task_joining_another_tasks_container_keeps_the_sandbox_tracked() {
    let case = "restart_joined_network";
    let Some((docker, guard, alloc_id)) = crate::network::setup(case).await else {
        return;
    };
    let private = Private::new();
    let node_file = private.data_dir().join("node.json");
    std::fs::create_dir_all(private.data_dir()).expect("data dir");
    // The tasks' node, known before CreateNetwork: the sandbox carries its label.
    std::fs::write(&node_file, "{\"id\":\"node\",\"name\":\"node\"}\n").expect("node.json");
    let config = private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{ALLOC_LABEL}={alloc_id}\"\n"),
        &outside(),
    );
    let plugin_a = started(&config).await;
    let mut driver = plugin_a.driver();
    let sandbox = create_network(&mut driver, &alloc_id).await;
    let web_dirs = TaskDirs::create("web");
    let joins = |target: &str| {
        vec![(
            "network_mode",
            rmpv::Value::from(format!("container:{target}")),
        )]
    };
    let web = task_config(&guard, &web_dirs, "web", SLEEPER, joins(&sandbox));
    let web = start(&mut driver, web)
        .await
        .expect("StartTask web")
        .handle
        .expect("handle");
    let web_container = id_of(&docker, &format!("web-{alloc_id}")).await;
    // A task with its own `network_mode` joining the first task's container.
    let side_dirs = TaskDirs::create("sidecar");
    let side = task_config(
        &guard,
        &side_dirs,
        "sidecar",
        SLEEPER,
        joins(&web_container),
    );
    let side = start(&mut driver, side)
        .await
        .expect("StartTask sidecar")
        .handle
        .expect("handle");
    let side_container = id_of(&docker, &format!("sidecar-{alloc_id}")).await;
    kill(plugin_a).await;

    // A stale node file: the start-up scan takes the sandbox for another node's and leaves it
    // to the recovered tasks; RecoverTask then corrects the node.
    std::fs::write(&node_file, "{\"id\":\"other-node\",\"name\":\"other\"}\n").expect("node.json");
    let plugin_b = started(&config).await;
    let relaunched = Instant::now();
    let mut driver = plugin_b.driver();
    for handle in [&web, &side] {
        driver
            .recover_task(recover_request(handle))
            .await
            .expect("RecoverTask");
    }
    let mut admin = admin_client(&plugin_b, &private.socket()).await;
    until_past_the_grace(relaunched).await;
    for (what, id) in [("web", &web_container), ("sidecar", &side_container)] {
        assert_eq!(
            state(&docker, id).await,
            Some(true),
            "task {what} no longer runs before the sweep; plugin log: {:?}",
            plugin_b.stderr_lines()
        );
    }
    let answer = admin.sweep(false).await.expect("Sweep");
    assert_eq!(answer.status(), "completed", "{answer:?}");
    let report = answer.report().expect("a report");
    assert!(
        report.decisions.iter().all(|d| d.id != sandbox),
        "the sandbox was judged: {answer:?}"
    );
    assert_eq!(
        (report.listed, report.skipped_tracked),
        (3, 3),
        "{answer:?}"
    );
    assert_eq!(state(&docker, &sandbox).await, Some(true), "sandbox kept");

    for handle in [&side, &web] {
        let task_id = &handle.config.as_ref().expect("config").id;
        destroy(&mut driver, task_id, true)
            .await
            .expect("DestroyTask");
    }
    destroy_network(&mut driver, &alloc_id).await;
}

#[tokio::test]
async fn a_destroy_whose_docker_calls_fail_is_retried_until_the_container_is_gone() {
    let case = "restart_destroy_retry";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let private = Private::new();
    let config = private.config(
        "",
        &format!(
            "endpoint = \"{}\"\ngc {{\n dangling_containers {{\n enabled = false\n }}\n}}\n",
            proxy.endpoint()
        ),
    );
    let plugin = started(&config).await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("web");
    let task = task_config(&guard, &dirs, "web", SLEEPER, Vec::new());
    let task_id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let containers = guard.remaining().await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    let container = containers[0].clone();

    // Every Docker call of the DestroyTask fails; Nomad logs the error and never asks again.
    proxy.set_mode(FaultMode::Http500);
    let error = destroy(&mut driver, &task_id, true)
        .await
        .expect_err("the daemon answers 500");
    eprintln!("DestroyTask: {error}");
    assert_eq!(state(&docker, &container).await, Some(true));
    proxy.set_mode(FaultMode::Pass);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let gone = state(&docker, &container).await.is_none();
        let forgotten = matches!(
            inspect(&mut driver, &task_id).await,
            Err(status) if status.code() == tonic::Code::NotFound
        );
        if gone && forgotten {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "container gone: {gone}, handle dropped: {forgotten}; log: {:?}",
            plugin.stderr_lines()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Attempts at landing a sweep inside a creation second before the test gives up (each one
/// fails only when the machine is too loaded to time a sweep within a second).
const WINDOW_ATTEMPTS: u32 = 5;

/// The `Created` time of `id` in Unix milliseconds (RFC 3339 with nanoseconds).
async fn created_ms(docker: &Arc<dyn DockerApi>, id: &str) -> i64 {
    let created = docker
        .inspect_container(id)
        .await
        .expect("inspect")
        .created
        .expect("Created");
    time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339)
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms"))
        .expect("RFC 3339 Created")
}

async fn sleep_until_ms(at_ms: i64) {
    let left = u64::try_from(at_ms - now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left)).await;
}

#[tokio::test]
async fn the_creation_grace_rounds_the_listed_second_up_on_the_daemons_clock() {
    let case = "restart_grace_rounding";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let grace = Duration::from_secs(2);
    let grace_ms = i64::try_from(grace.as_millis()).expect("ms");
    let s = settings(&guard, grace);
    let rec = Reconciler::new(
        docker.clone(),
        crate::reconcile::no_tracked(),
        crate::reconcile::default_policies_in(dockhand::config::PolicyMode::Audit),
        s,
        Arc::new(AlwaysHealthy),
    );

    for attempt in 1..=WINDOW_ATTEMPTS {
        // Created late in its second, so that the listed (truncated) second is well before it.
        while !(600..700).contains(&now_ms().rem_euclid(1000)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let orphan = labelled_orphan(&docker, &guard, attempt, NODE).await;
        let created = created_ms(&docker, &orphan).await;
        let listed_second = created - created.rem_euclid(1000);
        // The cutoff inside the creation second, before the real creation time: the container
        // is younger than the grace, though its listed second is older.
        sleep_until_ms(listed_second + grace_ms + 300).await;
        let report = rec.sweep_once().await;
        // The daemon's clock was read during the sweep: between its start and its end.
        let earliest_cutoff = report.started_ms - grace_ms;
        let latest_cutoff =
            earliest_cutoff + i64::try_from(report.duration.as_millis()).expect("ms");
        if created - listed_second < 300
            || earliest_cutoff < listed_second
            || latest_cutoff >= created
        {
            eprintln!(
                "attempt {attempt}: created at {created}, cutoff in [{earliest_cutoff}, \
                 {latest_cutoff}]: not inside the creation second; again"
            );
            let _ = docker.remove_container(&orphan, true).await;
            continue;
        }
        eprintln!("{}", report.render_table());
        assert_eq!((report.listed, report.skipped_young), (1, 1), "{report:?}");
        assert!(report.decisions.is_empty(), "{report:?}");

        // Once the whole creation second is past the grace, the container is judged.
        sleep_until_ms(listed_second + 1000 + grace_ms + 100).await;
        let report = rec.sweep_once().await;
        assert_eq!(report.skipped_young, 0, "{report:?}");
        assert_eq!(report.would_act_on(), vec![orphan.as_str()], "{report:?}");
        return;
    }
    panic!("no sweep landed inside a creation second in {WINDOW_ATTEMPTS} attempts");
}
