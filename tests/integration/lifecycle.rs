//! Every task RPC through the real plugin binary, launched as the Nomad agent launches it,
//! against the real Docker daemon.

pub mod rpc;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use nomad_plugin::proto::drivers as pb;

use crate::harness::{TaskDirs, configured_plugin, cty_object};
use crate::support::{TestContainers, docker_with_image};

pub use rpc::{
    destroy, exec_streaming, inspect, setup, start, stats, stop, streaming_request, task_config,
    wait,
};

#[tokio::test]
async fn full_task_cycle_through_the_plugin() {
    let Some(docker) = docker_with_image("lifecycle_full_cycle").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_full_cycle").await;
    let dirs = TaskDirs::create("web");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let mut events = driver
        .task_events(pb::TaskEventsRequest {})
        .await
        .expect("TaskEvents opens")
        .into_inner();

    let script = "trap 'echo got-hup' HUP; trap 'echo bye; exit 0' TERM; \
                  echo started $NOMAD_TASK_NAME; echo to-stderr >&2; \
                  while true; do sleep 0.1; done";
    let task = task_config(&guard, &dirs, "web", script, Vec::new());
    let id = task.id.clone();
    let resp = start(&mut driver, task).await.expect("StartTask");
    let handle = resp.handle.expect("handle");
    assert_eq!(
        handle.config.as_ref().map(|c| c.id.as_str()),
        Some(id.as_str())
    );
    assert!(handle.version >= 1);
    assert_eq!(handle.state, pb::TaskState::Running as i32);
    assert!(!handle.driver_state.is_empty());
    assert_eq!(guard.remaining().await.len(), 1, "one container created");
    assert!(
        dirs.stdout
            .wait_for("started web", Duration::from_secs(20))
            .await,
        "stdout reached the FIFO: {:?}",
        dirs.stdout.text()
    );
    assert!(
        dirs.stderr
            .wait_for("to-stderr", Duration::from_secs(20))
            .await
    );

    let running = inspect(&mut driver, &id).await.expect("InspectTask");
    let status = running.task.expect("task set");
    assert_eq!(status.state, pb::TaskState::Running as i32);
    assert!(status.started_at.expect("started_at").seconds > 0);
    assert!(status.completed_at.is_some() && status.result.is_some());

    stats(&mut driver, &id, 2).await;

    driver
        .signal_task(pb::SignalTaskRequest {
            task_id: id.clone(),
            signal: "SIGHUP".to_owned(),
        })
        .await
        .expect("SignalTask");
    assert!(
        dirs.stdout
            .wait_for("got-hup", Duration::from_secs(20))
            .await
    );

    let exec = driver
        .exec_task(pb::ExecTaskRequest {
            task_id: id.clone(),
            command: ["sh", "-c", "echo out; echo err >&2; exit 3"]
                .map(String::from)
                .to_vec(),
            timeout: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
        })
        .await
        .expect("ExecTask")
        .into_inner();
    assert_eq!(exec.stdout, b"out\n");
    assert_eq!(exec.stderr, b"err\n");
    assert_eq!(exec.result.expect("result set").exit_code, 3);

    // Vector 29.
    let (out, err, code) = exec_streaming(
        &mut driver,
        vec![
            streaming_request(setup(&id, &["echo", "hi"], false), None, None),
            streaming_request(None, Some((b"", true)), None),
        ],
    )
    .await;
    assert_eq!((out.as_str(), err.as_str(), code), ("hi\n", "", 0));

    // stdin reaches the process; its EOF ends it.
    let (out, _, code) = exec_streaming(
        &mut driver,
        vec![
            streaming_request(setup(&id, &["sh", "-c", "cat; exit 4"], false), None, None),
            streaming_request(None, Some((b"abc", false)), None),
            streaming_request(None, None, None),
            streaming_request(None, Some((b"def", true)), None),
        ],
    )
    .await;
    assert_eq!((out.as_str(), code), ("abcdef", 4));

    // A TTY with the size the agent sent.
    let (out, _, code) = exec_streaming(
        &mut driver,
        vec![
            streaming_request(
                setup(&id, &["sh", "-c", "sleep 0.5; stty size"], true),
                None,
                Some((33, 111)),
            ),
            streaming_request(None, None, Some((33, 111))),
        ],
    )
    .await;
    assert!(out.contains("33 111"), "{out:?}");
    assert_eq!(code, 0);

    // Two concurrent waiters, then a graceful stop with the driver's default signal.
    let (mut d1, mut d2) = (plugin.driver(), plugin.driver());
    let (id1, id2) = (id.clone(), id.clone());
    let w1 = tokio::spawn(async move { wait(&mut d1, &id1).await });
    let w2 = tokio::spawn(async move { wait(&mut d2, &id2).await });
    stop(&mut driver, &id, "").await;
    for w in [w1, w2] {
        let r = w.await.expect("join").expect("WaitTask");
        let result = r.result.expect("result set");
        assert_eq!(result.exit_code, 0, "TERM trap ran: {r:?}");
        assert!(!result.oom_killed);
    }
    assert!(dirs.stdout.wait_for("bye", Duration::from_secs(10)).await);
    // Waiting on an exited task returns at once.
    let again = tokio::time::timeout(Duration::from_secs(5), wait(&mut driver, &id))
        .await
        .expect("immediate")
        .expect("WaitTask");
    assert!(again.result.is_some());

    let exited = inspect(&mut driver, &id)
        .await
        .expect("InspectTask")
        .task
        .expect("task");
    assert_eq!(exited.state, pb::TaskState::Exited as i32);
    assert!(exited.completed_at.expect("completed_at").seconds > 0);

    destroy(&mut driver, &id, false).await.expect("DestroyTask");
    assert_eq!(
        wait(&mut driver, &id).await.expect_err("gone").code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        inspect(&mut driver, &id).await.expect_err("gone").code(),
        tonic::Code::NotFound
    );
    assert!(
        guard.remaining().await.is_empty(),
        "container removed by DestroyTask"
    );

    // The events stream is still open (no end, no error).
    match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        Err(_) => {}
        Ok(Some(Ok(event))) => assert!(!event.task_id.is_empty(), "{event:?}"),
        Ok(other) => panic!("TaskEvents ended or failed: {other:?}"),
    }
}

