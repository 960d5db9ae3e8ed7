//! The Nomad plugin binary: `nomad-driver-dockhand [--driver-name NAME]`.
//!
//! Started by a Nomad agent from its `plugin_dir`; run by hand it explains itself and exits
//! with status 1. Everything else (handshake, logging, signals) is `nomad_plugin::serve`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dockhand::plugin::{DEFAULT_DRIVER_NAME, Dockhand, DockhandOptions};
use nomad_plugin::{ServeError, ServeOptions};

/// Environment variable with `tracing` filter directives for the plugin's logs.
const LOG_FILTER_ENV: &str = "DOCKHAND_LOG";

#[derive(Debug, Parser)]
#[command(
    version,
    about = "dockhand: a Nomad task driver for Docker (started by the Nomad agent)"
)]
struct Args {
    /// Driver name reported to Nomad (jobs use `driver = "<name>"`), e.g. `docker` to stand
    /// in for the built-in driver.
    #[arg(long, default_value = DEFAULT_DRIVER_NAME)]
    driver_name: String,
}

/// How long blocking work still in flight at exit (a policy compiling, a sweep's policy call)
/// may delay the process: Nomad kills a plugin 2 s after asking it to shut down.
const EXIT_GRACE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(args));
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

async fn run(args: Args) -> ExitCode {
    let driver = Dockhand::new(DockhandOptions::from_env(args.driver_name));
    let serve_options = ServeOptions {
        log_filter_env: LOG_FILTER_ENV.to_owned(),
        ..ServeOptions::default()
    };
    match nomad_plugin::serve(driver, serve_options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(ServeError::Handshake(err)) => {
            // Plain text: this is for a human who started the binary by hand.
            let _ = writeln!(std::io::stderr(), "{err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            tracing::error!(error = &err as &dyn std::error::Error, "plugin failed");
            ExitCode::FAILURE
        }
    }
}
