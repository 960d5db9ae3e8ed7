//! The `dockhand` operator CLI's subcommands, as library code so tests can drive them.
//!
//! Every command returns a [`CommandResult`]: the [`Status`] it ended with, or the [`Failure`]
//! that stopped it, which carries its own status. [`exit`] is the CLI's one error printer and
//! the one place that turns either into the process's exit status.

pub mod admin;
pub mod config_validate;
pub mod fingerprint;
pub mod policy;
pub mod reconcile;
pub mod record;

use std::error::Error;
use std::process::ExitCode;

/// How a command ended. [`Status::code`] is the only mapping to exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit status 0: the command did its work and found nothing wrong.
    Success,
    /// Exit status 1: the command did its work and the answer is no (invalid configuration, a
    /// refused policy, a failed expectation, an unhealthy Docker, a sweep with failures), or an
    /// admin command, `policy new` or `policy build` failed.
    Failed,
    /// Exit status 2: the command could not do its work (bad input, I/O, Docker unreachable),
    /// as for a command line clap refuses.
    Unusable,
}

impl Status {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failed => 1,
            Status::Unusable => 2,
        }
    }
}

/// Why a command stopped: printed by [`exit`] as `<context>: <error and every cause>`, then
/// the process exits with `status`.
#[derive(Debug)]
pub struct Failure {
    context: String,
    error: Box<dyn Error>,
    status: Status,
}

impl Failure {
    /// A failure of the command named (with its input) by `context`.
    pub fn new(
        context: impl Into<String>,
        error: impl Into<Box<dyn Error>>,
        status: Status,
    ) -> Self {
        Failure {
            context: context.into(),
            error: error.into(),
            status,
        }
    }

    /// A command that could not do its work ([`Status::Unusable`]).
    pub fn unusable(context: impl Into<String>, error: impl Into<Box<dyn Error>>) -> Self {
        Self::new(context, error, Status::Unusable)
    }

    /// The line [`exit`] prints.
    pub fn message(&self) -> String {
        format!(
            "{}: {}",
            self.context,
            nomad_plugin::error_chain(&*self.error)
        )
    }

    /// The status the process exits with.
    pub fn status(&self) -> Status {
        self.status
    }
}

/// What every command returns.
pub type CommandResult = Result<Status, Failure>;

/// The CLI's error printer and exit-status picker: a failure goes to stderr as one line with
/// its cause chain; the status becomes the process's exit status.
pub fn exit(result: CommandResult) -> ExitCode {
    let status = match result {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("{}", failure.message());
            failure.status
        }
    };
    ExitCode::from(status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_prints_its_context_and_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read {0}")]
        struct Read(&'static str, #[source] std::io::Error);
        let failure = Failure::unusable(
            "dockhand record",
            Read("f.json", std::io::Error::other("disk on fire")),
        );
        assert_eq!(
            failure.message(),
            "dockhand record: cannot read f.json: disk on fire"
        );
        assert_eq!(failure.status().code(), 2);
    }

    #[test]
    fn the_documented_exit_statuses() {
        assert_eq!(Status::Success.code(), 0);
        assert_eq!(Status::Failed.code(), 1);
        assert_eq!(Status::Unusable.code(), 2);
    }
}
