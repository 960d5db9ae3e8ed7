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
//!
//! A second table splits the Wasm sweep's time. Each round also times
//! packing alone: the host building the ownership policy's inputs (the
//! strings it declared it reads, batch by batch), with no policy called. Set
//! against the native sweep, it shows how much of the ratio is spent before
//! the boundary is even crossed: both read the same snapshots, so both pay
//! the same cache misses. The time inside the policy calls is what the calls
//! report themselves; the rest of the sweep (checking answers, building kill
//! batches, tearing instances down) is what remains of the Wasm time.

mod common;

use std::time::{Duration, Instant};

use common::{ColdCaches, Fixture};

const WARM_ROUNDS: usize = 60;
const COLD_ROUNDS: usize = 30;

/// One round's timings.
#[derive(Clone, Copy)]
struct Round {
    wasm: Duration,
    /// The part of `wasm` spent inside the policy calls.
    in_calls: Duration,
    native: Duration,
    /// Packing the ownership inputs, nothing else.
    pack: Duration,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.wasm.as_secs_f64() / self.native.as_secs_f64()
    }

    fn pack_ratio(&self) -> f64 {
        self.pack.as_secs_f64() / self.native.as_secs_f64()
    }

    /// The Wasm time neither in the calls nor in packing their inputs.
    fn rest(&self) -> Duration {
        self.wasm.saturating_sub(self.in_calls + self.pack)
    }
}

#[derive(Clone, Copy)]
enum Sweep {
    Wasm,
    Native,
    Pack,
}

fn rounds(fixture: &Fixture, rounds: usize, mut before_each: impl FnMut()) -> Vec<Round> {
    // Returns the sweep's time and, for the Wasm sweep, the part inside calls.
    let mut time = |sweep: Sweep| {
        before_each();
        let start = Instant::now();
        let (result, in_calls) = match sweep {
            Sweep::Wasm => {
                fixture.wasm_sweep_timed(&fixture.ownership, &fixture.kill, &fixture.all)
            }
            Sweep::Native => (fixture.native_sweep(&fixture.all), Duration::ZERO),
            Sweep::Pack => (
                fixture.pack_sweep(&fixture.ownership, &fixture.all),
                Duration::ZERO,
            ),
        };
        let elapsed = start.elapsed();
        match sweep {
            Sweep::Wasm | Sweep::Native => assert_eq!(result, fixture.expected),
            Sweep::Pack => assert!(result > 0, "packing produced no strings"),
        }
        (elapsed, in_calls)
    };
    (0..rounds)
        .map(|round| {
            // The Wasm and native sweeps run back to back, taking turns
            // going first; packing comes last.
            let ((wasm, in_calls), (native, _)) = if round % 2 == 0 {
                let wasm = time(Sweep::Wasm);
                (wasm, time(Sweep::Native))
            } else {
                let native = time(Sweep::Native);
                (time(Sweep::Wasm), native)
            };
            let round = Round {
                wasm,
                in_calls,
                native,
                pack: time(Sweep::Pack).0,
            };
            assert!(round.in_calls < round.wasm, "calls are part of the sweep");
            round
        })
        .collect()
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (q * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

/// The median of `f` over `rounds`.
fn median(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    quantile(&mut rounds.iter().map(f).collect::<Vec<_>>(), 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio_row(name: &str, rounds: &[Round]) {
    let mut ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} ({:.2}–{:.2}) |",
        rounds.len(),
        median(rounds, |r| ms(r.wasm)),
        median(rounds, |r| ms(r.native)),
        quantile(&mut ratios, 0.5),
        quantile(&mut ratios, 0.1),
        quantile(&mut ratios, 0.9),
    );
}

fn split_row(name: &str, rounds: &[Round]) {
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        median(rounds, |r| ms(r.native)),
        median(rounds, |r| ms(r.pack)),
        median(rounds, Round::pack_ratio),
        median(rounds, |r| ms(r.in_calls)),
        median(rounds, |r| ms(r.rest())),
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
    ratio_row("warm", &warm);
    ratio_row("cold", &cold);
    println!();
    println!("Where the Wasm sweep's time goes, ms (medians of the same rounds)");
    println!(
        "| caches | native sweep | packing the inputs alone | packing/native \
         | inside the policy calls | the rest of the Wasm sweep |"
    );
    println!("|---|---|---|---|---|---|");
    split_row("warm", &warm);
    split_row("cold", &cold);
}
