//! The admin API's `Sweep` and the reconciler's on-demand sweep in-process: refused without a
//! reconciler, serialised with the sweep in progress, skipped while Docker is unhealthy; a
//! dry run refused during the start-up wait, where a preview of another policy answers.

use std::sync::Arc;
use std::time::Duration;

use dockhand::admin::client::AdminClient;
use dockhand::admin::{AdminState, serve_admin};
use dockhand::reconcile::{ActiveEntry, AlwaysHealthy, HealthProbe, Reconciler, SweepSkipped};
use orphan_policy::store::{PolicyMode, PolicyStore};
use orphan_policy::{EngineConfig, PolicyEngine, PolicyKind, guests};

use super::dockhand;
use crate::reconcile::{
    NODE, default_policies, default_policies_in, engine, labelled_orphan, no_tracked, settings,
    state,
};
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TestContainers, docker_with_image};

#[tokio::test]
async fn sweep_without_a_reconciler_is_a_failed_precondition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = PolicyEngine::new(EngineConfig {
        pooling_allocator: false,
        ..EngineConfig::default()
    })
    .expect("engine");
    let store = Arc::new(PolicyStore::open(&dir.path().join("policies"), 3).expect("store"));
    let state = Arc::new(AdminState::new(engine, store, default_policies()));
    let socket = dir.path().join("admin.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let uid = nix::unistd::geteuid().as_raw();
    let server = tokio::spawn({
        let socket = socket.clone();
        async move {
            serve_admin(&socket, vec![uid], state, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let mut client = None;
    for _ in 0..200 {
        if let Ok(c) = AdminClient::connect(&socket).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut client = client.expect("admin socket never answered");
    let error = client.sweep(true).await.expect_err("no reconciler");
    let text = error.to_string();
    assert!(
        text.contains("gc.dangling_containers.enabled = false"),
        "{text}"
    );

    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || {
            dockhand(&[
                "reconcile",
                "--once",
                "--dry-run",
                "--socket",
                socket.to_str().expect("utf-8"),
            ])
        }
    })
    .await
    .expect("join");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("reconciler is disabled"), "{stderr}");
    let _ = stop.send(());
    server.await.expect("join").expect("admin server");
}

/// A health probe the test switches.
#[derive(Debug)]
struct Health(std::sync::atomic::AtomicBool);

impl HealthProbe for Health {
    fn is_healthy(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn an_on_demand_sweep_waits_for_the_sweep_in_progress_and_skips_an_unhealthy_docker() {
    let case = "reconcile_cli_serialised";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    // Every request and response chunk through the proxy is delayed: a sweep takes a while.
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    proxy.set_mode(FaultMode::Slow(Duration::from_millis(300)));
    let s = settings(&guard, Duration::ZERO);
    let health = Arc::new(Health(true.into()));
    let rec = Arc::new(Reconciler::new(
        proxy.docker(Duration::from_secs(20)),
        no_tracked(),
        default_policies_in(dockhand::config::PolicyMode::Audit),
        s,
        health.clone(),
    ));

    let periodic = tokio::spawn({
        let rec = rec.clone();
        async move { rec.sweep_once().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let manual = rec.sweep_now(true).await.expect("docker is healthy");
    let first = periodic.await.expect("join");
    assert!(first.duration >= Duration::from_millis(300), "{first:?}");
    let first_end = first.started_ms + i64::try_from(first.duration.as_millis()).expect("ms");
    assert!(
        manual.started_ms >= first_end,
        "the on-demand sweep started at {} while the sweep in progress ran until {first_end}",
        manual.started_ms
    );
    for report in [&first, &manual] {
        assert!(report.report_only, "{report:?}");
        assert_eq!(report.would_act_on(), vec![orphan.as_str()], "{report:?}");
    }
    let counted = rec.metrics().snapshot();
    assert_eq!(
        counted.sweeps, 1,
        "a dry run is not a sweep of the reconciler"
    );

    health.0.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        rec.sweep_now(false).await,
        Err(SweepSkipped::DockerUnhealthy)
    );
    let counted = rec.metrics().snapshot();
    assert_eq!((counted.sweeps, counted.sweeps_skipped), (1, 1));
    assert_eq!(
        SweepSkipped::DockerUnhealthy.to_string(),
        "sweep skipped: docker is unhealthy (sweeps resume once a fingerprint finds it healthy)"
    );
    assert_eq!(state(&docker, &orphan).await, Some(true));
}

#[tokio::test]
async fn during_the_start_up_wait_a_dry_run_is_refused_and_a_preview_of_another_policy_answers() {
    let case = "reconcile_cli_preview_startup";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    // The start-up wait is the creation grace: an hour from now.
    let rec = Reconciler::new(
        docker.clone(),
        no_tracked(),
        default_policies(),
        settings(&guard, Duration::from_secs(3600)),
        Arc::new(AlwaysHealthy),
    );
    let candidate = guests::test_guest("example-label-allowlist").expect("example policy");
    let pair = rec.policies().current().with(ActiveEntry::from_config(
        engine()
            .load(PolicyKind::Ownership, &candidate)
            .expect("the example loads"),
        PolicyMode::Audit,
    ));
    let candidate_digest = pair.ownership.policy.digest_hex();
    assert_ne!(
        candidate_digest,
        rec.policies().current().ownership.policy.digest_hex()
    );

    for refused in [
        rec.sweep_now(true).await,
        rec.dry_run_now(Some(pair.clone())).await,
    ] {
        match refused {
            Err(SweepSkipped::StartupWait { .. }) => {}
            other => panic!("expected the start-up refusal, got {other:?}"),
        }
    }
    let preview = rec.preview(Some(pair)).await;
    assert_eq!(preview.ownership_digest, candidate_digest, "{preview:?}");
    assert!(preview.report_only, "{preview:?}");
    assert_eq!(
        (preview.listed, preview.skipped_young),
        (1, 1),
        "the orphan is listed, and young under an hour's grace: {preview:?}"
    );
    let counted = rec.metrics().snapshot();
    assert_eq!(
        (counted.sweeps, counted.sweeps_skipped),
        (0, 2),
        "two refusals counted, the preview not"
    );
    assert_eq!(state(&docker, &orphan).await, Some(true));
}
