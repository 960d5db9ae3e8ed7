//! Docker access: the narrow set of Engine API calls dockhand uses, behind one trait.
//!
//! Everything else in the driver (fingerprint, task engine, reconciler, admin) talks to Docker
//! only through [`DockerApi`], injected as `Arc<dyn DockerApi>`. [`BollardDocker`] is the real
//! implementation on top of `bollard`; another implementation (a wedged-daemon simulator, a
//! recording proxy) can be dropped in without touching the callers.
//!
//! Design decisions:
//! * **Every call has its own deadline.** bollard's client-wide HTTP timeout only bounds the time
//!   to the response headers and is the same for all calls, which is how upstream Nomad ended up
//!   cutting long stops and pulls at 5 minutes. [`BollardDocker`] therefore disables bollard's
//!   timeout and wraps each call in its own `tokio::time::timeout` from [`DockerTimeouts`]. A stop
//!   is bounded by *its grace period plus a margin*, never by a fixed client timeout; waiting for
//!   a container to exit has no deadline at all.
//! * **Errors are classified** ([`DockerError`]) so callers can decide: not found, conflict,
//!   timeout, daemon unavailable, or any other API status. The reconciler's rule "any error on
//!   the way to a destructive action means no action" only needs `Result::is_err`.
//! * **The client is built lazily.** A daemon that is down when the plugin starts (the socket
//!   file not even present) must not make the driver unusable: each call retries building and
//!   version-negotiating the client until it succeeds once.
//! * The wire models are bollard's (re-exported in [`models`]); they are plain data.

mod classify;
mod client;
mod endpoint;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

pub use client::BollardDocker;
pub use endpoint::{
    DEFAULT_ENDPOINT, DockerConnection, DockerTimeouts, ResolvedEndpoint, TlsFiles,
};

/// Docker Engine API models used in [`DockerApi`] signatures.
pub mod models {
    pub use bollard::models::{
        ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
        ContainerStatsResponse, ContainerSummary, DeviceMapping, EndpointSettings,
        ExecInspectResponse, HealthConfig, HostConfig, HostConfigLogConfig, ImageInspect, Mount,
        MountPoint, MountTmpfsOptions, MountType, NetworkInspect, PortBinding, ResourcesUlimits,
        RestartPolicy, RestartPolicyNameEnum, SystemInfo, SystemVersion,
    };
    pub use bollard::models::{
        EndpointIpamConfig, HostConfigCgroupnsModeEnum, MountBindOptions,
        MountBindOptionsPropagationEnum, MountVolumeOptions, MountVolumeOptionsDriverConfig,
        NetworkingConfig,
    };
}

use models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStatsResponse, ContainerSummary,
    ExecInspectResponse, ImageInspect, NetworkInspect, SystemInfo, SystemVersion,
};

/// A classified failure of one Docker call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The object (container, image, exec, network) does not exist (HTTP 404).
    #[error("not found: {message}")]
    NotFound {
        /// Daemon message.
        message: String,
    },
    /// The request conflicts with the object's state, e.g. a container name in use (HTTP 409).
    #[error("conflict: {message}")]
    Conflict {
        /// Daemon message.
        message: String,
    },
    /// The call did not finish within its deadline.
    #[error("docker call `{operation}` timed out after {after:?}")]
    Timeout {
        /// Which call.
        operation: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The daemon could not be reached (socket missing, connection refused or reset).
    #[error("docker daemon unavailable: {message}")]
    Unavailable {
        /// Transport error text.
        message: String,
    },
    /// Any other API error status.
    #[error("docker API error (status {status}): {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Daemon message.
        message: String,
    },
    /// An error reported inside a streamed response (pull, load, import).
    #[error("docker stream error: {message}")]
    Stream {
        /// Daemon message.
        message: String,
    },
    /// The response could not be decoded.
    #[error("failed to decode docker response: {message}")]
    Decode {
        /// Decoder message.
        message: String,
    },
    /// The configured endpoint or TLS files are unusable.
    #[error("invalid docker endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local I/O error (e.g. reading an image tarball).
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error text.
        message: String,
    },
}

impl DockerError {
    /// True for `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for `Conflict`.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when retrying later may succeed (timeouts, unreachable daemon, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unavailable { .. } => true,
            Self::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Which containers [`DockerApi::list_containers`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// Include stopped containers (`docker ps -a`).
    pub all: bool,
    /// Label filters, each `key` or `key=value`; all must match.
    pub labels: Vec<String>,
    /// Name filters (substring match, Docker semantics).
    pub names: Vec<String>,
}

impl ContainerFilter {
    /// Running containers only, no filter: what the reconciler lists.
    pub fn running() -> Self {
        Self::default()
    }

    /// All containers, running or not.
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Adds a label filter.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Adds a name filter.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }
}

/// Which of a container's output streams a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (also TTY console output).
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of container or exec output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// Raw bytes.
    pub data: Bytes,
}

/// Options for [`DockerApi::logs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsRequest {
    /// Keep the stream open for new output.
    pub follow: bool,
    /// Only output since this Unix time (seconds); 0 = from the start.
    pub since_unix: i64,
    /// Prefix every log message with its RFC 3339 timestamp and a space.
    pub timestamps: bool,
}

/// What to run in [`DockerApi::create_exec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Allocate a TTY.
    pub tty: bool,
    /// Attach stdin.
    pub attach_stdin: bool,
    /// Extra environment, `K=V`.
    pub env: Vec<String>,
}

