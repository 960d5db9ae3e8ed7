//! The Docker access layer and the fingerprint against the real daemon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::docker::models::{ContainerCreateBody, HostConfig};
use dockhand::docker::{
    BollardDocker, ContainerFilter, DockerApi, DockerConnection, DockerTimeouts, LogsRequest,
    OutputStream,
};
use dockhand::fingerprint::{
    AttrValue, FingerprintSettings, Fingerprinter, Health, RuntimeCatalog,
};
use futures::StreamExt;

use crate::support::{TEST_IMAGE, TestContainers, docker_or_skip, docker_with_image};

fn body(guard: &TestContainers, cmd: &[&str]) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(TEST_IMAGE.to_owned()),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        labels: Some(guard.labels().into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

fn settings() -> FingerprintSettings {
    FingerprintSettings {
        driver_name: "dockhand".to_owned(),
        nvidia_runtime: "nvidia".to_owned(),
        allow_privileged: true,
        volumes_enabled: false,
        pids_limit: Some(512),
    }
}

#[tokio::test]
async fn fingerprint_is_healthy_against_the_real_daemon() {
    let Some(docker) = docker_or_skip("fingerprint_is_healthy_against_the_real_daemon").await
    else {
        return;
    };
    let catalog = RuntimeCatalog::new();
    let fp = Fingerprinter::new(docker.clone(), settings(), catalog.clone());
    assert!(!fp.docker_detected());
    let out = fp.fingerprint().await;
    assert_eq!(out.health, Health::Healthy, "{out:?}");
    assert_eq!(out.description, "Healthy");
    let a = &out.attributes;
    assert_eq!(a["driver.dockhand"], AttrValue::Bool(true));
    let AttrValue::String(version) = &a["driver.dockhand.version"] else {
        panic!("version is not a string: {a:?}");
    };
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    let AttrValue::String(runtimes) = &a["driver.dockhand.runtimes"] else {
        panic!("runtimes missing: {a:?}");
    };
    assert!(runtimes.split(',').any(|r| r == "runc"), "{runtimes}");
    assert_eq!(
        a["driver.dockhand.os_type"],
        AttrValue::String("linux".into())
    );
    assert_eq!(
        a["driver.dockhand.privileged.enabled"],
        AttrValue::Bool(true)
    );
    assert_eq!(a["driver.dockhand.pids.limit"], AttrValue::Int(512));
    assert!(!a.contains_key("driver.dockhand.volumes.enabled"));
    // bridge_ip is the bridge network's IPAM gateway when the daemon specifies one.
    let gateway = docker
        .inspect_network("bridge")
        .await
        .unwrap()
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.gateway)
        .filter(|g| !g.is_empty());
    assert_eq!(
        a.get("driver.dockhand.bridge_ip"),
        gateway.map(AttrValue::String).as_ref(),
        "{a:?}"
    );
    assert_eq!(catalog.contains("runc"), Some(true));
    assert!(
        !fp.gpu_runtime_available(),
        "this host has no nvidia runtime"
    );
    assert!(fp.is_healthy());
}

#[tokio::test]
async fn fingerprint_of_a_missing_socket_is_undetected() {
    let docker = BollardDocker::new(DockerConnection::to_endpoint(
        "unix:///nonexistent/dockhand/docker.sock",
    ))
    .unwrap();
    let fp = Fingerprinter::new(Arc::new(docker), settings(), RuntimeCatalog::new());
    let out = fp.fingerprint().await;
    assert_eq!(out.health, Health::Undetected);
    assert!(
        out.description
            .starts_with("Failed to connect to docker daemon: "),
        "{}",
        out.description
    );
    assert!(
        out.description
            .contains("/nonexistent/dockhand/docker.sock")
    );
    assert!(out.attributes.is_empty());
    assert!(!fp.is_healthy());
}

