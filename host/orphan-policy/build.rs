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
    let members = workspace_members(&guest_ws)?;
    for entry in [".cargo", "Cargo.toml", "Cargo.lock"]
        .into_iter()
        .chain(members.iter().map(String::as_str))
    {
        println!("cargo::rerun-if-changed={}", guest_ws.join(entry).display());
    }
    let guests = guests(&guest_ws, &members)?;
    check_every_test_guest_is_tested(&repo_root, &guests)?;

    check_wasm_target()?;

    let guest_target = guest_target_dir(&out_dir);
    build_guests(&guest_ws, &guest_target)?;

    let built = guest_target.join(WASM_TARGET).join("release");
    let dest = out_dir.join("guests");
    fs::create_dir_all(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    write_if_changed(
        &out_dir.join("test_guests.rs"),
        test_guests_source(&guests).as_bytes(),
    )?;
    for (lib, name) in &guests {
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

/// The guests bundled as defaults; every other guest is a test guest.
const DEFAULT_GUESTS: &[&str] = &["default-ownership", "default-kill"];

/// The name `guests::test_guest` gives the plain core module.
const CORE_MODULE_NAME: &str = "core-module";

/// The `members` of the guest workspace's `Cargo.toml`: the one list of guests. Directories
/// that are not members are ignored.
fn workspace_members(guest_ws: &Path) -> Result<Vec<String>, String> {
    let manifest = read_text(&guest_ws.join("Cargo.toml"))?;
    let start = manifest
        .find("members = [")
        .ok_or("guest-policies/Cargo.toml has no `members = [` list")?;
    let rest = &manifest[start + "members = [".len()..];
    let end = rest.find(']').ok_or("unterminated `members` list")?;
    Ok(rest[..end]
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// `(cargo lib name, output name)` of every member that builds a `cdylib` (the SDK does not).
fn guests(guest_ws: &Path, members: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut guests = Vec::new();
    for member in members {
        let path = guest_ws.join(member).join("Cargo.toml");
        let manifest = read_text(&path)?;
        if !manifest.contains("\"cdylib\"") {
            continue;
        }
        let name = manifest
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
            .ok_or_else(|| format!("{}: no package name", path.display()))?;
        guests.push((name.replace('-', "_"), name));
    }
    Ok(guests)
}

/// Rust source of `TEST_GUESTS`, included by `src/guests.rs`.
fn test_guests_source(guests: &[(String, String)]) -> String {
    let mut source = String::from(
        "/// Names accepted by [`test_guest`]: every guest of the guest workspace but the two\n\
         /// defaults, and `core-module` (a plain core module, not a component). Generated by\n\
         /// `build.rs` from the workspace's members.\n\
         pub const TEST_GUESTS: &[&str] = &[\n",
    );
    for name in test_guest_names(guests) {
        source.push_str(&format!("    {name:?},\n"));
    }
    source.push_str("];\n");
    source
}

fn test_guest_names(guests: &[(String, String)]) -> Vec<&str> {
    guests
        .iter()
        .map(|(_, name)| name.as_str())
        .filter(|name| !DEFAULT_GUESTS.contains(name))
        .chain([CORE_MODULE_NAME])
        .collect()
}

/// Where tests name guests: this crate's tests and benches, the driver's sources and benches,
/// and the integration tests.
const TEST_SOURCE_DIRS: &[&str] = &[
    "host/orphan-policy/tests",
    "host/orphan-policy/benches",
    "host/dockhand/src",
    "host/dockhand/benches",
    "tests/integration",
];

/// Fails the build when a test guest is named by no test, or a test names (as a
/// `"example-…"`, `"hostile-…"` or `"probe-…"` string) a guest the workspace does not have.
fn check_every_test_guest_is_tested(
    repo_root: &Path,
    guests: &[(String, String)],
) -> Result<(), String> {
    let mut text = String::new();
    for dir in TEST_SOURCE_DIRS {
        let dir = repo_root.join(dir);
        println!("cargo::rerun-if-changed={}", dir.display());
        collect_rust_sources(&dir, &mut text)?;
    }
    let names = test_guest_names(guests);
    let untested: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| *name != CORE_MODULE_NAME && !text.contains(&format!("\"{name}\"")))
        .collect();
    if !untested.is_empty() {
        return Err(format!(
            "test guests named by no test ({}): {}",
            TEST_SOURCE_DIRS.join(", "),
            untested.join(", ")
        ));
    }
    let mut missing: Vec<&str> = Vec::new();
    for prefix in ["\"example-", "\"hostile-", "\"probe-"] {
        for (at, _) in text.match_indices(prefix) {
            let literal = &text[at + 1..];
            let Some(end) = literal.find('"') else {
                continue;
            };
            let name = &literal[..end];
            let is_name = name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if is_name && !names.contains(&name) && !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "tests name guests that are not members of guest-policies/Cargo.toml: {}",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Appends the text of every `.rs` file under `dir` (recursively) to `out`.
fn collect_rust_sources(dir: &Path, out: &mut String) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_rust_sources(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push_str(&read_text(&path)?);
            out.push('\n');
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}
