//! Policy host benchmarks (run with `cargo bench --workspace --bench policy`;
//! `--bench targets` prints the standing targets in one table).
//!
//! * `sweep_10k/*`: 10,000 snapshots (20 labels, 30 env entries, 5 mounts
//!   each) through the default ownership then kill policies, in batches of
//!   `MAX_CONTAINERS_PER_BATCH`. Target ≤ 50 ms.
//!   The defaults declare the inputs they read, so the host packs only
//!   those; `wasm_all_inputs` sends them everything instead, to show what
//!   that selection saves. `cold_wasm` runs the sweep with the CPU caches
//!   emptied first, as a reconciler meets 10,000 freshly listed snapshots;
//!   `wasm_listed_no_env` sweeps the snapshots as listed, before inspection.
//! * `instantiate`: fresh store + instantiation from the `InstancePre`
//!   (target p50 ≤ 20 µs).
//! * `load/*`: first compile against a load served by the on-disk cache.

mod common;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use orphan_policy::{CompileSource, EngineConfig, PolicyKind, guests};

use common::{ColdCaches, Fixture, harness_with};

fn benches(c: &mut Criterion) {
    let fixture = Fixture::new();
    let (all, listed, expected) = (&fixture.all, &fixture.listed, fixture.expected);
    let (ownership, kill) = (&fixture.ownership, &fixture.kill);
    let wasm_sweep = |o, k, snapshots| fixture.wasm_sweep(o, k, snapshots);

    let mut group = c.benchmark_group("sweep_10k");
    group.sample_size(10);
    group.bench_function("wasm", |b| {
        b.iter(|| assert_eq!(wasm_sweep(ownership, kill, all), expected))
    });
    let (ownership_all, kill_all) = (ownership.sent_all_inputs(), kill.sent_all_inputs());
    group.bench_function("wasm_all_inputs", |b| {
        b.iter(|| assert_eq!(wasm_sweep(&ownership_all, &kill_all, all), expected))
    });
    // The same sweep with every cache emptied first. The benchmarks above
    // run the same snapshots back to back, so whatever a sweep touches stays
    // cached for the next; a reconciler sweeping 10,000 containers reads
    // snapshots it has just built from Docker's answers, far more than any
    // cache holds.
    let mut cold = ColdCaches::new();
    group.bench_function("cold_wasm", |b| {
        b.iter_batched(
            || cold.empty(),
            |()| wasm_sweep(ownership, kill, all),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("wasm_listed_no_env", |b| {
        b.iter(|| wasm_sweep(ownership, kill, listed))
    });
    group.finish();

    c.bench_function("instantiate", |b| {
        b.iter(|| ownership.instantiate_only().expect("instantiate"))
    });

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("first_compile", |b| {
        b.iter_batched(
            || harness_with(EngineConfig::default()),
            |harness| {
                harness
                    .engine
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
        harness_with(cached.clone())
            .engine
            .load(PolicyKind::Ownership, guests::DEFAULT_OWNERSHIP)
            .expect("warm the cache");
    }
    group.bench_function("disk_cache", |b| {
        b.iter_batched(
            || harness_with(cached.clone()),
            |harness| {
                let policy = harness
                    .engine
                    .load(PolicyKind::Ownership, guests::DEFAULT_OWNERSHIP)
                    .expect("load");
                assert_eq!(policy.compile_source(), CompileSource::DiskCache);
                policy
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(policy, benches);
criterion_main!(policy);
