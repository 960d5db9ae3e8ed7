//! Policy host benchmarks (run with `cargo bench -p orphan-policy`).
//!
//! * `sweep_10k/*`: 10,000 snapshots (20 labels, 30 env entries, 5 mounts
//!   each) through ownership then kill, in batches of
//!   `MAX_CONTAINERS_PER_BATCH`: the Wasm defaults against the same rules in
//!   native Rust (`orphan_policy::native`). Target ≤ 50 ms, ratio ≤ 2.0.
//!   The defaults declare the inputs they read, so the host packs only
//!   those; `wasm_all_inputs` sends them everything instead, to show what
//!   that selection saves. `cold_*` run the same sweeps with the CPU caches
//!   emptied first, as a reconciler meets 10,000 freshly listed snapshots.
//! * `instantiate`: fresh store + instantiation from the `InstancePre`
//!   (target p50 ≤ 20 µs).
//! * `load/*`: first compile against a load served by the on-disk cache.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use orphan_policy::limits::{MAX_CONTAINERS_PER_BATCH, MAX_DEADLINE};
use orphan_policy::{
    Action, Candidate, ContainerSnapshot, ContainerState, EngineConfig, EvalContext, LoadedPolicy,
    Mount, NodeInfo, Ownership, PolicyEngine, PolicyKind, Verdict, guests, native,
};

const NODE_ID: &str = "9d5741c1-3954-4b57-8a4c-d7a1e5a1a001";

fn ctx() -> EvalContext {
    EvalContext {
        now_ms: 1_700_000_000_000,
        node: NodeInfo {
            id: NODE_ID.into(),
            name: "client-1".into(),
            datacenter: "dc1".into(),
        },
        driver_name: "dockhand".into(),
        creation_grace_ms: 300_000,
    }
}

fn snapshot(i: usize, inspected: bool) -> ContainerSnapshot {
    let alloc = format!("{i:08x}-024e-a903-45b8-2bc28b74ed69");
    let mut labels: BTreeMap<String, String> = (0..18)
        .map(|n| (format!("org.example.label-{n}"), format!("value-{n}-{i}")))
        .collect();
    match i % 3 {
        0 => {
            labels.insert("com.hashicorp.nomad.alloc_id".into(), alloc.clone());
            labels.insert("com.hashicorp.nomad.node_id".into(), NODE_ID.into());
        }
        1 => {
            labels.insert("com.hashicorp.nomad.alloc_id".into(), alloc.clone());
            labels.insert(
                "com.hashicorp.nomad.node_id".into(),
                "0b8c2f4e-7d19-4c3a-9e6b-5f0a2d7c8e02".into(),
            );
        }
        _ => {
            labels.insert("maintainer".into(), "ops".into());
            labels.insert("tier".into(), "web".into());
        }
    }
    let mut c = ContainerSnapshot {
        id: format!("{i:064x}"),
        names: vec![if i % 3 == 2 {
            format!("/app-{i}")
        } else {
            format!("/task-{alloc}")
        }],
        image: "registry.example/app:1.2.3".into(),
        labels,
        env: None,
        mounts: ["/alloc", "/local", "/secrets", "/data", "/etc/app"]
            .iter()
            .map(|d| Mount {
                source: format!("/var/lib/nomad/alloc/{alloc}{d}"),
                destination: (*d).into(),
                kind: "bind".into(),
            })
            .collect(),
        created_ms: 1_600_000_000_000,
        started_ms: Some(1_600_000_001_000),
        state: ContainerState::Running,
        exit_code: None,
    };
    let mut env: Vec<String> = (0..29)
        .map(|n| format!("APP_SETTING_{n}=some-value-{n}"))
        .collect();
    env.push(format!("NOMAD_ALLOC_ID={alloc}"));
    if inspected {
        c.set_env_from_docker(env);
    }
    c
}

fn candidates<'a>(batch: &'a [ContainerSnapshot], verdicts: &'a [Verdict]) -> Vec<Candidate<'a>> {
    batch
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| matches!(v.ownership, Ownership::Owned { .. }))
        .map(|(c, v)| Candidate {
            container: c,
            ownership: &v.ownership,
        })
        .collect()
}

