//! StartTask and RecoverTask: from a spec (or a driver_state) to a tracked, watched task.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::docker::models::{ContainerCreateBody, ContainerInspectResponse};
use crate::docker::{DockerError, RegistryAuth};

use super::container::{LABEL_ALLOC_ID, container_config};
use super::handle::TaskHandle;
use super::host_options::{HOSTS_FILE, render_hosts};
use super::image::{ImageRequest, PullObserver, ensure_image};
use super::log_position::{POSITION_FILE, StartFrom};
use super::logs::{LogForwarding, forward_logs, is_discard};
use super::spec::TaskSpec;
use super::state::{DriverNetwork, TaskState};
use super::store::Reservation;
use super::{TaskEngine, TaskError};

/// Backoff of create retries: first pause and cap.
const CREATE_BACKOFF_BASE: Duration = Duration::from_millis(50);
const CREATE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a transient create error is retried.
const CREATE_TRANSIENT_ATTEMPTS: u32 = 5;
/// First Docker Engine API version that reads a MAC address from the endpoint settings.
const MAC_ADDRESS_MIN_API: (u32, u32) = (1, 44);

/// A started task.
#[derive(Debug, Clone)]
pub struct StartedTask {
    /// The tracked handle.
    pub handle: Arc<TaskHandle>,
    /// The encoded driver_state to give Nomad.
    pub driver_state: Vec<u8>,
    /// The network reported to Nomad (`DriverNetwork`): the port map, the container's
    /// address (empty without one) and whether to advertise it.
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
        // Built before the image is pulled, so that a task option Docker cannot be given
        // fails the start without a pull.
        let body = container_config(&spec, runtime, &self.settings.container)?;

        let config = &spec.config;
        // A relative `load` tarball is in the task's `local` directory.
        let load = config.load.as_ref().map(|l| match spec.task_dir() {
            Some(dir) if !l.starts_with('/') => dir.join("local").join(l),
            _ => PathBuf::from(l),
        });
        let auth = config.auth.as_ref().map(|a| RegistryAuth {
            username: a.username.clone(),
            password: a.password.clone(),
            server_address: a.server_address.clone(),
            ..RegistryAuth::default()
        });
        let request = ImageRequest {
            image: &config.image,
            force_pull: config.force_pull,
            load: load.as_deref(),
            auth: auth.as_ref(),
            auth_sources: &self.settings.auth,
            auth_soft_fail: config.auth_soft_fail,
            pull_timeout: config.effective_image_pull_timeout(self.settings.image_pull_timeout),
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
        let result = self.create_and_start(&spec, body, image_id.clone()).await;
        if result.is_err() {
            self.images.release(&image_id, &spec.id);
        }
        result
    }

    async fn create_and_start(
        &self,
        spec: &TaskSpec,
        body: ContainerCreateBody,
        image_id: String,
    ) -> Result<StartedTask, TaskError> {
        if let (Some(dns), Some(task_dir)) = (&spec.group_dns, spec.task_dir()) {
            super::resolv::write(&task_dir, dns).map_err(TaskError::InvalidSpec)?;
        }
        if let (Some(hosts), Some(alloc_dir)) = (spec.joined_group_hosts(), &spec.alloc_dir) {
            let text = render_hosts(hosts, &spec.config.extra_hosts)?;
            let path = alloc_dir.join(HOSTS_FILE);
            std::fs::write(&path, text).map_err(|e| {
                TaskError::InvalidSpec(format!(
                    "failed to write the hosts file {}: {e}",
                    path.display()
                ))
            })?;
        }
        if spec.config.mac_address.is_some() {
            self.check_mac_address_support().await?;
        }
        // An adopted container stays reserved (tracked) until its handle is: the reservation
        // is dropped at the end of this function, after `finish_start` tracked the handle.
        let (container_id, reservation) = self.create_or_adopt(spec, body).await?;
        let adopted = reservation.is_some();
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

    /// `mac_address` goes into the network endpoint settings, which Docker reads from API
    /// 1.44 on (the container-wide field older daemons read is gone from the API this
    /// client speaks): an older daemon is refused by name rather than silently ignoring it.
    async fn check_mac_address_support(&self) -> Result<(), TaskError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(TaskError::VersionLookup)?;
        let api = version.api_version.unwrap_or_default();
        let (major, minor) = api
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .unwrap_or((0, 0));
        if (major, minor) >= MAC_ADDRESS_MIN_API {
            return Ok(());
        }
        Err(TaskError::InvalidSpec(format!(
            "mac_address needs Docker Engine API {}.{} or later (Docker 25); this daemon \
             speaks API {api:?}",
            MAC_ADDRESS_MIN_API.0, MAC_ADDRESS_MIN_API.1
        )))
    }

