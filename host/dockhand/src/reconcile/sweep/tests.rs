//! Batching of policy calls, with the real policy host and the bundled default ownership
//! policy (no Docker involved: the snapshots are built here).

use std::collections::BTreeMap;

use orphan_policy::limits::MAX_BATCH_INPUT_BYTES;
use orphan_policy::{EngineConfig, NodeInfo, PolicyEngine, PolicyKind};

use super::*;

const MIB: usize = 1 << 20;

/// A container carrying one label of `blob_bytes` bytes.
fn work_with_blob(i: usize, blob_bytes: usize) -> Work {
    let labels = BTreeMap::from([
        ("maintainer".to_owned(), "ops".to_owned()),
        ("blob".to_owned(), "x".repeat(blob_bytes)),
    ]);
    Work {
        snapshot: ContainerSnapshot {
            id: format!("{i:064x}"),
            names: vec![format!("/app-{i}")],
            labels,
            created_ms: 1_600_000_000_000,
            ..ContainerSnapshot::default()
        },
        verdict: None,
        action: None,
        outcome: None,
    }
}

fn empty_report() -> SweepReport {
    SweepReport::not_run()
}

/// Classifies `work` with the default ownership policy sent every label (so the blobs count
/// towards the batch's input size).
async fn classify_all(work: &mut [Work]) -> SweepReport {
    let engine = PolicyEngine::new(EngineConfig::default()).expect("engine");
    let policy = engine
        .load_default(PolicyKind::Ownership)
        .expect("default ownership")
        .sent_all_inputs();
    let ctx = EvalContext {
        now_ms: 1_700_000_000_000,
        node: NodeInfo {
            id: "9d5741c1-3954-4b57-8a4c-d7a1e5a1a001".into(),
            ..NodeInfo::default()
        },
        driver_name: "dockhand".into(),
        creation_grace_ms: 60_000,
    };
    let mut report = empty_report();
    let all: Vec<usize> = (0..work.len()).collect();
    classify(&policy, &ctx, work, &all, &mut report).await;
    report
}

#[tokio::test]
async fn a_batch_too_large_for_one_call_is_split_until_it_fits() {
    // Nine 1 MiB labels: 9 MiB in one batch, more than one call takes.
    let mut work: Vec<Work> = (0..9).map(|i| work_with_blob(i, MIB)).collect();
    const { assert!(9 * MIB > MAX_BATCH_INPUT_BYTES) };
    let report = classify_all(&mut work).await;
    assert_eq!(report.policy_failures, 0);
    for w in &work {
        assert_eq!(w.outcome, None, "{}", w.snapshot.id);
        let verdict = w.verdict.as_ref().expect("every container has a verdict");
        assert_eq!(verdict.ownership, Ownership::NotNomad);
    }
}

#[tokio::test]
async fn only_a_container_too_large_on_its_own_is_left_without_a_verdict() {
    let mut work: Vec<Work> = (0..5).map(|i| work_with_blob(i, 1024)).collect();
    work.insert(2, work_with_blob(99, MAX_BATCH_INPUT_BYTES + 1));
    let report = classify_all(&mut work).await;
    assert_eq!(report.policy_failures, 1);
    for (i, w) in work.iter().enumerate() {
        if i == 2 {
            assert_eq!(w.verdict, None);
            let Some(Outcome::PolicyFailed(error)) = &w.outcome else {
                panic!("the oversized container failed: {:?}", w.outcome);
            };
            assert!(error.contains("exceeds the limit"), "{error}");
        } else {
            assert_eq!(w.outcome, None, "#{i}");
            assert_eq!(
                w.verdict.as_ref().map(|v| &v.ownership),
                Some(&Ownership::NotNomad),
                "#{i}"
            );
        }
    }
}

#[test]
fn the_grace_rounds_a_creation_second_up() {
    let cutoff = 1_700_000_010_500;
    // Created during second …010: possibly at …010.999, after the cutoff.
    assert!(within_grace(1_700_000_010_000, cutoff));
    // Created during second …009: at the latest …009.999, before the cutoff.
    assert!(!within_grace(1_700_000_009_000, cutoff));
    // The end of the creation second exactly at the cutoff is old enough.
    assert!(!within_grace(1_700_000_009_501, cutoff));
    assert!(within_grace(1_700_000_009_502, cutoff));
    // No creation time (i64::MAX) is always within the grace.
    assert!(within_grace(i64::MAX, cutoff));
}

#[test]
fn the_daemon_clock_is_read_from_its_system_time() {
    assert_eq!(
        daemon_time_ms(Some("2023-11-14T22:13:20.123456789Z")),
        Some(1_700_000_000_123)
    );
    assert_eq!(
        daemon_time_ms(Some("2023-11-14T23:13:20.5+01:00")),
        Some(1_700_000_000_500)
    );
    assert_eq!(daemon_time_ms(Some("yesterday")), None);
    assert_eq!(daemon_time_ms(Some("")), None);
    assert_eq!(daemon_time_ms(None), None);
}
