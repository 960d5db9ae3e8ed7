//! Builds the Python example policies with `componentize-py`, once per
//! sources' hash (kept under `target/python-policies/`). Shared by the tests
//! and the `python` benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pinned `componentize-py` version, from the file `run-all.sh` and the
/// docs install from.
fn pinned_version() -> String {
    let path = repo().join("guest-policies/python/requirements-build.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("componentize-py=="))
        .unwrap_or_else(|| panic!("{} pins no componentize-py version", path.display()))
        .to_owned()
}

fn installed_version() -> Option<String> {
    let out = Command::new("componentize-py")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("componentize-py ")
        .map(str::to_owned)
}

/// `componentize-py` at the pinned version, installed with pip when missing;
/// `Err` says why it is unavailable.
fn ensure_componentize_py() -> Result<(), String> {
    let pin = pinned_version();
    if installed_version().as_deref() == Some(pin.as_str()) {
        return Ok(());
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .arg(format!("componentize-py=={pin}"))
        .status()
        .map_err(|e| format!("running python3 -m pip: {e}"))?;
    match installed_version() {
        Some(v) if v == pin => Ok(()),
        found => Err(format!(
            "componentize-py {pin} is not on PATH (pip exited with {status}, found {found:?})"
        )),
    }
}

/// Builds `guest-policies/python/<app>` for `world` once per sources' hash;
/// the result is kept under `target/python-policies/`.
pub fn build_python_policy(app: &str, world: &str) -> Result<Vec<u8>, String> {
    use sha2::{Digest, Sha256};
    let root = repo();
    let python = root.join("guest-policies/python");
    let app_dir = python.join(app);
    let mut hasher = Sha256::new();
    hasher.update(pinned_version());
    hasher.update(world);
    let mut sources = vec![
        root.join("wit/policy.wit"),
        python.join("dockhand_policy.py"),
    ];
    let mut app_files: Vec<PathBuf> = std::fs::read_dir(&app_dir)
        .map_err(|e| format!("reading {}: {e}", app_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    app_files.sort();
    sources.extend(app_files);
    for path in &sources {
        hasher.update(
            path.strip_prefix(&root)
                .unwrap_or(path)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let key = hex::encode(&hasher.finalize()[..12]);
    let out_dir = root.join("target/python-policies");
    let out = out_dir.join(format!("{app}-{key}.wasm"));
    if let Ok(bytes) = std::fs::read(&out) {
        return Ok(bytes);
    }
    ensure_componentize_py()?;
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .suffix(".wasm")
        .tempfile_in(&out_dir)
        .map_err(|e| e.to_string())?;
    let output = Command::new("componentize-py")
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", world, "componentize", "--stub-wasi", "-p"])
        .arg(&python)
        .arg("-p")
        .arg(&app_dir)
        .args(["app", "-o"])
        .arg(tmp.path())
        .current_dir(&out_dir)
        .output()
        .map_err(|e| format!("running componentize-py: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "componentize-py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    tmp.persist(&out).map_err(|e| e.error.to_string())?;
    std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// The Python default ownership component, built once per test run. `None`
/// (the test skips) when componentize-py cannot be had, except under
/// `DOCKHAND_REQUIRE_DOCKER=1` (CI), where that fails the test.
pub fn python_default_ownership() -> Option<&'static [u8]> {
    static BUILT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    match BUILT.get_or_init(|| build_python_policy("default_ownership", "ownership")) {
        Ok(bytes) => Some(bytes),
        Err(why) if std::env::var("DOCKHAND_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("the Python example policy cannot be built: {why}")
        }
        Err(why) => {
            eprintln!("skipping: the Python example policy cannot be built: {why}");
            None
        }
    }
}
