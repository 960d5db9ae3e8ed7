//! `dockhand policy check` and `dockhand policy test`, run as the operator
//! would: the real `dockhand` binary on real components and fixture files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orphan_policy::guests;

fn dockhand(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(args)
        .output()
        .expect("running the dockhand binary")
}

fn sample_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/policy")
}

/// Exit code, stdout and stderr of a run.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = dockhand(args);
    (
        out.status.code().expect("dockhand exited by signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing a temp file");
    path.to_str().expect("utf-8 temp path").to_owned()
}

#[test]
fn check_accepts_the_bundled_defaults() {
    for (file, kind, name) in [
        ("bundled:ownership", "ownership", "default-ownership"),
        ("bundled:kill", "kill", "default-kill"),
    ] {
        let (code, out, err) = run(&["policy", "check", file]);
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(out.contains("result:    OK"), "{out}");
        assert!(out.contains(&format!("kind:      {kind}")), "{out}");
        assert!(out.contains(&format!("name:      {name}")), "{out}");
        assert!(out.contains("contract:  0.3.0"), "{out}");
        assert!(out.contains("imports:   OK"), "{out}");
        let reads = out
            .lines()
            .find_map(|l| l.strip_prefix("reads:     "))
            .expect("a reads line");
        match kind {
            "kill" => assert_eq!(reads, "nothing beyond ids, times and state"),
            _ => assert!(reads.contains("env [NOMAD_ALLOC_ID]"), "{reads}"),
        }
        let digest = out
            .lines()
            .find_map(|l| l.strip_prefix("sha256:    "))
            .expect("a sha256 line");
        assert_eq!(digest.len(), 64, "{digest}");
    }
}

