//! The task engine against the real daemon, through the library API.

mod io;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::config::TaskConfig;
use dockhand::docker::{ContainerFilter, DockerApi};
use dockhand::fingerprint::RuntimeCatalog;
use dockhand::tasks::spec::TaskResources;
use dockhand::tasks::{EngineSettings, TaskEngine, TaskError, TaskSpec, TaskState};
use futures::StreamExt;

use crate::support::{TEST_IMAGE, TestContainers, docker_with_image};

/// A spec running `script` under `sh -c`, labelled for `guard`, with no network and its logs in
/// files under `dir`.
fn spec(guard: &TestContainers, dir: &Path, task: &str, script: &str) -> TaskSpec {
    let alloc_id = uuid_like(guard.case());
    TaskSpec {
        id: format!("{alloc_id}/{task}/0badcafe"),
        name: task.to_owned(),
        alloc_id,
        job_name: "job".to_owned(),
        job_id: "job".to_owned(),
        task_group_name: "group".to_owned(),
        namespace: "default".to_owned(),
        node_id: "node".to_owned(),
        node_name: "node".to_owned(),
        stdout_path: Some(dir.join("stdout")),
        stderr_path: Some(dir.join("stderr")),
        resources: TaskResources {
            memory_mb: 64,
            cpu_shares: 100,
            ..TaskResources::default()
        },
        config: TaskConfig {
            image: TEST_IMAGE.to_owned(),
            command: Some("sh".to_owned()),
            args: vec!["-c".to_owned(), script.to_owned()],
            labels: guard.labels(),
            network_mode: Some("none".to_owned()),
            ..TaskConfig::default()
        },
        ..TaskSpec::default()
    }
}

