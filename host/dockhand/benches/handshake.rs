//! Process start → handshake line latency of the plugin binary.
//!
//! Launches `nomad-driver-dockhand` the way a Nomad agent does (cookie and `PLUGIN_*`
//! environment), measures the time from `spawn` until the handshake line has been read from
//! stdout, then stops the process with SIGTERM. Prints min / median / p90 / max.
//!
//! `cargo bench --workspace --bench handshake` runs 200 launches (build in release for a
//! meaningful figure); without `--bench` (e.g. under `cargo test --all-targets`) it runs 3 as
//! a smoke check.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nomad_plugin::handshake::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};

const FULL_RUNS: usize = 200;
const SMOKE_RUNS: usize = 3;

fn launch_once(tmpdir: &std::path::Path) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nomad-driver-dockhand"))
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .env("PLUGIN_PROTOCOL_VERSIONS", "2")
        .env("TMPDIR", tmpdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the plugin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the handshake line");
    let elapsed = started.elapsed();
    assert!(
        line.starts_with("1|2|unix|"),
        "unexpected handshake {line:?}"
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "plugin exit {status:?}");
    elapsed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { FULL_RUNS } else { SMOKE_RUNS };
    let tmp = tempfile::tempdir().expect("tempdir");
    // One warm-up launch so the page cache holds the binary.
    launch_once(tmp.path());
    let mut samples: Vec<Duration> = (0..runs).map(|_| launch_once(tmp.path())).collect();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("plugin start → handshake line ({runs} launches)");
    println!("{:>10} {:>10} {:>10} {:>10}", "min", "median", "p90", "max");
    println!(
        "{:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms",
        ms(samples[0]),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(samples[samples.len() - 1])
    );
}
