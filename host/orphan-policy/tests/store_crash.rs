//! Crash safety of the policy store under SIGKILL.
//!
//! The test binary re-executes itself as a writer child (selected by
//! [`ROLE_ENV`]) that uploads and activates new revisions in a loop and
//! reports `begin`/`done` for each on stdout. The parent SIGKILLs it at
//! random moments, reopens the store and checks that each kind's active
//! pointer names a complete blob whose sha256 verifies, and that it is the
//! last revision the child finished activating or the one it was activating
//! when it died, never anything else. Set `STORE_CRASH_SEED` to replay a run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

use orphan_policy::PolicyKind;
use orphan_policy::store::{PolicyMeta, PolicyMode, PolicyStore, sha256_hex};

/// Selects the child role (`small` or `large`); unset in the parent.
const ROLE_ENV: &str = "STORE_CRASH_ROLE";
/// The store directory the child writes to.
const DIR_ENV: &str = "STORE_CRASH_DIR";
/// Optional fixed seed for the kill delays.
const SEED_ENV: &str = "STORE_CRASH_SEED";
/// Prefix of the child's protocol lines (libtest prints its own lines too).
const EVENT: &str = "STORE-CRASH-EVENT ";
/// Name of the test function that becomes the child.
const CHILD_TEST: &str = "child_writer_role";

const KEEP_REVISIONS: usize = 2;
const SMALL_BLOB: usize = 4 * 1024;
const LARGE_BLOB: usize = 8 * 1024 * 1024;
/// A child never runs longer than this, even if the parent is gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// Longest wait for any single child event before the test fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

const KINDS: [PolicyKind; 2] = [PolicyKind::Ownership, PolicyKind::Kill];

/// Serialises the crash tests. A child forked by one test inherits, until it
/// execs, every descriptor of this process, including the other test's store
/// lock, which would then look held for a moment.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serialise() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Small deterministic generator (no dependency needed for test noise).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

fn nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Unique, incompressible policy bytes for iteration `i` of child `pid`.
fn make_blob(pid: u32, i: u64, size: usize) -> Vec<u8> {
    let mut rng = XorShift((u64::from(pid) << 32) ^ i ^ 0x9e37_79b9_7f4a_7c15);
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// Entry point of the child; a no-op when run as an ordinary test.
#[test]
fn child_writer_role() {
    let Ok(role) = env::var(ROLE_ENV) else {
        return;
    };
    let dir = PathBuf::from(env::var(DIR_ENV).expect("child needs STORE_CRASH_DIR"));
    let size = if role == "large" {
        LARGE_BLOB
    } else {
        SMALL_BLOB
    };
    let store = PolicyStore::open(&dir, KEEP_REVISIONS).expect("child opens the store");
    let mut out = std::io::stdout().lock();
    let mut emit = |line: String| {
        writeln!(out, "{EVENT}{line}").expect("write event");
        out.flush().expect("flush event");
    };
    emit("ready".to_owned());
    let pid = std::process::id();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        let kind = KINDS[(i % 2) as usize];
        let bytes = make_blob(pid, i, size);
        let digest = sha256_hex(&bytes);
        emit(format!("begin {kind} {digest}"));
        let meta = PolicyMeta {
            name: format!("crash-{role}"),
            version: format!("{pid}.{i}"),
        };
        store
            .put(kind, &bytes, Some(&digest), meta)
            .expect("child put");
        let mode = if i.is_multiple_of(3) {
            PolicyMode::Audit
        } else {
            PolicyMode::Enforce
        };
        store.activate(kind, &digest, mode).expect("child activate");
        emit(format!("done {kind} {digest}"));
        i += 1;
    }
}

/// What the parent learnt from one child before killing it.
#[derive(Debug, Default)]
struct Observed {
    /// Per kind: digest of the last activation the child reported done.
    done: HashMap<PolicyKind, String>,
    /// Per kind: a begun revision without a `done` yet.
    in_flight: HashMap<PolicyKind, String>,
    completed: usize,
}

