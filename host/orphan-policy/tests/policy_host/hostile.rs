//! Each hostile guest is contained with its specific error, and the same
//! engine then serves a normal batch correctly.

use std::time::{Duration, Instant};

use orphan_policy::{Candidate, EvalError, LoadError, OutputError, Ownership, PolicyKind, Verdict};

use crate::support::{ALLOC, Harness, ctx, guest, harness, plain_batch};

/// The engine still serves the default policy after the hostile call.
fn assert_engine_still_serves(h: &Harness) {
    let policy = h
        .engine
        .load_default(PolicyKind::Ownership)
        .expect("default loads");
    let verdicts = policy
        .classify(&ctx(), &plain_batch())
        .expect("normal batch");
    assert_eq!(
        verdicts[0].ownership,
        Ownership::Owned {
            alloc_id: ALLOC.into()
        }
    );
    assert_eq!(verdicts[1].ownership, Ownership::NotNomad);
}

fn classify_hostile(h: &Harness, name: &str) -> EvalError {
    let policy = h
        .engine
        .load(PolicyKind::Ownership, &guest(name))
        .expect("hostile guest loads");
    policy
        .classify(&ctx(), &plain_batch())
        .expect_err("hostile call must fail")
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let h = harness();
    let start = Instant::now();
    let err = classify_hostile(&h, "hostile-spin-loop");
    assert!(
        matches!(err, EvalError::DeadlineExceeded { deadline } if deadline == Duration::from_millis(100)),
        "{err:?}"
    );
    // Deadline (100 ms) plus a tick or two, with generous slack for a busy CI machine.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(err.kind(), "deadline");
    assert_engine_still_serves(&h);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    // A generous deadline, so a loaded machine cannot turn this into a timeout.
    let h = crate::support::harness_with(orphan_policy::EngineConfig {
        deadline: Duration::from_secs(2),
        ..Default::default()
    });
    let err = classify_hostile(&h, "hostile-memory-bomb");
    assert!(
        matches!(err, EvalError::MemoryLimitExceeded { limit } if limit == 32 * 1024 * 1024),
        "{err:?}"
    );
    assert_engine_still_serves(&h);
}

#[test]
fn deep_recursion_overflows_the_wasm_stack() {
    let h = harness();
    let err = classify_hostile(&h, "hostile-deep-recursion");
    assert!(matches!(err, EvalError::StackOverflow), "{err:?}");
    assert_engine_still_serves(&h);
}

#[test]
fn panic_is_a_trap() {
    let h = harness();
    let err = classify_hostile(&h, "hostile-panic");
    let EvalError::Trap { message } = &err else {
        panic!("expected a trap, got {err:?}")
    };
    assert!(message.contains("unreachable"), "{message}");
    assert_engine_still_serves(&h);
}

#[test]
fn oversized_reasons_fail_the_batch() {
    let h = harness();
    // 1 MiB reasons are over the batch's hostcall budget: refused before
    // the host copies them.
    let err = classify_hostile(&h, "hostile-oversized-output");
    assert!(
        matches!(err, EvalError::AnswerTooLarge { inputs: 2, .. }),
        "{err:?}"
    );
    assert_engine_still_serves(&h);
}

