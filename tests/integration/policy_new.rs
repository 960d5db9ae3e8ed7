//! `dockhand policy new` → `build` → `check` → `test`, run as an author would: the real
//! `dockhand` binary, real cargo and componentize-py builds, the project as written.
//!
//! Rust projects compile the SDK for wasm32 from scratch; every test here shares one cargo
//! target directory (`<target>/policy-projects`) so that happens once. Python projects need
//! `componentize-py` on `PATH` and the helper module (`guest-policies/python`, or the
//! directory named by `DOCKHAND_TEST_PY_SDK`); without them the Python tests say so and pass.
//! The Python ownership policy is then uploaded to, dry-run on and activated in a running
//! plugin.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plugin_reconciler::{Private, admin_client, started};
use crate::support::{TEST_CASE_LABEL, docker_or_skip};

/// Exit code, stdout and stderr of `dockhand args`, with `envs` set.
fn dockhand(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the dockhand binary");
    (
        out.status.code().expect("dockhand exited by signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `<target>/policy-projects`: the cargo target directory shared by the Rust projects.
fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_dockhand"))
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in <target>/<profile>/")
        .join("policy-projects")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `new` → `build` → `check` → `test` for one project; returns its directory (inside `tmp`).
fn new_build_check_test(
    tmp: &Path,
    name: &str,
    kind: &str,
    lang: &str,
    sdk: Option<&Path>,
) -> PathBuf {
    let dir = tmp.join(name);
    let target = shared_target();
    let env: &[(&str, &Path)] = &[("CARGO_TARGET_DIR", &target)];
    let mut args = vec![
        "policy", "new", name, "--kind", kind, "--lang", lang, "--path",
    ];
    args.push(s(&dir));
    if let Some(sdk) = sdk {
        args.extend(["--sdk", s(sdk)]);
    }
    let (code, out, err) = dockhand(&args, env);
    assert_eq!(code, 0, "new: {out}{err}");
    assert!(out.contains("dockhand policy build"), "{out}");
    assert!(dir.join("README.md").is_file() && dir.join("fixtures/example.json").is_file());

    let (code, out, err) = dockhand(&["policy", "build", s(&dir)], env);
    assert_eq!(code, 0, "build: {out}{err}");
    assert!(out.contains("result:    OK"), "{out}");
    assert!(out.contains(&format!("kind:      {kind}")), "{out}");
    assert!(out.contains(&format!("name:      {name}")), "{out}");
    assert!(dir.join(format!("{name}.wasm")).is_file());

    let (code, out, err) = dockhand(&["policy", "check", s(&dir)], env);
    assert_eq!(code, 0, "check: {out}{err}");
    assert!(out.contains(&format!("kind:      {kind}")), "{out}");

    let (code, out, err) = dockhand(&["policy", "test", s(&dir)], env);
    assert_eq!(code, 0, "test: {out}{err}");
    assert!(out.contains("example.json"), "{out}");

    // The fixture's expectations are really judged: turn one around and the run fails.
    let fixture = dir.join("fixtures/example.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let wrong = match kind {
        "ownership" => text.replace(
            r#""c-plain": { "ownership": "not-nomad" }"#,
            r#""c-plain": { "ownership": "unknown" }"#,
        ),
        _ => text.replace(
            r#""c-plain": { "action": "ignore" }"#,
            r#""c-plain": { "action": "remove" }"#,
        ),
    };
    assert_ne!(wrong, text, "the fixture template changed");
    std::fs::write(&fixture, &wrong).unwrap();
    let (code, out, err) = dockhand(&["policy", "test", s(&dir)], env);
    assert_eq!(code, 1, "a wrong expectation must fail: {out}{err}");
    std::fs::write(&fixture, &text).unwrap();
    dir
}

/// The largest initial memory, in 64 KiB pages, of the core modules inside component `wasm`.
fn largest_initial_memory_pages(wasm: &Path) -> u64 {
    let bytes = std::fs::read(wasm).expect("the built component");
    let mut largest = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::MemorySection(memories) = payload.expect("a valid component") {
            for memory in memories {
                largest = largest.max(memory.expect("a memory type").initial);
            }
        }
    }
    largest
}

#[test]
fn new_rust_ownership_policy_builds_and_passes_its_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_build_check_test(tmp.path(), "my-owner", "ownership", "rust", None);
    // Built with the guests' 256 KiB shadow stack, as the bundled policies are, from any
    // directory: rustc's 1 MiB stack alone would need 16 pages.
    let pages = largest_initial_memory_pages(&dir.join("my-owner.wasm"));
    assert!(
        (1..16).contains(&pages),
        "initial memory of {pages} pages: the 256 KiB stack was not applied"
    );
    let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(source.contains("dockhand_policy_sdk::export_ownership!(Policy);"));
    assert!(
        !dir.join("wit").exists(),
        "a Rust project needs no copy of the WIT"
    );
}

#[test]
fn new_rust_kill_policy_builds_and_passes_its_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_build_check_test(tmp.path(), "my-killer", "kill", "rust", None);
    let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(source.contains("Action::stop(Signal::Term, GRACE)"));
}

