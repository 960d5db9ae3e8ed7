//! The Wasm/native sweep ratio, measured in pairs (run with
//! `cargo bench -p orphan-policy --bench ratio`; prints a table).
//!
//! The `sweep_10k` criterion benchmarks time the Wasm and the native sweep
//! seconds apart. On a shared machine both move by a third from one run to
//! the next (other tenants compete for memory bandwidth, and both sweeps are
//! bound by it), so a ratio of two separate medians is mostly noise. Here
//! every round runs the two sweeps back to back, alternating which goes
//! first, and the ratio is taken per round: whatever slows the machine down
//! slows both sides of a pair alike. Warm rounds reuse the same snapshots;
//! cold rounds empty the CPU caches before each sweep, as a reconciler meets
//! 10,000 freshly listed snapshots. Target: median ratio ≤ 2.0.

mod common;

use std::time::{Duration, Instant};

use common::{ColdCaches, Fixture};

const WARM_ROUNDS: usize = 60;
const COLD_ROUNDS: usize = 30;

/// One round's two timings.
#[derive(Clone, Copy)]
struct Pair {
    wasm: Duration,
    native: Duration,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.wasm.as_secs_f64() / self.native.as_secs_f64()
    }
}

fn rounds(fixture: &Fixture, rounds: usize, mut before_each: impl FnMut()) -> Vec<Pair> {
    let mut time = |wasm: bool| {
        before_each();
        let start = Instant::now();
        let destructive = if wasm {
            fixture.wasm_sweep(&fixture.ownership, &fixture.kill, &fixture.all)
        } else {
            fixture.native_sweep(&fixture.all)
        };
        let elapsed = start.elapsed();
        assert_eq!(destructive, fixture.expected);
        elapsed
    };
    (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let wasm = time(true);
                Pair {
                    wasm,
                    native: time(false),
                }
            } else {
                let native = time(false);
                Pair {
                    wasm: time(true),
                    native,
                }
            }
        })
        .collect()
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (q * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

fn row(name: &str, pairs: &[Pair]) {
    let ms = |f: fn(&Pair) -> Duration| -> Vec<f64> {
        pairs.iter().map(|p| f(p).as_secs_f64() * 1e3).collect()
    };
    let mut wasm = ms(|p| p.wasm);
    let mut native = ms(|p| p.native);
    let mut ratios: Vec<f64> = pairs.iter().map(Pair::ratio).collect();
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} ({:.2}–{:.2}) |",
        pairs.len(),
        quantile(&mut wasm, 0.5),
        quantile(&mut native, 0.5),
        quantile(&mut ratios, 0.5),
        quantile(&mut ratios, 0.1),
        quantile(&mut ratios, 0.9),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // without it: nothing is measured then, but the fixture's agreement
    // checks still run.
    let measure = std::env::args().any(|a| a == "--bench");
    let fixture = Fixture::new();
    if !measure {
        rounds(&fixture, 2, || {});
        println!("ratio: fixture checked");
        return;
    }
    // Warm-up: compile caches, allocator arenas, the recycled pack buffers.
    rounds(&fixture, 4, || {});
    let warm = rounds(&fixture, WARM_ROUNDS, || {});
    let mut cold_caches = ColdCaches::new();
    let cold = rounds(&fixture, COLD_ROUNDS, || cold_caches.empty());

    println!("10,000 snapshots through ownership + kill, default policies, paired rounds");
    println!(
        "| caches | rounds | Wasm ms (median) | native ms (median) | ratio, median (p10–p90) |"
    );
    println!("|---|---|---|---|---|");
    row("warm", &warm);
    row("cold", &cold);
}
