//! Reconciler sweep cost against the local daemon: a full sweep (list, ownership policy, kill
//! policy, decisions; audit mode so nothing is executed) over 200 running containers, side by
//! side with one bare list call of the same containers. Target: sweep ≤ 1.2 × list.
//!
//! `cargo bench --workspace --bench sweep` (or `--profile dev`). Without `--bench` in the
//! arguments (as under `cargo test --all-targets`) it does nothing. The containers are created
//! once, labelled `dockhand.bench=sweep`, and removed at the end (also after a failed run);
//! leftovers of an interrupted run are removed first.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::config::PolicyMode;
use dockhand::docker::models::{ContainerCreateBody, HostConfig};
use dockhand::docker::{BollardDocker, ContainerFilter, DockerApi};
use dockhand::reconcile::{
    ActivePolicies, AlwaysHealthy, PoliciesInForce, ReconcileSettings, Reconciler, SweepStatus,
    TrackedFn,
};
use futures::StreamExt as _;
use nomad_plugin::error_chain;
use orphan_policy::{EngineConfig, NodeInfo, PolicyEngine, PolicyKind};

// Shared with the integration tests; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../../../tests/integration/support/image.rs"]
mod image;

const CONTAINERS: usize = 200;
const ROUNDS: usize = 30;
const LABEL: &str = "dockhand.bench=sweep";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let docker: Arc<dyn DockerApi> = match BollardDocker::from_env() {
        Ok(d) if d.ping().await.is_ok() => Arc::new(d),
        _ => {
            eprintln!("sweep bench: SKIPPED, no Docker daemon answers");
            return;
        }
    };
    image::ensure_test_image(&docker).await;
    cleanup(&docker).await;
    let created = Instant::now();
    create_all(&docker).await;
    eprintln!("created {CONTAINERS} containers in {:?}", created.elapsed());
    let result = measure(&docker).await;
    cleanup(&docker).await;
    if let Err(e) = result {
        eprintln!("sweep bench failed: {e}");
        std::process::exit(1);
    }
}