    /// The OCI runtime for `spec`, after the GPU substitution and the allow-list.
    async fn resolve_runtime(&self, spec: &TaskSpec) -> Result<Option<String>, TaskError> {
        let mut runtime = spec.config.runtime.clone().filter(|r| !r.is_empty());
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
    /// purges a stopped one and retries with backoff. Returns the id and, for an adopted
    /// container, the reservation that keeps it tracked until its handle is.
    ///
    /// A container is reserved **before** it is adopted and then inspected once more: a sweep
    /// that has not begun an action on it sees it tracked, and one whose action has begun is
    /// waited for ([`TaskStore::action_ended`](crate::tasks::TaskStore::action_ended)), so the
    /// second inspection finds the container as the action left it — stopped or gone, it is
    /// purged and recreated instead.
    async fn create_or_adopt(
        &self,
        spec: &TaskSpec,
        body: ContainerCreateBody,
    ) -> Result<(String, Option<Reservation>), TaskError> {
        let name = spec.container_name();
        let create_err = |source: DockerError| TaskError::Create {
            name: name.clone(),
            source,
        };
        let mut pause = CREATE_BACKOFF_BASE;
        let (mut purges, mut transient) = (0u32, 0u32);
        loop {
            let err = match self.docker.create_container(&name, body.clone()).await {
                Ok(id) => return Ok((id, None)),
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
                            let reservation = self.store.reserve(&id);
                            // A sweep acting on it already: see what its action left.
                            self.store.action_ended(&id).await;
                            match self.docker.inspect_container(&id).await {
                                Ok(again) if is_running(&again) => {
                                    tracing::info!(
                                        task_id = spec.id,
                                        container_id = id,
                                        "adopting running container with the task's name"
                                    );
                                    return Ok((id, Some(reservation)));
                                }
                                // Stopped (or removed) meanwhile: purge it like a stopped one.
                                Ok(_) => {}
                                Err(e) if e.is_not_found() => {}
                                Err(source) => return Err(create_err(source)),
                            }
                            drop(reservation);
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
        self.track_joined_network(&spec.alloc_id, &inspected).await;
        let discard_all =
            is_discard(spec.stdout_path.as_deref()) && is_discard(spec.stderr_path.as_deref());
        let log_collection = !(self.settings.disable_log_collection || discard_all);
        let state = TaskState {
            task_id: spec.id.clone(),
            task_name: spec.name.clone(),
            alloc_id: spec.alloc_id.clone(),
            container_id: container_id.to_owned(),
            container_name: spec.container_name(),
            image: spec.config.image.clone(),
            image_id,
            stdout_path: spec.stdout_path.clone(),
            stderr_path: spec.stderr_path.clone(),
            log_collection,
            tty: spec.config.tty,
            started_at_unix: now_unix(),
            adopted,
            network: network.clone(),
            log_position_path: spec.task_dir().map(|d| d.join(POSITION_FILE)),
        };
        let driver_state = state.encode()?;
        // A container this call created is forwarded from its first line; an adopted one from
        // where an earlier forwarder of it stopped, or from now, never its whole history again.
        let from = if adopted {
            StartFrom::SavedOrNow
        } else {
            StartFrom::Beginning
        };
        let handle = self.track(state, from);
        Ok(StartedTask {
            handle,
            driver_state,
            network,
        })
    }

    /// Creates, watches and stores a handle; `from` is where log forwarding starts.
    fn track(&self, state: TaskState, from: StartFrom) -> Arc<TaskHandle> {
        let handle = TaskHandle::new(state);
        handle.spawn_exit_watcher(self.docker.clone());
        let st = handle.state();
        if st.log_collection {
            let job = LogForwarding {
                container_id: st.container_id.clone(),
                stdout: st.stdout_path.clone(),
                stderr: st.stderr_path.clone(),
                position_file: st.log_position_path.clone(),
                from,
            };
            handle.set_log_forwarder(tokio::spawn(forward_logs(self.docker.clone(), job)));
        }
        self.store.insert_if_absent(handle)
    }

    /// Re-attaches to the task described by `driver_state`: re-tracks it, resumes exit watching
    /// and log forwarding after the last delivered message (also for a container that exited
    /// meanwhile, so its last output is delivered). Idempotent: a tracked task is returned as
    /// is.
    pub async fn recover(&self, driver_state: &[u8]) -> Result<Arc<TaskHandle>, TaskError> {
        let state = TaskState::decode(driver_state)?;
        if let Some(h) = self.store.get(&state.task_id) {
            return Ok(h);
        }
        // Tracked from here (the reservation until the handle is), after any action a sweep
        // had begun on it: the inspection below sees what that action left.
        let _reservation = self.store.reserve(&state.container_id);
        self.store.action_ended(&state.container_id).await;
        let inspected = self
            .docker
            .inspect_container(&state.container_id)
            .await
            .map_err(|source| TaskError::Inspect {
                id: state.container_id.clone(),
                source,
            })?;
        self.track_joined_network(&state.alloc_id, &inspected).await;
        let mut state = state;
        // Re-count the image the container really runs (reference counts live in memory).
        if let Some(image_id) = inspected.image.clone().filter(|i| !i.is_empty()) {
            state.image_id = image_id;
        }
        self.images.acquire(&state.image_id, &state.task_id);
        state.log_collection &= !self.settings.disable_log_collection;
        Ok(self.track(state, StartFrom::SavedOrNow))
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

/// Nomad's `DriverNetwork`: always reported, with `port_map`; the address of the first
/// network (by name) that has one, its global IPv6 address with `advertise_ipv6_address`;
/// advertised automatically unless that network is Docker's default `bridge` (or `nat`).
fn driver_network(spec: &TaskSpec, i: &ContainerInspectResponse) -> Option<DriverNetwork> {
    let mut network = DriverNetwork {
        port_map: spec.config.port_map.clone(),
        ..DriverNetwork::default()
    };
    let Some(networks) = i
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
    else {
        return Some(network);
    };
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    if names.len() > 1 {
        tracing::warn!(task_id = spec.id, networks = ?names, "container has more than one network; reporting the first with an address");
    }
    let found = names.into_iter().find(|name| {
        networks[*name]
            .ip_address
            .as_deref()
            .is_some_and(|ip| !ip.is_empty())
    });
    if let Some(name) = found {
        let endpoint = &networks[name];
        if spec.config.advertise_ipv6_address {
            network.ip = endpoint.global_ipv6_address.clone().unwrap_or_default();
            network.auto_advertise = true;
        } else {
            network.ip = endpoint.ip_address.clone().unwrap_or_default();
        }
        if name != "bridge" && name != "nat" {
            network.auto_advertise = true;
        }
    }
    Some(network)
}
