//! The dangling-container reconciler against the real daemon: which containers it acts on, in
//! enforce, dry-run and audit mode, with failing policies, the action cap and a container that
//! becomes tracked mid-sweep.
//!
//! Every sweep here is restricted with `label_filter` to the containers of its own test case,
//! so tests running in parallel on the same daemon never see each other's containers.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dockhand::config::{PolicyMode, TaskConfig};
use dockhand::fingerprint::RuntimeCatalog;
use dockhand::reconcile::{
    ActiveEntry, ActivePolicies, AlwaysHealthy, Outcome, Reconciler, SweepStatus, TrackedFn,
    TrackedSource, dry_run_report,
};
use dockhand::tasks::spec::TaskResources;
use dockhand::tasks::{EngineSettings, TaskEngine, TaskSpec};
use orphan_policy::PolicyKind;

mod actions;
pub(crate) mod fixtures;
mod records;

pub use fixtures::*;

use crate::support::{TEST_IMAGE, TestContainers, docker_with_image};

pub(crate) fn task_spec(guard: &TestContainers, dir: &Path) -> TaskSpec {
    let alloc_id = uuid_for(guard.case(), 99);
    TaskSpec {
        id: format!("{alloc_id}/task/0badcafe"),
        name: format!("{}-task", guard.case()),
        alloc_id,
        job_name: "job".to_owned(),
        job_id: "job".to_owned(),
        task_group_name: "group".to_owned(),
        namespace: "default".to_owned(),
        node_id: NODE.to_owned(),
        node_name: NODE.to_owned(),
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
            args: vec!["-c".to_owned(), SLEEPER.to_owned()],
            labels: guard.labels(),
            network_mode: Some("none".to_owned()),
            ..TaskConfig::default()
        },
        ..TaskSpec::default()
    }
}

#[tokio::test]
async fn enforce_mode_stops_and_removes_exactly_the_orphans() {
    let case = "reconcile_enforce";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(3);

    // A tracked task, started through the task engine.
    let tasks = TaskEngine::new(
        docker.clone(),
        EngineSettings::default(),
        RuntimeCatalog::new(),
    );
    let task = tasks
        .start(task_spec(&guard, dir.path()))
        .await
        .expect("start task");
    let task_id = task.handle.container_id().to_owned();

    let labelled = labelled_orphan(&docker, &guard, 1, NODE).await;
    let unlabelled = unlabelled_orphan(&docker, &guard, dir.path(), 2).await;
    let other_node = labelled_orphan(&docker, &guard, 3, "node-b").await;
    let plain = plain_container(&docker, &guard).await;
    let env_only = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-envonly"),
            env: vec![
                format!("NOMAD_ALLOC_ID={}", uuid_for(case, 4)),
                "NOMAD_TASK_NAME=x".into(),
            ],
            start: true,
            ..Kind::default()
        },
    )
    .await;
    let alloc5 = uuid_for(case, 5);
    let stopped = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-stopped-{alloc5}"),
            labels: vec![(ALLOC_LABEL, alloc5)],
            start: false,
            ..Kind::default()
        },
    )
    .await;
    tokio::time::sleep(grace + Duration::from_millis(1100)).await;
    let young = labelled_orphan(&docker, &guard, 6, NODE).await;

    let mut s = settings(&guard, grace);
    s.audit_path = Some(dir.path().join("data").join("audit.jsonl"));
    let reconciler = Reconciler::new(
        docker.clone(),
        Arc::new(tasks.clone()),
        default_policies(),
        s,
        Arc::new(AlwaysHealthy),
    );
    let report = reconciler.sweep_once().await;
    eprintln!("{}", report.render_table());

    assert_eq!(report.status, SweepStatus::Completed);
    assert_eq!(
        report.listed, 7,
        "running: task, 2 orphans, other node, plain, env-only, young"
    );
    assert_eq!(report.skipped_tracked, 1);
    assert_eq!(report.skipped_young, 1);
    let acted: BTreeSet<&str> = report.acted_on().into_iter().collect();
    assert_eq!(
        acted,
        BTreeSet::from([labelled.as_str(), unlabelled.as_str()])
    );
    for id in [&labelled, &unlabelled] {
        assert_eq!(state(&docker, id).await, None, "orphan {id} must be gone");
    }
    assert_still_running(
        &docker,
        &[&task_id, &other_node, &plain, &env_only, &young],
        "must still run",
    )
    .await;
    assert_eq!(
        state(&docker, &stopped).await,
        Some(false),
        "stopped one is untouched"
    );
    assert!(report.decision(&task_id).is_none() && report.decision(&young).is_none());
    let verdict = |id: &str| report.decision(id).unwrap().verdict.clone().unwrap().reason;
    assert!(
        verdict(&other_node).contains("another node"),
        "{}",
        verdict(&other_node)
    );
    assert!(
        verdict(&unlabelled).contains("mounts"),
        "{}",
        verdict(&unlabelled)
    );
    for id in [&other_node, &plain, &env_only] {
        assert_eq!(report.decision(id).unwrap().outcome, Outcome::NoAction);
    }

    let m = reconciler.metrics().snapshot();
    assert_eq!((m.sweeps, m.sweeps_failed, m.candidates), (1, 0, 5));
    assert_eq!(
        (m.actions_stop, m.action_failures, m.policy_failures),
        (2, 0, 0)
    );
    assert!(m.last_success_ms > 0);

    // Each action: an intent line, then its outcome; the other decisions once each, the
    // routine not-Nomad ones only counted.
    let audit = std::fs::read_to_string(dir.path().join("data").join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for id in [&labelled, &unlabelled] {
        let records: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["container_id"] == id.as_str())
            .collect();
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0]["record"], "intent");
        assert_eq!(records[0]["outcome"], "acting");
        assert_eq!(records[1]["record"], "outcome");
        assert_eq!(records[1]["outcome"], "done");
        assert_eq!(records[1]["action"], "stop(SIGTERM,30s)+remove");
        assert_eq!(
            records[1]["ownership_digest"],
            report.ownership_digest.as_str()
        );
        assert_eq!(records[1]["report_only"], false);
    }
    let decided = lines.iter().filter(|l| l["record"] == "decision").count();
    let counted: u64 = lines
        .iter()
        .filter(|l| l["record"] == "summary")
        .map(|l| l["not_nomad_no_action"].as_u64().unwrap())
        .sum();
    assert_eq!(decided as u64 + counted, 3, "{lines:?}");

    // A second sweep finds nothing more to do.
    let again = reconciler.sweep_once().await;
    assert!(again.acted_on().is_empty());
    tasks.destroy(task.handle.task_id(), true).await.ok();
}

