//! Group networking: `CreateNetwork` / `DestroyNetwork` through the real plugin binary and the
//! engine, against the real daemon. Sandboxes run the local [`SANDBOX_IMAGE`] with Docker's
//! `none` network (loopback only), as Nomad's docker driver creates them; nothing here sends
//! traffic anywhere.
//!
//! Sandbox containers carry only Nomad's alloc-id label, so each test registers the sandbox
//! name with its [`TestContainers`] guard for clean-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dockhand::docker::DockerApi;
use dockhand::docker::models::{ContainerCreateBody, RestartPolicyNameEnum};
use dockhand::fingerprint::RuntimeCatalog;
use dockhand::plugin::convert::SANDBOX_CONTAINER_LABEL;
use dockhand::plugin::network::SANDBOX_HOSTNAME_LABEL;
use dockhand::reconcile::{AlwaysHealthy, NODE_FILE_NAME, Reconciler};
use dockhand::tasks::{DRIVER_LABEL_VALUE, EngineSettings, NetworkError, TaskEngine, sandbox_name};
use nix::sys::signal::Signal;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;
use tonic::transport::Channel;

use crate::harness::{Plugin, TaskDirs, alloc_id_for, cty_object, cty_string_map};
use crate::lifecycle::{destroy, start, task_config};
use crate::plugin_reconciler::{Private, START_TIMEOUT, long_lived, started};
use crate::reconcile::{ALLOC_LABEL, DRIVER_LABEL, NODE, NODE_LABEL, default_policies, settings};
use crate::support::image::{SANDBOX_IMAGE, ensure_sandbox_image};
use crate::support::{TEST_IMAGE, TestContainers, docker_with_image};

/// An image reference that exists nowhere (nothing can be pulled here either).
const ABSENT_IMAGE: &str = "dockhand-test/absent-pause:0";

/// The daemon with both test images, a guard for `case`, and the case's alloc id (its sandbox
/// name registered for clean-up).
pub(crate) async fn setup(case: &str) -> Option<(Arc<dyn DockerApi>, TestContainers, String)> {
    let docker = docker_with_image(case).await?;
    ensure_sandbox_image(&docker).await;
    let guard = TestContainers::new(&docker, case).await;
    let alloc_id = alloc_id_for(case);
    guard.track(sandbox_name(&alloc_id));
    // Leftovers of an earlier run of this case.
    let _ = docker
        .remove_container(&sandbox_name(&alloc_id), true)
        .await;
    Some((docker, guard, alloc_id))
}

/// A plugin configured with `infra_image`.
async fn plugin_with_infra(image: &str) -> Plugin {
    long_lived(&format!("infra_image = \"{image}\"\n")).await
}

fn engine_with_infra(docker: &Arc<dyn DockerApi>, image: &str) -> TaskEngine {
    let settings = EngineSettings {
        infra_image: image.to_owned(),
        ..EngineSettings::default()
    };
    TaskEngine::new(docker.clone(), settings, RuntimeCatalog::new())
}

/// A task of `alloc_id` in the group network `spec`, with no `network_mode` of its own.
fn grouped_task(
    guard: &TestContainers,
    dirs: &TaskDirs,
    name: &str,
    alloc_id: &str,
    spec: &pb::NetworkIsolationSpec,
) -> pb::TaskConfig {
    let mut task = task_config(guard, dirs, name, "", Vec::new());
    task.msgpack_driver_config = cty_object(vec![
        ("image", rmpv::Value::from(TEST_IMAGE)),
        ("command", rmpv::Value::from("sleep")),
        ("args", rmpv::Value::Array(vec![rmpv::Value::from("600")])),
        (
            "labels",
            rmpv::Value::Array(vec![cty_string_map(&guard.labels())]),
        ),
    ]);
    task.alloc_id = alloc_id.to_owned();
    task.network_isolation_spec = Some(spec.clone());
    task
}