#[tokio::test]
async fn non_zero_exit_and_forced_destroy() {
    let Some(docker) = docker_with_image("lifecycle_exit_code").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_exit_code").await;
    let dirs = TaskDirs::create("fails");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let task = task_config(&guard, &dirs, "fails", "echo failing; exit 7", Vec::new());
    let id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let r = wait(&mut driver, &id).await.expect("WaitTask");
    assert_eq!(r.result.expect("result").exit_code, 7);
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    assert!(guard.remaining().await.is_empty());

    // A running task refuses a non-forced destroy and accepts a forced one.
    let dirs = TaskDirs::create("sleeper");
    let task = task_config(&guard, &dirs, "sleeper", "sleep 600", Vec::new());
    let id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let refused = destroy(&mut driver, &id, false)
        .await
        .expect_err("still running");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    destroy(&mut driver, &id, true)
        .await
        .expect("forced DestroyTask");
    assert_eq!(
        wait(&mut driver, &id).await.expect_err("gone").code(),
        tonic::Code::NotFound
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn oom_kill_is_reported_by_wait_task() {
    let Some(docker) = docker_with_image("lifecycle_oom").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_oom").await;
    let dirs = TaskDirs::create("hog");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    // dd, the main process, fills a 64 MiB buffer under a 6 MiB limit (no swap): the OOM
    // killer fires within the first pages, even on a loaded machine (a slowly growing shell
    // variable can thrash on reclaim for minutes first). It starts after a pause: the
    // runtime watches a container's cgroup for OOM kills only once the container has
    // started, and Docker never marks an OOM kill that happened before that watch began.
    let mut task = task_config(
        &guard,
        &dirs,
        "hog",
        "sleep 2; exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        Vec::new(),
    );
    if let Some(memory) = task
        .resources
        .as_mut()
        .and_then(|r| r.allocated_resources.as_mut())
        .and_then(|a| a.memory.as_mut())
    {
        memory.memory_mb = 6;
    }
    let id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let r = wait(&mut driver, &id).await.expect("WaitTask");
    let result = r.result.expect("result set");
    assert!(result.oom_killed, "{result:?}");
    assert_ne!(result.exit_code, 0);
    // dd reports "1+0 records out" only if it got to copy its block.
    let stderr = dirs.stderr.text();
    assert!(!stderr.contains("records out"), "{stderr}");
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn bad_task_config_names_every_field_and_creates_nothing() {
    let Some(docker) = docker_with_image("lifecycle_bad_config").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_bad_config").await;
    let dirs = TaskDirs::create("bad");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let task = task_config(
        &guard,
        &dirs,
        "bad",
        "true",
        vec![
            ("privileged", rmpv::Value::from(true)),
            (
                "cap_add",
                rmpv::Value::Array(vec![rmpv::Value::from("SYS_ADMIN")]),
            ),
        ],
    );
    let err = start(&mut driver, task).await.expect_err("invalid config");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("privileged"), "{}", err.message());
    assert!(err.message().contains("cap_add"), "{}", err.message());

    // Undecodable driver config.
    let mut task = task_config(&guard, &dirs, "bad", "true", Vec::new());
    task.msgpack_driver_config = cty_object(vec![("image", rmpv::Value::from(42))]);
    let err = start(&mut driver, task).await.expect_err("wrong type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("image"), "{}", err.message());
    assert!(
        guard.remaining().await.is_empty(),
        "no container for a rejected task"
    );
}

#[tokio::test]
async fn missing_image_fails_and_leaves_no_container() {
    let Some(docker) = docker_with_image("lifecycle_missing_image").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_missing_image").await;
    let dirs = TaskDirs::create("ghost");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    // A registry on a closed loopback port: the pull fails at once and nothing leaves the host.
    let image = "127.0.0.1:9/dockhand-missing:never";
    let task = task_config(
        &guard,
        &dirs,
        "ghost",
        "true",
        vec![("image", rmpv::Value::from(image))],
    );
    let id = task.id.clone();
    let err = start(&mut driver, task).await.expect_err("no such image");
    assert!(err.message().contains(image), "{err:?}");
    // An unreachable registry may come back: Nomad is told to retry (vector 28's detail).
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let details = err.details();
    let type_url = b"type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError";
    assert!(
        details.windows(type_url.len()).any(|w| w == type_url),
        "RecoverableError detail present: {details:?}"
    );
    assert!(
        details.ends_with(&[0x12, 0x02, 0x08, 0x01]),
        "recoverable = true: {details:?}"
    );
    assert_eq!(
        wait(&mut driver, &id)
            .await
            .expect_err("not tracked")
            .code(),
        tonic::Code::NotFound
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn gpu_request_without_the_nvidia_runtime_is_refused() {
    let Some(docker) = docker_with_image("lifecycle_gpu").await else {
        return;
    };
    let info = docker.info().await.expect("docker info");
    if info.runtimes.is_some_and(|r| r.contains_key("nvidia")) {
        eprintln!("lifecycle_gpu: this daemon has the nvidia runtime; nothing to refuse");
        return;
    }
    let guard = TestContainers::new(&docker, "lifecycle_gpu").await;
    let dirs = TaskDirs::create("gpu");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let mut task = task_config(&guard, &dirs, "gpu", "true", Vec::new());
    let device_env: BTreeMap<String, String> =
        [("NVIDIA_VISIBLE_DEVICES".to_owned(), "GPU-0".to_owned())].into();
    task.device_env = device_env.clone().into_iter().collect();
    task.env.extend(device_env);
    let err = start(&mut driver, task).await.expect_err("no GPU runtime");
    assert!(
        err.message().contains("runtime \"nvidia\" was not found"),
        "{err:?}"
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn unknown_task_ids_are_not_found() {
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let id = "no-such-alloc/web/00000000";
    assert_eq!(
        wait(&mut driver, id).await.expect_err("unknown").code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        inspect(&mut driver, id).await.expect_err("unknown").code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        destroy(&mut driver, id, true)
            .await
            .expect_err("unknown")
            .code(),
        tonic::Code::NotFound
    );
    let err = driver
        .task_stats(pb::TaskStatsRequest {
            task_id: id.to_owned(),
            collection_interval: None,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn bridge_task_reports_its_address_and_port_map() {
    let Some(docker) = docker_with_image("lifecycle_bridge").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "lifecycle_bridge").await;
    let dirs = TaskDirs::create("api");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    // `sleep` sends nothing: the bridge network only gives the container an address.
    let port_map = rmpv::Value::Map(vec![(rmpv::Value::from("http"), rmpv::Value::from(8080))]);
    let mut task = task_config(
        &guard,
        &dirs,
        "api",
        "sleep 600",
        vec![
            ("network_mode", rmpv::Value::from("bridge")),
            ("port_map", rmpv::Value::Array(vec![port_map])),
        ],
    );
    // The task-level network's port for the label (what `port_map` maps, as in Nomad),
    // published on loopback only.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port();
    if let Some(allocated) = task
        .resources
        .as_mut()
        .and_then(|r| r.allocated_resources.as_mut())
    {
        allocated.networks.push(pb::NetworkResource {
            ip: "127.0.0.1".to_owned(),
            dynamic_ports: vec![pb::NetworkPort {
                label: "http".to_owned(),
                value: i32::from(host_port),
            }],
            ..pb::NetworkResource::default()
        });
    }
    let id = task.id.clone();
    let resp = start(&mut driver, task).await.expect("StartTask");
    let net = resp
        .network_override
        .expect("network_override for a bridge task");
    assert!(net.addr.parse::<std::net::Ipv4Addr>().is_ok(), "{net:?}");
    assert_eq!(net.port_map.get("http"), Some(&8080));
    assert!(!net.auto_advertise, "the default bridge is not advertised");
    let inspected = inspect(&mut driver, &id).await.expect("InspectTask");
    assert_eq!(inspected.network_override, Some(net));
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    assert!(guard.remaining().await.is_empty());
}
