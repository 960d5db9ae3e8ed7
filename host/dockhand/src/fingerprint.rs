//! Driver fingerprint: health and node attributes from `docker version` and `docker info`.
//!
//! Health follows Nomad's docker driver: **undetected** until the daemon has answered once,
//! **unhealthy** ("Failed to connect to docker daemon: …") when it stops answering after that,
//! **healthy** ("Healthy") otherwise. Recovery needs no intervention: the next successful
//! fingerprint is healthy again.
//!
//! Only `version` gates health. `info` (runtimes, OS type) and the `bridge` network (bridge IP)
//! are best effort: their failure drops those attributes and is logged, the driver stays healthy.
//!
//! Unlike upstream, the GPU runtime flag is re-evaluated on every fingerprint instead of being
//! latched on first sight, and the runtime list is shared with the task engine through
//! [`RuntimeCatalog`] so a StartTask can check the GPU runtime without another `info` call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::docker::DockerApi;

/// Fingerprint health, as in Nomad's `HealthState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Docker was never reached.
    Undetected,
    /// Docker was reached before and is not reachable now.
    Unhealthy,
    /// Docker answers.
    Healthy,
}

/// A node attribute value (Nomad's typed `Attribute`).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String.
    String(String),
}

/// The result of one fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct FingerprintOutcome {
    /// Health state.
    pub health: Health,
    /// Human-readable health description.
    pub description: String,
    /// Node attributes, keyed `driver.<name>…`.
    pub attributes: BTreeMap<String, AttrValue>,
}

/// The plugin settings a fingerprint reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintSettings {
    /// The driver name used in attribute keys (`driver.<name>`).
    pub driver_name: String,
    /// The OCI runtime name that provides NVIDIA GPUs (`nvidia_runtime`).
    pub nvidia_runtime: String,
    /// `allow_privileged`.
    pub allow_privileged: bool,
    /// `volumes.enabled`.
    pub volumes_enabled: bool,
    /// Plugin `pids_limit`; reported when positive.
    pub pids_limit: Option<i64>,
}

impl Default for FingerprintSettings {
    fn default() -> Self {
        Self {
            driver_name: "dockhand".to_owned(),
            nvidia_runtime: "nvidia".to_owned(),
            allow_privileged: false,
            volumes_enabled: false,
            pids_limit: None,
        }
    }
}

/// The OCI runtimes the daemon reported in its last successful `info`, shared between the
/// fingerprinter (writer) and the task engine (reader). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RuntimeCatalog {
    runtimes: Arc<Mutex<Option<BTreeSet<String>>>>,
}

impl RuntimeCatalog {
    /// An empty catalog (nothing known yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// The last known runtime names, or `None` before the first successful `info`.
    pub fn runtimes(&self) -> Option<BTreeSet<String>> {
        self.runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the known runtimes.
    pub fn set(&self, runtimes: BTreeSet<String>) {
        *self.runtimes.lock().unwrap_or_else(PoisonError::into_inner) = Some(runtimes);
    }

    /// Whether `name` is a known runtime; `None` when nothing is known yet.
    pub fn contains(&self, name: &str) -> Option<bool> {
        self.runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| r.contains(name))
    }
}

#[derive(Debug, Default)]
struct State {
    detected: bool,
    last_health: Option<Health>,
    gpu_runtime: bool,
}

/// Produces [`FingerprintOutcome`]s; remembers whether Docker was ever seen.
#[derive(Debug)]
pub struct Fingerprinter {
    docker: Arc<dyn DockerApi>,
    settings: FingerprintSettings,
    runtimes: RuntimeCatalog,
    state: Mutex<State>,
}

