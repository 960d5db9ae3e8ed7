//! `dockhand fingerprint`: what the driver would report to Nomad about the local Docker.

use std::io::{self, Write};
use std::sync::Arc;

use super::{CommandResult, Failure, Status};
use crate::docker::{BollardDocker, DockerApi, DockerConnection};
use crate::fingerprint::{
    AttrValue, FingerprintOutcome, FingerprintSettings, Fingerprinter, Health, RuntimeCatalog,
};

/// Arguments of `dockhand fingerprint`.
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// Docker endpoint (`unix:///var/run/docker.sock`, `tcp://…`); defaults to `DOCKER_HOST`
    /// or the local socket.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Driver name used in attribute keys (`driver.<name>.…`).
    #[arg(long, default_value = "dockhand", value_name = "NAME")]
    pub driver_name: String,
    /// OCI runtime that provides NVIDIA GPUs.
    #[arg(long, default_value = "nvidia", value_name = "RUNTIME")]
    pub nvidia_runtime: String,
}

impl FingerprintArgs {
    /// Fingerprint once and print the result; exit status 1 unless Docker is healthy.
    pub async fn execute(&self) -> CommandResult {
        let connection = DockerConnection {
            endpoint: self.endpoint.clone(),
            ..DockerConnection::default()
        };
        let docker: Arc<dyn DockerApi> = Arc::new(
            BollardDocker::new(connection)
                .map_err(|e| Failure::unusable("dockhand: cannot set up the Docker client", e))?,
        );
        let settings = FingerprintSettings {
            driver_name: self.driver_name.clone(),
            nvidia_runtime: self.nvidia_runtime.clone(),
            ..FingerprintSettings::default()
        };
        let outcome = Fingerprinter::new(docker, settings, RuntimeCatalog::new())
            .fingerprint()
            .await;
        let mut out = io::stdout().lock();
        render(&outcome, &mut out)
            .map_err(|e| Failure::unusable("dockhand: cannot write the report", e))?;
        Ok(if outcome.health == Health::Healthy {
            Status::Success
        } else {
            Status::Failed
        })
    }
}

/// Render a fingerprint as a two-column table.
pub fn render(outcome: &FingerprintOutcome, out: &mut dyn Write) -> io::Result<()> {
    let health = match outcome.health {
        Health::Undetected => "undetected",
        Health::Unhealthy => "unhealthy",
        Health::Healthy => "healthy",
    };
    writeln!(out, "health: {health} ({})", outcome.description)?;
    let width = outcome
        .attributes
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(9)
        .max(9);
    writeln!(out, "{:<width$}  VALUE", "ATTRIBUTE")?;
    for (key, value) in &outcome.attributes {
        let value = match value {
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Float(f) => f.to_string(),
            AttrValue::String(s) => s.clone(),
        };
        writeln!(out, "{key:<width$}  {value}")?;
    }
    Ok(())
}