#[tokio::test]
async fn dry_run_and_audit_mode_change_nothing_and_report_what_they_would_do() {
    let case = "reconcile_dry_run";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dir = tempfile::tempdir().unwrap();
    let labelled = labelled_orphan(&docker, &guard, 1, NODE).await;
    let unlabelled = unlabelled_orphan(&docker, &guard, dir.path(), 2).await;
    let plain = plain_container(&docker, &guard).await;
    let expected = BTreeSet::from([labelled.as_str(), unlabelled.as_str()]);

    // The CLI's entry point: forced dry run.
    let report = dry_run_report(
        docker.clone(),
        no_tracked(),
        default_policies(),
        settings(&guard, Duration::ZERO),
    )
    .await;
    let table = report.render_table();
    eprintln!("{table}");
    assert!(report.report_only);
    assert_eq!(
        report.would_act_on().into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(report.acted_on().is_empty());
    assert!(table.contains("stop(SIGTERM,30s)+remove"), "{table}");
    assert!(table.contains(&labelled[..12]), "{table}");

    // Audit mode, with an audit file.
    let mut s = settings(&guard, Duration::ZERO);
    s.audit_path = Some(dir.path().join("audit.jsonl"));
    let reconciler = Reconciler::new(
        docker.clone(),
        no_tracked(),
        default_policies_in(PolicyMode::Audit),
        s,
        Arc::new(AlwaysHealthy),
    );
    let report = reconciler.sweep_once().await;
    assert_eq!(
        report.would_act_on().into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(reconciler.metrics().snapshot().actions_would_do, 2);
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        audit.lines().filter(|l| l.contains("\"would-do\"")).count(),
        2
    );
    assert!(audit.lines().all(|l| l.contains("\"report_only\":true")));

    assert_still_running(
        &docker,
        &[&labelled, &unlabelled, &plain],
        "must be untouched",
    )
    .await;
}

#[tokio::test]
async fn a_failing_policy_means_no_action() {
    let case = "reconcile_policy_failure";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    let engine = engine();
    let good = default_policies().current();
    let spin = orphan_policy::guests::test_guest("hostile-spin-loop").unwrap();

    // An ownership policy that runs into its deadline.
    let slot = default_policies();
    slot.install(ActiveEntry::from_config(
        engine
            .load(PolicyKind::Ownership, &spin)
            .expect("load spin loop"),
        PolicyMode::Enforce,
    ));
    // An audit file that cannot be written is counted and logged, and changes nothing else.
    let mut s = settings(&guard, Duration::ZERO);
    s.audit_path = Some("/dev/null/not-a-dir/audit.jsonl".into());
    let reconciler = Reconciler::new(
        docker.clone(),
        no_tracked(),
        slot.clone(),
        s,
        Arc::new(AlwaysHealthy),
    );
    let report = reconciler.sweep_once().await;
    assert_eq!(report.policy_failures, 1);
    // The audited outcome names the failure's kind.
    assert!(matches!(
        &report.decision(&orphan).unwrap().outcome,
        Outcome::PolicyFailed(e) if e.contains("ownership policy (deadline)")
    ));

    // A kill policy that fails (an ownership component asked to decide).
    slot.replace(ActivePolicies {
        ownership: good.ownership.clone(),
        kill: good.ownership.clone(),
    });
    let report = reconciler.sweep_once().await;
    assert_eq!(report.policy_failures, 1);
    let d = report.decision(&orphan).unwrap();
    assert!(
        matches!(&d.outcome, Outcome::PolicyFailed(e) if e.contains("kill policy")),
        "{d:?}"
    );
    let m = reconciler.metrics().snapshot();
    assert_eq!((m.policy_failures, m.audit_failures), (2, 2));
    assert_eq!(state(&docker, &orphan).await, Some(true));

    // Good policies again, but still no audit file: an action whose intent cannot be
    // recorded is not taken.
    slot.replace((*good).clone());
    let report = reconciler.sweep_once().await;
    assert!(report.acted_on().is_empty(), "{report:?}");
    assert!(
        matches!(
            report.decision(&orphan).unwrap().outcome,
            Outcome::AuditFailed(_)
        ),
        "{report:?}"
    );
    assert_eq!(state(&docker, &orphan).await, Some(true));
}

#[tokio::test]
async fn the_action_cap_and_a_late_tracked_container_are_respected() {
    let case = "reconcile_cap";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let mut orphans = Vec::new();
    for n in 1..=3 {
        orphans.push(labelled_orphan(&docker, &guard, n, NODE).await);
    }
    let mut s = settings(&guard, Duration::ZERO);
    s.max_actions_per_sweep = 2;

    // The first read of the tracked set (right after the listing) is empty; every later read
    // holds all three, as if RecoverTask re-adopted them while the sweep was deciding.
    let calls = Arc::new(AtomicUsize::new(0));
    let all: BTreeSet<String> = orphans.iter().cloned().collect();
    let counter = calls.clone();
    let tracked: Arc<dyn TrackedSource> = Arc::new(TrackedFn(move || {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            BTreeSet::new()
        } else {
            all.clone()
        }
    }));
    let reconciler = Reconciler::new(
        docker.clone(),
        tracked,
        default_policies(),
        s.clone(),
        Arc::new(AlwaysHealthy),
    );
    let report = reconciler.sweep_once().await;
    eprintln!("{}", report.render_table());
    let count = |report: &dockhand::reconcile::SweepReport, want: &Outcome| {
        orphans
            .iter()
            .filter(|id| report.decision(id).unwrap().outcome == *want)
            .count()
    };
    // The tracked set is read again before the budget: a container tracked since the listing
    // is left alone without using up an action.
    assert!(!report.cap_reached);
    assert_eq!(count(&report, &Outcome::NowTracked), 3);
    assert!(report.acted_on().is_empty());
    assert_still_running(&docker, &orphans, "must be untouched").await;

    // Untracked: the cap lets two through this sweep, the third goes in the next one a whole
    // period later (the budget is per period; a 1 ms period is over by the next sweep).
    s.period = Duration::from_millis(1);
    let reconciler = Reconciler::new(
        docker.clone(),
        no_tracked(),
        default_policies(),
        s,
        Arc::new(AlwaysHealthy),
    );
    let first = reconciler.sweep_once().await;
    assert_eq!(first.acted_on().len(), 2);
    assert_eq!(count(&first, &Outcome::CapReached), 1);
    let second = reconciler.sweep_once().await;
    assert_eq!(second.acted_on().len(), 1);
    assert!(!second.cap_reached);
    for id in &orphans {
        assert_eq!(state(&docker, id).await, None, "{id} must be gone");
    }
    let m = reconciler.metrics().snapshot();
    assert_eq!((m.actions_stop, m.cap_reached), (3, 1));
}
