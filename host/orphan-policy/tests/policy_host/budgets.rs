//! Budgets the host sets itself rather than inheriting: how much an answer
//! may copy into the host, which components get compiled and how many at
//! once, how long compiled code stays in memory, and how many evaluation
//! slots one policy may hold.

use std::time::{Duration, Instant};

use orphan_policy::limits::{MAX_CONTAINERS_PER_BATCH, hostcall_budget};
use orphan_policy::{
    CompileSource, EngineConfig, EvalError, LoadError, LoadedPolicy, Ownership, PolicyKind,
};

use crate::support::{ALLOC, Harness, container, ctx, guest, harness, harness_with, plain_batch};

/// The `hostile-aliased-answer` guest, loaded in an engine with a generous
/// deadline: filling its 24 MiB region must not time out on a loaded machine.
fn aliased_answer_guest() -> (Harness, LoadedPolicy) {
    let h = harness_with(EngineConfig {
        deadline: Duration::from_secs(2),
        ..EngineConfig::default()
    });
    let hostile = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-aliased-answer"))
        .expect("hostile guest loads");
    (h, hostile)
}

/// The host copied nothing of the aliased answer: the batch fails as too
/// large for its budget, and the engine serves the next call.
#[test]
fn aliased_answer_strings_fail_as_too_large_before_any_copy() {
    let (h, hostile) = aliased_answer_guest();
    for count in [1, 8, MAX_CONTAINERS_PER_BATCH] {
        let batch: Vec<_> = (0..count)
            .map(|i| container(&format!("c{i}"), "/aliased"))
            .collect();
        let started = Instant::now();
        let err = hostile
            .classify(&ctx(), &batch)
            .expect_err("an aliased 24 MiB answer must be refused");
        assert!(
            matches!(err, EvalError::AnswerTooLarge { inputs, budget }
                if inputs == count && budget == hostcall_budget(count)),
            "{err:?}"
        );
        assert_eq!(err.kind(), "answer-too-large");
        assert!(err.to_string().contains("answer too large"), "{err}");
        // Refused at the first string, not after copying up to wasmtime's
        // own 128 MiB default.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    let policy = h
        .engine
        .load_default(PolicyKind::Ownership)
        .expect("default");
    let verdicts = policy.classify(&ctx(), &plain_batch()).expect("next call");
    assert_eq!(
        verdicts[0].ownership,
        Ownership::Owned {
            alloc_id: ALLOC.into()
        }
    );
}

/// A log message spanning 24 MiB of guest memory is not copied into the
/// host: it is over the call's budget, so the call fails the same way.
#[test]
fn aliased_log_message_is_refused_before_any_copy() {
    let (_h, hostile) = aliased_answer_guest();
    let err = hostile
        .classify(&ctx(), &[container("log-region", "/logger")])
        .expect_err("a 24 MiB log message must be refused");
    assert!(
        matches!(err, EvalError::AnswerTooLarge { inputs: 1, .. }),
        "{err:?}"
    );
}

/// A forbidden import is found by parsing: nothing is compiled, so nothing
/// reaches the compiled-policy cache.
#[test]
fn component_imports_are_checked_before_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = harness_with(EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineConfig::default()
    });
    let err = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-wasi-import"))
        .expect_err("a WASI import is refused");
    assert!(matches!(err, LoadError::ForbiddenImports { .. }), "{err:?}");
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(cached.is_empty(), "compiled before refusing: {cached:?}");
    assert_eq!(h.engine.compiled_in_memory(), 0);
}

/// Compiled code lives as long as a loaded policy uses it, no longer.
#[test]
fn unreferenced_compiled_components_are_dropped_from_memory() {
    let h = harness();
    let first = h.engine.load_default(PolicyKind::Ownership).expect("load");
    let second = h.engine.load_default(PolicyKind::Ownership).expect("load");
    assert_eq!(second.compile_source(), CompileSource::Memory);
    let kill = h.engine.load_default(PolicyKind::Kill).expect("load");
    assert_eq!(h.engine.compiled_in_memory(), 2);
    drop(first);
    assert_eq!(h.engine.compiled_in_memory(), 2, "still used by `second`");
    drop(second);
    assert_eq!(h.engine.compiled_in_memory(), 1);
    drop(kill);
    assert_eq!(h.engine.compiled_in_memory(), 0);
    let again = h.engine.load_default(PolicyKind::Ownership).expect("load");
    assert_eq!(again.compile_source(), CompileSource::Compiled);
    assert_eq!(h.engine.compiled_in_memory(), 1);
}

