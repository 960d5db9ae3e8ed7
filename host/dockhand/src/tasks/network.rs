//! Group networking: one sandbox (pause) container per allocation owns the network namespace
//! the allocation's tasks join with `container:<sandbox id>`, as Nomad's docker driver does.
//!
//! Design decisions:
//!
//! * **Nomad's shape.** The sandbox is named `nomad_init_<alloc id>`, carries the
//!   `com.hashicorp.nomad.alloc_id` label, runs the configured `infra_image` with its own
//!   command, network mode `none` (a namespace with only loopback, which the client's CNI
//!   set-up then fills) and restart policy `unless-stopped`, and takes the group's hostname.
//! * **Node and driver labels.** Unlike Nomad's, a sandbox also carries dockhand's driver
//!   label (`dockhand.driver`) and `com.hashicorp.nomad.node_id` once the plugin knows this
//!   node's id (learnt from the first task it starts or recovers, and kept in
//!   `<data_dir>/node.json` across restarts), so that on a daemon shared by several nodes the
//!   reconciler of another node refuses to claim it. A sandbox created before any task ever
//!   ran with this data dir has no node label; unless `dockhand.daemon = "exclusive"`, no
//!   reconciler claims such a container (the driver label without a node label is refused).
//! * **Re-adoption before the image.** A running sandbox of the allocation (a plugin or client
//!   restart) is adopted — tracked again and reported with `created = false` — without
//!   touching the image, so re-adoption never depends on a registry. Only a new sandbox needs
//!   the image (present locally, or pulled within `infra_image_pull_timeout`).
//! * **No adopting what a sweep is killing.** Until CreateNetwork tracks it, a sandbox left
//!   from before a restart is an orphan to the reconciler. As StartTask does with a container
//!   it adopts, CreateNetwork reserves the sandbox in the tracked set before it looks at it
//!   again by id: a sweep that has not begun acting on it then leaves it alone, and one already
//!   stopping it is waited for. A sandbox that action stopped is removed, one it removed is
//!   gone, and either way a new sandbox replaces it (`created = true`). The reservation lasts
//!   until the sandbox is tracked.
//! * **The namespace path** is `/proc/<sandbox pid>/ns/net`. Docker's `SandboxKey` (what the
//!   upstream driver reports) lives in the daemon's mount namespace, which need not be the
//!   plugin's; the pid path is valid wherever the daemon's processes are visible.
//! * **Tracked set.** A sandbox is tracked from the moment it is created or adopted until
//!   DestroyNetwork begins (forgotten first, so a failed removal leaves it to the reconciler).
//!   A plugin restarted under a running agent gets RecoverTask, not CreateNetwork, for its
//!   allocations, and RecoverTask only comes for tasks that run: so, as the upstream driver
//!   does, the plugin tracks every running `nomad_init_*` container when it starts
//!   ([`TaskEngine::track_running_sandboxes`]) — during a restart backoff, a prestart phase or
//!   with only non-docker tasks in the namespace the sandbox is still in use. Only a sandbox
//!   whose node label names another node is left out (tracking never kills; leaving one out
//!   may). A sandbox of an allocation that ended while the plugin was down is then kept until
//!   its DestroyNetwork.
//! * **Joined containers.** Every container a task of the allocation joins with
//!   `network_mode = "container:…"` (StartTask, RecoverTask) is tracked as well, by full id, in
//!   a set per allocation: a task joining another task's container never pushes the sandbox
//!   out of the tracked set.
//! * **One call per allocation at a time.** CreateNetwork and DestroyNetwork of one
//!   allocation run one after the other ([`AllocLocks`]), so no call finds another's sandbox
//!   half made: a second CreateNetwork waits for the first and adopts its sandbox. A sandbox
//!   created and never started that a call does find is left from a call whose client went
//!   away before the start; it is removed and replaced like a stopped one.
//! * **When in doubt, don't kill.** A container holding the sandbox name without this
//!   allocation's label is never removed or adopted; DestroyNetwork refuses to remove a
//!   container without this allocation's label; "already gone" is success.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::docker::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use crate::docker::{ContainerFilter, DockerError};

