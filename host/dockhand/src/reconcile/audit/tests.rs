use std::time::Duration;

use orphan_policy::{ActionKind, Signal};

use super::*;
use crate::reconcile::SweepStatus;

fn line(id: &str) -> AuditLine {
    AuditLine::Record(AuditRecord {
        record: RecordKind::Decision,
        sweep_ms: 1,
        container_id: id.to_owned(),
        name: "n".into(),
        image: "i".into(),
        ownership_digest: "o".into(),
        kill_digest: "k".into(),
        verdict: "unknown".into(),
        verdict_reason: "r".into(),
        action: "-".into(),
        action_reason: String::new(),
        outcome: "no-action".into(),
        detail: None,
        report_only: false,
    })
}

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["container_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn appends_json_lines_and_rotates_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join(AUDIT_FILE_NAME);
    let log = AuditLog::new(path.clone(), 500);
    log.append(&[line("a"), line("b")]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(ids(&path), ["a", "b"]);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["record"], "decision");
    log.append(&[line("c")]).unwrap();
    // Two records take more than 500 bytes with the third: the first file was rotated.
    assert_eq!(std::fs::read_to_string(rotated(&path, 1)).unwrap(), text);
    assert_eq!(ids(&path), ["c"]);
    log.append(&[]).unwrap();
    assert_eq!(ids(&path), ["c"]);
}

#[test]
fn audit_rotation_keeps_the_configured_number_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(AUDIT_FILE_NAME);
    // One line per file: every append rotates.
    let log = AuditLog::new(path.clone(), 10).with_keep(3);
    for id in ["a", "b", "c", "d", "e", "f"] {
        log.append(&[line(id)]).unwrap();
    }
    assert_eq!(ids(&path), ["f"]);
    assert_eq!(ids(&rotated(&path, 1)), ["e"]);
    assert_eq!(ids(&rotated(&path, 2)), ["d"]);
    assert_eq!(ids(&rotated(&path, 3)), ["c"]);
    assert!(
        !rotated(&path, 4).exists(),
        "only three rotated files are kept"
    );
    assert_eq!(DEFAULT_AUDIT_KEEP, 5);
    assert_eq!(AuditLog::new(path, 1).keep, DEFAULT_AUDIT_KEEP);
}

fn decision(id: &str, ownership: Ownership, action: Option<Action>, outcome: Outcome) -> Decision {
    Decision {
        id: id.into(),
        name: format!("{id}-name"),
        image: "busybox".into(),
        created_ms: 0,
        verdict: Some(Verdict {
            ownership,
            reason: "why".into(),
        }),
        action,
        outcome,
    }
}

fn stop() -> Action {
    Action {
        kind: ActionKind::Stop {
            signal: Signal::Term,
            timeout: Duration::from_secs(30),
            then_remove: true,
        },
        reason: "orphan".into(),
    }
}

fn report(decisions: Vec<Decision>) -> SweepReport {
    SweepReport {
        started_ms: 7,
        duration: Duration::ZERO,
        report_only: false,
        status: SweepStatus::Completed,
        listed: decisions.len(),
        skipped_tracked: 0,
        skipped_young: 0,
        ownership_digest: "aa".into(),
        kill_digest: "bb".into(),
        policy_failures: 0,
        cap_reached: false,
        warned: false,
        decisions,
    }
}

#[test]
fn routine_not_nomad_rows_are_counted_in_a_summary_not_written_one_by_one() {
    let owned = || Ownership::Owned {
        alloc_id: "a1".into(),
    };
    let report = report(vec![
        decision("p1", Ownership::NotNomad, None, Outcome::NoAction),
        decision("p2", Ownership::NotNomad, None, Outcome::NoAction),
        decision("p3", Ownership::NotNomad, None, Outcome::NoAction),
        decision("u1", Ownership::Unknown, None, Outcome::NoAction),
        decision("c1", owned(), Some(stop()), Outcome::CapReached),
        decision("d1", owned(), Some(stop()), Outcome::Done),
        decision("f1", owned(), Some(stop()), Outcome::Failed("boom".into())),
    ]);
    let lines = sweep_lines(&report);
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .collect();
    // The acted-on ones have their intent and outcome lines from the action path already.
    let recorded: Vec<&str> = json
        .iter()
        .filter(|l| l["record"] == "decision")
        .map(|l| l["container_id"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, ["u1", "c1"]);
    let summary = json.last().unwrap();
    assert_eq!(summary["record"], "summary", "{summary}");
    assert_eq!(summary["not_nomad_no_action"], 3);
    assert_eq!(summary["sweep_ms"], 7);
    assert_eq!(summary["kill_digest"], "bb");
    assert_eq!(json.len(), 3);

    let quiet = report_with_only_routine();
    assert_eq!(
        sweep_lines(&quiet).len(),
        1,
        "one summary line, however many rows"
    );
    assert!(
        sweep_lines(&super::super::report::SweepReport {
            decisions: vec![],
            ..quiet
        })
        .is_empty()
    );
}

fn report_with_only_routine() -> SweepReport {
    report(
        (0..50)
            .map(|i| {
                decision(
                    &format!("p{i}"),
                    Ownership::NotNomad,
                    None,
                    Outcome::NoAction,
                )
            })
            .collect(),
    )
}

#[test]
fn audit_lines_escape_format_characters_in_names_and_reasons() {
    let mut d = decision(
        "x1",
        Ownership::Unknown,
        None,
        Outcome::InspectFailed("bad\u{202e}error".into()),
    );
    d.name = "evil\u{202e}txt.exe\u{200b}".into();
    d.verdict.as_mut().unwrap().reason = "\u{2066}a\u{2069}\u{2067}b\u{2068}".into();
    let record = AuditRecord::new(&report(vec![]), &d);
    assert_eq!(record.name, "evil\\u{202e}txt.exe\\u{200b}");
    assert_eq!(
        record.verdict_reason,
        "\\u{2066}a\\u{2069}\\u{2067}b\\u{2068}"
    );
    assert_eq!(record.detail.as_deref(), Some("bad\\u{202e}error"));
    let text = serde_json::to_string(&record).unwrap();
    assert!(
        !text.chars().any(orphan_policy::display::needs_escape),
        "{text}"
    );
}
