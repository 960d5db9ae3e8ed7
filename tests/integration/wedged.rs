//! The reconciler and the plugin against a wedged or broken daemon, through a fault-injecting
//! proxy in front of the real socket: every failure is bounded by the per-call timeout, takes
//! no action and warns once per streak; the first sweep after recovery acts normally; the
//! plugin keeps answering gRPC and its fingerprint reports the daemon unhealthy until it
//! recovers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use dockhand::reconcile::{AlwaysHealthy, Reconciler, SweepStatus, TrackedFn};

use crate::reconcile::{
    NODE, default_policies, default_policies_in, labelled_orphan, settings, state,
};
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TestContainers, docker_with_image};

/// Per-call deadline used through the proxy.
const CALL_TIMEOUT: Duration = Duration::from_millis(800);

fn reconciler(proxy: &FaultProxy, guard: &TestContainers) -> Reconciler {
    let mut s = settings(guard, Duration::ZERO);
    s.docker_call_timeout = CALL_TIMEOUT;
    Reconciler::new(
        proxy.docker(CALL_TIMEOUT),
        Arc::new(TrackedFn(std::collections::BTreeSet::new)),
        default_policies(),
        s,
        Arc::new(AlwaysHealthy),
    )
}

#[tokio::test]
async fn a_hanging_daemon_is_bounded_warns_once_and_the_first_sweep_after_recovery_acts() {
    let case = "wedged_hang";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let rec = reconciler(&proxy, &guard);

    proxy.set_mode(FaultMode::Hang);
    for round in 0..3 {
        let started = Instant::now();
        let report = rec.sweep_once().await;
        let took = started.elapsed();
        assert!(
            matches!(&report.status, SweepStatus::ListFailed { error } if error.contains("timed out")),
            "round {round}: {:?}",
            report.status
        );
        assert!(
            took < CALL_TIMEOUT * 3,
            "round {round}: a hang took {took:?}"
        );
        assert!(report.decisions.is_empty());
        assert_eq!(
            report.warned,
            round == 0,
            "round {round}: one warning per streak"
        );
    }
    assert!(proxy.requests() > 0, "the hanging proxy saw the requests");
    let m = rec.metrics().snapshot();
    assert_eq!((m.sweeps, m.sweeps_failed, m.warnings), (3, 3, 1), "{m:?}");
    assert_eq!(m.last_success_ms, 0);
    assert_eq!(
        state(&docker, &orphan).await,
        Some(true),
        "nothing done while wedged"
    );

    proxy.set_mode(FaultMode::Pass);
    let report = rec.sweep_once().await;
    assert_eq!(
        report.status,
        SweepStatus::Completed,
        "{}",
        report.render_table()
    );
    assert_eq!(report.acted_on(), vec![orphan.as_str()]);
    assert_eq!(state(&docker, &orphan).await, None);

    // A new streak warns again, once.
    proxy.set_mode(FaultMode::Http500);
    rec.sweep_once().await;
    rec.sweep_once().await;
    let m = rec.metrics().snapshot();
    assert_eq!((m.sweeps_failed, m.warnings), (5, 2), "{m:?}");
    assert!(m.last_success_ms > 0);
}

#[tokio::test]
async fn errors_resets_and_truncated_answers_take_no_action_and_slow_answers_still_work() {
    let case = "wedged_faults";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let rec = reconciler(&proxy, &guard);

    for mode in [
        FaultMode::Http500,
        FaultMode::Reset,
        FaultMode::Truncate,
        FaultMode::Slow(CALL_TIMEOUT * 2),
    ] {
        proxy.set_mode(mode);
        let started = Instant::now();
        let report = rec.sweep_once().await;
        assert!(
            matches!(report.status, SweepStatus::ListFailed { .. }),
            "{mode:?}: {:?}",
            report.status
        );
        assert!(
            started.elapsed() < CALL_TIMEOUT * 3,
            "{mode:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            state(&docker, &orphan).await,
            Some(true),
            "{mode:?}: nothing done"
        );
    }
    let m = rec.metrics().snapshot();
    assert_eq!(
        (m.sweeps_failed, m.warnings, m.actions_stop),
        (4, 1, 0),
        "{m:?}"
    );

    // Slow but within the deadline: the sweep completes (in audit mode: report only).
    let mut s = rec.settings().clone();
    s.docker_call_timeout = Duration::from_secs(5);
    let slow = Reconciler::new(
        proxy.docker(Duration::from_secs(5)),
        Arc::new(TrackedFn(std::collections::BTreeSet::new)),
        default_policies_in(dockhand::config::PolicyMode::Audit),
        s,
        Arc::new(AlwaysHealthy),
    );
    proxy.set_mode(FaultMode::Slow(Duration::from_millis(100)));
    let report = slow.sweep_once().await;
    assert_eq!(report.status, SweepStatus::Completed);
    assert_eq!(report.would_act_on(), vec![orphan.as_str()]);
    assert_eq!(state(&docker, &orphan).await, Some(true));
}