use super::container::identity_labels;
use super::image::{ImageRequest, Silent, ensure_image};
use super::store::Reservation;
use super::{LABEL_ALLOC_ID, LABEL_NODE_ID, TaskEngine, TaskError};

/// Prefix of a sandbox container's name; the allocation id follows.
pub const SANDBOX_NAME_PREFIX: &str = "nomad_init_";

/// Longest allocation id accepted (Nomad's are 36-character UUIDs).
const MAX_ALLOC_ID_LEN: usize = 128;

/// The sandbox container name of `alloc_id`.
pub fn sandbox_name(alloc_id: &str) -> String {
    format!("{SANDBOX_NAME_PREFIX}{alloc_id}")
}

/// A running sandbox container of an allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Allocation id.
    pub alloc_id: String,
    /// The sandbox container's id.
    pub container_id: String,
    /// Path of its network namespace (`/proc/<pid>/ns/net`).
    pub netns_path: String,
    /// The group network hostname, when one was requested.
    pub hostname: Option<String>,
    /// True when this call created it, false when an existing sandbox was adopted.
    pub created: bool,
}

/// A running sandbox found for re-adoption, reserved in the tracked set until
/// [`TaskEngine::adopt`] tracks it.
#[derive(Debug)]
struct Adoptable {
    /// The sandbox as inspected by id once any sweep's action on it had ended.
    inspected: ContainerInspectResponse,
    reservation: Reservation,
}

/// Why a group network could not be created or destroyed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The allocation id cannot be part of a container name.
    #[error("invalid allocation id {0:?}: expected 1-128 characters of [A-Za-z0-9_.-]")]
    InvalidAllocId(String),
    /// The infra image is neither present nor pullable.
    #[error("infra_image {image:?} is not available locally and could not be pulled")]
    Image {
        /// The configured `infra_image`.
        image: String,
        /// Cause.
        #[source]
        source: TaskError,
    },
    /// The sandbox name is held by a container that is not this allocation's sandbox.
    #[error(
        "container name {name:?} is used by container {id}, which is not labelled for allocation {alloc_id}"
    )]
    NameTaken {
        /// The sandbox name.
        name: String,
        /// The container holding it.
        id: String,
        /// The allocation.
        alloc_id: String,
    },
    /// A Docker call on the sandbox failed.
    #[error("failed to {action} sandbox container {target}")]
    Docker {
        /// What was being done (`inspect`, `create`, `start`, `remove`).
        action: &'static str,
        /// Container name or id.
        target: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// The sandbox stopped right after it was started.
    #[error(
        "sandbox container {id} is not running (does infra_image {image:?} run a long-lived command?)"
    )]
    NotRunning {
        /// Container id.
        id: String,
        /// The image.
        image: String,
    },
    /// DestroyNetwork named a container that is not this allocation's sandbox.
    #[error("container {id} is not the sandbox of allocation {alloc_id}; not removing it")]
    NotOurs {
        /// Container id from the isolation spec.
        id: String,
        /// The allocation.
        alloc_id: String,
    },
}

impl NetworkError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Docker { source, .. } => source.is_transient(),
            Self::Image { source, .. } => source.is_recoverable(),
            _ => false,
        }
    }
}

fn validate_alloc_id(alloc_id: &str) -> Result<(), NetworkError> {
    let ok = !alloc_id.is_empty()
        && alloc_id.len() <= MAX_ALLOC_ID_LEN
        && alloc_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidAllocId(alloc_id.to_owned()))
    }
}

fn is_running(i: &ContainerInspectResponse) -> bool {
    i.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

/// Whether the container carries this allocation's label.
fn labelled_for(i: &ContainerInspectResponse, alloc_id: &str) -> bool {
    i.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_ALLOC_ID))
        .is_some_and(|v| v == alloc_id)
}

