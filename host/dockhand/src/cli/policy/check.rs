//! `dockhand policy check FILE [--kind ownership|kill]`.

use std::io::{self, Write};
use std::path::PathBuf;

use orphan_policy::{ALLOWED_IMPORTS, LoadedPolicy, PolicyKind};

use super::{OfflineEngine, PolicyCliError, PolicySource};
use crate::cli::{CommandResult, Failure, Status};

/// Policy kind as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Decides whether a container belongs to a Nomad allocation.
    Ownership,
    /// Decides what to do with an orphan.
    Kill,
}

impl From<KindArg> for PolicyKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Ownership => PolicyKind::Ownership,
            KindArg::Kill => PolicyKind::Kill,
        }
    }
}

/// Arguments of `dockhand policy check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The policy component (`.wasm`), `bundled:ownership` / `bundled:kill`, or a project
    /// directory (the component `dockhand policy build` wrote in it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The kind the policy must be; inferred from its exports when absent.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

impl CheckArgs {
    /// Runs the check against stdout/stderr: exit 0 when the policy loads, 1 when it is
    /// refused or unreadable.
    pub fn execute(&self) -> CommandResult {
        let stdout = io::stdout();
        run(self, &mut stdout.lock()).map_err(|e| refused("check", &self.file, e))?;
        Ok(Status::Success)
    }
}

/// `dockhand policy <command>: FILE: REFUSED: <why>`, exit status 1.
pub(super) fn refused(command: &str, file: &std::path::Path, e: PolicyCliError) -> Failure {
    Failure::new(
        format!("dockhand policy {command}: {}: REFUSED", file.display()),
        e,
        Status::Failed,
    )
}

/// Loads the policy and writes its identity to `out`.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<(), PolicyCliError> {
    let source = PolicySource::open(&args.file)?;
    let engine = OfflineEngine::start()?;
    let policy = engine.load(&source, args.kind.map(PolicyKind::from))?;
    // A write failure to stdout is not a verdict on the policy; ignore it
    // like other CLIs do when piped into a closed reader.
    let _ = render(&source, &policy, out);
    Ok(())
}

fn render(source: &PolicySource, policy: &LoadedPolicy, out: &mut dyn Write) -> io::Result<()> {
    let info = policy.info();
    writeln!(out, "policy:    {}", source.label)?;
    writeln!(out, "result:    OK")?;
    writeln!(out, "sha256:    {}", policy.digest_hex())?;
    writeln!(out, "kind:      {}", policy.kind())?;
    writeln!(out, "name:      {}", info.name)?;
    writeln!(out, "version:   {}", info.version)?;
    writeln!(out, "contract:  {}", info.contract_version)?;
    writeln!(out, "reads:     {}", info.reads)?;
    writeln!(out, "size:      {} bytes", source.bytes.len())?;
    writeln!(out, "imports:   OK (only {})", ALLOWED_IMPORTS.join(", "))
}
