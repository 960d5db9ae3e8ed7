//! What the reconciler records and how it bounds itself, against the real daemon and through
//! the admin API served in-process: the action budget shared by on-demand sweeps, audit mode
//! put in force mid-sweep, the audit intent written before the Docker call, the admin dry run's
//! node identity, and escaped policy text.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::admin::client::AdminClient;
use dockhand::admin::{AdminState, PolicyKindMsg, PolicyModeMsg, serve_admin};
use dockhand::reconcile::{
    ActiveEntry, AlwaysHealthy, NodeCell, Outcome, ReconcileSettings, Reconciler,
};
use orphan_policy::store::{PolicyMode, PolicyStore};
use orphan_policy::{ActionKind, NodeInfo, Ownership, PolicyKind, guests};

use super::fixtures::{
    Kind, NODE, default_policies, default_policies_in, engine, labelled_orphan, make, no_tracked,
    plain_container, settings, state, stubborn_orphan,
};
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TestContainers, docker_with_image};

/// The admin API of `rec`, served in-process on a private socket.
struct Served {
    client: AdminClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Over the policies in force that `rec` reads, as in the plugin.
    async fn start(rec: &Arc<Reconciler>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(PolicyStore::open(&dir.path().join("policies"), 3).expect("store"));
        let state = AdminState::new(engine().clone(), store, rec.policies().clone())
            .with_metrics(rec.metrics())
            .with_sweeper(Arc::clone(rec));
        let socket = dir.path().join("admin.sock");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let uid = nix::unistd::geteuid().as_raw();
        let server = tokio::spawn({
            let socket = socket.clone();
            async move {
                serve_admin(&socket, vec![uid], Arc::new(state), async {
                    let _ = stopped.await;
                })
                .await
                .expect("admin server");
            }
        });
        let started = Instant::now();
        let client = loop {
            if let Ok(c) = AdminClient::connect(&socket).await {
                break c;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "admin socket never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self {
            client,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

/// The audit file's lines (none when it does not exist).
fn audit(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

fn of_kind<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["record"] == kind).collect()
}

/// [`settings`] with no grace that write the audit file into `dir`, and that file's path.
fn auditing_settings(guard: &TestContainers, dir: &Path) -> (ReconcileSettings, PathBuf) {
    let audit_path = dir.join("audit.jsonl");
    let mut s = settings(guard, Duration::ZERO);
    s.audit_path = Some(audit_path.clone());
    (s, audit_path)
}

fn reconciler(docker: Arc<dyn dockhand::docker::DockerApi>, s: ReconcileSettings) -> Reconciler {
    Reconciler::new(
        docker,
        no_tracked(),
        default_policies(),
        s,
        Arc::new(AlwaysHealthy),
    )
}

#[tokio::test]
async fn repeated_on_demand_sweeps_share_one_action_budget_per_period() {
    let case = "records_budget";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let mut orphans = Vec::new();
    for n in 1..=5 {
        orphans.push(labelled_orphan(&docker, &guard, n, NODE).await);
    }
    let plain = plain_container(&docker, &guard).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, audit_path) = auditing_settings(&guard, dir.path());
    s.max_actions_per_sweep = 2;
    assert_eq!(s.period, Duration::from_secs(3600));
    let rec = Arc::new(reconciler(docker.clone(), s));
    let mut served = Served::start(&rec).await;

    // `dockhand reconcile --once` three times in a row: one budget for the period.
    let mut done = Vec::new();
    for round in 0..3 {
        let answer = served.client.sweep(false).await.expect("sweep");
        assert_eq!(answer.status(), "completed", "{answer:?}");
        let r = answer.report().expect("a report");
        let acted: Vec<String> = r
            .decisions
            .iter()
            .filter(|d| d.outcome == Outcome::Done)
            .map(|d| d.id.clone())
            .collect();
        if round == 0 {
            assert_eq!(acted.len(), 2, "{r:?}");
        } else {
            assert!(acted.is_empty(), "round {round} acted again: {r:?}");
            assert!(r.cap_reached, "{r:?}");
            assert_eq!(
                r.decisions
                    .iter()
                    .filter(|d| d.outcome == Outcome::CapReached)
                    .count(),
                3,
                "{r:?}"
            );
        }
        done.extend(acted);
    }
    let mut running = 0;
    for id in &orphans {
        match state(&docker, id).await {
            Some(true) => running += 1,
            None => assert!(done.contains(id), "{id} gone without being acted on"),
            Some(false) => panic!("{id} stopped but not removed"),
        }
    }
    assert_eq!(running, 3, "at most the budget of 2 was acted on");
    assert_eq!(rec.metrics().snapshot().actions_stop, 2);

    // The audit file: intent and outcome of each action, the plain container only counted.
    let lines = audit(&audit_path);
    let ids = |kind: &str| -> Vec<String> {
        of_kind(&lines, kind)
            .iter()
            .map(|l| l["container_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut intents = ids("intent");
    intents.sort();
    let mut outcomes = ids("outcome");
    outcomes.sort();
    done.sort();
    assert_eq!(intents, done);
    assert_eq!(outcomes, done);
    assert!(
        lines.iter().all(|l| l["container_id"] != plain.as_str()),
        "the routine row of {plain} was written"
    );
    let summaries = of_kind(&lines, "summary");
    assert_eq!(summaries.len(), 3, "one summary per sweep: {lines:?}");
    assert!(
        summaries.iter().all(|l| l["not_nomad_no_action"] == 1),
        "{summaries:?}"
    );
    served.shutdown().await;
}

#[tokio::test]
async fn switching_to_audit_mid_sweep_stops_the_sweep_from_acting_further() {
    let case = "records_audit_mid_sweep";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    // Each stop waits out the default kill policy's 30 s grace; four run at once.
    let mut orphans = Vec::new();
    for n in 1..=6 {
        orphans.push(stubborn_orphan(&docker, &guard, n, NODE).await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, audit_path) = auditing_settings(&guard, dir.path());
    s.docker_call_timeout = Duration::from_secs(30);
    let rec = Arc::new(reconciler(docker.clone(), s));
    let mut served = Served::start(&rec).await;
    let sweep = tokio::spawn({
        let rec = Arc::clone(&rec);
        async move { rec.sweep_now(false).await.expect("docker is healthy") }
    });

    // Once the first actions are under way, an operator activates a policy in audit mode.
    let started = Instant::now();
    while of_kind(&audit(&audit_path), "intent").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no action started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kill = guests::default_policy(PolicyKind::Kill).to_vec();
    let uploaded = served
        .client
        .upload(PolicyKindMsg::Kill, kill, None, None, None)
        .await
        .expect("upload");
    let digest = uploaded.policy.expect("stored").digest;
    let activated = served
        .client
        .activate(digest, PolicyModeMsg::Audit)
        .await
        .expect("activate");
    assert!(activated.applied);
    let begun_at_switch = of_kind(&audit(&audit_path), "intent").len();

    let report = sweep.await.expect("join");
    let outcome = |id: &str| report.decision(id).expect("decided").outcome.label();
    let acted: Vec<&String> = orphans.iter().filter(|id| outcome(id) == "done").collect();
    let halted: Vec<&String> = orphans
        .iter()
        .filter(|id| outcome(id) == "now-report-only")
        .collect();
    // Only the first wave (four at once, each waiting out its 30 s grace) was acted on: no
    // action began after the switch, though all six would have been stopped in enforce mode.
    let begun = of_kind(&audit(&audit_path), "intent").len();
    assert_eq!(acted.len(), begun, "{}", report.render_table());
    assert!(
        (begun_at_switch..=4).contains(&begun),
        "{begun} actions began, {begun_at_switch} before the switch answered"
    );
    assert!(
        !halted.is_empty() && acted.len() + halted.len() == orphans.len(),
        "{}",
        report.render_table()
    );
    for id in &halted {
        assert_eq!(state(&docker, id).await, Some(true), "{id} was acted on");
    }
    served.shutdown().await;
}

#[tokio::test]
async fn the_audit_intent_is_on_disk_before_the_docker_call() {
    let case = "records_intent_first";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    // A daemon that never answers a stop.
    let proxy = FaultProxy::start(DOCKER_SOCKET);
    proxy.set_mode(FaultMode::HangMatching("/stop"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, audit_path) = auditing_settings(&guard, dir.path());
    let rec = Arc::new(reconciler(proxy.docker(Duration::from_secs(20)), s));
    let sweep = tokio::spawn({
        let rec = Arc::clone(&rec);
        async move { rec.sweep_once().await }
    });
    let started = Instant::now();
    while of_kind(&audit(&audit_path), "intent").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no intent was recorded while the stop hangs: {:?}",
            audit(&audit_path)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sweep.is_finished(), "the stop should still hang");
    // The process dies mid-action: what is on disk is all that is left.
    sweep.abort();
    let _ = sweep.await;
    let lines = audit(&audit_path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let intent = &lines[0];
    assert_eq!(intent["record"], "intent");
    assert_eq!(intent["container_id"], orphan.as_str());
    assert_eq!(intent["action"], "stop(SIGTERM,30s)+remove");
    assert_eq!(intent["outcome"], "acting");
    assert_eq!(intent["report_only"], false);
    assert_eq!(
        state(&docker, &orphan).await,
        Some(true),
        "the stop never reached the daemon"
    );
}

#[tokio::test]
async fn the_admin_dry_run_uses_the_node_identity_of_the_real_sweep() {
    let case = "records_dry_run_node";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let orphan = labelled_orphan(&docker, &guard, 1, NODE).await;
    // As in the plugin: nothing configured, the id learnt from Nomad's first task.
    let mut s = settings(&guard, Duration::ZERO);
    s.node = NodeInfo::default();
    let cell = Arc::new(NodeCell::default());
    cell.learn(NODE, "node-a");
    let rec = Reconciler::new(
        docker.clone(),
        no_tracked(),
        default_policies_in(PolicyMode::Audit),
        s,
        Arc::new(AlwaysHealthy),
    );
    let rec = Arc::new(rec.with_node_source(cell));
    let mut served = Served::start(&rec).await;

    let answer = served
        .client
        .preview(PolicyKindMsg::Unspecified, None)
        .await
        .expect("dry run");
    let dry = answer.report().expect("a report");
    let row = dry
        .decision(&orphan)
        .unwrap_or_else(|| panic!("no row for the orphan: {answer:?}"));
    let ownership = row.verdict.as_ref().map(|v| &v.ownership);
    assert!(
        matches!(ownership, Some(Ownership::Owned { .. })),
        "{}",
        dry.render_table()
    );
    assert!(
        matches!(
            row.action.as_ref().map(|a| &a.kind),
            Some(ActionKind::Stop { .. })
        ),
        "{}",
        dry.render_table()
    );
    assert_eq!(row.outcome, Outcome::WouldDo, "{}", dry.render_table());
    // The sweep it previews agrees.
    let sweep = served.client.sweep(false).await.expect("sweep");
    let d = sweep
        .report()
        .and_then(|r| r.decision(&orphan))
        .unwrap_or_else(|| panic!("decided: {sweep:?}"));
    assert!(
        matches!(
            d.verdict.as_ref().map(|v| &v.ownership),
            Some(Ownership::Owned { .. })
        ),
        "{sweep:?}"
    );
    assert_eq!(d.outcome, Outcome::WouldDo, "{sweep:?}");
    assert_eq!(state(&docker, &orphan).await, Some(true), "audit mode");
    served.shutdown().await;
}

#[tokio::test]
async fn bidirectional_and_format_characters_in_policy_reasons_are_escaped() {
    let case = "records_escaped_reasons";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let hostile = "a\u{202e}b\u{200b}c\u{2066}d\u{2067}e\u{2068}f\u{2069}g\u{feff}";
    let id = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-tier"),
            labels: vec![("tier", hostile.to_owned())],
            start: true,
            ..Kind::default()
        },
    )
    .await;
    // The probe answers `unknown` with a reason echoing the `tier` label.
    let probe = guests::test_guest("probe-echo-inputs").expect("probe built");
    let slot = default_policies();
    slot.install(ActiveEntry::from_config(
        engine()
            .load(PolicyKind::Ownership, &probe)
            .expect("probe loads"),
        PolicyMode::Enforce,
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, audit_path) = auditing_settings(&guard, dir.path());
    let rec = Reconciler::new(
        docker.clone(),
        no_tracked(),
        slot,
        s,
        Arc::new(AlwaysHealthy),
    );
    let report = rec.sweep_once().await;
    let reason = &report
        .decision(&id)
        .expect("decided")
        .verdict
        .as_ref()
        .expect("verdict")
        .reason;
    assert!(
        reason.contains(hostile),
        "the reason echoes the label: {reason:?}"
    );

    let shown = "a\\u{202e}b\\u{200b}c\\u{2066}d\\u{2067}e\\u{2068}f\\u{2069}g\\u{feff}";
    let table = report.render_table();
    assert!(table.contains(shown), "{table}");
    let lines = audit(&audit_path);
    let line = lines
        .iter()
        .find(|l| l["container_id"] == id.as_str())
        .expect("audited");
    let recorded = line["verdict_reason"].as_str().expect("reason");
    assert!(recorded.contains(shown), "{recorded}");
    let raw = std::fs::read_to_string(&audit_path).expect("audit file");
    for text in [table.as_str(), raw.as_str()] {
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && orphan_policy::display::needs_escape(c)),
            "{text:?}"
        );
    }
}