/// Undetected before the daemon is first seen, healthy, unhealthy once it disappears, and
/// healthy again by itself: the socket path is a symlink to the real socket that the test
/// removes and restores.
#[tokio::test]
async fn fingerprint_goes_unhealthy_and_recovers_when_the_socket_vanishes() {
    let test = "fingerprint_goes_unhealthy_and_recovers_when_the_socket_vanishes";
    let Some(_real) = docker_or_skip(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("docker.sock");
    let docker = BollardDocker::new(DockerConnection::to_endpoint(format!(
        "unix://{}",
        link.display()
    )))
    .unwrap();
    let fp = Fingerprinter::new(Arc::new(docker), settings(), RuntimeCatalog::new());

    assert_eq!(fp.fingerprint().await.health, Health::Undetected);
    std::os::unix::fs::symlink("/var/run/docker.sock", &link).unwrap();
    assert_eq!(fp.fingerprint().await.health, Health::Healthy);
    std::fs::remove_file(&link).unwrap();
    let out = fp.fingerprint().await;
    assert_eq!(out.health, Health::Unhealthy);
    assert!(
        out.description
            .starts_with("Failed to connect to docker daemon: "),
        "{}",
        out.description
    );
    std::os::unix::fs::symlink("/var/run/docker.sock", &link).unwrap();
    assert_eq!(fp.fingerprint().await.health, Health::Healthy);
}

#[tokio::test]
async fn api_errors_are_classified() {
    let Some(docker) = docker_with_image("api_errors_are_classified").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "api_errors_are_classified").await;

    let err = docker
        .inspect_container("dockhand-no-such-container")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    let name = "dockhand-test-api-conflict";
    let id = docker
        .create_container(name, body(&guard, &["true"]))
        .await
        .unwrap();
    let err = docker
        .create_container(name, body(&guard, &["true"]))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");

    let listed = docker
        .list_containers(
            &ContainerFilter::all().with_label(format!("dockhand.test.case={}", guard.case())),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_deref(), Some(id.as_str()));
    let running = docker
        .list_containers(
            &ContainerFilter::running().with_label(format!("dockhand.test.case={}", guard.case())),
        )
        .await
        .unwrap();
    assert!(running.is_empty(), "a created container is not running");

    docker.remove_container(&id, true).await.unwrap();
    assert!(guard.remaining().await.is_empty());

    // A container without the test labels is cleaned up through `track`.
    let mut unlabelled = body(&guard, &["true"]);
    unlabelled.labels = None;
    let id = docker
        .create_container("dockhand-test-api-unlabelled", unlabelled)
        .await
        .unwrap();
    guard.track(id.clone());
    let err = docker
        .remove_container("dockhand-no-such-container", false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

/// A stop's deadline is its grace plus the margin, not the (here tiny) request timeout.
#[tokio::test]
async fn stop_is_not_cut_short_by_the_request_timeout() {
    let test = "stop_is_not_cut_short_by_the_request_timeout";
    let Some(shared) = docker_with_image(test).await else {
        return;
    };
    let guard = TestContainers::new(&shared, test).await;
    let docker = BollardDocker::new(DockerConnection {
        timeouts: DockerTimeouts {
            request: Duration::from_millis(800),
            stop_margin: Duration::from_secs(10),
            ..DockerTimeouts::default()
        },
        ..DockerConnection::default()
    })
    .unwrap();
    // PID 1 ignores SIGTERM (no handler), so the stop needs the full grace, then SIGKILL.
    let id = docker
        .create_container(
            "dockhand-test-slow-stop",
            body(&guard, &["sh", "-c", "while true; do sleep 0.2; done"]),
        )
        .await
        .unwrap();
    docker.start_container(&id).await.unwrap();
    let started = Instant::now();
    docker
        .stop_container(&id, Duration::from_secs(2))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "stop returned after {took:?}"
    );
    assert_eq!(docker.wait_container(&id).await.unwrap(), 137);
}

#[tokio::test]
async fn logs_are_split_into_stdout_and_stderr() {
    let test = "logs_are_split_into_stdout_and_stderr";
    let Some(docker) = docker_with_image(test).await else {
        return;
    };
    let guard = TestContainers::new(&docker, test).await;
    let id = docker
        .create_container(
            "dockhand-test-logs-split",
            body(&guard, &["sh", "-c", "echo to-out; echo to-err >&2"]),
        )
        .await
        .unwrap();
    docker.start_container(&id).await.unwrap();
    assert_eq!(docker.wait_container(&id).await.unwrap(), 0);
    let mut stream = docker
        .logs(
            &id,
            LogsRequest {
                follow: false,
                since_unix: 0,
                timestamps: false,
            },
        )
        .await
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            OutputStream::Stdout => out.extend_from_slice(&chunk.data),
            OutputStream::Stderr => err.extend_from_slice(&chunk.data),
        }
    }
    assert_eq!(out, b"to-out\n");
    assert_eq!(err, b"to-err\n");
}