async fn create_network(
    driver: &mut DriverClient<Channel>,
    alloc_id: &str,
    hostname: &str,
) -> Result<pb::CreateNetworkResponse, tonic::Status> {
    tokio::time::timeout(
        Duration::from_secs(60),
        driver.create_network(pb::CreateNetworkRequest {
            alloc_id: alloc_id.to_owned(),
            hostname: hostname.to_owned(),
        }),
    )
    .await
    .expect("CreateNetwork hung")
    .map(tonic::Response::into_inner)
}

async fn destroy_network(
    driver: &mut DriverClient<Channel>,
    alloc_id: &str,
    spec: Option<pb::NetworkIsolationSpec>,
) -> Result<(), tonic::Status> {
    driver
        .destroy_network(pb::DestroyNetworkRequest {
            alloc_id: alloc_id.to_owned(),
            isolation_spec: spec,
        })
        .await
        .map(|_| ())
}

/// `net:[inode]` of a namespace path.
fn netns_of(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// The network namespace of a running container's init process.
async fn container_netns(docker: &Arc<dyn DockerApi>, id: &str) -> String {
    let pid = docker
        .inspect_container(id)
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.pid)
        .expect("pid");
    netns_of(&format!("/proc/{pid}/ns/net"))
}

/// Whether the container exists and runs (`None` when it does not exist).
/// The labels of the sandbox `spec` names.
async fn sandbox_labels(
    docker: &Arc<dyn DockerApi>,
    spec: &pb::NetworkIsolationSpec,
) -> HashMap<String, String> {
    docker
        .inspect_container(&spec.labels[SANDBOX_CONTAINER_LABEL])
        .await
        .expect("sandbox")
        .config
        .and_then(|c| c.labels)
        .expect("labels")
}

async fn running(docker: &Arc<dyn DockerApi>, id: &str) -> Option<bool> {
    match docker.inspect_container(id).await {
        Ok(i) => Some(i.state.and_then(|s| s.running).unwrap_or(false)),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("inspect {id}: {e}"),
    }
}

