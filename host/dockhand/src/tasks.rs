//! The task engine: the Docker side of every task lifecycle operation, independent of gRPC.
//!
//! [`TaskEngine`] takes plain Rust inputs ([`TaskSpec`], task ids, durations) and returns plain
//! results; the plugin's gRPC layer only translates. Design decisions:
//!
//! * **Tracked set.** Every started or recovered task has a [`TaskHandle`] in the [`TaskStore`];
//!   [`TaskStore::tracked_container_ids`] is what the reconciler must never touch. A handle is
//!   inserted before StartTask returns and removed only by DestroyTask.
//! * **No leftovers.** A container created by a StartTask that then fails (start, inspect,
//!   state encoding) is force-removed before the error is returned. An *adopted* container (a
//!   running container of the same task found on a name conflict) is never removed on failure:
//!   when in doubt, don't kill.
//! * **One exit result per task**, computed by a watcher that waits with no deadline and takes
//!   the OOM flag from inspect. Any number of [`TaskEngine::wait`] callers get it.
//! * **DestroyTask is seen through.** Nomad ignores a failed DestroyTask and never asks again,
//!   so when its Docker calls fail the stop and removal are retried in the background and the
//!   handle is dropped once the container is gone (see `destroy`).
//! * **Stop is never cut short** by a client timeout: its deadline is the grace plus a margin.
//! * **Group networks** ([`TaskEngine::create_network`]) are sandbox (pause) containers named
//!   `nomad_init_<alloc id>`, tracked next to the tasks so the reconciler leaves them alone.
//! * **Images** ([`ensure_image`]): `:latest` for an untagged reference, credentials in
//!   Nomad's order ([`auth`]), and reference counts per image ([`ImageGc`]) taken by StartTask,
//!   RecoverTask and CreateNetwork and dropped by DestroyTask and DestroyNetwork.
//! * **driver_state** is a versioned MessagePack record ([`TaskState`]) holding everything
//!   recovery needs; [`TaskEngine::recover`] is idempotent.

pub mod auth;
mod container;
mod destroy;
mod error;
mod exec;
mod handle;
mod host_options;
mod image;
pub mod image_gc;
mod log_position;
mod logs;
mod network;
mod options;
mod ports;
pub mod reference;
pub mod resolv;
pub mod spec;
mod start;
mod state;
mod stats;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::config::{AuthSources, PluginConfig};
use crate::docker::{DockerApi, DockerError};
use crate::fingerprint::RuntimeCatalog;

pub use container::{
    ContainerSettings, DRIVER_LABEL_VALUE, LABEL_ALLOC_ID, LABEL_DRIVER, LABEL_JOB_ID,
    LABEL_JOB_NAME, LABEL_NAMESPACE, LABEL_NODE_ID, LABEL_NODE_NAME, LABEL_PARENT_JOB_ID,
    LABEL_TASK_GROUP_NAME, LABEL_TASK_NAME, container_config, identity_labels, nomad_labels,
};
pub use error::TaskError;
pub use exec::{EXEC_UNKNOWN_EXIT, ExecControl, ExecOutput, ExecSession, MAX_EXEC_OUTPUT_BYTES};
pub use handle::{ExitResult, TaskHandle};
pub use image::{
    ImageRequest, PULL_PROGRESS_INTERVAL, PullError, PullObserver, PullProgress, Silent,
    ensure_image, follow_pull, is_latest_or_untagged,
};
pub use image_gc::ImageGc;
pub use network::{NetworkError, SANDBOX_NAME_PREFIX, Sandbox, sandbox_name};
pub use spec::TaskSpec;
pub use start::StartedTask;
pub use state::{
    DRIVER_STATE_VERSION, DriverNetwork, MAX_DRIVER_STATE_BYTES, StateError, TaskState,
};
pub use stats::{CpuUsage, MemoryUsage, TaskUsage, usage_from_docker};
pub use store::{Reservation, TaskStore};