/// A spinning policy called from many threads holds at most its share of
/// the slots, so a normal policy's calls never wait for one of its calls
/// to time out.
#[test]
fn hostile_policy_cannot_starve_a_concurrent_evaluation_of_slots() {
    let deadline = Duration::from_millis(600);
    let h = harness_with(EngineConfig {
        max_concurrent_evaluations: 4,
        deadline,
        ..EngineConfig::default()
    });
    let normal = h.engine.load_default(PolicyKind::Ownership).expect("load");
    let spin = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-spin-loop"))
        .expect("load");
    let bomb = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-memory-bomb"))
        .expect("load");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let hostile: Vec<_> = (0..8)
            .map(|i| {
                let (stop, policy) = (&stop, if i % 2 == 0 { &spin } else { &bomb });
                s.spawn(move || {
                    let mut failures = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if policy.classify(&ctx(), &plain_batch()).is_err() {
                            failures += 1;
                        }
                    }
                    failures
                })
            })
            .collect();
        // Let the hostile callers fill every slot they can.
        std::thread::sleep(Duration::from_millis(300));
        // Measured first and asserted after the hostile callers stop, so a
        // failure cannot leave them running.
        let normal_calls: Vec<_> = (0..10)
            .map(|_| {
                let started = Instant::now();
                let answer = normal.classify(&ctx(), &plain_batch());
                (answer, started.elapsed())
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for caller in hostile {
            assert!(caller.join().expect("hostile caller") > 0);
        }
        for (answer, waited) in normal_calls {
            let verdicts = answer.expect("the normal evaluation gets a slot");
            assert_eq!(
                verdicts[0].ownership,
                Ownership::Owned {
                    alloc_id: ALLOC.into()
                }
            );
            // Never queued behind a spinning call (each holds its slot for
            // the 600 ms deadline).
            assert!(waited < deadline / 2, "waited {waited:?}");
        }
    });
}

/// More callers than evaluation slots, across four components (two of them
/// hostile, holding their slot to the deadline or to the memory limit): every
/// call runs, fails with its own named error, or waits for a slot and gives
/// up as `busy` — none fails because the instance pool ran out, and nothing
/// crashes — and once the burst is over every policy evaluates again.
#[test]
fn more_concurrent_evaluations_than_slots_wait_or_fail_by_name_never_on_an_exhausted_pool() {
    let deadline = Duration::from_millis(150);
    let h = harness_with(EngineConfig {
        max_concurrent_evaluations: 2,
        deadline,
        ..EngineConfig::default()
    });
    let load = |name: &str| {
        h.engine
            .load(PolicyKind::Ownership, &guest(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let normal = h.engine.load_default(PolicyKind::Ownership).expect("load");
    let allowlist = load("example-label-allowlist");
    let spin = load("hostile-spin-loop");
    let bomb = load("hostile-memory-bomb");
    // Each policy's expected outcomes besides waiting too long (`busy`).
    let policies = [
        ("default", &normal, "ok"),
        ("allowlist", &allowlist, "ok"),
        ("spin", &spin, "deadline"),
        ("bomb", &bomb, "memory"),
    ];
    // 16 callers per policy at once on 2 slots: the spinning policy alone
    // needs 16 x 150 ms of its one-slot share, more than the 1.5 s a caller
    // waits, so some of its callers must give up.
    const CALLERS: usize = 16;
    let outcomes: Vec<(&str, &str, String)> = std::thread::scope(|s| {
        let callers: Vec<_> = policies
            .iter()
            .flat_map(|&(name, policy, _)| {
                (0..CALLERS).map(move |_| {
                    s.spawn(move || match policy.classify(&ctx(), &plain_batch()) {
                        Ok(_) => (name, "ok", String::new()),
                        Err(e) => (name, e.kind(), e.to_string()),
                    })
                })
            })
            .collect();
        callers
            .into_iter()
            .map(|c| c.join().expect("a caller panicked"))
            .collect()
    });
    let mut busy = 0;
    for (name, kind, error) in &outcomes {
        let expected = policies
            .iter()
            .find(|p| p.0 == *name)
            .map(|p| p.2)
            .expect("known policy");
        if *kind == "busy" {
            busy += 1;
            assert_eq!(
                error, "no evaluation slot became free within 1.5s",
                "{name}"
            );
        } else {
            assert_eq!(kind, &expected, "{name}: {error}");
        }
    }
    assert!(
        outcomes
            .iter()
            .any(|(n, k, _)| *n == "spin" && *k == "busy"),
        "the spinning policy's callers were never turned away: {outcomes:?}"
    );
    eprintln!("{} calls, {busy} turned away as busy", outcomes.len());

    // Afterwards every policy evaluates as before.
    let verdicts = normal.classify(&ctx(), &plain_batch()).expect("default");
    assert_eq!(
        verdicts[0].ownership,
        Ownership::Owned {
            alloc_id: ALLOC.into()
        }
    );
    allowlist
        .classify(&ctx(), &plain_batch())
        .expect("allowlist");
    for (policy, kind) in [(&spin, "deadline"), (&bomb, "memory")] {
        let err = policy
            .classify(&ctx(), &plain_batch())
            .expect_err("hostile");
        assert_eq!(err.kind(), kind, "{err}");
    }
}
