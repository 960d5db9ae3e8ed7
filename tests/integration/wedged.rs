//! The reconciler against a wedged or broken daemon, through a fault-injecting proxy in front
//! of the real socket: every failure is bounded by the per-call timeout, takes no action and
//! warns once per streak; the first sweep after recovery acts normally.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::reconcile::{AlwaysHealthy, Reconciler, SweepStatus, TrackedFn};

use crate::reconcile::{NODE, default_policies, labelled_orphan, settings, state};
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
    s.mode = dockhand::config::PolicyMode::Audit;
    s.docker_call_timeout = Duration::from_secs(5);
    let slow = Reconciler::new(
        proxy.docker(Duration::from_secs(5)),
        Arc::new(TrackedFn(std::collections::BTreeSet::new)),
        default_policies(),
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
