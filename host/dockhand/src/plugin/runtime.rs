//! [`DriverRuntime`]: the per-process Docker client, runtime catalog and task engine.

use std::sync::Arc;

use super::convert;
use crate::config::PluginConfig;
use crate::docker::{BollardDocker, DockerApi};
use crate::fingerprint::RuntimeCatalog;
use crate::tasks::{EngineSettings, TaskEngine};

/// The per-process Docker side: one client, one runtime catalog, one task engine.
#[derive(Debug, Clone)]
pub struct DriverRuntime {
    /// The Docker client built from the plugin config (`endpoint`, `tls`).
    pub docker: Arc<dyn DockerApi>,
    /// Runtimes the daemon reports, shared by the fingerprinter and the engine.
    pub runtimes: RuntimeCatalog,
    /// The task engine and its tracked set.
    pub engine: TaskEngine,
}

impl DriverRuntime {
    /// Builds the client, catalog and engine for `config`. The daemon is not contacted; the
    /// only read is `/proc/cpuinfo`, for the CPU ticks of stats samples.
    pub fn new(config: &PluginConfig) -> Result<Self, crate::docker::DockerError> {
        let docker: Arc<dyn DockerApi> =
            Arc::new(BollardDocker::new(convert::docker_connection(config))?);
        let runtimes = RuntimeCatalog::new();
        let mut settings = EngineSettings::from_config(config);
        settings.mhz_per_core = std::fs::read_to_string(CPUINFO)
            .map(|text| mhz_per_core(&text))
            .unwrap_or(0);
        if let Some(period) = std::env::var(PULL_PROGRESS_PERIOD_ENV)
            .ok()
            .and_then(|text| super::parse_period(&text))
        {
            settings.pull_progress_interval = period.max(MIN_PULL_PROGRESS_PERIOD);
        }
        let engine = TaskEngine::new(docker.clone(), settings, runtimes.clone());
        Ok(DriverRuntime {
            docker,
            runtimes,
            engine,
        })
    }
}

/// Environment variable overriding how often a running pull sends a progress event (Nomad's
/// two minutes by default); tests use it to observe progress events of short pulls.
pub const PULL_PROGRESS_PERIOD_ENV: &str = "DOCKHAND_PULL_PROGRESS_PERIOD";

/// Shortest accepted pull progress period; the pull loop wakes up at this rate.
pub const MIN_PULL_PROGRESS_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// Where the per-core clock is read from.
const CPUINFO: &str = "/proc/cpuinfo";

/// The first `cpu MHz` of a `/proc/cpuinfo` text, rounded; 0 when absent (then stats report
/// no CPU ticks).
pub fn mhz_per_core(cpuinfo: &str) -> u64 {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "cpu MHz")
        .and_then(|(_, value)| value.trim().parse::<f64>().ok())
        .filter(|mhz| mhz.is_finite() && *mhz > 0.0)
        .map_or(0, |mhz| mhz.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_mhz_is_read_from_cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2399.6\ncache size\t: 1 KB\n";
        assert_eq!(mhz_per_core(text), 2400);
        assert_eq!(mhz_per_core("processor\t: 0\n"), 0);
        assert_eq!(mhz_per_core("cpu MHz : fast\n"), 0);
    }
}