#[tokio::test]
async fn create_network_runs_a_sandbox_that_tasks_join() {
    let case = "network_create_join";
    let Some((docker, guard, alloc_id)) = setup(case).await else {
        return;
    };
    let plugin = plugin_with_infra(SANDBOX_IMAGE).await;
    let mut driver = plugin.driver();

    let created = create_network(&mut driver, &alloc_id, "web-host")
        .await
        .expect("CreateNetwork");
    assert!(created.created);
    let spec = created.isolation_spec.expect("isolation spec");
    assert_eq!(spec.mode, NetworkIsolationMode::Group as i32);
    assert_eq!(spec.labels[SANDBOX_HOSTNAME_LABEL], "web-host");
    let sandbox_id = spec.labels[SANDBOX_CONTAINER_LABEL].clone();

    // The sandbox, as Nomad's driver makes it.
    let sandbox = docker
        .inspect_container(&sandbox_id)
        .await
        .expect("sandbox");
    assert_eq!(sandbox.name, Some(format!("/nomad_init_{alloc_id}")));
    let state = sandbox.state.clone().expect("state");
    assert_eq!(state.running, Some(true));
    let config = sandbox.config.clone().expect("config");
    assert_eq!(config.image.as_deref(), Some(SANDBOX_IMAGE));
    assert_eq!(config.hostname.as_deref(), Some("web-host"));
    // Nomad's alloc label and dockhand's driver label; no node label before any task told
    // the plugin its node.
    assert_eq!(
        config.labels,
        Some(
            [
                (ALLOC_LABEL.to_owned(), alloc_id.clone()),
                (DRIVER_LABEL.to_owned(), DRIVER_LABEL_VALUE.to_owned()),
            ]
            .into()
        )
    );
    let host = sandbox.host_config.clone().expect("host config");
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(
        host.restart_policy.and_then(|p| p.name),
        Some(RestartPolicyNameEnum::UNLESS_STOPPED)
    );
    assert_eq!(
        spec.path,
        format!("/proc/{}/ns/net", state.pid.expect("pid"))
    );

    // A task hostname cannot apply inside the sandbox's namespace: refused by name, before
    // any container exists.
    let dirs = TaskDirs::create("web");
    let mut named = grouped_task(&guard, &dirs, "web", &alloc_id, &spec);
    named.msgpack_driver_config = cty_object(vec![
        ("image", rmpv::Value::from(TEST_IMAGE)),
        ("command", rmpv::Value::from("sleep")),
        ("args", rmpv::Value::Array(vec![rmpv::Value::from("600")])),
        ("hostname", rmpv::Value::from("own-name")),
        (
            "labels",
            rmpv::Value::Array(vec![cty_string_map(&guard.labels())]),
        ),
    ]);
    let refused = start(&mut driver, named)
        .await
        .expect_err("hostname refused");
    assert!(
        refused
            .message()
            .contains("hostname \"own-name\" cannot be set")
            && refused.message().contains("network.hostname"),
        "{refused:?}"
    );
    assert!(guard.remaining().await.is_empty(), "nothing was created");

    // A task given the spec (and no network_mode of its own) joins the sandbox's namespace.
    let task = grouped_task(&guard, &dirs, "web", &alloc_id, &spec);
    let task_id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let task_container = guard.remaining().await;
    assert_eq!(task_container.len(), 1, "one task container");
    let joined = docker
        .inspect_container(&task_container[0])
        .await
        .expect("task")
        .host_config
        .and_then(|h| h.network_mode);
    assert_eq!(joined, Some(format!("container:{sandbox_id}")));
    let sandbox_ns = netns_of(&spec.path);
    assert_eq!(
        container_netns(&docker, &task_container[0]).await,
        sandbox_ns
    );
    assert_ne!(
        netns_of("/proc/self/ns/net"),
        sandbox_ns,
        "the sandbox has a namespace of its own"
    );

    // The plugin has now learnt its node id from the task: later sandboxes carry it, so
    // other nodes sharing the daemon leave them alone.
    let second_alloc = alloc_id_for("network_create_join_second");
    guard.track(sandbox_name(&second_alloc));
    let second = create_network(&mut driver, &second_alloc, "")
        .await
        .expect("CreateNetwork after a task");
    let second_spec = second.isolation_spec.expect("isolation spec");
    assert_eq!(
        sandbox_labels(&docker, &second_spec).await,
        [
            (ALLOC_LABEL.to_owned(), second_alloc.clone()),
            (NODE_LABEL.to_owned(), "node".to_owned()),
            (DRIVER_LABEL.to_owned(), DRIVER_LABEL_VALUE.to_owned()),
        ]
        .into()
    );
    destroy_network(&mut driver, &second_alloc, Some(second_spec))
        .await
        .expect("DestroyNetwork of the second sandbox");

    // Asking again adopts the running sandbox.
    let again = create_network(&mut driver, &alloc_id, "web-host")
        .await
        .expect("second CreateNetwork");
    assert!(!again.created);
    assert_eq!(again.isolation_spec.as_ref(), Some(&spec));

    destroy(&mut driver, &task_id, true)
        .await
        .expect("DestroyTask");
    destroy_network(&mut driver, &alloc_id, Some(spec.clone()))
        .await
        .expect("DestroyNetwork");
    assert_eq!(running(&docker, &sandbox_id).await, None, "sandbox removed");
    destroy_network(&mut driver, &alloc_id, Some(spec))
        .await
        .expect("DestroyNetwork of a gone sandbox");
    destroy_network(&mut driver, &alloc_id, None)
        .await
        .expect("DestroyNetwork without a spec");
}