/// A task event for Nomad's TaskEvents stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Nomad task id.
    pub task_id: String,
    /// Allocation id.
    pub alloc_id: String,
    /// Task name.
    pub task_name: String,
    /// Event message.
    pub message: String,
    /// Annotations (e.g. `image`).
    pub annotations: BTreeMap<String, String>,
    /// When it happened.
    pub timestamp: std::time::SystemTime,
}

/// Engine settings: what the engine needs from the plugin config
/// ([`EngineSettings::from_config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// The runtime that provides NVIDIA GPUs (`nvidia_runtime`).
    pub nvidia_runtime: String,
    /// `allow_runtimes`; empty allows any runtime.
    pub allow_runtimes: Vec<String>,
    /// `container_exists_attempts`.
    pub container_exists_attempts: u32,
    /// Default `image_pull_timeout`.
    pub image_pull_timeout: Duration,
    /// `pull_activity_timeout`.
    pub pull_activity_timeout: Duration,
    /// `disable_log_collection`.
    pub disable_log_collection: bool,
    /// `gc.container`: remove containers on DestroyTask.
    pub gc_container: bool,
    /// What the create body needs: labels, binds, capabilities, pids and log defaults.
    pub container: ContainerSettings,
    /// Node compute per core in MHz, for CPU ticks (0 = unknown).
    pub mhz_per_core: u64,
    /// `infra_image`: the image of group-network sandbox containers.
    pub infra_image: String,
    /// `infra_image_pull_timeout`.
    pub infra_image_pull_timeout: Duration,
    /// `auth { config, helper }`: the agent's registry credential sources.
    pub auth: AuthSources,
    /// `gc.image_delay` when `gc.image` is on; `None` keeps every image.
    pub image_gc_delay: Option<Duration>,
    /// How often a running pull sends a progress event (Nomad: 2 minutes).
    pub pull_progress_interval: Duration,
}

impl EngineSettings {
    /// The settings of the plugin config `config`.
    pub fn from_config(config: &PluginConfig) -> Self {
        Self {
            nvidia_runtime: config.nvidia_runtime.clone(),
            allow_runtimes: config.allow_runtimes.clone(),
            container_exists_attempts: config.container_exists_attempts,
            image_pull_timeout: config.image_pull_timeout,
            pull_activity_timeout: config.pull_activity_timeout,
            disable_log_collection: config.disable_log_collection,
            gc_container: config.gc.container,
            container: ContainerSettings::from_config(config),
            mhz_per_core: 0,
            infra_image: config.infra_image.clone(),
            infra_image_pull_timeout: config.infra_image_pull_timeout,
            auth: config.auth.clone(),
            image_gc_delay: config.gc.image.then_some(config.gc.image_delay),
            pull_progress_interval: PULL_PROGRESS_INTERVAL,
        }
    }
}

impl Default for EngineSettings {
    /// The settings of the default plugin config, except for image removal: an engine built
    /// without a configuration must not delete images it merely found on the host (the
    /// plugin's default, from `gc.image`, is on).
    fn default() -> Self {
        Self {
            image_gc_delay: None,
            ..Self::from_config(&PluginConfig::default())
        }
    }
}

/// Capacity of the task event channel; a subscriber that lags further loses old events.
const EVENT_CAPACITY: usize = 256;

/// The task engine. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct TaskEngine {
    docker: Arc<dyn DockerApi>,
    settings: Arc<EngineSettings>,
    runtimes: RuntimeCatalog,
    store: TaskStore,
    events: broadcast::Sender<TaskEvent>,
    images: ImageGc,
    network_calls: network::AllocLocks,
}

