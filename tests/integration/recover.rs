//! RecoverTask through the real plugin binary: a plugin killed with SIGKILL, a new plugin
//! process re-attaching to the running container from the saved handle alone.

use std::time::Duration;

use nix::sys::signal::Signal;
use nomad_plugin::proto::drivers as pb;

use crate::harness::{TaskDirs, configured_plugin};
use crate::lifecycle::{destroy, inspect, start, stats, stop, task_config, wait};
use crate::support::{TestContainers, docker_with_image};

/// What the agent sends after a restart: empty `task_id`, no driver config in the handle.
pub(crate) fn recover_request(saved: &pb::TaskHandle) -> pb::RecoverTaskRequest {
    let mut handle = saved.clone();
    if let Some(config) = handle.config.as_mut() {
        config.msgpack_driver_config.clear();
        config.parent_job_id.clear();
    }
    pb::RecoverTaskRequest {
        task_id: String::new(),
        handle: Some(handle),
    }
}

#[tokio::test]
async fn task_survives_sigkilled_plugin_and_is_recovered() {
    let Some(docker) = docker_with_image("recover_after_sigkill").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "recover_after_sigkill").await;
    let dirs = TaskDirs::create("db");
    let script = "trap 'echo term; exit 0' TERM; echo up; while true; do sleep 0.1; done";
    let task = task_config(&guard, &dirs, "db", script, Vec::new());
    let id = task.id.clone();

    let mut plugin_a = configured_plugin().await;
    let saved = start(&mut plugin_a.driver(), task)
        .await
        .expect("StartTask")
        .handle
        .expect("handle");
    assert!(dirs.stdout.wait_for("up", Duration::from_secs(20)).await);
    plugin_a.signal(Signal::SIGKILL);
    assert!(plugin_a.wait_exit(Duration::from_secs(10)).await.is_some());

    let containers = guard.remaining().await;
    assert_eq!(containers.len(), 1, "the container outlives its plugin");
    let running = docker
        .inspect_container(&containers[0])
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.running);
    assert_eq!(running, Some(true));

    let plugin_b = configured_plugin().await;
    let mut driver = plugin_b.driver();
    // Unknown to B before recovery.
    assert_eq!(
        wait(&mut driver, &id)
            .await
            .expect_err("not yet tracked")
            .code(),
        tonic::Code::NotFound
    );
    driver
        .recover_task(recover_request(&saved))
        .await
        .expect("RecoverTask");
    driver
        .recover_task(recover_request(&saved))
        .await
        .expect("RecoverTask is idempotent");

    let status = inspect(&mut driver, &id)
        .await
        .expect("InspectTask on B")
        .task
        .expect("task");
    assert_eq!(status.state, pb::TaskState::Running as i32);
    stats(&mut driver, &id, 1).await;

    let mut waiter = plugin_b.driver();
    let wait_id = id.clone();
    let waiting = tokio::spawn(async move { wait(&mut waiter, &wait_id).await });
    stop(&mut driver, &id, "SIGTERM").await;
    let r = waiting.await.expect("join").expect("WaitTask on B");
    assert_eq!(r.result.expect("result").exit_code, 0, "TERM trap ran");
    // Log forwarding resumed in B.
    assert!(dirs.stdout.wait_for("term", Duration::from_secs(10)).await);

    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn recover_rejects_unusable_handles() {
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let config = pb::TaskConfig {
        id: "a/web/1".to_owned(),
        ..pb::TaskConfig::default()
    };
    for (state, needle) in [
        (b"garbage".to_vec(), "driver_state"),
        (Vec::new(), "driver_state"),
    ] {
        let err = driver
            .recover_task(pb::RecoverTaskRequest {
                task_id: String::new(),
                handle: Some(pb::TaskHandle {
                    version: 1,
                    config: Some(config.clone()),
                    state: pb::TaskState::Running.into(),
                    driver_state: state,
                }),
            })
            .await
            .expect_err("unusable driver_state");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(needle), "{}", err.message());
    }
    let err = driver
        .recover_task(pb::RecoverTaskRequest {
            task_id: String::new(),
            handle: None,
        })
        .await
        .expect_err("no handle");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}