/// A stable, UUID-shaped alloc id per test case.
fn uuid_like(case: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in case.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let x = format!("{h:016x}{:016x}", h.rotate_left(17));
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn engine(docker: &Arc<dyn DockerApi>) -> TaskEngine {
    TaskEngine::new(
        docker.clone(),
        EngineSettings::default(),
        RuntimeCatalog::new(),
    )
}

async fn wait_for_file(path: &Path, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            started.elapsed() < limit,
            "{} never contained {needle:?}; it has {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(case: &str) -> Option<(Arc<dyn DockerApi>, TestContainers, tempfile::TempDir)> {
    let docker = docker_with_image(case).await?;
    let guard = TestContainers::new(&docker, case).await;
    Some((docker, guard, tempfile::tempdir().unwrap()))
}

#[tokio::test]
async fn task_lifecycle_start_stats_signal_exec_stop_wait_destroy() {
    let Some((docker, guard, dir)) = setup("task_lifecycle").await else {
        return;
    };
    let engine = engine(&docker);
    let script = "trap 'echo got-hup' HUP; trap 'echo bye; exit 0' TERM; echo hello; \
                  echo oops >&2; while true; do sleep 0.1; done";
    let spec = spec(&guard, dir.path(), "web", script);
    let started = engine.start(spec.clone()).await.unwrap();
    let cid = started.handle.container_id().to_owned();
    assert!(engine.store().tracked_container_ids().contains(&cid));
    assert!(matches!(
        engine.start(spec.clone()).await,
        Err(TaskError::AlreadyStarted(_))
    ));

    let inspected = docker.inspect_container(&cid).await.unwrap();
    assert_eq!(
        inspected.name.as_deref(),
        Some(format!("/{}", spec.container_name()).as_str())
    );
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels["com.hashicorp.nomad.alloc_id"], spec.alloc_id);
    assert_eq!(labels["dockhand.test"], "1");

    wait_for_file(&dir.path().join("stdout"), "hello", Duration::from_secs(10)).await;
    wait_for_file(&dir.path().join("stderr"), "oops", Duration::from_secs(10)).await;

    let status = engine.inspect(&spec.id).await.unwrap();
    assert!(status.running);
    assert!(status.exit.is_none());

    let mut stats = engine.stats(&spec.id, Duration::from_millis(200)).unwrap();
    let sample = tokio::time::timeout(Duration::from_secs(15), stats.next())
        .await
        .expect("no stats sample within 15s")
        .expect("stats stream ended early");
    assert!(sample.memory.usage > 0, "{sample:?}");
    assert!(sample.memory.measured.contains(&"RSS"));
    assert!(sample.cpu.measured.contains(&"Percent"));
    assert!(sample.cpu.percent >= 0.0);
    drop(stats);

    engine.signal(&spec.id, "SIGHUP").await.unwrap();
    wait_for_file(
        &dir.path().join("stdout"),
        "got-hup",
        Duration::from_secs(10),
    )
    .await;

    let out = engine
        .exec(
            &spec.id,
            vec!["echo".into(), "from-exec".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from-exec\n");
    assert_eq!(out.exit_code, 0);
    let out = engine
        .exec(
            &spec.id,
            vec!["sh".into(), "-c".into(), "echo e >&2; exit 3".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stderr.as_slice()), (3, &b"e\n"[..]));
    let err = engine
        .exec(
            &spec.id,
            vec!["sleep".into(), "5".into()],
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TaskError::ExecTimeout(_)), "{err}");

    // Two concurrent waiters both get the result.
    let (e1, e2) = (engine.clone(), engine.clone());
    let (id1, id2) = (spec.id.clone(), spec.id.clone());
    let w1 = tokio::spawn(async move { e1.wait(&id1).await });
    let w2 = tokio::spawn(async move { e2.wait(&id2).await });

    let t0 = Instant::now();
    engine
        .stop(&spec.id, Duration::from_secs(20), None)
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "TERM handler should end it quickly"
    );
    let r1 = w1.await.unwrap().unwrap();
    let r2 = w2.await.unwrap().unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.exit_code, 0);
    assert!(r1.successful(), "{r1:?}");
    wait_for_file(&dir.path().join("stdout"), "bye", Duration::from_secs(10)).await;
    // Stop again is fine; wait after stop still answers.
    engine
        .stop(&spec.id, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!(engine.wait(&spec.id).await.unwrap(), r1);
    assert!(matches!(
        engine.stats(&spec.id, Duration::from_secs(1)),
        Err(TaskError::ContainerStopped)
    ));

    engine.destroy(&spec.id, false).await.unwrap();
    assert!(engine.store().is_empty());
    assert!(
        docker
            .inspect_container(&cid)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = engine.wait(&spec.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task not found for given id: {}", spec.id)
    );
}

#[tokio::test]
async fn non_zero_exit_code_is_reported() {
    let Some((docker, guard, dir)) = setup("non_zero_exit_code").await else {
        return;
    };
    let engine = engine(&docker);
    let spec = spec(&guard, dir.path(), "fails", "exit 7");
    engine.start(spec.clone()).await.unwrap();
    let r = engine.wait(&spec.id).await.unwrap();
    assert_eq!(r.exit_code, 7);
    assert!(!r.oom_killed);
    assert_eq!(
        r.err.as_deref(),
        Some("Docker container exited with non-zero exit code: 7")
    );
    let status = engine.inspect(&spec.id).await.unwrap();
    assert!(!status.running);
    assert_eq!(status.exit, Some(r));
    engine.destroy(&spec.id, false).await.unwrap();
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn oom_kill_is_detected_from_inspect() {
    let Some((docker, guard, dir)) = setup("oom_kill").await else {
        return;
    };
    let engine = engine(&docker);
    // dd, the main process, fills a 64 MiB buffer under a 6 MiB limit (no swap): the OOM
    // killer fires within the first pages, even on a loaded machine (a slowly growing shell
    // variable could thrash on reclaim for minutes first). It starts after a pause: a container
    // OOM-killed in its first milliseconds can die before the runtime watches its cgroup, and
    // Docker then never records the OOM kill.
    let mut spec = spec(
        &guard,
        dir.path(),
        "hog",
        "sleep 2; exec dd if=/dev/zero of=/dev/null bs=64M count=1",
    );
    spec.resources.memory_mb = 6;
    engine.start(spec.clone()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(60), engine.wait(&spec.id))
        .await
        .expect("task did not end")
        .unwrap();
    assert!(r.oom_killed, "{r:?}");
    assert_eq!(r.err.as_deref(), Some("OOM Killed"));
    assert_ne!(r.exit_code, 0);
    // dd reports "1+0 records out" only if it got to copy its block.
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    assert!(!stderr.contains("records out"), "{stderr}");
    engine.destroy(&spec.id, true).await.unwrap();
}

#[tokio::test]
async fn name_conflict_adopts_a_running_container_and_purges_a_dead_one() {
    let Some((docker, guard, dir)) = setup("name_conflict").await else {
        return;
    };
    // A first plugin instance started the task; a second one (fresh engine) starts it again.
    let first = engine(&docker);
    let spec1 = spec(&guard, dir.path(), "svc", "while true; do sleep 0.2; done");
    let original = first.start(spec1.clone()).await.unwrap();
    let original_id = original.handle.container_id().to_owned();

    let second = engine(&docker);
    let mut spec2 = spec1.clone();
    spec2.id = format!("{}/svc/00000002", spec1.alloc_id);
    let adopted = second.start(spec2.clone()).await.unwrap();
    assert_eq!(adopted.handle.container_id(), original_id);
    assert!(adopted.handle.state().adopted);

    // Dead container with the name: purged and replaced.
    second
        .stop(&spec2.id, Duration::from_secs(1), Some("SIGKILL"))
        .await
        .unwrap();
    second.wait(&spec2.id).await.unwrap();
    let third = engine(&docker);
    let mut spec3 = spec1.clone();
    spec3.id = format!("{}/svc/00000003", spec1.alloc_id);
    let fresh = third.start(spec3.clone()).await.unwrap();
    assert_ne!(fresh.handle.container_id(), original_id);
    assert!(!fresh.handle.state().adopted);
    assert!(
        docker
            .inspect_container(&original_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    third.destroy(&spec3.id, true).await.unwrap();
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn missing_image_fails_clearly_and_leaves_no_container() {
    let Some((docker, guard, dir)) = setup("missing_image").await else {
        return;
    };
    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "img", "true");
    // A loopback registry that refuses connections: no traffic leaves the host.
    spec.config.image = "127.0.0.1:1/dockhand-test/missing:1".to_owned();
    let mut events = engine.subscribe_events();
    let err = engine.start(spec.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Failed to pull `127.0.0.1:1/dockhand-test/missing:1`"
    );
    assert!(matches!(err, TaskError::Pull { .. }), "{err:?}");
    let event = events.try_recv().expect("a Downloading image event");
    assert_eq!(event.message, "Downloading image");
    assert!(engine.store().is_empty());
    let named = docker
        .list_containers(&ContainerFilter::all().with_name(spec.container_name()))
        .await
        .unwrap();
    assert!(named.is_empty(), "{named:?}");
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn gpu_request_without_the_runtime_is_refused() {
    let Some((docker, guard, dir)) = setup("gpu_runtime_missing").await else {
        return;
    };
    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "gpu", "true");
    spec.device_env
        .insert("NVIDIA_VISIBLE_DEVICES".to_owned(), "GPU-0".to_owned());
    let err = engine.start(spec).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"requested docker runtime "nvidia" was not found"#
    );
    assert!(!err.is_recoverable());
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn a_fresh_engine_recovers_a_task_from_its_driver_state() {
    let Some((docker, guard, dir)) = setup("recover").await else {
        return;
    };
    let before = engine(&docker);
    let spec = spec(
        &guard,
        dir.path(),
        "long",
        "while true; do echo tick; sleep 0.2; done",
    );
    let started = before.start(spec.clone()).await.unwrap();
    let cid = started.handle.container_id().to_owned();
    let state = started.driver_state.clone();
    assert_eq!(TaskState::decode(&state).unwrap().container_id, cid);
    wait_for_file(&dir.path().join("stdout"), "tick", Duration::from_secs(10)).await;

    // The old instance goes away (its forwarder and watcher stop with it).
    drop(started);
    drop(before.store().remove(&spec.id));
    drop(before);
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(dir.path().join("stdout"), b"").unwrap();

    let after = engine(&docker);
    let h1 = after.recover(&state).await.unwrap();
    let h2 = after.recover(&state).await.unwrap();
    assert!(Arc::ptr_eq(&h1, &h2), "recover is idempotent");
    assert_eq!(h1.container_id(), cid);
    assert!(after.store().tracked_container_ids().contains(&cid));
    wait_for_file(&dir.path().join("stdout"), "tick", Duration::from_secs(10)).await;

    after
        .stop(&spec.id, Duration::from_secs(1), Some("SIGKILL"))
        .await
        .unwrap();
    let r = after.wait(&spec.id).await.unwrap();
    assert_eq!(r.exit_code, 137);
    assert!(!r.oom_killed, "a SIGKILL is not an OOM kill");
    after.destroy(&spec.id, false).await.unwrap();

    let err = after.recover(b"not a driver state").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "driver_state is not a dockhand task record"
    );
    // The container is gone now: recovering it fails instead of tracking a ghost.
    let err = after.recover(&state).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to inspect container for id"),
        "{err}"
    );
    assert!(after.store().is_empty());
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn destroy_without_force_refuses_a_running_task() {
    let Some((docker, guard, dir)) = setup("destroy_running").await else {
        return;
    };
    let engine = engine(&docker);
    let spec = spec(&guard, dir.path(), "busy", "while true; do sleep 0.2; done");
    let started = engine.start(spec.clone()).await.unwrap();
    let err = engine.destroy(&spec.id, false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "must call StopTask for the given task before Destroy or set force to true"
    );
    assert!(engine.store().contains(&spec.id));
    assert!(
        docker
            .inspect_container(started.handle.container_id())
            .await
            .is_ok()
    );
    // A WaitTask pending during a forced destroy gets the real exit status.
    let waiter = {
        let (engine, id) = (engine.clone(), spec.id.clone());
        tokio::spawn(async move { engine.wait(&id).await })
    };
    engine.destroy(&spec.id, true).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("waiter hung after destroy")
        .unwrap()
        .unwrap();
    assert_eq!(r.exit_code, 137, "{r:?}");
    assert!(!engine.store().contains(&spec.id));
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn a_container_that_fails_to_start_is_removed() {
    let Some((docker, guard, dir)) = setup("start_failure").await else {
        return;
    };
    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "broken", "true");
    // Creating succeeds; starting fails because the device does not exist.
    spec.config.devices.push(dockhand::config::Device {
        host_path: "/dev/dockhand-test-no-such-device".to_owned(),
        container_path: "/dev/dockhand-test-no-such-device".to_owned(),
        cgroup_permissions: "rwm".to_owned(),
    });
    let err = engine.start(spec).await.unwrap_err();
    assert!(matches!(err, TaskError::Start { .. }), "{err:?}");
    assert!(engine.store().is_empty());
    assert!(
        guard.remaining().await.is_empty(),
        "the half-created container was left behind"
    );
}

#[tokio::test]
async fn stop_with_an_ignored_signal_forces_after_the_timeout() {
    let Some((docker, guard, dir)) = setup("stop_signal_then_force").await else {
        return;
    };
    let engine = engine(&docker);
    let spec = spec(
        &guard,
        dir.path(),
        "stubborn",
        "trap 'echo ignoring-usr1' USR1; while true; do sleep 0.1; done",
    );
    engine.start(spec.clone()).await.unwrap();
    let t0 = Instant::now();
    engine
        .stop(&spec.id, Duration::from_secs(2), Some("SIGUSR1"))
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(2), "forced too early: {took:?}");
    let r = engine.wait(&spec.id).await.unwrap();
    assert_eq!(r.exit_code, 137, "{r:?}");
    wait_for_file(
        &dir.path().join("stdout"),
        "ignoring-usr1",
        Duration::from_secs(10),
    )
    .await;
    engine.destroy(&spec.id, false).await.unwrap();
}

/// A running container holding the task's name but labelled for another allocation is not
/// adopted and not touched.
#[tokio::test]
async fn a_foreign_container_with_the_name_is_left_alone() {
    use dockhand::docker::models::{ContainerCreateBody, HostConfig};
    let Some((docker, guard, dir)) = setup("foreign_name").await else {
        return;
    };
    let spec = spec(&guard, dir.path(), "svc", "true");
    let mut labels = guard.labels();
    labels.insert("com.hashicorp.nomad.alloc_id".into(), "someone-else".into());
    let foreign = docker
        .create_container(
            &spec.container_name(),
            ContainerCreateBody {
                image: Some(TEST_IMAGE.to_owned()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                labels: Some(labels.into_iter().collect()),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .unwrap();
    docker.start_container(&foreign).await.unwrap();

    let engine = engine(&docker);
    let err = engine.start(spec).await.unwrap_err();
    assert!(matches!(err, TaskError::NameTaken { .. }), "{err:?}");
    assert!(engine.store().is_empty());
    let still = docker.inspect_container(&foreign).await.unwrap();
    assert_eq!(still.state.unwrap().running, Some(true));
}

#[tokio::test]
async fn a_group_dns_becomes_the_tasks_resolv_conf_and_overrides_the_driver_dns() {
    let Some((docker, guard, dir)) = setup("group_dns").await else {
        return;
    };
    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "dns", "cat /etc/resolv.conf");
    let alloc_dir = dir.path().join("alloc-dir");
    std::fs::create_dir_all(alloc_dir.join("dns")).unwrap();
    spec.alloc_dir = Some(alloc_dir.clone());
    spec.config.dns_servers = vec!["192.0.2.1".to_owned()];
    spec.group_dns = Some(dockhand::tasks::spec::DnsSpec {
        servers: vec!["10.53.0.1".to_owned(), "10.53.0.2".to_owned()],
        searches: vec!["svc.example".to_owned()],
        options: vec!["ndots:3".to_owned()],
    });
    let started = engine.start(spec.clone()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), engine.wait(&spec.id))
        .await
        .expect("task ended")
        .unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    let expected =
        "search svc.example\nnameserver 10.53.0.1\nnameserver 10.53.0.2\noptions ndots:3\n";
    let written = std::fs::read_to_string(alloc_dir.join("dns/resolv.conf")).unwrap();
    assert_eq!(written, expected);
    let stdout = wait_for_file(
        &dir.path().join("stdout"),
        "nameserver 10.53.0.2",
        Duration::from_secs(10),
    )
    .await;
    assert!(!stdout.contains("192.0.2.1"), "{stdout}");
    let inspected = docker
        .inspect_container(started.handle.container_id())
        .await
        .unwrap();
    let host = inspected.host_config.unwrap_or_default();
    assert_eq!(
        host.dns, None,
        "the driver's dns_servers give way to the group DNS"
    );
    let mount = host
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.target.as_deref() == Some("/etc/resolv.conf"))
        .expect("resolv.conf is mounted");
    assert_eq!(mount.read_only, Some(true));
    engine.destroy(&spec.id, true).await.unwrap();
}