async fn create_all(docker: &Arc<dyn DockerApi>) {
    futures::stream::iter(0..CONTAINERS)
        .map(|n| {
            let docker = docker.clone();
            async move {
                let mut labels = vec![("dockhand.bench".to_owned(), "sweep".to_owned())];
                if n % 2 == 0 {
                    labels.push((
                        "com.hashicorp.nomad.alloc_id".to_owned(),
                        format!("00000000-0000-4000-8000-{n:012x}"),
                    ));
                    // dockhand's own orphans: the host accepts claims on these only.
                    labels.extend(dockhand::tasks::identity_labels("bench-node"));
                }
                let body = ContainerCreateBody {
                    image: Some(image::TEST_IMAGE.to_owned()),
                    cmd: Some(vec!["sleep".into(), "3600".into()]),
                    labels: Some(labels.into_iter().collect()),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".to_owned()),
                        ..HostConfig::default()
                    }),
                    ..ContainerCreateBody::default()
                };
                let id = docker
                    .create_container(&format!("dockhand-bench-sweep-{n}"), body)
                    .await
                    .expect("create bench container");
                docker
                    .start_container(&id)
                    .await
                    .expect("start bench container");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

async fn cleanup(docker: &Arc<dyn DockerApi>) {
    let ids: Vec<String> = docker
        .list_containers(&ContainerFilter::all().with_label(LABEL))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    futures::stream::iter(ids)
        .map(|id| {
            let docker = docker.clone();
            async move {
                if let Err(e) = docker.remove_container(&id, true).await {
                    eprintln!("bench cleanup: {id}: {e}");
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

async fn measure(docker: &Arc<dyn DockerApi>) -> Result<(), String> {
    let engine = PolicyEngine::new(EngineConfig::default()).map_err(|e| error_chain(&e))?;
    let policies = PoliciesInForce::new(ActivePolicies::from_config(
        engine
            .load_default(PolicyKind::Ownership)
            .map_err(|e| e.to_string())?,
        engine
            .load_default(PolicyKind::Kill)
            .map_err(|e| e.to_string())?,
        PolicyMode::Audit,
    ));
    let settings = ReconcileSettings {
        node: NodeInfo {
            id: "bench-node".into(),
            ..NodeInfo::default()
        },
        label_filter: Some(LABEL.to_owned()),
        ..ReconcileSettings::new(Duration::from_secs(300), Duration::ZERO)
    };
    let reconciler = Reconciler::new(
        docker.clone(),
        Arc::new(TrackedFn(BTreeSet::new)),
        policies,
        settings,
        Arc::new(AlwaysHealthy),
    );
    let filter = ContainerFilter::running().with_label(LABEL);

    // Warm-up: connection, policy instances.
    let report = reconciler.sweep_once().await;
    if report.status != SweepStatus::Completed || report.decisions.len() != CONTAINERS {
        return Err(format!(
            "warm-up sweep saw {} candidates ({:?})",
            report.decisions.len(),
            report.status
        ));
    }
    if report.would_act_on().len() != CONTAINERS / 2 {
        return Err(format!("expected {} would-do", CONTAINERS / 2));
    }
    docker
        .list_containers(&filter)
        .await
        .map_err(|e| e.to_string())?;

    // Interleaved, so drift in the daemon affects both series alike.
    let (mut list, mut sweep) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let listed = docker
            .list_containers(&filter)
            .await
            .map_err(|e| e.to_string())?;
        list.push(t.elapsed());
        assert_eq!(listed.len(), CONTAINERS);
        let t = Instant::now();
        let report = reconciler.sweep_once().await;
        sweep.push(t.elapsed());
        assert_eq!(report.decisions.len(), CONTAINERS);
    }
    // Where the difference goes: the two policy calls alone, on the same 200 snapshots.
    let listed = docker
        .list_containers(&filter)
        .await
        .map_err(|e| e.to_string())?;
    let snapshots: Vec<_> = listed
        .iter()
        .filter_map(dockhand::reconcile::snapshot_from_summary)
        .collect();
    let policies = reconciler.policies().current();
    let ctx = orphan_policy::EvalContext {
        node: NodeInfo {
            id: "bench-node".into(),
            ..NodeInfo::default()
        },
        ..orphan_policy::EvalContext::default()
    };
    let (mut classify, mut decide) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let verdicts = policies
            .ownership
            .policy
            .classify(&ctx, &snapshots)
            .map_err(|e| e.to_string())?;
        classify.push(t.elapsed());
        let candidates: Vec<_> = snapshots
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| matches!(v.ownership, orphan_policy::Ownership::Owned { .. }))
            .map(|(c, v)| orphan_policy::Candidate {
                container: c,
                ownership: &v.ownership,
            })
            .collect();
        let t = Instant::now();
        policies
            .kill
            .policy
            .decide(&ctx, &candidates)
            .map_err(|e| e.to_string())?;
        decide.push(t.elapsed());
    }
    let (c, d) = (stats(&mut classify), stats(&mut decide));
    let (l, s) = (stats(&mut list), stats(&mut sweep));
    println!("sweep bench: {CONTAINERS} running containers, {ROUNDS} rounds each");
    println!("{:<22} {:>10} {:>10} {:>10}", "", "median", "mean", "p90");
    println!(
        "{:<22} {:>10.2?} {:>10.2?} {:>10.2?}",
        "bare list call", l.0, l.1, l.2
    );
    println!(
        "{:<22} {:>10.2?} {:>10.2?} {:>10.2?}",
        "full sweep (audit)", s.0, s.1, s.2
    );
    println!(
        "{:<22} {:>10.2?} {:>10.2?} {:>10.2?}",
        "  ownership (200)", c.0, c.1, c.2
    );
    println!(
        "{:<22} {:>10.2?} {:>10.2?} {:>10.2?}",
        "  kill (100)", d.0, d.1, d.2
    );
    println!(
        "ratio sweep/list: median {:.2}, mean {:.2} (target <= 1.2)",
        s.0.as_secs_f64() / l.0.as_secs_f64(),
        s.1.as_secs_f64() / l.1.as_secs_f64()
    );
    Ok(())
}

/// Median, mean and 90th percentile.
fn stats(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(1);
    (samples[n / 2], mean, samples[(n * 9 / 10).min(n - 1)])
}
