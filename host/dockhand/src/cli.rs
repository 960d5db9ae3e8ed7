//! The `dockhand` operator CLI's subcommands, as library code so tests can drive them.

pub mod admin;
pub mod config_validate;
pub mod fingerprint;
pub mod policy;
pub mod reconcile;
pub mod record;

use std::error::Error;
use std::process::ExitCode;

/// Exit status of a command that could not do its work (bad input, I/O, Docker unreachable).
pub const EXIT_ERROR: u8 = 2;

/// The CLI's error printer: `<prefix>: <error and every cause>` on stderr; returns `status`.
pub fn fail(prefix: &str, err: &dyn Error, status: u8) -> ExitCode {
    eprintln!("{prefix}: {}", nomad_plugin::error_chain(err));
    ExitCode::from(status)
}
