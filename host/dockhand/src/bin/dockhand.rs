//! `dockhand`: the operator CLI.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dockhand::cli::admin::{
    ActivateArgs, DryRunArgs, ListArgs, RollbackArgs, StatusArgs, UploadArgs,
};
use dockhand::cli::policy::{build::BuildArgs, check::CheckArgs, new::NewArgs, test::TestArgs};
use dockhand::cli::{
    CommandResult, Failure, config_validate::ValidateArgs, fingerprint::FingerprintArgs,
    reconcile::ReconcileArgs, record::RecordArgs,
};

/// Operate dockhand: check configuration, inspect Docker, manage orphan policies.
#[derive(Debug, Parser)]
#[command(name = "dockhand", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show what the driver reports to Nomad about the local Docker daemon.
    Fingerprint(FingerprintArgs),
    /// One sweep of the local Docker's orphaned containers: by the running plugin when one
    /// answers on the admin socket, else a standalone dry run.
    Reconcile(ReconcileArgs),
    /// Orphan-policy tools: offline checks, and management of a running plugin's policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show a running plugin's reconciler counters, node identity and active policies (admin
    /// socket).
    Status(StatusArgs),
    /// Save the live Docker snapshot as a fixture for `dockhand policy test`.
    Record(RecordArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Start a policy project (Rust or Python) that builds and passes `policy test` as written.
    New(NewArgs),
    /// Build a policy project into a component and check it.
    Build(BuildArgs),
    /// Load a policy component as the plugin would and show its identity, or why it is refused.
    Check(CheckArgs),
    /// Run a policy over JSON fixtures and compare its answers with their expectations.
    Test(TestArgs),
    /// Upload a policy component to the running plugin (validated before it is stored).
    Upload(UploadArgs),
    /// List the policies stored by the running plugin.
    List(ListArgs),
    /// Put a stored policy in force from the next sweep.
    Activate(ActivateArgs),
    /// Return a policy kind to its previous revision.
    Rollback(RollbackArgs),
    /// Show what the running plugin's policies would do now, without doing it.
    DryRun(DryRunArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check Nomad agent configs and jobspecs offline, as the plugin would at run time.
    Validate(ValidateArgs),
}

fn main() -> ExitCode {
    dockhand::cli::exit(run(Cli::parse()))
}

fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Validate(args),
        } => args.execute(),
        Command::Fingerprint(args) => runtime()?.block_on(args.execute()),
        Command::Reconcile(args) => runtime()?.block_on(args.execute()),
        Command::Policy {
            command: PolicyCommand::New(args),
        } => args.execute(),
        Command::Policy {
            command: PolicyCommand::Build(args),
        } => args.execute(),
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => args.execute(),
        Command::Policy {
            command: PolicyCommand::Test(args),
        } => args.execute(),
        Command::Policy {
            command: PolicyCommand::Upload(args),
        } => runtime()?.block_on(args.execute()),
        Command::Policy {
            command: PolicyCommand::List(args),
        } => runtime()?.block_on(args.execute()),
        Command::Policy {
            command: PolicyCommand::Activate(args),
        } => runtime()?.block_on(args.execute()),
        Command::Policy {
            command: PolicyCommand::Rollback(args),
        } => runtime()?.block_on(args.execute()),
        Command::Policy {
            command: PolicyCommand::DryRun(args),
        } => runtime()?.block_on(args.execute()),
        Command::Status(args) => runtime()?.block_on(args.execute()),
        Command::Record(args) => runtime()?.block_on(args.execute()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::unusable("dockhand: cannot start the async runtime", e))
}
