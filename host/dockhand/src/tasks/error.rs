//! [`TaskError`]: why a task operation failed, and whether Nomad may retry it.

use std::path::PathBuf;
use std::time::Duration;

use crate::docker::DockerError;

use super::{PullError, StateError};

/// Why a task operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// StartTask for a task id that is already tracked.
    #[error("task with ID {0:?} already started")]
    AlreadyStarted(String),
    /// No tracked task with this id.
    #[error("task not found for given id: {0}")]
    NotFound(String),
    /// The spec cannot be turned into a container.
    #[error("invalid task configuration: {0}")]
    InvalidSpec(String),
    /// GPUs were assigned but the daemon lacks the GPU runtime.
    #[error("requested docker runtime {0:?} was not found")]
    GpuRuntimeMissing(String),
    /// GPUs were assigned and the task asked for another runtime.
    #[error(
        "conflicting runtime requests: gpu runtime {gpu:?} conflicts with task runtime {task:?}"
    )]
    RuntimeConflict {
        /// The GPU runtime.
        gpu: String,
        /// The task's runtime.
        task: String,
    },
    /// The runtime is not in `allow_runtimes`.
    #[error("requested runtime {0:?} is not allowed")]
    RuntimeNotAllowed(String),
    /// Could not learn the daemon's API version.
    #[error("failed to read the Docker Engine version")]
    VersionLookup(#[source] DockerError),
    /// Could not learn the daemon's runtimes.
    #[error("failed to list docker runtimes")]
    RuntimeLookup(#[source] DockerError),
    /// The image could not be pulled.
    #[error("Failed to pull `{image}`")]
    Pull {
        /// Image reference.
        image: String,
        /// Cause.
        #[source]
        source: PullError,
    },
    /// No credentials could be found for the pull (and `auth_soft_fail` is off).
    #[error("Failed to find docker auth for repo {repo:?}")]
    Auth {
        /// Repository.
        repo: String,
        /// Cause.
        #[source]
        source: super::auth::AuthError,
    },
    /// The image tarball could not be loaded.
    #[error("failed to load image from {}", path.display())]
    Load {
        /// Tarball path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// The image could not be inspected.
    #[error("failed to inspect image {image:?}")]
    ImageInspect {
        /// Image reference.
        image: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// The container could not be created.
    #[error("failed to create container {name:?}")]
    Create {
        /// Container name.
        name: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// The container name belongs to a running container of another task.
    #[error(
        "container name {name:?} is used by running container {id} that does not belong to this task"
    )]
    NameTaken {
        /// Container name.
        name: String,
        /// The other container.
        id: String,
    },
    /// A dead container holding our name could not be removed.
    #[error("Failed to purge container {id}")]
    Purge {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// The name stayed taken after all attempts.
    #[error("container name {name:?} still in use after {attempts} attempts")]
    NameConflictPersisted {
        /// Container name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The container could not be started.
    #[error("failed to start container {id}")]
    Start {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// Inspecting the task's container failed.
    #[error("failed to inspect container for id {id}")]
    Inspect {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// DestroyTask without force on a running container.
    #[error("must call StopTask for the given task before Destroy or set force to true")]
    StillRunning,
    /// Stopping failed.
    #[error("Failed to stop container {id}")]
    Stop {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// Signalling failed.
    #[error("Failed to signal container {id}")]
    Signal {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// Removing failed.
    #[error("failed to remove container {id}")]
    Remove {
        /// Container id.
        id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// An exec failed.
    #[error("exec in container {container_id} failed")]
    Exec {
        /// Container id.
        container_id: String,
        /// Cause.
        #[source]
        source: DockerError,
    },
    /// A buffered exec exceeded its timeout.
    #[error("exec did not finish within {0:?}")]
    ExecTimeout(Duration),
    /// Stats were requested for a stopped task.
    #[error("container stopped")]
    ContainerStopped,
    /// driver_state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl TaskError {
    /// Whether Nomad may retry the operation (StartTask's `RecoverableError`).
    pub fn is_recoverable(&self) -> bool {
        match self {
            Self::Pull { source, .. } => source.is_recoverable(),
            Self::Load { source, .. }
            | Self::ImageInspect { source, .. }
            | Self::Inspect { source, .. }
            | Self::Purge { source, .. }
            | Self::RuntimeLookup(source)
            | Self::VersionLookup(source)
            | Self::Start { source, .. } => source.is_transient(),
            Self::Create { source, .. } => source.is_transient() || source.is_not_found(),
            Self::NameConflictPersisted { .. } => true,
            _ => false,
        }
    }
}