#[tokio::test]
async fn the_plugin_keeps_answering_grpc_while_docker_hangs() {
    use nomad_plugin::proto::base::PluginInfoRequest;
    use nomad_plugin::proto::drivers::{CapabilitiesRequest, InitRequest};

    let proxy = FaultProxy::start(DOCKER_SOCKET);
    proxy.set_mode(FaultMode::Hang);
    let plugin = crate::harness::Launch::nomad()
        .env("DOCKER_HOST", &proxy.endpoint())
        .env("DOCKHAND_FINGERPRINT_PERIOD", "100ms")
        .start()
        .await;
    let mut driver = plugin.driver();
    tokio::time::timeout(Duration::from_secs(2), driver.init(InitRequest {}))
        .await
        .expect("init answers while docker hangs")
        .expect("init");
    let mut base = plugin.base();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Wait until the plugin's Docker calls are stuck in the proxy.
    while proxy.requests() == 0 {
        assert!(Instant::now() < deadline, "the plugin never called docker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..10 {
        let t = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(1),
            base.plugin_info(PluginInfoRequest {}),
        )
        .await
        .expect("plugin_info answers while docker hangs")
        .expect("plugin_info");
        tokio::time::timeout(
            Duration::from_secs(1),
            driver.capabilities(CapabilitiesRequest {}),
        )
        .await
        .expect("capabilities answers while docker hangs")
        .expect("capabilities");
        assert!(t.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `stream` until a fingerprint with health `want` arrives.
async fn wait_health(
    stream: &mut tonic::Streaming<nomad_plugin::proto::drivers::FingerprintResponse>,
    want: nomad_plugin::proto::drivers::fingerprint_response::HealthState,
    within: Duration,
    what: &str,
) -> nomad_plugin::proto::drivers::FingerprintResponse {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!("{what}: no {want:?} fingerprint within {within:?}; saw {seen:?}")
            })
            .unwrap_or_else(|| panic!("{what}: the fingerprint stream ended"))
            .unwrap_or_else(|e| panic!("{what}: the fingerprint stream failed: {e}"));
        if next.health == want as i32 {
            return next;
        }
        seen.push((next.health, next.health_description));
    }
}

/// PluginInfo, Capabilities and a fresh Fingerprint stream all answer within a second.
async fn answers_promptly(plugin: &crate::harness::Plugin, what: &str) {
    use nomad_plugin::proto::base::PluginInfoRequest;
    use nomad_plugin::proto::drivers::{CapabilitiesRequest, FingerprintRequest};

    let second = Duration::from_secs(1);
    tokio::time::timeout(second, plugin.base().plugin_info(PluginInfoRequest {}))
        .await
        .unwrap_or_else(|_| panic!("{what}: PluginInfo hung"))
        .expect("PluginInfo");
    tokio::time::timeout(second, plugin.driver().capabilities(CapabilitiesRequest {}))
        .await
        .unwrap_or_else(|_| panic!("{what}: Capabilities hung"))
        .expect("Capabilities");
    let mut driver = plugin.driver();
    let first = tokio::time::timeout(second, async {
        let mut stream = driver
            .fingerprint(FingerprintRequest {})
            .await
            .expect("Fingerprint")
            .into_inner();
        stream.next().await
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: a new Fingerprint stream gave nothing"));
    assert!(first.is_some_and(|r| r.is_ok()), "{what}");
}

#[tokio::test]
async fn fingerprint_reports_a_wedged_daemon_unhealthy_and_recovers() {
    use nomad_plugin::proto::drivers::fingerprint_response::HealthState;

    if crate::support::docker_or_skip("wedged_fingerprint")
        .await
        .is_none()
    {
        return;
    }
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let plugin = crate::harness::Launch::nomad()
        .env("DOCKER_HOST", &proxy.endpoint())
        .env("DOCKHAND_FINGERPRINT_PERIOD", "200ms")
        .start()
        .await;
    let mut stream = plugin.fingerprints().await;
    let healthy = wait_health(
        &mut stream,
        HealthState::Healthy,
        Duration::from_secs(60),
        "start",
    )
    .await;
    assert!(healthy.attributes.contains_key("driver.dockhand"));

    // A hanging call is bounded by the Docker client's 60 s request deadline, and one stuck when
    // the proxy recovers runs into it once more: allow for both.
    let bound = Duration::from_secs(150);
    for mode in [FaultMode::Hang, FaultMode::Http500] {
        let what = format!("{mode:?}");
        proxy.set_mode(mode);
        let sick = wait_health(&mut stream, HealthState::Unhealthy, bound, &what).await;
        assert!(
            sick.health_description
                .starts_with("Failed to connect to docker daemon"),
            "{what}: {}",
            sick.health_description
        );
        assert!(sick.attributes.is_empty(), "{what}: {:?}", sick.attributes);
        answers_promptly(&plugin, &what).await;

        proxy.set_mode(FaultMode::Pass);
        let back = wait_health(&mut stream, HealthState::Healthy, bound, &what).await;
        assert_eq!(back.health_description, "Healthy");
        assert!(back.attributes.contains_key("driver.dockhand"), "{what}");
    }
}