/// One lock per allocation with a network call under way: CreateNetwork and DestroyNetwork of
/// one allocation run one after the other. An entry lives while a call holds or awaits it.
#[derive(Debug, Clone, Default)]
pub(super) struct AllocLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

/// The turn of one call; dropping it (the call ended, or was cancelled) passes the turn on.
struct AllocTurn {
    locks: AllocLocks,
    alloc_id: String,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl AllocLocks {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the turn of `alloc_id`.
    async fn lock(&self, alloc_id: &str) -> AllocTurn {
        let lock = Arc::clone(self.entries().entry(alloc_id.to_owned()).or_default());
        AllocTurn {
            locks: self.clone(),
            alloc_id: alloc_id.to_owned(),
            turn: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for AllocTurn {
    fn drop(&mut self) {
        drop(self.turn.take());
        let mut entries = self.locks.entries();
        // Only this map holds it: no call holds or awaits the turn.
        if entries
            .get(&self.alloc_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            entries.remove(&self.alloc_id);
        }
    }
}

fn netns_path(i: &ContainerInspectResponse) -> Option<String> {
    let pid = i.state.as_ref()?.pid.filter(|p| *p > 0)?;
    Some(format!("/proc/{pid}/ns/net"))
}

impl TaskEngine {
    /// Creates (or re-adopts) the sandbox container of `alloc_id` and tracks it. `hostname`
    /// may be empty. `node_id`, when known (non-empty), labels a new sandbox with this node,
    /// so that the reconcilers of other nodes sharing the daemon leave it alone.
    pub async fn create_network(
        &self,
        alloc_id: &str,
        hostname: &str,
        node_id: &str,
    ) -> Result<Sandbox, NetworkError> {
        validate_alloc_id(alloc_id)?;
        let _one_call = self.network_calls.lock(alloc_id).await;
        let name = sandbox_name(alloc_id);
        if let Some(existing) = self.existing_sandbox(alloc_id, &name).await? {
            return self.adopt(alloc_id, hostname, existing);
        }

        let image = self.settings.infra_image.clone();
        // As in Nomad: only the agent's credential sources, and a failed lookup pulls
        // anonymously.
        let request = ImageRequest {
            image: &image,
            force_pull: false,
            load: None,
            auth: None,
            auth_sources: &self.settings.auth,
            auth_soft_fail: true,
            pull_timeout: self.settings.infra_image_pull_timeout,
            activity_timeout: self.settings.pull_activity_timeout,
            progress_interval: self.settings.pull_progress_interval,
        };
        let image_id = ensure_image(self.docker.as_ref(), &request, &Silent)
            .await
            .map_err(|source| NetworkError::Image {
                image: image.clone(),
                source,
            })?;

        let body = sandbox_config(alloc_id, hostname, node_id, &image);
        let create_err = |source: DockerError| NetworkError::Docker {
            action: "create",
            target: name.clone(),
            source,
        };
        let id = match self.docker.create_container(&name, body.clone()).await {
            Ok(id) => id,
            // A concurrent CreateNetwork won the name: adopt its sandbox. One that is gone, or
            // stopped and now removed, freed the name again: one more attempt.
            Err(e) if e.is_conflict() => match self.existing_sandbox(alloc_id, &name).await? {
                Some(existing) => return self.adopt(alloc_id, hostname, existing),
                None => self
                    .docker
                    .create_container(&name, body)
                    .await
                    .map_err(create_err)?,
            },
            Err(source) => return Err(create_err(source)),
        };
        // Tracked before it runs: from now on it is ours until DestroyNetwork.
        self.store.track_sandbox(alloc_id, &id);
        match self.start_sandbox(&id, &image).await {
            Ok(netns_path) => {
                self.images.acquire(&image_id, alloc_id);
                tracing::info!(
                    alloc_id,
                    container_id = id,
                    netns = netns_path,
                    "created group network sandbox"
                );
                Ok(Sandbox {
                    alloc_id: alloc_id.to_owned(),
                    container_id: id,
                    netns_path,
                    hostname: (!hostname.is_empty()).then(|| hostname.to_owned()),
                    created: true,
                })
            }
            Err(err) => {
                self.store.untrack_sandbox(alloc_id, &id);
                if let Err(e) = self.docker.remove_container(&id, true).await {
                    tracing::warn!(alloc_id, container_id = id, error = %e, "failed to remove sandbox container after a failed start");
                }
                Err(err)
            }
        }
    }

    /// Stops tracking the network containers of `alloc_id` and force-removes its sandbox:
    /// `container_id` when the isolation spec names it, else the one found by name. A sandbox
    /// that is already gone is success.
    pub async fn destroy_network(
        &self,
        alloc_id: &str,
        container_id: Option<&str>,
    ) -> Result<(), NetworkError> {
        validate_alloc_id(alloc_id)?;
        let _one_call = self.network_calls.lock(alloc_id).await;
        self.store.forget_sandbox(alloc_id);
        // The image reference goes with the tracking, whatever happens to the container.
        self.images.release_caller(alloc_id);
        let target = container_id
            .filter(|id| !id.is_empty())
            .map_or_else(|| sandbox_name(alloc_id), str::to_owned);
        let inspected = match self.docker.inspect_container(&target).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                tracing::debug!(alloc_id, container_id = target, "sandbox already gone");
                return Ok(());
            }
            Err(source) => {
                return Err(NetworkError::Docker {
                    action: "inspect",
                    target,
                    source,
                });
            }
        };
        let id = inspected.id.clone().unwrap_or_else(|| target.clone());
        if !labelled_for(&inspected, alloc_id) {
            return Err(NetworkError::NotOurs {
                id,
                alloc_id: alloc_id.to_owned(),
            });
        }
        match self.docker.remove_container(&id, true).await {
            Ok(()) => {
                tracing::info!(alloc_id, container_id = id, "removed group network sandbox");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(source) => Err(NetworkError::Docker {
                action: "remove",
                target: id,
                source,
            }),
        }
    }

    /// Tracks the container `task_container` joins (network mode `container:<ref>`) as a
    /// network container of `alloc_id`, by full id: a started task's, and a recovered task's
    /// after a plugin restart (Nomad re-attaches tasks with RecoverTask and need not call
    /// CreateNetwork again). Any joined container is tracked, whatever its labels: a live
    /// task's network depends on it (tracking never kills). When Docker cannot resolve the
    /// reference it is tracked as written (when in doubt, don't kill).
    pub(crate) async fn track_joined_network(
        &self,
        alloc_id: &str,
        task_container: &ContainerInspectResponse,
    ) {
        let Some(joined) = task_container
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            .and_then(|m| m.strip_prefix("container:"))
            .filter(|j| !j.is_empty())
        else {
            return;
        };
        match self.docker.inspect_container(joined).await {
            Ok(i) => {
                if labelled_for(&i, alloc_id)
                    && let Some(image_id) = i.image.as_deref()
                {
                    self.images.acquire(image_id, alloc_id);
                }
                let id = i.id.unwrap_or_else(|| joined.to_owned());
                tracing::info!(
                    alloc_id,
                    container_id = id,
                    "tracking the network container a task joins"
                );
                self.store.track_sandbox(alloc_id, &id);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(alloc_id, container_id = joined, error = %e, "could not inspect the network container a task joins; tracking it as named");
                self.store.track_sandbox(alloc_id, joined);
            }
        }
    }

    /// Tracks every running sandbox (`nomad_init_<alloc id>`) except those labelled for a
    /// node other than `node_id` (all of them while `node_id` is empty), until their
    /// DestroyNetwork. Called once when the plugin starts; returns how many it tracked.
    pub async fn track_running_sandboxes(&self, node_id: &str) -> Result<usize, NetworkError> {
        let filter = ContainerFilter::running().with_name(SANDBOX_NAME_PREFIX);
        let listed = self
            .docker
            .list_containers(&filter)
            .await
            .map_err(|source| NetworkError::Docker {
                action: "list",
                target: format!("{SANDBOX_NAME_PREFIX}*"),
                source,
            })?;
        let mut tracked = 0;
        for summary in &listed {
            let Some(id) = summary.id.as_deref().filter(|id| !id.is_empty()) else {
                continue;
            };
            let Some(alloc_from_name) = summary
                .names
                .iter()
                .flatten()
                .find_map(|n| n.trim_start_matches('/').strip_prefix(SANDBOX_NAME_PREFIX))
            else {
                // The name filter matches substrings: `x_nomad_init_y` is no sandbox.
                continue;
            };
            let labels = summary.labels.as_ref();
            let node = labels.and_then(|l| l.get(LABEL_NODE_ID));
            if !node_id.is_empty() && node.is_some_and(|n| !n.is_empty() && n != node_id) {
                tracing::debug!(container_id = id, node = ?node, "sandbox of another node; not tracked");
                continue;
            }
            let alloc_id = labels
                .and_then(|l| l.get(LABEL_ALLOC_ID))
                .filter(|a| !a.is_empty())
                .map_or(alloc_from_name, String::as_str);
            self.store.track_sandbox(alloc_id, id);
            tracked += 1;
            tracing::info!(
                alloc_id,
                container_id = id,
                "tracking running group network sandbox found at start"
            );
        }
        Ok(tracked)
    }

    /// The container holding the sandbox name, if it is running and labelled for `alloc_id`,
    /// reserved for adoption. A stopped (or never started) one with the label is removed (a
    /// new sandbox replaces it); one without the label is an error.
    ///
    /// A labelled one is reserved **before** it is inspected again, by id: a sweep that has
    /// not begun an action on it sees it tracked, and one whose action has begun is waited for
    /// ([`TaskStore::action_ended`](super::TaskStore::action_ended)), so the second
    /// inspection finds the sandbox as the action left it. Stopped or gone by then, it is
    /// treated as absent. The reservation lasts until it is tracked or removed.
    async fn existing_sandbox(
        &self,
        alloc_id: &str,
        name: &str,
    ) -> Result<Option<Adoptable>, NetworkError> {
        let inspected = match self.docker.inspect_container(name).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(source) => {
                return Err(NetworkError::Docker {
                    action: "inspect",
                    target: name.to_owned(),
                    source,
                });
            }
        };
        let id = inspected.id.clone().unwrap_or_default();
        if !labelled_for(&inspected, alloc_id) {
            return Err(NetworkError::NameTaken {
                name: name.to_owned(),
                id,
                alloc_id: alloc_id.to_owned(),
            });
        }
        // Reserved from here until it is tracked or removed: no sweep begins an action on it,
        // and one whose action has begun is waited for, so the inspection by id finds it as
        // that action left it.
        let reservation = self.store.reserve(&id);
        self.store.action_ended(&id).await;
        match self.docker.inspect_container(&id).await {
            Ok(again) if is_running(&again) => {
                return Ok(Some(Adoptable {
                    inspected: again,
                    reservation,
                }));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                self.store.untrack_sandbox(alloc_id, &id);
                return Ok(None);
            }
            Err(source) => {
                return Err(NetworkError::Docker {
                    action: "inspect",
                    target: id,
                    source,
                });
            }
        }
        tracing::info!(
            alloc_id,
            container_id = id,
            "removing stopped sandbox container before creating a new one"
        );
        let removed = match self.docker.remove_container(&id, true).await {
            Ok(()) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(source) => Err(NetworkError::Docker {
                action: "remove",
                target: id.clone(),
                source,
            }),
        };
        if removed.is_ok() {
            self.store.untrack_sandbox(alloc_id, &id);
        }
        drop(reservation);
        removed
    }

    /// Tracks a reserved running sandbox, then lets its reservation go.
    fn adopt(
        &self,
        alloc_id: &str,
        hostname: &str,
        existing: Adoptable,
    ) -> Result<Sandbox, NetworkError> {
        let Adoptable {
            inspected: existing,
            reservation,
        } = existing;
        let id = existing.id.clone().unwrap_or_default();
        let Some(netns_path) = netns_path(&existing) else {
            return Err(NetworkError::NotRunning {
                id,
                image: self.settings.infra_image.clone(),
            });
        };
        self.store.track_sandbox(alloc_id, &id);
        drop(reservation);
        if let Some(image_id) = existing.image.as_deref() {
            self.images.acquire(image_id, alloc_id);
        }
        tracing::info!(
            alloc_id,
            container_id = id,
            "adopted running group network sandbox"
        );
        Ok(Sandbox {
            alloc_id: alloc_id.to_owned(),
            container_id: id,
            netns_path,
            hostname: (!hostname.is_empty()).then(|| hostname.to_owned()),
            created: false,
        })
    }

    /// Starts the new sandbox and returns its namespace path.
    async fn start_sandbox(&self, id: &str, image: &str) -> Result<String, NetworkError> {
        let docker_err = |action, source| NetworkError::Docker {
            action,
            target: id.to_owned(),
            source,
        };
        self.docker
            .start_container(id)
            .await
            .map_err(|e| docker_err("start", e))?;
        let inspected = self
            .docker
            .inspect_container(id)
            .await
            .map_err(|e| docker_err("inspect", e))?;
        match netns_path(&inspected).filter(|_| is_running(&inspected)) {
            Some(path) => Ok(path),
            None => Err(NetworkError::NotRunning {
                id: id.to_owned(),
                image: image.to_owned(),
            }),
        }
    }
}

/// The create body of the sandbox of `alloc_id`: Nomad's alloc label, dockhand's driver label,
/// and this node's id label when it is known (Nomad sets neither on sandboxes).
fn sandbox_config(
    alloc_id: &str,
    hostname: &str,
    node_id: &str,
    image: &str,
) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = identity_labels(node_id).into_iter().collect();
    labels.insert(LABEL_ALLOC_ID.to_owned(), alloc_id.to_owned());
    ContainerCreateBody {
        image: Some(image.to_owned()),
        hostname: (!hostname.is_empty()).then(|| hostname.to_owned()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::container::{DRIVER_LABEL_VALUE, LABEL_DRIVER, LABEL_NODE_ID};

    #[test]
    fn alloc_ids_must_fit_a_container_name() {
        assert!(validate_alloc_id("8a1f0c3e-1b2c-4d5e-8f90-0123456789ab").is_ok());
        for bad in ["", "a/b", "a b", "../x", &"a".repeat(MAX_ALLOC_ID_LEN + 1)] {
            let err = validate_alloc_id(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid allocation id"), "{err}");
        }
    }

    #[test]
    fn sandbox_is_created_the_way_nomad_creates_it() {
        let body = sandbox_config("a1", "web", "", "pause:1");
        assert_eq!(sandbox_name("a1"), "nomad_init_a1");
        assert_eq!(body.image.as_deref(), Some("pause:1"));
        assert_eq!(body.hostname.as_deref(), Some("web"));
        assert_eq!(
            body.labels,
            Some(HashMap::from([
                (LABEL_ALLOC_ID.to_owned(), "a1".to_owned()),
                (LABEL_DRIVER.to_owned(), DRIVER_LABEL_VALUE.to_owned()),
            ]))
        );
        let host = body.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(
            host.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        assert_eq!(sandbox_config("a1", "", "", "pause:1").hostname, None);
        // Once the node id is known, it labels the sandbox too.
        let labelled = sandbox_config("a1", "", "node-9", "pause:1").labels;
        assert_eq!(
            labelled.as_ref().and_then(|l| l.get(LABEL_NODE_ID)),
            Some(&"node-9".to_owned())
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = NetworkError::NameTaken {
            name: "nomad_init_a1".to_owned(),
            id: "abc".to_owned(),
            alloc_id: "a1".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            "container name \"nomad_init_a1\" is used by container abc, which is not labelled for allocation a1"
        );
    }
}