#[tokio::test]
async fn a_restarted_plugin_re_tracks_and_re_adopts_the_sandbox() {
    let case = "network_readopt";
    let Some((docker, guard, alloc_id)) = setup(case).await else {
        return;
    };
    let mut plugin_a = plugin_with_infra(SANDBOX_IMAGE).await;
    let mut driver_a = plugin_a.driver();
    let first = create_network(&mut driver_a, &alloc_id, "")
        .await
        .expect("CreateNetwork on A");
    assert!(first.created);
    let spec = first.isolation_spec.expect("spec");
    assert!(!spec.labels.contains_key(SANDBOX_HOSTNAME_LABEL));
    let dirs = TaskDirs::create("db");
    let task = grouped_task(&guard, &dirs, "db", &alloc_id, &spec);
    let saved = start(&mut driver_a, task)
        .await
        .expect("StartTask on A")
        .handle
        .expect("handle");
    plugin_a.signal(Signal::SIGKILL);
    assert!(plugin_a.wait_exit(Duration::from_secs(10)).await.is_some());

    let sandbox_id = spec.labels[SANDBOX_CONTAINER_LABEL].clone();
    assert_eq!(running(&docker, &sandbox_id).await, Some(true));

    // A restarted plugin that only re-attaches the task (no CreateNetwork) tracks the sandbox
    // the task joins.
    let recovered = engine_with_infra(&docker, SANDBOX_IMAGE);
    assert!(recovered.store().tracked_container_ids().is_empty());
    let handle = recovered
        .recover(&saved.driver_state)
        .await
        .expect("recover");
    let tracked = recovered.store().tracked_container_ids();
    assert!(tracked.contains(handle.container_id()), "{tracked:?}");
    assert!(tracked.contains(&sandbox_id), "{tracked:?}");
    recovered
        .destroy(handle.task_id(), true)
        .await
        .expect("destroy task");

    // CreateNetwork after a restart adopts the running sandbox.
    let plugin_b = plugin_with_infra(SANDBOX_IMAGE).await;
    let mut driver = plugin_b.driver();
    let adopted = create_network(&mut driver, &alloc_id, "")
        .await
        .expect("CreateNetwork on B");
    assert!(!adopted.created);
    assert_eq!(adopted.isolation_spec, Some(spec.clone()));

    // DestroyNetwork without a spec finds the sandbox by its tracked id.
    destroy_network(&mut driver, &alloc_id, None)
        .await
        .expect("DestroyNetwork");
    assert_eq!(running(&docker, &sandbox_id).await, None);
}

#[tokio::test]
async fn a_restarted_plugin_labels_a_sandbox_with_the_node_learnt_in_its_last_run() {
    const NODE_ID: &str = "5c0e5a1e-6f0d-4a57-9b8e-2f6c1d4b7a90";
    let case = "network_node_file";
    let Some((docker, guard, alloc_id)) = setup(case).await else {
        return;
    };
    let private = Private::new();
    // The node identity is kept whether or not this node reconciles.
    let config = private.config(
        "",
        &format!(
            "infra_image = \"{SANDBOX_IMAGE}\"\ngc {{\n dangling_containers {{\n enabled = false\n }}\n}}\n"
        ),
    );
    let node_file = private.data_dir().join(NODE_FILE_NAME);

    // A run that starts a task learns the node from it and saves it.
    let mut plugin_a = started(&config).await;
    let mut driver_a = plugin_a.driver();
    let dirs = TaskDirs::create("learn");
    let mut task = task_config(&guard, &dirs, "learn", "sleep 600", Vec::new());
    task.node_id = NODE_ID.to_owned();
    task.node_name = "client-7".to_owned();
    let task_id = task.id.clone();
    start(&mut driver_a, task).await.expect("StartTask");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&node_file).expect("node file written"))
            .expect("node file is JSON");
    assert_eq!(
        saved,
        serde_json::json!({"id": NODE_ID, "name": "client-7"})
    );
    destroy(&mut driver_a, &task_id, true)
        .await
        .expect("DestroyTask");
    plugin_a.signal(Signal::SIGKILL);
    assert!(plugin_a.wait_exit(Duration::from_secs(10)).await.is_some());

    // Restarted, it labels a sandbox with that node before any task has told it again.
    let plugin_b = started(&config).await;
    assert!(
        plugin_b
            .wait_for_log("node identity restored from the last run", START_TIMEOUT)
            .await,
        "{:?}",
        plugin_b.stderr_lines()
    );
    let mut driver_b = plugin_b.driver();
    let created = create_network(&mut driver_b, &alloc_id, "")
        .await
        .expect("CreateNetwork");
    let spec = created.isolation_spec.expect("isolation spec");
    assert_eq!(
        sandbox_labels(&docker, &spec).await,
        [
            (ALLOC_LABEL.to_owned(), alloc_id.clone()),
            (NODE_LABEL.to_owned(), NODE_ID.to_owned()),
            (DRIVER_LABEL.to_owned(), DRIVER_LABEL_VALUE.to_owned()),
        ]
        .into()
    );
    destroy_network(&mut driver_b, &alloc_id, Some(spec))
        .await
        .expect("DestroyNetwork");
}