fn sweep(
    all: &[ContainerSnapshot],
    mut classify: impl FnMut(&[ContainerSnapshot]) -> Vec<Verdict>,
    mut decide: impl FnMut(&[Candidate<'_>]) -> Vec<Action>,
) -> usize {
    let mut destructive = 0;
    for batch in all.chunks(MAX_CONTAINERS_PER_BATCH) {
        let verdicts = classify(batch);
        let actions = decide(&candidates(batch, &verdicts));
        destructive += actions.iter().filter(|a| a.is_destructive()).count();
    }
    destructive
}

/// Empties the CPU caches by writing a buffer larger than any of them.
struct ColdCaches(Vec<u8>);

impl ColdCaches {
    fn new() -> Self {
        Self(vec![0; 256 << 20])
    }

    fn empty(&mut self) {
        for (n, line) in self.0.iter_mut().step_by(64).enumerate() {
            *line = line.wrapping_add(n as u8);
        }
        black_box(&self.0);
    }
}

fn new_engine(config: EngineConfig) -> (PolicyEngine, orphan_policy::EpochTicker) {
    let engine = PolicyEngine::new(config).expect("engine");
    let ticker = engine.start_epoch_ticker().expect("ticker");
    (engine, ticker)
}

fn benches(c: &mut Criterion) {
    // The sweep uses the longest deadline so that a loaded benchmark machine
    // measures slowness instead of failing on it.
    let (engine, _ticker) = new_engine(EngineConfig {
        deadline: MAX_DEADLINE,
        ..EngineConfig::default()
    });
    let ownership = engine
        .load_default(PolicyKind::Ownership)
        .expect("ownership");
    let kill = engine.load_default(PolicyKind::Kill).expect("kill");
    let all: Vec<ContainerSnapshot> = (0..10_000).map(|i| snapshot(i, true)).collect();
    // As listed by Docker, before any inspection: no env.
    let listed: Vec<ContainerSnapshot> = (0..10_000).map(|i| snapshot(i, false)).collect();
    let context = ctx();

    // One sweep of `snapshots` through a pair of Wasm policies, or natively.
    let wasm_sweep =
        |ownership: &LoadedPolicy, kill: &LoadedPolicy, snapshots: &[ContainerSnapshot]| {
            sweep(
                black_box(snapshots),
                |batch| ownership.classify(&context, batch).expect("classify"),
                |cands| kill.decide(&context, cands).expect("decide"),
            )
        };
    let native_sweep = |snapshots: &[ContainerSnapshot]| {
        sweep(
            black_box(snapshots),
            |batch| native::classify(&context, batch),
            |c| native::decide(&context, c),
        )
    };

    let expected = native_sweep(&all);
    assert_eq!(expected, 3334, "a third of the snapshots are ours");

    let mut group = c.benchmark_group("sweep_10k");
    group.sample_size(10);
    group.bench_function("wasm", |b| {
        b.iter(|| assert_eq!(wasm_sweep(&ownership, &kill, &all), expected))
    });
    let (ownership_all, kill_all) = (ownership.sent_all_inputs(), kill.sent_all_inputs());
    group.bench_function("wasm_all_inputs", |b| {
        b.iter(|| assert_eq!(wasm_sweep(&ownership_all, &kill_all, &all), expected))
    });
    group.bench_function("native", |b| {
        b.iter(|| assert_eq!(native_sweep(&all), expected))
    });
    // The same sweeps with every cache emptied first. The benchmarks above
    // run the same snapshots back to back, so whatever a sweep touches stays
    // cached for the next; a reconciler sweeping 10,000 containers reads
    // snapshots it has just built from Docker's answers, far more than any
    // cache holds.
    let mut cold = ColdCaches::new();
    group.bench_function("cold_wasm", |b| {
        b.iter_batched(
            || cold.empty(),
            |()| wasm_sweep(&ownership, &kill, &all),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("cold_native", |b| {
        b.iter_batched(
            || cold.empty(),
            |()| native_sweep(&all),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("wasm_listed_no_env", |b| {
        b.iter(|| wasm_sweep(&ownership, &kill, &listed))
    });
    group.bench_function("native_listed_no_env", |b| b.iter(|| native_sweep(&listed)));
    group.finish();

    c.bench_function("instantiate", |b| {
        b.iter(|| ownership.instantiate_only().expect("instantiate"))
    });

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("first_compile", |b| {
        b.iter_batched(
            || new_engine(EngineConfig::default()),
            |(engine, _ticker)| {
                engine
                    .load(PolicyKind::Ownership, guests::DEFAULT_OWNERSHIP)
                    .expect("load")
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cached = EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineConfig::default()
    };
    {
        let (engine, _ticker) = new_engine(cached.clone());
        engine
            .load(PolicyKind::Ownership, guests::DEFAULT_OWNERSHIP)
            .expect("warm the cache");
    }
    group.bench_function("disk_cache", |b| {
        b.iter_batched(
            || new_engine(cached.clone()),
            |(engine, _ticker)| {
                let policy = engine
                    .load(PolicyKind::Ownership, guests::DEFAULT_OWNERSHIP)
                    .expect("load");
                assert_eq!(
                    policy.compile_source(),
                    orphan_policy::CompileSource::DiskCache
                );
                policy
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(policy, benches);
criterion_main!(policy);