#[test]
fn check_infers_the_kind_of_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kill.wasm",
        guests::default_policy(orphan_policy::PolicyKind::Kill),
    );
    let (code, out, err) = run(&["policy", "check", &path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("kind:      kill"), "{out}");
    let (code, out, _) = run(&["policy", "check", &path, "--kind", "kill"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_refuses_garbage_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "garbage.wasm",
        b"#!/bin/sh\necho not a policy\n",
    );
    let (code, out, err) = run(&["policy", "check", &path]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("REFUSED: not WebAssembly"), "{err}");
    assert!(!out.contains("result:    OK"), "{out}");
}

#[test]
fn check_refuses_a_core_module() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = guests::test_guest("core-module").unwrap();
    let path = write(dir.path(), "core.wasm", &bytes);
    let (code, _, err) = run(&["policy", "check", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a component (core module)"), "{err}");
}

#[test]
fn check_names_a_forbidden_wasi_import() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = guests::test_guest("hostile-wasi-import").unwrap();
    let path = write(dir.path(), "wasi.wasm", &bytes);
    let (code, _, err) = run(&["policy", "check", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("forbidden import wasi:filesystem/preopens"),
        "{err}"
    );
}

#[test]
fn check_refuses_the_wrong_kind() {
    let (code, out, err) = run(&["policy", "check", "bundled:kill", "--kind", "ownership"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("wrong kind: not a `ownership` policy"),
        "{err}"
    );
    assert!(err.contains("is it a `kill` policy?"), "{err}");
}

#[test]
fn check_reports_a_missing_file() {
    let (code, _, err) = run(&["policy", "check", "/nonexistent/policy.wasm"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/nonexistent/policy.wasm: cannot read"),
        "{err}"
    );
}

#[test]
fn default_ownership_passes_the_sample_fixtures() {
    let fixtures = sample_fixtures();
    let (code, out, err) = run(&[
        "policy",
        "test",
        "bundled:ownership",
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("FAIL"), "{out}");
    // Every reference case is present and judged.
    for needle in [
        "labelled-alloc.json",
        "unlabelled-alloc-mounts.json",
        "plain-container.json",
        "shared-daemon-other-node.json",
        "nomad-env-only.json",
        "owned(72bfa388-024e-a903-45b8-2bc28b74ed69)",
        "need-inspect",
        "node_id label names another node",
        " 0 failed, 0 without expectation",
    ] {
        assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
    }
}

#[test]
fn default_kill_passes_the_sample_fixtures() {
    let fixtures = sample_fixtures();
    let (code, out, err) = run(&[
        "policy",
        "test",
        "bundled:kill",
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("stop SIGTERM 30000ms +remove"), "{out}");
    assert!(out.contains("ignore [not-nomad]"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "wrong.json",
        br#"{
          "containers": [
            { "id": "c-plain", "names": ["/serene_keller"] },
            { "id": "c-label", "names": ["/x"], "labels": { "com.hashicorp.nomad.alloc_id": "a-1" } }
          ],
          "expect": {
            "c-plain": { "ownership": "owned", "alloc_id": "a-1" },
            "c-label": { "ownership": "owned", "alloc_id": "a-2" }
          }
        }"#,
    );
    let (code, out, err) = run(&[
        "policy",
        "test",
        "bundled:ownership",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let fails: Vec<&str> = out.lines().filter(|l| l.ends_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{out}");
    assert!(
        fails[0].contains("c-plain") && fails[0].contains("not-nomad"),
        "{out}"
    );
    assert!(
        fails[1].contains("owned(a-1)") && fails[1].contains("owned(a-2)"),
        "{out}"
    );
    assert!(out.contains("0 passed, 2 failed"), "{out}");
}

#[test]
fn a_malformed_fixture_exits_2_naming_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.json", br#"{"containers":[{"id":"a"}]}"#);
    write(
        dir.path(),
        "broken.json",
        br#"{"containers":[{"id":"a"},{"id":"b","mounts":[{"destination":7}]}]}"#,
    );
    let (code, out, err) = run(&[
        "policy",
        "test",
        "bundled:ownership",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("broken.json"), "{err}");
    assert!(
        err.contains("`containers[1].mounts[0].destination`"),
        "{err}"
    );
    assert!(!err.contains("good.json"), "{err}");

    write(dir.path(), "broken.json", b"{ not json");
    let (code, _, err) = run(&[
        "policy",
        "test",
        "bundled:ownership",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.json: invalid fixture"), "{err}");
}

#[test]
fn an_empty_fixture_directory_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[
        "policy",
        "test",
        "bundled:ownership",
        "--fixtures",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no *.json fixtures found"), "{err}");
}

#[test]
fn a_failing_policy_call_is_reported_as_fail() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "panic.wasm",
        &guests::test_guest("hostile-panic").unwrap(),
    );
    write(
        dir.path(),
        "one.json",
        br#"{"containers":[{"id":"c1"}],"expect":{"c1":{"ownership":"not-nomad","action":"ignore"}}}"#,
    );
    let (code, out, err) = run(&[
        "policy",
        "test",
        &policy,
        "--fixtures",
        dir.path().join("one.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ERROR") && out.contains("policy call failed"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.ends_with("FAIL")), "{out}");
}

#[tokio::test]
async fn record_saves_the_live_snapshot_and_policy_test_replays_it() {
    use crate::reconcile::fixtures::{Kind, NODE, labelled_orphan, make};
    use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

    let case = "record-replay";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let labelled = labelled_orphan(&docker, &guard, 1, NODE).await;
    let plain = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-plain"),
            env: vec!["GREETING=hello".to_owned()],
            start: true,
            ..Kind::default()
        },
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = dir.path().join("live.json");
    let recorded = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["record", "--node-id", NODE, "--label"])
        .arg(format!("{TEST_CASE_LABEL}={case}"))
        .arg("--output")
        .arg(&fixture)
        .output()
        .expect("run dockhand record");
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).expect("fixture written"))
            .expect("fixture is JSON");
    let containers = json["containers"].as_array().expect("containers");
    let ids: Vec<&str> = containers.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{json}");
    assert!(ids.contains(&labelled.as_str()) && ids.contains(&plain.as_str()));
    assert!(
        json.to_string().contains("GREETING"),
        "env comes from inspect: {json}"
    );
    assert_eq!(json["context"]["node"]["id"], NODE);

    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["policy", "test", "bundled:ownership", "--fixtures"])
        .arg(dir.path())
        .output()
        .expect("run dockhand policy test");
    let table = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "{table}");
    assert!(
        table.contains("owned"),
        "the labelled orphan is owned: {table}"
    );
    assert!(
        table.contains("not-nomad"),
        "the plain container is not: {table}"
    );
}

/// Starts `dockhand` with the arguments after the script and reports its peak resident set
/// size (KiB) on stderr; its own stdout goes through, its stderr is dropped.
const PEAK_RSS_WRAPPER: &str = "import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL)
sys.stderr.write('%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)";

/// Runs `dockhand args`; its exit code, stdout and peak resident set size in KiB.
///
/// A child spawned straight from this test process would report this process's resident
/// pages as its own peak (it shares them until it execs, and Linux keeps that high-water
/// mark), so the run is started from a small `python3` process that reads its children's
/// peak.
fn run_measuring_peak_rss(args: &[&str]) -> (i32, String, i64) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PEAK_RSS_WRAPPER)
        .arg(env!("CARGO_BIN_EXE_dockhand"))
        .args(args)
        .output()
        .expect("running python3 (the peak-RSS wrapper)");
    let reported = String::from_utf8_lossy(&out.stderr);
    let peak_kib = reported
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("the peak-RSS wrapper reported {reported:?}: {e}"));
    let code = out.status.code().expect("dockhand exited normally");
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        peak_kib,
    )
}

/// Peak RSS a `policy test` run may reach on the aliased-answer guest, KiB.
/// Measured: about 28 MiB for the bundled default on the same fixture and
/// 50 MiB with this guest (its 24 MiB region lives in guest memory). Under
/// wasmtime's implicit 128 MiB hostcall fuel the host copied answer strings
/// until 139 MB; copying even two of them (48 MiB each) breaks this bound.
const ALIASED_ANSWER_PEAK_RSS_KIB: i64 = 100 * 1024;

#[test]
fn policy_answer_copy_is_bounded_by_the_hosts_budget() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "aliased.wasm",
        &guests::test_guest("hostile-aliased-answer").unwrap(),
    );
    let containers: Vec<String> = (0..16).map(|i| format!(r#"{{"id":"c{i}"}}"#)).collect();
    write(
        dir.path(),
        "many.json",
        format!(
            r#"{{"containers":[{}],"expect":{{"c0":{{"ownership":"not-nomad","action":"ignore"}}}}}}"#,
            containers.join(",")
        )
        .as_bytes(),
    );
    let fixtures = dir.path().join("many.json");
    let (code, out, peak_kib) = run_measuring_peak_rss(&[
        "policy",
        "test",
        &policy,
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("policy call failed (answer-too-large)"),
        "{out}"
    );
    eprintln!("dockhand policy test peak RSS: {peak_kib} KiB");
    assert!(
        peak_kib < ALIASED_ANSWER_PEAK_RSS_KIB,
        "peak RSS {peak_kib} KiB, over {ALIASED_ANSWER_PEAK_RSS_KIB} KiB"
    );
}
