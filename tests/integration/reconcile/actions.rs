//! The reconciler's loop and each action kind against the real daemon.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dockhand::reconcile::Reconciler;

use super::fixtures::{
    Kind, NODE, default_policies, labelled_orphan, make, no_tracked, settings, state,
};
use crate::support::{TestContainers, docker_with_image};

/// A health probe the test flips.
#[derive(Debug, Default)]
struct Toggle(std::sync::atomic::AtomicBool);

impl dockhand::reconcile::HealthProbe for Toggle {
    fn is_healthy(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_loop_waits_for_the_first_delay_skips_unhealthy_ticks_and_stops_on_shutdown() {
    let case = "reconcile_loop";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    let mut s = settings(&guard, Duration::from_millis(900));
    s.period = Duration::from_millis(200);
    assert_eq!(s.first_delay(), Duration::from_millis(900));
    let health = Arc::new(Toggle::default());
    let reconciler = Reconciler::new(
        docker.clone(),
        no_tracked(),
        default_policies(),
        s,
        health.clone(),
    );
    let metrics = reconciler.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let task = tokio::spawn(reconciler.run(async {
        let _ = stopped.await;
    }));

    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = metrics.snapshot();
    assert_eq!(
        (m.sweeps, m.sweeps_skipped),
        (0, 0),
        "nothing before the first delay"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let m = metrics.snapshot();
    assert_eq!(m.sweeps, 0, "no sweep while unhealthy");
    assert!(m.sweeps_skipped >= 1, "{m:?}");
    assert_eq!(state(&docker, &orphan).await, Some(true));

    health.0.store(true, Ordering::SeqCst);
    while metrics.snapshot().actions_stop == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the loop never acted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(&docker, &orphan).await, None);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn each_action_kind_does_what_it_says() {
    use dockhand::reconcile::execute_action;
    use orphan_policy::{ActionKind, Signal};

    let case = "reconcile_actions";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let limit = Duration::from_secs(10);
    let run = |name: &str| Kind {
        name: format!("{case}-{name}"),
        start: true,
        ..Kind::default()
    };

    // A signal the container ignores: escalated to a forced stop after the timeout, then
    // removed.
    let ignores = make(
        &docker,
        &guard,
        Kind {
            script: Some("trap '' INT; trap 'exit 0' TERM; while true; do sleep 0.2; done"),
            ..run("ignores")
        },
    )
    .await;
    let started = std::time::Instant::now();
    let stop_int = ActionKind::Stop {
        signal: Signal::Int,
        timeout: Duration::from_millis(1500),
        then_remove: true,
    };
    execute_action(docker.as_ref(), &ignores, &stop_int, limit)
        .await
        .expect("stop with SIGINT");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited the timeout first"
    );
    assert_eq!(state(&docker, &ignores).await, None);

    // SIGTERM is handled: a plain stop, without removal.
    let term = make(&docker, &guard, run("term")).await;
    let stop_term = ActionKind::Stop {
        signal: Signal::Term,
        timeout: Duration::from_secs(20),
        then_remove: false,
    };
    let started = std::time::Instant::now();
    execute_action(docker.as_ref(), &term, &stop_term, limit)
        .await
        .expect("stop with SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exited on SIGTERM"
    );
    assert_eq!(state(&docker, &term).await, Some(false), "stopped, kept");

    // Kill.
    let killed = make(&docker, &guard, run("kill")).await;
    let kill = ActionKind::Kill {
        signal: Signal::Kill,
    };
    execute_action(docker.as_ref(), &killed, &kill, limit)
        .await
        .expect("kill");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state(&docker, &killed).await == Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGKILL did not stop it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Remove without force refuses a running container; with force it goes.
    let running = make(&docker, &guard, run("remove")).await;
    let err = execute_action(
        docker.as_ref(),
        &running,
        &ActionKind::Remove { force: false },
        limit,
    )
    .await
    .expect_err("a running container is not removed without force");
    assert!(!err.is_not_found(), "{err}");
    assert_eq!(state(&docker, &running).await, Some(true));
    execute_action(
        docker.as_ref(),
        &running,
        &ActionKind::Remove { force: true },
        limit,
    )
    .await
    .expect("forced remove");
    assert_eq!(state(&docker, &running).await, None);

    // Acting on a container that is gone reports NotFound.
    let gone = execute_action(
        docker.as_ref(),
        &running,
        &ActionKind::Remove { force: true },
        limit,
    )
    .await
    .expect_err("already removed");
    assert!(gone.is_not_found(), "{gone}");
}