impl Observed {
    fn record(&mut self, line: &str) {
        let mut parts = line.split(' ');
        let (Some(event), Some(kind), Some(digest)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let kind = match kind {
            "ownership" => PolicyKind::Ownership,
            "kill" => PolicyKind::Kill,
            other => panic!("unknown kind in child event {other:?}"),
        };
        match event {
            "begin" => {
                self.in_flight.insert(kind, digest.to_owned());
            }
            "done" => {
                assert_eq!(self.in_flight.remove(&kind).as_deref(), Some(digest));
                self.done.insert(kind, digest.to_owned());
                self.completed += 1;
            }
            other => panic!("unknown child event {other:?}"),
        }
    }
}

struct Writer {
    child: Child,
    events: Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Writer {
    fn spawn(role: &str, dir: &Path) -> Self {
        let mut child = Command::new(env::current_exe().expect("test binary path"))
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer child");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, events) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed "test name ... " on the same line.
                if let Some(at) = line.find(EVENT)
                    && tx.send(line[at + EVENT.len()..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self {
            child,
            events,
            reader: Some(reader),
        }
    }

    /// Waits for the next event, recording it; `None` once `deadline` passes.
    fn next_until(&mut self, seen: &mut Observed, deadline: Instant) -> Option<String> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(wait) {
            Ok(event) => {
                if event != "ready" {
                    seen.record(&event);
                }
                Some(event)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                panic!("writer child exited early: {:?}", self.child.try_wait())
            }
        }
    }

    fn wait_for(&mut self, seen: &mut Observed, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match self.next_until(seen, deadline) {
                Some(event) if pred(&event) => return,
                Some(_) => {}
                None => panic!("writer child sent no expected event within {EVENT_TIMEOUT:?}"),
            }
        }
    }

    /// Keeps recording events for `delay`, then SIGKILLs the child and
    /// records whatever it wrote before dying.
    fn kill_after(mut self, seen: &mut Observed, delay: Duration) {
        let deadline = Instant::now() + delay;
        while self.next_until(seen, deadline).is_some() {}
        self.child.kill().expect("SIGKILL the writer"); // SIGKILL on Unix
        let status = self.child.wait().expect("reap the writer");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader thread");
        }
        while let Ok(event) = self.events.try_recv() {
            seen.record(&event);
        }
        assert!(
            !status.success(),
            "writer ran to completion instead of being killed: {status:?}"
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // On a failing assertion: never leave a writer running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state before a child runs: the pointers the parent saw.
fn active_digests(store: &PolicyStore) -> HashMap<PolicyKind, String> {
    KINDS
        .iter()
        .filter_map(|&k| Some((k, store.active(k).unwrap()?.digest)))
        .collect()
}

/// Reopens the store after a kill and checks every invariant. Returns how
/// many kinds point at the revision whose activation was cut short (the
/// rename happened, the report did not).
fn check_after_crash(dir: &Path, before: &HashMap<PolicyKind, String>, seen: &Observed) -> usize {
    let mut in_flight_applied = 0;
    let store = PolicyStore::open(dir, KEEP_REVISIONS).expect("reopen after SIGKILL");
    for sub in ["blobs", "active"] {
        for entry in fs::read_dir(dir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                !name.starts_with(".tmp-"),
                "temporary file {name} survived open"
            );
        }
    }
    for kind in KINDS {
        let (record, stored, bytes) = store
            .load_active(kind)
            .expect("active pointer readable and its blob verifies")
            .expect("an active policy survives");
        assert_eq!(sha256_hex(&bytes), record.digest);
        assert_eq!(stored.size, bytes.len() as u64);
        let last_done = seen.done.get(&kind).or_else(|| before.get(&kind));
        let in_flight = seen.in_flight.get(&kind);
        assert!(
            Some(&record.digest) == last_done || Some(&record.digest) == in_flight,
            "{kind} points at {} but the last completed activation was {last_done:?} and the \
             one in flight {in_flight:?}",
            record.digest
        );
        in_flight_applied += usize::from(Some(&record.digest) == in_flight);
        for previous in &record.previous {
            store
                .get(&previous.digest)
                .expect("history entries stay readable");
        }
    }
    for policy in store.list().unwrap() {
        let (_, bytes) = store
            .get(&policy.digest)
            .expect("every listed blob verifies");
        assert_eq!(bytes.len() as u64, policy.size);
    }
    // The store still works after the crash.
    let kind = PolicyKind::Kill;
    let current = store.active(kind).unwrap().unwrap();
    store.activate(kind, &current.digest, current.mode).unwrap();
    in_flight_applied
}

fn seed() -> u64 {
    let seed = env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(nanos)
        | 1;
    eprintln!("store_crash: {SEED_ENV}={seed}");
    seed
}

/// A store with an enforced policy of each kind, so every kill has a
/// previous active policy that must survive.
fn seeded_store() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let store = PolicyStore::open(tmp.path(), KEEP_REVISIONS).unwrap();
    for (n, kind) in KINDS.into_iter().enumerate() {
        let bytes = make_blob(0, n as u64, SMALL_BLOB);
        let meta = PolicyMeta {
            name: "initial".to_owned(),
            version: "0".to_owned(),
        };
        let stored = store.put(kind, &bytes, None, meta).unwrap();
        store
            .activate(kind, &stored.digest, PolicyMode::Enforce)
            .unwrap();
    }
    tmp
}

#[test]
fn sigkill_during_put_and_activate_keeps_a_valid_active_policy() {
    const ITERATIONS: usize = 40;
    let _serial = serialise();
    let tmp = seeded_store();
    let mut rng = XorShift(seed());
    let mut mid_operation = 0;
    let mut completed = 0;
    let mut applied = 0;
    for _ in 0..ITERATIONS {
        let before = {
            let store = PolicyStore::open(tmp.path(), KEEP_REVISIONS).unwrap();
            active_digests(&store)
        };
        let mut seen = Observed::default();
        let mut writer = Writer::spawn("small", tmp.path());
        writer.wait_for(&mut seen, |e| e == "ready");
        let delay = Duration::from_micros(rng.below(120_000));
        writer.kill_after(&mut seen, delay);
        mid_operation += usize::from(!seen.in_flight.is_empty());
        completed += seen.completed;
        applied += check_after_crash(tmp.path(), &before, &seen);
    }
    eprintln!(
        "store_crash small: {ITERATIONS} kills, {mid_operation} inside put/activate, \
         {completed} activations completed, {applied} pointers renamed but unreported"
    );
    assert!(mid_operation > 0, "no kill landed inside an operation");
    assert!(
        completed > 0,
        "no acknowledged activation was checked after a kill"
    );
}

#[test]
fn sigkill_during_a_large_upload_keeps_the_previous_policy() {
    const ITERATIONS: usize = 12;
    let _serial = serialise();
    let tmp = seeded_store();
    let mut rng = XorShift(seed().rotate_left(17));
    // Duration of one put+activate, learnt as the test goes.
    let mut window = Duration::from_millis(300);
    let mut mid_operation = 0;
    let mut kept_previous = 0;
    let mut acknowledged = 0;
    for _ in 0..ITERATIONS {
        let before = {
            let store = PolicyStore::open(tmp.path(), KEEP_REVISIONS).unwrap();
            active_digests(&store)
        };
        let mut seen = Observed::default();
        let mut writer = Writer::spawn("large", tmp.path());
        // Let a random number (0 or 1) of large revisions complete first.
        let skip = rng.below(2);
        writer.wait_for(&mut seen, |e| e == "ready");
        for _ in 0..skip {
            let begun = Instant::now();
            writer.wait_for(&mut seen, |e| e.starts_with("done "));
            window = (window + begun.elapsed()) / 2;
        }
        writer.wait_for(&mut seen, |e| e.starts_with("begin "));
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let delay = Duration::from_micros(rng.below(window_us));
        writer.kill_after(&mut seen, delay);
        let applied = check_after_crash(tmp.path(), &before, &seen);
        mid_operation += usize::from(!seen.in_flight.is_empty());
        kept_previous += usize::from(!seen.in_flight.is_empty() && applied == 0);
        acknowledged += seen.completed;
    }
    eprintln!(
        "store_crash large: {ITERATIONS} kills, {mid_operation} during an 8 MiB upload or its \
         activation, {kept_previous} of them before the pointer moved, {acknowledged} \
         acknowledged activations checked (window {window:?})"
    );
    assert!(kept_previous > 0, "no kill landed inside an upload");
    assert!(
        acknowledged > 0,
        "no acknowledged activation was checked after a kill"
    );
}