/// An attached exec: its output and its stdin.
pub struct ExecIo {
    /// Output chunks; with a TTY everything arrives as [`OutputStream::Stdout`].
    pub output: BoxStream<'static, Result<OutputChunk, DockerError>>,
    /// The exec's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecIo").finish_non_exhaustive()
    }
}

/// Registry credentials for a pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: Option<String>,
    /// Password or token.
    pub password: Option<String>,
    /// Registry host.
    pub server_address: Option<String>,
    /// OAuth refresh token from a Docker config file's `identitytoken`.
    pub identity_token: Option<String>,
    /// Bearer token from a Docker config file's `registrytoken`.
    pub registry_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("server_address", &self.server_address)
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "registry_token",
                &self.registry_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One message of a pull's progress stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullMessage {
    /// Layer id, when the message is about a layer.
    pub layer: Option<String>,
    /// Status text (`Downloading`, `Pull complete`, …).
    pub status: String,
    /// Bytes done for this layer, when reported.
    pub current: Option<i64>,
    /// Layer size, when reported.
    pub total: Option<i64>,
}

/// An image import (`docker import`): a root filesystem tarball becomes an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    /// Repository, e.g. `dockhand-test/busybox`.
    pub repo: String,
    /// Tag, e.g. `1`.
    pub tag: String,
    /// Dockerfile instructions applied to the config, e.g. `CMD ["/bin/sh"]`.
    pub changes: Vec<String>,
}

/// The Docker Engine calls dockhand makes. See the module docs for the timeout rules.
#[async_trait]
pub trait DockerApi: Send + Sync + std::fmt::Debug {
    /// `GET /_ping`.
    async fn ping(&self) -> Result<(), DockerError>;
    /// `GET /version`.
    async fn version(&self) -> Result<SystemVersion, DockerError>;
    /// `GET /info`.
    async fn info(&self) -> Result<SystemInfo, DockerError>;
    /// `GET /containers/json` with `filter`.
    async fn list_containers(
        &self,
        filter: &ContainerFilter,
    ) -> Result<Vec<ContainerSummary>, DockerError>;
    /// `GET /containers/{id}/json`; `id` may also be a name.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, DockerError>;
    /// `POST /containers/create?name=…`; returns the new container id.
    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError>;
    /// `POST /containers/{id}/start`. Already started counts as success.
    async fn start_container(&self, id: &str) -> Result<(), DockerError>;
    /// `POST /containers/{id}/stop?t=…`: the image's stop signal, then SIGKILL after `grace`.
    /// Already stopped counts as success. The call's deadline is `grace` plus the stop margin.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), DockerError>;
    /// `POST /containers/{id}/kill?signal=…`.
    async fn kill_container(&self, id: &str, signal: &str) -> Result<(), DockerError>;
    /// `DELETE /containers/{id}`, with `force` killing a running container first.
    async fn remove_container(&self, id: &str, force: bool) -> Result<(), DockerError>;
    /// `POST /containers/{id}/wait?condition=not-running`: the exit status. No deadline.
    async fn wait_container(&self, id: &str) -> Result<i64, DockerError>;
    /// `GET /containers/{id}/logs`, stdout and stderr demultiplexed.
    async fn logs(
        &self,
        id: &str,
        request: LogsRequest,
    ) -> Result<BoxStream<'static, Result<OutputChunk, DockerError>>, DockerError>;
    /// `GET /containers/{id}/stats?stream=false`: one sample including the previous CPU sample.
    async fn stats_once(&self, id: &str) -> Result<ContainerStatsResponse, DockerError>;
    /// `GET /containers/{id}/stats?stream=true`: one sample per second until the container stops.
    async fn stats_stream(
        &self,
        id: &str,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse, DockerError>>, DockerError>;
    /// `POST /containers/{id}/exec`; returns the exec id.
    async fn create_exec(&self, id: &str, request: ExecRequest) -> Result<String, DockerError>;
    /// `POST /exec/{id}/start`, attached.
    async fn start_exec(&self, exec_id: &str, tty: bool) -> Result<ExecIo, DockerError>;
    /// `GET /exec/{id}/json`.
    async fn inspect_exec(&self, exec_id: &str) -> Result<ExecInspectResponse, DockerError>;
    /// `POST /exec/{id}/resize`.
    async fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError>;
    /// `GET /images/{name}/json`.
    async fn inspect_image(&self, image: &str) -> Result<ImageInspect, DockerError>;
    /// `POST /images/create?fromImage=…`: the pull's progress messages. The stream has no overall
    /// deadline; the caller applies its pull and inactivity timeouts.
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<'static, Result<PullMessage, DockerError>>, DockerError>;
    /// `DELETE /images/{name}`, with `force` removing it from all tags.
    async fn remove_image(&self, image: &str, force: bool) -> Result<(), DockerError>;
    /// `POST /images/load` from a tarball (`docker load`).
    async fn load_image(&self, tarball: &std::path::Path) -> Result<(), DockerError>;
    /// `POST /images/create?fromSrc=-` (`docker import`) from an in-memory root filesystem tar.
    async fn import_image(
        &self,
        request: ImportRequest,
        rootfs_tar: Bytes,
    ) -> Result<(), DockerError>;
    /// `GET /networks/{name}`.
    async fn inspect_network(&self, name: &str) -> Result<NetworkInspect, DockerError>;
}