#[test]
fn new_refuses_bad_names_existing_directories_and_missing_sdks() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = dockhand(&["policy", "new", "My_Policy", "--kind", "kill"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid policy name \"My_Policy\""), "{err}");

    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), "mine").unwrap();
    let (code, _, err) = dockhand(
        &["policy", "new", "p", "--kind", "kill", "--path", s(&taken)],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already exists and is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(taken.join("keep.txt")).unwrap(),
        "mine"
    );

    let (code, _, err) = dockhand(
        &[
            "policy",
            "new",
            "p",
            "--kind",
            "ownership",
            "--path",
            s(&tmp.path().join("p")),
            "--sdk",
            s(tmp.path()),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("the dockhand policy SDK"), "{err}");
    assert!(err.contains("check --sdk"), "{err}");
    assert!(!tmp.path().join("p").exists(), "nothing written on error");
}

#[test]
fn build_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = dockhand(&["policy", "build", s(tmp.path())], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("dockhand-policy.json"), "{err}");
    assert!(err.contains("dockhand policy new"), "{err}");

    // A Python project without componentize-py on PATH: the install command is named.
    let dir = tmp.path().join("py");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("dockhand-policy.json"),
        r#"{"name":"py","kind":"kill","lang":"python","module":"app"}"#,
    )
    .unwrap();
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = dockhand(&["policy", "build", s(&dir)], &[("PATH", &empty)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot run `componentize-py`")
            && err.contains("pip install componentize-py==0.25.1"),
        "{err}"
    );

    let (code, _, err) = dockhand(&["policy", "test", s(&dir)], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("py.wasm: cannot read"), "{err}");
}

/// The Python helper directory and componentize-py, or why the Python tests cannot run.
fn python_toolchain() -> Result<PathBuf, String> {
    let sdk = std::env::var_os("DOCKHAND_TEST_PY_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guest-policies/python")
        });
    if !sdk.join("dockhand_policy.py").is_file() {
        return Err(format!("no dockhand_policy.py in {}", sdk.display()));
    }
    match Command::new("componentize-py").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(sdk),
        Ok(out) => Err(format!(
            "componentize-py --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("componentize-py not found: {e}")),
    }
}

/// The Python toolchain, or a loud skip; under `DOCKHAND_REQUIRE_DOCKER=1` (CI, whose test
/// command installs componentize-py) a missing toolchain fails the test instead.
fn python_toolchain_or_skip() -> Option<PathBuf> {
    match python_toolchain() {
        Ok(sdk) => Some(sdk),
        Err(why) if std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1") => {
            panic!("the Python toolchain is required (DOCKHAND_REQUIRE_DOCKER=1): {why}")
        }
        Err(why) => {
            eprintln!("!!!!!!!! skipped: {why} !!!!!!!!");
            None
        }
    }
}

#[test]
fn new_python_kill_policy_builds_and_passes_its_fixture() {
    let Some(sdk) = python_toolchain_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_build_check_test(tmp.path(), "py-killer", "kill", "python", Some(&sdk));
    assert!(dir.join("wit/policy.wit").is_file() && dir.join("dockhand_policy.py").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_python_ownership_policy_builds_passes_and_goes_live_on_a_plugin() {
    let case = "policy_new_python_live";
    let Some(sdk) = python_toolchain_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tokio::task::spawn_blocking({
        let root = tmp.path().to_owned();
        move || new_build_check_test(&root, "py-owner", "ownership", "python", Some(&sdk))
    })
    .await
    .unwrap();
    let wasm = dir.join("py-owner.wasm");
    if docker_or_skip(case).await.is_none() {
        return;
    }

    let private = Private::new();
    let body = private.config(
        &format!(" label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        "",
    );
    let plugin = started(&body).await;
    let _admin = admin_client(&plugin, &private.socket()).await;
    let socket = private.socket();
    let cli = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(&args)
            .output()
            .await
            .expect("running dockhand");
        (
            out.status.code().expect("exited by signal"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let sock = s(&socket).to_owned();

    let (code, out, err) = cli(vec![
        "policy".into(),
        "upload".into(),
        s(&wasm).into(),
        "--kind".into(),
        "ownership".into(),
        "--socket".into(),
        sock.clone(),
    ])
    .await;
    assert_eq!(code, 0, "upload: {out}{err}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("uploaded "))
        .unwrap_or_else(|| panic!("no digest: {out}"))
        .to_owned();
    assert!(out.contains("describe(): py-owner 0.1.0"), "{out}");

    let (code, out, err) = cli(vec![
        "policy".into(),
        "dry-run".into(),
        "--kind".into(),
        "ownership".into(),
        "--digest".into(),
        digest.clone(),
        "--socket".into(),
        sock.clone(),
    ])
    .await;
    assert_eq!(code, 0, "dry-run: {out}{err}");
    assert!(out.starts_with("dry run (nothing is done)"), "{out}");
    assert!(out.contains(&format!("ownership {digest}")), "{out}");

    let (code, out, err) = cli(vec![
        "policy".into(),
        "activate".into(),
        digest.clone(),
        "--socket".into(),
        sock.clone(),
    ])
    .await;
    assert_eq!(code, 0, "activate: {out}{err}");
    assert!(out.starts_with("activated"), "{out}");
    assert!(out.contains("py-owner"), "{out}");

    let (code, out, err) = cli(vec!["status".into(), "--socket".into(), sock]).await;
    assert_eq!(code, 0, "status: {out}{err}");
    assert!(
        out.contains(&digest[..12]) || out.contains(&digest),
        "{out}"
    );
}
