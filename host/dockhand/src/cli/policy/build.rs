//! `dockhand policy build [DIR] [-o FILE]`: builds a policy project (see
//! [`super::project`]) into a component, then checks it as `dockhand policy
//! check` does.
//!
//! * Rust: `cargo build --release --target wasm32-unknown-unknown` (cargo's
//!   usual target directory, or `CARGO_TARGET_DIR`) with the guests' 256 KiB
//!   shadow stack ([`GUEST_STACK_FLAGS`]), then the cdylib is turned into a
//!   component with `wit-component`.
//! * Python: `componentize-py -d wit -w <kind> componentize --stub-wasi
//!   <module> -o FILE`, with componentize-py found on `PATH`.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orphan_policy::PolicyKind;

use super::check::{self, CheckArgs, KindArg};
use super::project::{Lang, ManifestKind, Project, ProjectError};
use crate::cli::{CommandResult, Failure, Status};

/// The componentize-py release the Python support is tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The rustflags every Rust policy is built with, as the bundled ones are (see
/// `guest-policies/.cargo/config.toml`): a 256 KiB shadow stack instead of rustc's 1 MiB keeps
/// the initial memory, which the host resets for every call, small. Given on cargo's command
/// line because cargo reads `.cargo/config.toml` only from the directory it runs in.
pub const GUEST_STACK_FLAGS: &str =
    r#"target.wasm32-unknown-unknown.rustflags = ["-C", "link-arg=-zstack-size=262144"]"#;

/// Arguments of `dockhand policy build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The project directory (default: the current one).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the component (default: DIR/NAME.wasm).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Why no component was produced.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// A build tool could not be started.
    #[error("cannot run `{tool}`{hint}")]
    Spawn {
        tool: String,
        hint: String,
        #[source]
        source: io::Error,
    },
    /// The build tool failed.
    #[error("`{command}` failed ({status}){detail}")]
    Tool {
        command: String,
        status: String,
        detail: String,
    },
    /// cargo reported no wasm artifact.
    #[error("cargo built no .wasm for the project's cdylib (is `crate-type = [\"cdylib\"]` set?)")]
    NoArtifact,
    /// The core module could not be made a component.
    #[error("turning {} into a component: {message}", .path.display())]
    Componentize { path: PathBuf, message: String },
    #[error("{}: {what}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BuildArgs {
    /// Builds, checks, prints the check report; exit 0, or 1 on any failure.
    pub fn execute(&self) -> CommandResult {
        let stdout = io::stdout();
        match run(self, &mut stdout.lock()) {
            Ok(Ok(())) => Ok(Status::Success),
            Ok(Err(e)) => Err(Failure::new(
                "dockhand policy build: built, but REFUSED",
                e,
                Status::Failed,
            )),
            Err(e) => Err(Failure::new(
                format!("dockhand policy build: {}", self.dir.display()),
                e,
                Status::Failed,
            )),
        }
    }
}

/// Builds the component and checks it; the outer error is a failed build,
/// the inner one a built component the engine refuses.
pub fn run(
    args: &BuildArgs,
    out: &mut dyn Write,
) -> Result<Result<(), super::PolicyCliError>, BuildError> {
    let project = Project::open(&args.dir)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| project.default_output());
    match project.manifest.lang {
        Lang::Rust => build_rust(&project, &output)?,
        Lang::Python => build_python(&project, &output)?,
    }
    let kind = match project.manifest.kind {
        ManifestKind::Ownership => KindArg::Ownership,
        ManifestKind::Kill => KindArg::Kill,
    };
    let _ = writeln!(out, "built:     {}", output.display());
    Ok(check::run(
        &CheckArgs {
            file: output,
            kind: Some(kind),
        },
        out,
    ))
}

fn build_rust(project: &Project, output: &Path) -> Result<(), BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = project.dir.join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--config", GUEST_STACK_FLAGS])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let command = format!(
        "cargo build --release --target {WASM_TARGET} --manifest-path {}",
        manifest.display()
    );
    let mut child = cmd.spawn().map_err(|source| BuildError::Spawn {
        tool: cargo.to_string_lossy().into_owned(),
        hint: " (is Rust installed? see https://rustup.rs)".into(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut wasm: Option<PathBuf> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|source| BuildError::Io {
            what: "cannot read cargo's output",
            path: manifest.clone(),
            source,
        })?;
        if let Some(path) = cdylib_wasm(&line) {
            wasm = Some(path);
        }
    }
    let status = child.wait().map_err(|source| BuildError::Io {
        what: "cannot wait for cargo",
        path: manifest.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Tool {
            command,
            status: status.to_string(),
            detail: format!(
                " (its errors are above; if the {WASM_TARGET} target is missing: \
                 `rustup target add {WASM_TARGET}`)"
            ),
        });
    }
    let wasm = wasm.ok_or(BuildError::NoArtifact)?;
    let core = std::fs::read(&wasm).map_err(|source| BuildError::Io {
        what: "cannot read",
        path: wasm.clone(),
        source,
    })?;
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| BuildError::Componentize {
            path: wasm.clone(),
            message: format!("{e:#}"),
        })?;
    write_output(output, &component)
}

/// The `.wasm` file of a `compiler-artifact` message for a cdylib.
fn cdylib_wasm(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let kinds = msg.get("target")?.get("kind")?.as_array()?;
    if !kinds.iter().any(|k| k.as_str() == Some("cdylib")) {
        return None;
    }
    msg.get("filenames")?
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

fn build_python(project: &Project, output: &Path) -> Result<(), BuildError> {
    let module = project.manifest.module.as_deref().unwrap_or("app");
    let world = match PolicyKind::from(project.manifest.kind) {
        PolicyKind::Ownership => "ownership",
        PolicyKind::Kill => "kill",
    };
    // componentize-py runs in the project directory; the output path must
    // survive that.
    let output_abs = if output.is_absolute() {
        output.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| BuildError::Io {
                what: "cannot find the current directory",
                path: output.to_owned(),
                source,
            })?
            .join(output)
    };
    if let Some(parent) = output_abs.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
            what: "cannot create the directory",
            path: parent.to_owned(),
            source,
        })?;
    }
    let args = [
        "-d",
        "wit",
        "-w",
        world,
        "componentize",
        "--stub-wasi",
        module,
        "-o",
    ];
    let command = format!(
        "componentize-py {} {}",
        args.join(" "),
        output_abs.display()
    );
    let result = Command::new("componentize-py")
        .args(args)
        .arg(&output_abs)
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Spawn {
            tool: "componentize-py".into(),
            hint: format!(
                " (install it with `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`)"
            ),
            source,
        })?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let stdout = String::from_utf8_lossy(&result.stdout);
        return Err(BuildError::Tool {
            command,
            status: result.status.to_string(),
            detail: format!(":\n{}{}", stdout.trim_end(), stderr.trim_end()),
        });
    }
    Ok(())
}

fn write_output(output: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
            what: "cannot create the directory",
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(output, bytes).map_err(|source| BuildError::Io {
        what: "cannot write",
        path: output.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cdylib_among_cargo_messages() {
        let cdylib = r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-unknown-unknown/release/p.wasm"]}"#;
        let rlib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libsdk.rlib"]}"#;
        assert_eq!(
            cdylib_wasm(cdylib),
            Some(PathBuf::from("/t/wasm32-unknown-unknown/release/p.wasm"))
        );
        assert_eq!(cdylib_wasm(rlib), None);
        assert_eq!(
            cdylib_wasm(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(cdylib_wasm("not json"), None);
    }
}