#[tokio::test]
async fn a_missing_infra_image_is_a_clear_error_and_leaves_nothing_behind() {
    let case = "network_missing_image";
    let Some((docker, _guard, alloc_id)) = setup(case).await else {
        return;
    };
    let plugin = plugin_with_infra(ABSENT_IMAGE).await;
    let err = create_network(&mut plugin.driver(), &alloc_id, "")
        .await
        .expect_err("no infra image");
    assert!(
        err.message().contains(&format!(
            "infra_image \"{ABSENT_IMAGE}\" is not available locally and could not be pulled"
        )),
        "{}",
        err.message()
    );
    assert_eq!(running(&docker, &sandbox_name(&alloc_id)).await, None);
    let labelled = docker
        .list_containers(
            &dockhand::docker::ContainerFilter::all()
                .with_label(format!("{ALLOC_LABEL}={alloc_id}")),
        )
        .await
        .expect("list");
    assert!(labelled.is_empty(), "{labelled:?}");
}

#[tokio::test]
async fn a_foreign_container_holding_the_sandbox_name_is_left_alone() {
    let case = "network_name_taken";
    let Some((docker, guard, alloc_id)) = setup(case).await else {
        return;
    };
    let foreign = docker
        .create_container(
            &sandbox_name(&alloc_id),
            ContainerCreateBody {
                image: Some(TEST_IMAGE.to_owned()),
                labels: Some(guard.labels().into_iter().collect()),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .expect("create foreign container");
    let engine = engine_with_infra(&docker, SANDBOX_IMAGE);
    let err = engine
        .create_network(&alloc_id, "", "")
        .await
        .expect_err("name taken");
    assert!(matches!(err, NetworkError::NameTaken { .. }), "{err}");
    let err = engine
        .destroy_network(&alloc_id, Some(&foreign))
        .await
        .expect_err("not ours");
    assert!(matches!(err, NetworkError::NotOurs { .. }), "{err}");
    assert_eq!(running(&docker, &foreign).await, Some(false), "untouched");
    assert!(engine.store().sandbox_ids().is_empty());
}

#[tokio::test]
async fn the_reconciler_spares_tracked_sandboxes_and_judges_orphaned_ones() {
    let case = "network_reconcile";
    let Some((docker, guard, alloc_id)) = setup(case).await else {
        return;
    };
    // The sandbox of a gone allocation, created by an engine that no longer exists (and knew
    // its node: a sandbox without a node label is never claimed on a shared daemon).
    let gone_alloc = alloc_id_for("network_reconcile_gone");
    guard.track(sandbox_name(&gone_alloc));
    let _ = docker
        .remove_container(&sandbox_name(&gone_alloc), true)
        .await;
    let orphan = engine_with_infra(&docker, SANDBOX_IMAGE)
        .create_network(&gone_alloc, "", NODE)
        .await
        .expect("orphan sandbox")
        .container_id;

    // A live allocation's sandbox, tracked by this engine.
    let engine = engine_with_infra(&docker, SANDBOX_IMAGE);
    let live = engine
        .create_network(&alloc_id, "", "")
        .await
        .expect("live sandbox");
    assert!(live.created);
    let tracked = engine.store().tracked_container_ids();
    assert!(tracked.contains(&live.container_id), "{tracked:?}");
    assert!(!tracked.contains(&orphan), "{tracked:?}");

    let sweep = |alloc: &str| {
        let mut s = settings(&guard, Duration::ZERO);
        s.label_filter = Some(format!("{ALLOC_LABEL}={alloc}"));
        Reconciler::new(
            docker.clone(),
            Arc::new(engine.clone()),
            default_policies(),
            s,
            Arc::new(AlwaysHealthy),
        )
    };
    let report = sweep(&alloc_id).sweep_once().await;
    eprintln!("{}", report.render_table());
    assert_eq!((report.listed, report.skipped_tracked), (1, 1));
    assert!(report.decision(&live.container_id).is_none());
    assert!(report.acted_on().is_empty());

    // With no grace, a container is a candidate once the second it was created in is over
    // (the daemon rounds creation times down to the second); on a fast run that second may
    // not be over yet.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = sweep(&gone_alloc).sweep_once().await;
    eprintln!("{}", report.render_table());
    assert_eq!(report.skipped_tracked, 0);
    assert_eq!(report.acted_on(), vec![orphan.as_str()]);
    assert_eq!(running(&docker, &orphan).await, None, "orphan removed");
    assert_eq!(running(&docker, &live.container_id).await, Some(true));

    // A fresh engine (a restarted plugin) does not track the sandbox until it re-adopts it.
    let restarted = engine_with_infra(&docker, SANDBOX_IMAGE);
    assert!(restarted.store().tracked_container_ids().is_empty());
    let adopted = restarted
        .create_network(&alloc_id, "", "")
        .await
        .expect("re-adopt");
    assert!(!adopted.created);
    assert_eq!(adopted.container_id, live.container_id);
    assert_eq!(adopted.netns_path, live.netns_path);
    assert!(
        restarted
            .store()
            .tracked_container_ids()
            .contains(&live.container_id)
    );

    restarted
        .destroy_network(&alloc_id, None)
        .await
        .expect("destroy");
    assert!(restarted.store().sandbox_ids().is_empty());
    assert_eq!(running(&docker, &live.container_id).await, None);
}

#[tokio::test]
async fn a_stopped_sandbox_is_replaced_by_a_new_one() {
    let case = "network_stopped_sandbox";
    let Some((docker, _guard, alloc_id)) = setup(case).await else {
        return;
    };
    let engine = engine_with_infra(&docker, SANDBOX_IMAGE);
    let first = engine
        .create_network(&alloc_id, "", "")
        .await
        .expect("create");
    docker
        .stop_container(&first.container_id, Duration::ZERO)
        .await
        .expect("stop sandbox");
    assert_eq!(running(&docker, &first.container_id).await, Some(false));

    let second = engine
        .create_network(&alloc_id, "", "")
        .await
        .expect("create again");
    assert!(second.created, "a stopped sandbox is not adopted");
    assert_ne!(second.container_id, first.container_id);
    assert_eq!(running(&docker, &first.container_id).await, None);
    assert_eq!(running(&docker, &second.container_id).await, Some(true));
    assert_eq!(
        engine.store().sandbox_ids(),
        [second.container_id.clone()].into()
    );
    engine
        .destroy_network(&alloc_id, Some(&second.container_id))
        .await
        .expect("destroy");
    assert!(engine.store().tracked_container_ids().is_empty());
}
