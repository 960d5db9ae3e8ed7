//! Container create and start are bounded by Nomad's 5-minute client timeout, not by the
//! deadline of ordinary calls: a daemon that is slow (but alive) while creating or starting a
//! container must not fail the task.

use std::time::Duration;

use dockhand::docker::models::{ContainerCreateBody, HostConfig};

use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TEST_IMAGE, TestContainers, docker_with_image};

#[tokio::test]
async fn a_slow_create_and_start_outlast_the_ordinary_call_deadline() {
    let case = "deadline_slow_create_start";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    // Ordinary calls get 1 s; each request and response chunk is then delayed by 1.5 s.
    let slow = proxy.docker(Duration::from_secs(1));
    slow.ping().await.expect("ping through the proxy");
    proxy.set_mode(FaultMode::Slow(Duration::from_millis(1500)));
    assert!(
        slow.inspect_image(TEST_IMAGE).await.is_err(),
        "an ordinary call is cut at its 1 s deadline"
    );

    let body = ContainerCreateBody {
        image: Some(TEST_IMAGE.to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "30".to_owned()]),
        labels: Some(guard.labels().into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let id = slow
        .create_container(&format!("{case}-{}", std::process::id()), body)
        .await
        .expect("a slow create is not cut at the ordinary deadline");
    guard.track(id.clone());
    slow.start_container(&id)
        .await
        .expect("a slow start is not cut at the ordinary deadline");
    proxy.set_mode(FaultMode::Pass);
    let running = docker
        .inspect_container(&id)
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.running);
    assert_eq!(running, Some(true));
}
