//! StartTask and RecoverTask: from a spec (or a driver_state) to a tracked, watched task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::docker::DockerError;
use crate::docker::models::{ContainerCreateBody, ContainerInspectResponse};

use super::container::{LABEL_ALLOC_ID, container_config};
use super::handle::TaskHandle;
use super::image::{ImageRequest, PullObserver, ensure_image};
use super::logs::{forward_logs, is_discard};
use super::spec::TaskSpec;
use super::state::{DriverNetwork, TaskState};
use super::{TaskEngine, TaskError};

/// Backoff of create retries: first pause and cap.
const CREATE_BACKOFF_BASE: Duration = Duration::from_millis(50);
const CREATE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a transient create error is retried.
const CREATE_TRANSIENT_ATTEMPTS: u32 = 5;

/// A started task.
#[derive(Debug, Clone)]
pub struct StartedTask {
    /// The tracked handle.
    pub handle: Arc<TaskHandle>,
    /// The encoded driver_state to give Nomad.
    pub driver_state: Vec<u8>,
    /// The network to report to Nomad, if the container has an address.
    pub network: Option<DriverNetwork>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_running(i: &ContainerInspectResponse) -> bool {
    i.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

impl TaskEngine {
    /// Starts a task: image, GPU runtime check, create (or adopt), start, log forwarding and
    /// exit watching. On failure nothing this call created is left behind.
    pub async fn start(&self, spec: TaskSpec) -> Result<StartedTask, TaskError> {
        if self.store.contains(&spec.id) {
            return Err(TaskError::AlreadyStarted(spec.id.clone()));
        }
        let runtime = self.resolve_runtime(&spec).await?;

        let image = spec.docker.image.as_str();
        let request = ImageRequest {
            image,
            force_pull: spec.docker.force_pull,
            load: spec.docker.load.as_deref(),
            auth: spec.docker.auth.as_ref(),
            auth_sources: &self.settings.auth,
            auth_soft_fail: spec.docker.auth_soft_fail,
            pull_timeout: spec
                .docker
                .image_pull_timeout
                .unwrap_or(self.settings.image_pull_timeout),
            activity_timeout: self.settings.pull_activity_timeout,
            progress_interval: self.settings.pull_progress_interval,
        };
        let observer = TaskPullEvents {
            engine: self,
            spec: &spec,
        };
        let image_id = ensure_image(self.docker.as_ref(), &request, &observer).await?;
        // Counted before the container exists, so a removal scheduled by another task's
        // destroy is cancelled now rather than racing the create.
        self.images.acquire(&image_id, &spec.id);
        let result = self
            .create_and_start(&spec, runtime, image_id.clone())
            .await;
        if result.is_err() {
            self.images.release(&image_id, &spec.id);
        }
        result
    }

    async fn create_and_start(
        &self,
        spec: &TaskSpec,
        runtime: Option<String>,
        image_id: String,
    ) -> Result<StartedTask, TaskError> {
        let image = spec.docker.image.as_str();
        if let (Some(dns), Some(task_dir)) = (&spec.group_dns, spec.task_dir()) {
            super::resolv::write(&task_dir, dns).map_err(TaskError::InvalidSpec)?;
        }
        let body = container_config(spec, image, runtime, &self.settings.container)?;
        let (container_id, adopted) = self.create_or_adopt(spec, body).await?;
        match self
            .finish_start(spec, &container_id, adopted, image_id)
            .await
        {
            Ok(started) => Ok(started),
            Err(e) => {
                if adopted {
                    tracing::warn!(task_id = spec.id, container_id, error = %e, "start of adopted container failed; leaving it in place");
                } else if let Err(rm) = self.docker.remove_container(&container_id, true).await {
                    tracing::warn!(task_id = spec.id, container_id, error = %rm, "failed to remove container after failed start");
                }
                Err(e)
            }
        }
    }

    /// The OCI runtime for `spec`, after the GPU substitution and the allow-list.
    async fn resolve_runtime(&self, spec: &TaskSpec) -> Result<Option<String>, TaskError> {
        let mut runtime = spec.docker.runtime.clone().filter(|r| !r.is_empty());
        if spec.wants_nvidia_gpu() {
            let gpu = &self.settings.nvidia_runtime;
            let present = match self.runtimes.contains(gpu) {
                Some(p) => p,
                None => {
                    let info = self.docker.info().await.map_err(TaskError::RuntimeLookup)?;
                    let names = info
                        .runtimes
                        .map(|r| r.into_keys().collect())
                        .unwrap_or_default();
                    self.runtimes.set(names);
                    self.runtimes.contains(gpu).unwrap_or(false)
                }
            };
            if !present {
                return Err(TaskError::GpuRuntimeMissing(gpu.clone()));
            }
            if let Some(task) = runtime.as_ref().filter(|r| *r != gpu) {
                return Err(TaskError::RuntimeConflict {
                    gpu: gpu.clone(),
                    task: task.clone(),
                });
            }
            runtime = Some(gpu.clone());
        }
        if let Some(r) = &runtime {
            let allowed = &self.settings.allow_runtimes;
            if !allowed.is_empty() && !allowed.contains(r) {
                return Err(TaskError::RuntimeNotAllowed(r.clone()));
            }
        }
        Ok(runtime)
    }

    /// Creates the container; on a name conflict adopts a running container of this task or
    /// purges a stopped one and retries with backoff. Returns `(id, adopted)`.
    async fn create_or_adopt(
        &self,
        spec: &TaskSpec,
        body: ContainerCreateBody,
    ) -> Result<(String, bool), TaskError> {
        let name = spec.container_name();
        let create_err = |source: DockerError| TaskError::Create {
            name: name.clone(),
            source,
        };
        let mut pause = CREATE_BACKOFF_BASE;
        let (mut purges, mut transient) = (0u32, 0u32);
        loop {
            let err = match self.docker.create_container(&name, body.clone()).await {
                Ok(id) => return Ok((id, false)),
                Err(e) => e,
            };
            if err.is_conflict() {
                match self.docker.inspect_container(&name).await {
                    Ok(existing) => {
                        let id = existing.id.clone().unwrap_or_default();
                        if is_running(&existing) {
                            let owner = existing
                                .config
                                .as_ref()
                                .and_then(|c| c.labels.as_ref())
                                .and_then(|l| l.get(LABEL_ALLOC_ID));
                            if owner.is_some_and(|a| *a != spec.alloc_id) {
                                return Err(TaskError::NameTaken {
                                    name: name.clone(),
                                    id,
                                });
                            }
                            tracing::info!(
                                task_id = spec.id,
                                container_id = id,
                                "adopting running container with the task's name"
                            );
                            return Ok((id, true));
                        }
                        match self.docker.remove_container(&id, true).await {
                            Ok(()) => tracing::info!(
                                task_id = spec.id,
                                container_id = id,
                                "purged container"
                            ),
                            Err(e) if e.is_not_found() => {}
                            Err(source) => return Err(TaskError::Purge { id, source }),
                        }
                    }
                    // Removed between our create and inspect: just retry.
                    Err(e) if e.is_not_found() => {}
                    Err(source) => return Err(create_err(source)),
                }
                purges += 1;
                if purges >= self.settings.container_exists_attempts.max(1) {
                    return Err(TaskError::NameConflictPersisted {
                        name: name.clone(),
                        attempts: purges,
                    });
                }
            } else if err.is_transient() && transient + 1 < CREATE_TRANSIENT_ATTEMPTS {
                transient += 1;
                tracing::debug!(task_id = spec.id, error = %err, "transient create error; retrying");
            } else {
                return Err(create_err(err));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(CREATE_BACKOFF_MAX);
        }
    }

    async fn finish_start(
        &self,
        spec: &TaskSpec,
        container_id: &str,
        adopted: bool,
        image_id: String,
    ) -> Result<StartedTask, TaskError> {
        if !adopted {
            self.docker
                .start_container(container_id)
                .await
                .map_err(|source| TaskError::Start {
                    id: container_id.to_owned(),
                    source,
                })?;
        }
        let inspected = self
            .docker
            .inspect_container(container_id)
            .await
            .map_err(|source| TaskError::Inspect {
                id: container_id.to_owned(),
                source,
            })?;
        let network = driver_network(spec, &inspected);
        let discard_all =
            is_discard(spec.stdout_path.as_deref()) && is_discard(spec.stderr_path.as_deref());
        let log_collection = !(self.settings.disable_log_collection || discard_all);
        let state = TaskState {
            task_id: spec.id.clone(),
            task_name: spec.name.clone(),
            alloc_id: spec.alloc_id.clone(),
            container_id: container_id.to_owned(),
            container_name: spec.container_name(),
            image: spec.docker.image.clone(),
            image_id,
            stdout_path: spec.stdout_path.clone(),
            stderr_path: spec.stderr_path.clone(),
            log_collection,
            tty: spec.docker.tty,
            started_at_unix: now_unix(),
            adopted,
            network: network.clone(),
        };
        let driver_state = state.encode()?;
        let handle = self.track(state, 0);
        Ok(StartedTask {
            handle,
            driver_state,
            network,
        })
    }

    /// Creates, watches and stores a handle; `logs_since` is the Unix time to forward from.
    fn track(&self, state: TaskState, logs_since: i64) -> Arc<TaskHandle> {
        let handle = TaskHandle::new(state);
        handle.spawn_exit_watcher(self.docker.clone());
        let st = handle.state();
        if st.log_collection {
            handle.add_background(tokio::spawn(forward_logs(
                self.docker.clone(),
                st.container_id.clone(),
                st.stdout_path.clone(),
                st.stderr_path.clone(),
                logs_since,
            )));
        }
        self.store.insert_if_absent(handle)
    }

    /// Re-attaches to the task described by `driver_state`: re-tracks it, resumes exit watching
    /// and (from now on) log forwarding. Idempotent: a tracked task is returned as is.
    pub async fn recover(&self, driver_state: &[u8]) -> Result<Arc<TaskHandle>, TaskError> {
        let state = TaskState::decode(driver_state)?;
        if let Some(h) = self.store.get(&state.task_id) {
            return Ok(h);
        }
        let inspected = self
            .docker
            .inspect_container(&state.container_id)
            .await
            .map_err(|source| TaskError::Inspect {
                id: state.container_id.clone(),
                source,
            })?;
        self.retrack_sandbox_of(&state.alloc_id, &inspected).await;
        let mut state = state;
        // Re-count the image the container really runs (reference counts live in memory).
        if let Some(image_id) = inspected.image.clone().filter(|i| !i.is_empty()) {
            state.image_id = image_id;
        }
        self.images.acquire(&state.image_id, &state.task_id);
        // An exited container needs no log forwarding; its exit result is read at once.
        state.log_collection &= is_running(&inspected) && !self.settings.disable_log_collection;
        Ok(self.track(state, now_unix()))
    }
}

/// Pull events of one task: `Downloading image`, then the periodic progress messages.
struct TaskPullEvents<'a> {
    engine: &'a TaskEngine,
    spec: &'a TaskSpec,
}

impl PullObserver for TaskPullEvents<'_> {
    fn started(&self, image: &str) {
        let annotations: BTreeMap<_, _> = [("image".to_owned(), image.to_owned())].into();
        self.engine
            .emit(self.spec, "Downloading image".to_owned(), annotations);
    }

    fn progress(&self, image: &str, message: &str) {
        let annotations: BTreeMap<_, _> = [("image".to_owned(), image.to_owned())].into();
        self.engine.emit(self.spec, message.to_owned(), annotations);
    }
}

fn driver_network(spec: &TaskSpec, i: &ContainerInspectResponse) -> Option<DriverNetwork> {
    let networks = i.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    if names.len() > 1 {
        tracing::warn!(task_id = spec.id, networks = ?names, "container has more than one network; reporting the first with an address");
    }
    names.into_iter().find_map(|name| {
        let ip = networks[name]
            .ip_address
            .clone()
            .filter(|ip| !ip.is_empty())?;
        Some(DriverNetwork {
            port_map: spec.docker.port_map.clone(),
            ip,
            auto_advertise: name != "bridge" && name != "nat",
        })
    })
}