impl TaskEngine {
    /// An engine using `docker`; `runtimes` is shared with the fingerprinter.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        settings: EngineSettings,
        runtimes: RuntimeCatalog,
    ) -> Self {
        let images = ImageGc::new(docker.clone(), settings.image_gc_delay);
        Self {
            images,
            docker,
            settings: Arc::new(settings),
            runtimes,
            store: TaskStore::new(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            network_calls: network::AllocLocks::default(),
        }
    }

    /// The tracked tasks.
    pub fn store(&self) -> &TaskStore {
        &self.store
    }

    /// The image reference counts (`gc.image`).
    pub fn images(&self) -> &ImageGc {
        &self.images
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Subscribes to task events.
    pub fn subscribe_events(&self) -> broadcast::Receiver<TaskEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(
        &self,
        spec: &TaskSpec,
        message: String,
        annotations: BTreeMap<String, String>,
    ) {
        // No subscriber is fine: events are informational.
        let _ = self.events.send(TaskEvent {
            task_id: spec.id.clone(),
            alloc_id: spec.alloc_id.clone(),
            task_name: spec.name.clone(),
            message,
            annotations,
            timestamp: std::time::SystemTime::now(),
        });
    }

    fn handle(&self, task_id: &str) -> Result<Arc<TaskHandle>, TaskError> {
        self.store
            .get(task_id)
            .ok_or_else(|| TaskError::NotFound(task_id.to_owned()))
    }

    /// Waits for the task to exit (returns at once if it already has).
    pub async fn wait(&self, task_id: &str) -> Result<ExitResult, TaskError> {
        Ok(self.handle(task_id)?.wait().await)
    }

    /// Stops the task: with no `signal`, Docker's stop (image STOPSIGNAL or SIGTERM, SIGKILL
    /// after `timeout`); with a signal, that signal, then a forced stop if the task has not
    /// exited within `timeout`. Already stopped is success; the handle stays tracked.
    pub async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: Option<&str>,
    ) -> Result<(), TaskError> {
        let h = self.handle(task_id)?;
        let id = h.container_id().to_owned();
        let ok_if_gone = |r: Result<(), DockerError>| match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        let stop_err = |source| TaskError::Stop {
            id: id.clone(),
            source,
        };
        match signal.filter(|s| !s.is_empty()) {
            None => ok_if_gone(self.docker.stop_container(&id, timeout).await).map_err(stop_err),
            Some(sig) => {
                if h.exit_result().is_some() {
                    return Ok(());
                }
                match self.docker.kill_container(&id, sig).await {
                    Ok(()) => {}
                    // 409: not running any more.
                    Err(e) if e.is_not_found() || e.is_conflict() => return Ok(()),
                    Err(source) => {
                        return Err(TaskError::Signal {
                            id: id.clone(),
                            source,
                        });
                    }
                }
                if h.wait_timeout(timeout).await.is_some() {
                    return Ok(());
                }
                ok_if_gone(self.docker.stop_container(&id, Duration::ZERO).await).map_err(stop_err)
            }
        }
    }

    /// Current Docker view of the task's container.
    pub async fn inspect(&self, task_id: &str) -> Result<TaskStatus, TaskError> {
        let h = self.handle(task_id)?;
        let id = h.container_id().to_owned();
        let i = self
            .docker
            .inspect_container(&id)
            .await
            .map_err(|source| TaskError::Inspect {
                id: id.clone(),
                source,
            })?;
        let st = i.state.unwrap_or_default();
        Ok(TaskStatus {
            container_id: id,
            running: st.running.unwrap_or(false),
            started_at: st.started_at.filter(|s| !s.starts_with("0001-")),
            finished_at: st.finished_at.filter(|s| !s.starts_with("0001-")),
            exit: h.exit_result(),
            network: h.state().network.clone(),
        })
    }

    /// Sends `signal` (e.g. `SIGHUP`) to the task.
    pub async fn signal(&self, task_id: &str, signal: &str) -> Result<(), TaskError> {
        let h = self.handle(task_id)?;
        let id = h.container_id().to_owned();
        self.docker
            .kill_container(&id, signal)
            .await
            .map_err(|source| TaskError::Signal { id, source })
    }

    /// Runs `cmd` in the task's container and collects its output (script checks).
    pub async fn exec(
        &self,
        task_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, TaskError> {
        let h = self.handle(task_id)?;
        exec::exec_buffered(self.docker.as_ref(), h.container_id(), cmd, timeout).await
    }

    /// Starts an interactive exec (`nomad alloc exec`).
    pub async fn exec_streaming(
        &self,
        task_id: &str,
        cmd: Vec<String>,
        tty: bool,
    ) -> Result<ExecSession, TaskError> {
        let h = self.handle(task_id)?;
        ExecSession::start(self.docker.clone(), h.container_id(), cmd, tty).await
    }

    /// Resource usage every `interval` until the task exits. Failed samples are skipped
    /// (with growing pauses) rather than ending the stream.
    pub fn stats(
        &self,
        task_id: &str,
        interval: Duration,
    ) -> Result<BoxStream<'static, TaskUsage>, TaskError> {
        let h = self.handle(task_id)?;
        if h.exit_result().is_some() {
            return Err(TaskError::ContainerStopped);
        }
        let docker = self.docker.clone();
        let mhz = self.settings.mhz_per_core as f64;
        let interval = interval.max(Duration::from_millis(100));
        let stream = futures::stream::unfold((h, true), move |(h, first)| {
            let docker = docker.clone();
            async move {
                if !first {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        _ = h.wait() => return None,
                    }
                }
                let mut pause = Duration::from_secs(5);
                loop {
                    if h.exit_result().is_some() {
                        return None;
                    }
                    match docker.stats_once(h.container_id()).await {
                        Ok(s) => return Some((usage_from_docker(&s, mhz), (h, false))),
                        Err(e) => {
                            tracing::debug!(task_id = h.task_id(), error = %e, "failed to collect stats");
                            tokio::select! {
                                () = tokio::time::sleep(pause) => {}
                                _ = h.wait() => return None,
                            }
                            pause = (pause * 2).min(Duration::from_secs(120));
                        }
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

/// What [`TaskEngine::inspect`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// Container id.
    pub container_id: String,
    /// Whether the container runs.
    pub running: bool,
    /// Docker's `StartedAt` (RFC 3339), if started.
    pub started_at: Option<String>,
    /// Docker's `FinishedAt` (RFC 3339), if finished.
    pub finished_at: Option<String>,
    /// The exit result, once exited.
    pub exit: Option<ExitResult>,
    /// The network reported at start.
    pub network: Option<DriverNetwork>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_the_plugin_defaults_without_image_removal() {
        let s = EngineSettings::default();
        assert_eq!(s.nvidia_runtime, "nvidia");
        assert_eq!(s.allow_runtimes, vec!["runc", "nvidia"]);
        assert_eq!(s.container_exists_attempts, 5);
        assert_eq!(s.image_pull_timeout, Duration::from_secs(300));
        assert_eq!(s.pull_activity_timeout, Duration::from_secs(120));
        assert_eq!(s.infra_image_pull_timeout, Duration::from_secs(300));
        assert_eq!(s.infra_image, crate::config::defaults::infra_image());
        assert!(!s.disable_log_collection && s.gc_container);
        assert_eq!(s.auth, AuthSources::default());
        assert_eq!(s.pull_progress_interval, PULL_PROGRESS_INTERVAL);
        assert_eq!(s.image_gc_delay, None, "no image removal without a config");
        let plugin = EngineSettings::from_config(&PluginConfig::default());
        assert_eq!(plugin.image_gc_delay, Some(Duration::from_secs(180)));
        assert_eq!(
            EngineSettings {
                image_gc_delay: None,
                ..plugin
            },
            s
        );
        assert_eq!(s.container.allow_caps.len(), 13);
        assert_eq!(s.container.logging.r#type, "json-file");
        assert_eq!(s.container.pids_limit, None);
    }
}