impl Fingerprinter {
    /// A fingerprinter publishing runtimes into `runtimes`.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        settings: FingerprintSettings,
        runtimes: RuntimeCatalog,
    ) -> Self {
        Self {
            docker,
            settings,
            runtimes,
            state: Mutex::new(State::default()),
        }
    }

    /// The shared runtime catalog.
    pub fn runtimes(&self) -> &RuntimeCatalog {
        &self.runtimes
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether Docker has answered at least once.
    pub fn docker_detected(&self) -> bool {
        self.state().detected
    }

    /// Whether the last fingerprint was healthy (`true` before the first fingerprint only if
    /// Docker was detected — i.e. `false`).
    pub fn is_healthy(&self) -> bool {
        self.state().last_health == Some(Health::Healthy)
    }

    /// Whether the configured GPU runtime was present in the last successful `info`.
    pub fn gpu_runtime_available(&self) -> bool {
        self.state().gpu_runtime
    }

    fn key(&self, suffix: &str) -> String {
        if suffix.is_empty() {
            format!("driver.{}", self.settings.driver_name)
        } else {
            format!("driver.{}.{suffix}", self.settings.driver_name)
        }
    }

    /// Runs one fingerprint against the daemon.
    pub async fn fingerprint(&self) -> FingerprintOutcome {
        let version = match self.docker.version().await {
            Ok(v) => v,
            Err(err) => {
                let health = if self.docker_detected() {
                    Health::Unhealthy
                } else {
                    Health::Undetected
                };
                if self.state().last_health != Some(health) {
                    tracing::warn!(error = %err, "failed to connect to docker daemon");
                }
                self.state().last_health = Some(health);
                return FingerprintOutcome {
                    health,
                    description: format!("Failed to connect to docker daemon: {err}"),
                    attributes: BTreeMap::new(),
                };
            }
        };

        let mut attrs = BTreeMap::new();
        attrs.insert(self.key(""), AttrValue::Bool(true));
        attrs.insert(
            self.key("version"),
            AttrValue::String(version.version.unwrap_or_default()),
        );
        if self.settings.allow_privileged {
            attrs.insert(self.key("privileged.enabled"), AttrValue::Bool(true));
        }
        if self.settings.volumes_enabled {
            attrs.insert(self.key("volumes.enabled"), AttrValue::Bool(true));
        }
        if let Some(limit) = self.settings.pids_limit.filter(|l| *l > 0) {
            attrs.insert(self.key("pids.limit"), AttrValue::Int(limit));
        }

        match self.docker.inspect_network("bridge").await {
            Ok(net) => {
                let gateway = net
                    .ipam
                    .and_then(|i| i.config)
                    .and_then(|c| c.into_iter().next())
                    .and_then(|c| c.gateway)
                    .filter(|g| !g.is_empty());
                if let Some(gw) = gateway {
                    attrs.insert(self.key("bridge_ip"), AttrValue::String(gw));
                }
            }
            Err(err) => tracing::warn!(error = %err, "failed to inspect the bridge network"),
        }

        let mut gpu_runtime = None;
        match self.docker.info().await {
            Ok(info) => {
                let runtimes: BTreeSet<String> = info
                    .runtimes
                    .map(|r| r.into_keys().collect())
                    .unwrap_or_default();
                gpu_runtime = Some(runtimes.contains(&self.settings.nvidia_runtime));
                attrs.insert(
                    self.key("runtimes"),
                    AttrValue::String(runtimes.iter().cloned().collect::<Vec<_>>().join(",")),
                );
                if let Some(os) = info.os_type.filter(|o| !o.is_empty()) {
                    attrs.insert(self.key("os_type"), AttrValue::String(os));
                }
                self.runtimes.set(runtimes);
            }
            Err(err) => tracing::warn!(error = %err, "failed to get docker info"),
        }

        let mut state = self.state();
        if state.last_health != Some(Health::Healthy) {
            tracing::info!("docker daemon is healthy");
        }
        state.detected = true;
        state.last_health = Some(Health::Healthy);
        if let Some(gpu) = gpu_runtime {
            state.gpu_runtime = gpu;
        }
        FingerprintOutcome {
            health: Health::Healthy,
            description: "Healthy".to_owned(),
            attributes: attrs,
        }
    }
}
