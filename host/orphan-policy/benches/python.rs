//! A Python ownership policy against the Rust one: the bundled default rules
//! in both languages (`guest-policies/python/default_ownership`, built with
//! `componentize-py`, and `guest-policies/default-ownership`). Prints a table
//! (run with `cargo bench --workspace --bench python`):
//!
//! * component size;
//! * first compile (fresh engine, no cache) and a load served by the
//!   on-disk cache (fresh engine, as at a plugin start or CLI run);
//! * instantiation p50 (fresh store + instance from the `InstancePre`);
//! * `classify` of 200 and of 10,000 inspected snapshots (20 labels, 30 env
//!   entries, 5 mounts each; 10,000 in batches of `MAX_CONTAINERS_PER_BATCH`),
//!   p50 of the wall time.

mod common;

use std::time::{Duration, Instant};

use orphan_policy::limits::{MAX_CONTAINERS_PER_BATCH, MAX_DEADLINE};
use orphan_policy::{CompileSource, EngineConfig, LoadedPolicy, PolicyKind, guests};

use common::{ctx, harness_with, snapshot};

#[path = "../tests/policy_host/python_build.rs"]
#[allow(dead_code)]
mod python_build;

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn config(cache: Option<&std::path::Path>) -> EngineConfig {
    EngineConfig {
        // Measure slowness instead of failing on it on a loaded machine.
        deadline: MAX_DEADLINE,
        cache_dir: cache.map(std::path::Path::to_path_buf),
        ..EngineConfig::default()
    }
}

struct Row {
    name: &'static str,
    size: usize,
    memory_limit: usize,
    first_compile: Duration,
    cached_load: Duration,
    instantiate_p50: Duration,
    batch_200_p50: Duration,
    batch_10k_p50: Duration,
}

fn measure(name: &'static str, bytes: &[u8], compiles: usize, runs: usize) -> Row {
    let load = |engine: &orphan_policy::PolicyEngine| {
        engine.load(PolicyKind::Ownership, bytes).expect("load")
    };
    let first_compile = p50((0..compiles)
        .map(|_| {
            let h = harness_with(config(None));
            time(|| load(&h.engine)).1
        })
        .collect());
    let dir = tempfile::tempdir().expect("tempdir");
    drop(load(&harness_with(config(Some(dir.path()))).engine));
    let cached_load = p50((0..compiles.max(3))
        .map(|_| {
            let h = harness_with(config(Some(dir.path())));
            let (policy, took) = time(|| load(&h.engine));
            assert_eq!(policy.compile_source(), CompileSource::DiskCache);
            took
        })
        .collect());
    let h = harness_with(config(Some(dir.path())));
    let policy: LoadedPolicy = load(&h.engine);
    let instantiate_p50 = p50((0..runs * 10)
        .map(|_| time(|| policy.instantiate_only().expect("instantiate")).1)
        .collect());
    let ctx = ctx();
    let all: Vec<_> = (0..10_000).map(|i| snapshot(i, true)).collect();
    let batch_200_p50 = p50((0..runs)
        .map(|_| time(|| policy.classify(&ctx, &all[..200]).expect("classify")).1)
        .collect());
    let batch_10k_p50 = p50((0..runs.div_ceil(4))
        .map(|_| {
            time(|| {
                for batch in all.chunks(MAX_CONTAINERS_PER_BATCH) {
                    policy.classify(&ctx, batch).expect("classify");
                }
            })
            .1
        })
        .collect());
    Row {
        name,
        size: bytes.len(),
        memory_limit: policy.memory_limit(),
        first_compile,
        cached_load,
        instantiate_p50,
        batch_200_p50,
        batch_10k_p50,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and
    // only checks that this builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(python) = python_build::python_default_ownership() else {
        eprintln!("componentize-py unavailable; nothing measured");
        return;
    };
    let rows = [
        measure("rust", guests::DEFAULT_OWNERSHIP, 5, 40),
        measure("python", python, 1, 20),
    ];
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    println!(
        "{:<8} {:>14} {:>10} {:>14} {:>12} {:>14} {:>12} {:>14}",
        "policy",
        "size",
        "mem limit",
        "first compile",
        "cached load",
        "instantiate",
        "200 ctrs",
        "10,000 ctrs"
    );
    for r in rows {
        println!(
            "{:<8} {:>10} KiB {:>8} M {:>14} {:>12} {:>14} {:>12} {:>14}",
            r.name,
            r.size / 1024,
            r.memory_limit / (1024 * 1024),
            ms(r.first_compile),
            ms(r.cached_load),
            ms(r.instantiate_p50),
            ms(r.batch_200_p50),
            ms(r.batch_10k_p50),
        );
    }
}
