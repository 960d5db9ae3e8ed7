//! Builds the guest policies (`guest-policies/`, its own cargo workspace) for
//! `wasm32-unknown-unknown`, turns each cdylib into a component with
//! `wit-component`, and writes them to `$OUT_DIR/guests/<name>.wasm`.
//!
//! The defaults are embedded in the library with `include_bytes!`; the
//! examples and hostile guests are there for tests and benchmarks.
//!
//! The nested cargo gets its own target directory (`<target>/guest-policies`)
//! so it never contends for the outer build's lock and is shared by every
//! profile (debug, release, clippy, doc) of the host. The environment cargo
//! gives build scripts is scrubbed first: host `RUSTFLAGS`, wrappers
//! (clippy-driver), `CARGO_TARGET_DIR`, the jobserver, profile overrides and
//! so on must not leak into a wasm build.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `(cargo lib name, output name)` of every guest the host uses.
const GUESTS: &[(&str, &str)] = &[
    ("default_ownership", "default-ownership"),
    ("default_kill", "default-kill"),
    ("example_label_allowlist", "example-label-allowlist"),
    ("example_audit_only", "example-audit-only"),
    ("hostile_spin_loop", "hostile-spin-loop"),
    ("hostile_memory_bomb", "hostile-memory-bomb"),
    ("hostile_deep_recursion", "hostile-deep-recursion"),
    ("hostile_panic", "hostile-panic"),
    ("hostile_oversized_output", "hostile-oversized-output"),
    ("hostile_wrong_count", "hostile-wrong-count"),
    ("hostile_bad_verdict", "hostile-bad-verdict"),
    ("hostile_bad_signal", "hostile-bad-signal"),
    ("hostile_log_flood", "hostile-log-flood"),
    ("hostile_wasi_import", "hostile-wasi-import"),
    ("hostile_bad_selection", "hostile-bad-selection"),
    ("hostile_claim_everything", "hostile-claim-everything"),
    ("hostile_remove_everything", "hostile-remove-everything"),
    ("hostile_aliased_answer", "hostile-aliased-answer"),
    ("probe_echo_inputs", "probe-echo-inputs"),
];

/// The core module (not componentized) kept for the "not a component" test.
const CORE_MODULE_SOURCE: &str = "default_ownership";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by exiting non-zero; cargo shows stderr.
        eprintln!("error: building the guest policies failed: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let repo_root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("orphan-policy is expected at <repo>/host/orphan-policy")?
        .to_path_buf();
    let guest_ws = repo_root.join("guest-policies");
    let wit_dir = repo_root.join("wit");

    println!("cargo::rerun-if-changed={}", wit_dir.display());
    for entry in [
        ".cargo",
        "Cargo.toml",
        "Cargo.lock",
        "sdk",
        "default-ownership",
        "default-kill",
        "examples",
        "hostile",
    ] {
        println!("cargo::rerun-if-changed={}", guest_ws.join(entry).display());
    }

    check_wasm_target()?;

    let guest_target = guest_target_dir(&out_dir);
    build_guests(&guest_ws, &guest_target)?;

    let built = guest_target.join(WASM_TARGET).join("release");
    let dest = out_dir.join("guests");
    fs::create_dir_all(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    for (lib, name) in GUESTS {
        let core = read(&built.join(format!("{lib}.wasm")))?;
        let component = wit_component::ComponentEncoder::default()
            .module(&core)
            .and_then(|encoder| encoder.validate(true).encode())
            .map_err(|e| format!("componentizing {lib}.wasm: {e:#}"))?;
        write_if_changed(&dest.join(format!("{name}.wasm")), &component)?;
    }
    let core = read(&built.join(format!("{CORE_MODULE_SOURCE}.wasm")))?;
    write_if_changed(&dest.join("core-module.wasm"), &core)?;
    Ok(())
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// Fails early, with the fix, when the wasm32 standard library is missing.
fn check_wasm_target() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running {} --print sysroot: {e}", rustc.to_string_lossy()))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let std_dir = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET);
    if std_dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the {WASM_TARGET} target is not installed for this toolchain ({sysroot}); \
             run `rustup target add {WASM_TARGET}`"
        ))
    }
}

/// `<workspace target dir>/guest-policies`, found as the ancestor of OUT_DIR
/// that cargo marked with `CACHEDIR.TAG`; `$OUT_DIR/guest-target` otherwise.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(|target| target.join("guest-policies"))
        .unwrap_or_else(|| out_dir.join("guest-target"))
}

/// Variables cargo sets for build scripts, or a user sets for the host, that
/// would change or break the nested wasm build.
fn is_inherited_build_setting(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
        "NUM_JOBS",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_BUILD_",
        "CARGO_PROFILE_",
        "CARGO_TARGET_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PKG_",
        "DEP_",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

fn build_guests(guest_ws: &Path, guest_target: &Path) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(guest_ws)
        .arg("build")
        .arg("--release")
        .arg("--workspace")
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--target-dir")
        .arg(guest_target)
        .arg("--manifest-path")
        .arg(guest_ws.join("Cargo.toml"));
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(is_inherited_build_setting) {
            cmd.env_remove(&key);
        }
    }
    let output = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", cargo.to_string_lossy()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("may not be installed")
        || stderr.contains("can't find crate for `core`")
    {
        format!("\nhint: run `rustup target add {WASM_TARGET}`")
    } else {
        String::new()
    };
    Err(format!(
        "`cargo build --release --target {WASM_TARGET}` in {} failed ({}):\n{stderr}{hint}",
        guest_ws.display(),
        output.status
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Writes `bytes` unless the file already holds them, so that unchanged
/// guests do not force the host to recompile.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