#[test]
fn wrong_verdict_count_is_rejected() {
    let h = harness();
    let err = classify_hostile(&h, "hostile-wrong-count");
    assert!(
        matches!(
            err,
            EvalError::OutputCount {
                expected: 2,
                got: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "policy returned 3 answers for 2 inputs");
    assert_engine_still_serves(&h);
}

#[test]
fn empty_alloc_id_is_malformed_output() {
    let h = harness();
    let err = classify_hostile(&h, "hostile-bad-verdict");
    assert!(
        matches!(
            err,
            EvalError::MalformedOutput {
                index: 0,
                error: OutputError::EmptyAllocId
            }
        ),
        "{err:?}"
    );
    assert_engine_still_serves(&h);
}

#[test]
fn unknown_signal_is_malformed_output() {
    let h = harness();
    let policy = h
        .engine
        .load(PolicyKind::Kill, &guest("hostile-bad-signal"))
        .expect("loads");
    let batch = plain_batch();
    let owned = Ownership::Owned {
        alloc_id: ALLOC.into(),
    };
    let candidates: Vec<Candidate<'_>> = batch
        .iter()
        .map(|container| Candidate {
            container,
            ownership: &owned,
        })
        .collect();
    let err = policy.decide(&ctx(), &candidates).expect_err("bad signal");
    let EvalError::MalformedOutput {
        index: 0,
        error: OutputError::UnknownSignal(sig),
    } = &err
    else {
        panic!("expected an unknown signal, got {err:?}")
    };
    assert_eq!(sig.0, "SIGBOGUS");
    assert_engine_still_serves(&h);
}

#[test]
fn log_flood_is_bounded_and_the_batch_still_succeeds() {
    let h = harness();
    let policy = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-log-flood"))
        .expect("loads");
    let eval = policy
        .classify_with_stats(&ctx(), &plain_batch())
        .expect("flooding is not fatal");
    assert_eq!(eval.output.len(), 2);
    assert!(
        eval.output
            .iter()
            .all(|v: &Verdict| v.ownership == Ownership::NotNomad)
    );
    assert!(eval.log.emitted <= 100, "{:?}", eval.log);
    assert_eq!(eval.log.emitted + eval.log.dropped, 5_001, "{:?}", eval.log);
    // A second call right away is throttled by the per-policy rate limit.
    let again = policy
        .classify_with_stats(&ctx(), &plain_batch())
        .expect("second call");
    assert!(
        again.log.emitted <= 100 && again.log.dropped > 4_900,
        "{:?}",
        again.log
    );
    assert_engine_still_serves(&h);
}

#[test]
fn wasi_filesystem_import_is_refused_by_name() {
    let h = harness();
    let err = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-wasi-import"))
        .expect_err("refused");
    let LoadError::ForbiddenImports { imports } = &err else {
        panic!("expected forbidden imports, got {err:?}")
    };
    assert_eq!(imports, &vec!["wasi:filesystem/preopens@0.2.0".to_owned()]);
    assert!(err.to_string().contains("wasi:filesystem/preopens@0.2.0"));
    assert_engine_still_serves(&h);
}

#[test]
fn core_module_garbage_and_wrong_world_have_distinct_errors() {
    let h = harness();
    let e = h
        .engine
        .load(PolicyKind::Ownership, &guest("core-module"))
        .expect_err("core module");
    assert!(matches!(e, LoadError::CoreModule), "{e:?}");

    let e = h
        .engine
        .load(PolicyKind::Ownership, b"#!/bin/sh\nrm -rf /\n")
        .expect_err("garbage");
    assert!(matches!(e, LoadError::NotWasm { .. }), "{e:?}");
    let e = h
        .engine
        .load(PolicyKind::Ownership, &[])
        .expect_err("empty");
    assert!(matches!(e, LoadError::NotWasm { .. }), "{e:?}");

    let mut truncated = orphan_policy::guests::DEFAULT_OWNERSHIP.to_vec();
    truncated.truncate(truncated.len() / 2);
    let e = h
        .engine
        .load(PolicyKind::Ownership, &truncated)
        .expect_err("truncated component");
    // Found by the import parser, before anything is compiled.
    assert!(matches!(e, LoadError::Malformed(_)), "{e:?}");

    let e = h
        .engine
        .load(PolicyKind::Ownership, orphan_policy::guests::DEFAULT_KILL)
        .expect_err("kill as ownership");
    assert!(
        matches!(&e, LoadError::WrongWorld { expected: PolicyKind::Ownership, missing } if missing == &["classify"]),
        "{e:?}"
    );
    let e = h
        .engine
        .load(PolicyKind::Kill, orphan_policy::guests::DEFAULT_OWNERSHIP)
        .expect_err("ownership as kill");
    assert!(
        matches!(&e, LoadError::WrongWorld { expected: PolicyKind::Kill, missing } if missing == &["decide"]),
        "{e:?}"
    );
    assert_engine_still_serves(&h);
}

#[test]
fn oversized_policy_is_refused_before_parsing() {
    let h = harness();
    let mut big = b"\0asm\x0d\0\x01\0".to_vec();
    big.resize(orphan_policy::limits::MAX_POLICY_BYTES + 1, 0);
    let e = h
        .engine
        .load(PolicyKind::Ownership, &big)
        .expect_err("too large");
    assert!(matches!(e, LoadError::TooLarge { .. }), "{e:?}");
}

#[test]
fn calling_the_wrong_kind_and_oversized_batches_fail_cleanly() {
    let h = harness();
    let kill = h.engine.load_default(PolicyKind::Kill).expect("kill");
    let e = kill
        .classify(&ctx(), &plain_batch())
        .expect_err("classify on kill");
    assert!(
        matches!(
            e,
            EvalError::WrongKind {
                policy: PolicyKind::Kill,
                call: "classify"
            }
        ),
        "{e:?}"
    );

    let ownership = h
        .engine
        .load_default(PolicyKind::Ownership)
        .expect("ownership");
    let e = ownership
        .decide(&ctx(), &[])
        .expect_err("decide on ownership");
    assert!(matches!(e, EvalError::WrongKind { .. }), "{e:?}");
    // An empty batch has an empty answer, without a call.
    let empty = ownership.classify_with_stats(&ctx(), &[]).expect("empty");
    assert!(empty.output.is_empty() && empty.elapsed.is_zero());

    let many = vec![plain_batch()[1].clone(); orphan_policy::limits::MAX_CONTAINERS_PER_BATCH + 1];
    let e = ownership.classify(&ctx(), &many).expect_err("too many");
    assert!(
        matches!(
            e,
            EvalError::BatchTooLarge {
                count: 1025,
                max: 1024
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_policy_outliving_its_engine_still_hits_the_deadline() {
    // No ticker guard anywhere: the engine starts its ticker, and a loaded policy keeps it
    // running after the engine handle is gone.
    let engine = orphan_policy::PolicyEngine::new(orphan_policy::EngineConfig {
        deadline: Duration::from_millis(100),
        ..Default::default()
    })
    .expect("engine");
    let spin = engine
        .load(PolicyKind::Ownership, &guest("hostile-spin-loop"))
        .expect("loads");
    drop(engine);
    let started = Instant::now();
    let err = spin
        .classify(&ctx(), &plain_batch())
        .expect_err("the spin loop never answers");
    assert!(
        matches!(err, EvalError::DeadlineExceeded { deadline } if deadline == Duration::from_millis(100)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn engine_and_policies_are_send_sync_and_serve_threads_concurrently() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<orphan_policy::PolicyEngine>();
    assert_send_sync::<orphan_policy::LoadedPolicy>();
    assert_send_sync::<EvalError>();
    assert_send_sync::<LoadError>();

    let h = harness();
    let policy = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    let spin = h
        .engine
        .load(PolicyKind::Ownership, &guest("hostile-spin-loop"))
        .expect("loads");
    std::thread::scope(|s| {
        let spinner = s.spawn(|| spin.classify(&ctx(), &plain_batch()));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..20).all(|_| {
                        policy.classify(&ctx(), &plain_batch()).expect("classify")[0].ownership
                            == Ownership::Owned {
                                alloc_id: ALLOC.into(),
                            }
                    })
                })
            })
            .collect();
        assert!(workers.into_iter().all(|w| w.join().expect("worker")));
        assert!(matches!(
            spinner.join().expect("spinner"),
            Err(EvalError::DeadlineExceeded { .. })
        ));
    });
}

#[test]
fn on_demand_allocator_enforces_the_same_limits() {
    let h = crate::support::harness_with(orphan_policy::EngineConfig {
        pooling_allocator: false,
        memory_limit: 8 * 1024 * 1024,
        deadline: Duration::from_secs(1),
        ..Default::default()
    });
    let err = classify_hostile(&h, "hostile-memory-bomb");
    assert!(
        matches!(err, EvalError::MemoryLimitExceeded { limit } if limit == 8 * 1024 * 1024),
        "{err:?}"
    );
    let err = classify_hostile(&h, "hostile-spin-loop");
    assert!(matches!(err, EvalError::DeadlineExceeded { .. }), "{err:?}");
    assert_engine_still_serves(&h);
}

#[test]
fn invalid_engine_config_names_the_field() {
    let err = orphan_policy::PolicyEngine::new(orphan_policy::EngineConfig {
        deadline: Duration::from_secs(60),
        ..Default::default()
    })
    .expect_err("deadline too long");
    assert!(
        err.to_string()
            .starts_with("invalid engine config `deadline`:"),
        "{err}"
    );
}
