//! [`BollardDocker`]: [`DockerApi`] over bollard, with per-call deadlines and a lazily built,
//! version-negotiated client.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, ResizeExecOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

use super::classify::map_error;
use super::endpoint::{DockerConnection, ResolvedEndpoint};
use super::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStatsResponse, ContainerSummary,
    ExecInspectResponse, ImageInspect, NetworkInspect, SystemInfo, SystemVersion,
};
use super::{
    ContainerFilter, DockerApi, DockerError, ExecIo, ExecRequest, ImportRequest, LogsRequest,
    OutputChunk, OutputStream, PullMessage, RegistryAuth,
};

/// bollard's own timeout is effectively disabled (one year); our per-call deadlines apply.
pub(super) const BOLLARD_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Read size when streaming an image tarball to `docker load`.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// The bollard-backed [`DockerApi`]. Cheap to clone.
#[derive(Clone)]
pub struct BollardDocker {
    inner: Arc<Inner>,
}

struct Inner {
    connection: DockerConnection,
    client: Mutex<Option<Docker>>,
}

impl std::fmt::Debug for BollardDocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BollardDocker")
            .field("connection", &self.inner.connection)
            .finish_non_exhaustive()
    }
}

impl BollardDocker {
    /// A client for `connection`. Nothing is contacted yet; an invalid endpoint is reported
    /// here, an unreachable daemon on the first call.
    pub fn new(connection: DockerConnection) -> Result<Self, DockerError> {
        connection.resolve()?;
        Ok(Self {
            inner: Arc::new(Inner {
                connection,
                client: Mutex::new(None),
            }),
        })
    }

    /// A client for the default endpoint (`DOCKER_HOST` or the local Unix socket).
    pub fn from_env() -> Result<Self, DockerError> {
        Self::new(DockerConnection::default())
    }

    /// The connection settings.
    pub fn connection(&self) -> &DockerConnection {
        &self.inner.connection
    }

    fn timeouts(&self) -> super::DockerTimeouts {
        self.inner.connection.timeouts
    }

    /// The negotiated client, building it on first use (and after a failed first use).
    async fn client(&self) -> Result<Docker, DockerError> {
        let mut slot = self.inner.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let version = bollard::API_DEFAULT_VERSION;
        let raw = match self.inner.connection.resolve()? {
            ResolvedEndpoint::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), BOLLARD_TIMEOUT_SECS, version)
            }
            ResolvedEndpoint::Http(addr) => {
                Docker::connect_with_http(&addr, BOLLARD_TIMEOUT_SECS, version)
            }
            ResolvedEndpoint::Https(addr, tls) => Docker::connect_with_ssl(
                &addr,
                &tls.key,
                &tls.cert,
                &tls.ca,
                BOLLARD_TIMEOUT_SECS,
                version,
            ),
        }
        .map_err(|e| match map_error(e) {
            DockerError::InvalidEndpoint { reason, .. } => DockerError::InvalidEndpoint {
                endpoint: self.inner.connection.endpoint.clone().unwrap_or_default(),
                reason,
            },
            other => other,
        })?;
        let limit = self.timeouts().request;
        let negotiated = deadline("negotiate_version", limit, async {
            raw.negotiate_version().await.map_err(map_error)
        })
        .await?;
        *slot = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// Runs `call` on the client within `limit`.
    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        limit: Duration,
        call: F,
    ) -> Result<T, DockerError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, BollardError>>,
    {
        let client = self.client().await?;
        deadline(operation, limit, async {
            call(client).await.map_err(map_error)
        })
        .await
    }
}

async fn deadline<T>(
    operation: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, DockerError>>,
) -> Result<T, DockerError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(DockerError::Timeout {
            operation,
            after: limit,
        }))
}

fn chunk(output: LogOutput) -> Option<OutputChunk> {
    match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => Some(OutputChunk {
            stream: OutputStream::Stdout,
            data: message,
        }),
        LogOutput::StdErr { message } => Some(OutputChunk {
            stream: OutputStream::Stderr,
            data: message,
        }),
        LogOutput::StdIn { .. } => None,
    }
}

fn label_filters(filter: &ContainerFilter) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !filter.labels.is_empty() {
        filters.insert("label".to_owned(), filter.labels.clone());
    }
    if !filter.names.is_empty() {
        filters.insert("name".to_owned(), filter.names.clone());
    }
    filters
}

/// Docker's `t` parameter: whole seconds, rounded up so a grace is never shortened.
fn stop_seconds(grace: Duration) -> i32 {
    let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

#[async_trait]
impl DockerApi for BollardDocker {
    async fn ping(&self) -> Result<(), DockerError> {
        self.call("ping", self.timeouts().request, |c| async move {
            c.ping().await.map(drop)
        })
        .await
    }

    async fn version(&self) -> Result<SystemVersion, DockerError> {
        self.call("version", self.timeouts().request, |c| async move {
            c.version().await
        })
        .await
    }

    async fn info(&self) -> Result<SystemInfo, DockerError> {
        self.call("info", self.timeouts().request, |c| async move {
            c.info().await
        })
        .await
    }

    async fn list_containers(
        &self,
        filter: &ContainerFilter,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let options = ListContainersOptionsBuilder::new()
            .all(filter.all)
            .filters(&label_filters(filter))
            .build();
        self.call("list_containers", self.timeouts().request, |c| async move {
            c.list_containers(Some(options)).await
        })
        .await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.call(
            "inspect_container",
            self.timeouts().request,
            |c| async move { c.inspect_container(id, None).await },
        )
        .await
    }

    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        self.call(
            "create_container",
            self.timeouts().create_start,
            |c| async move { c.create_container(Some(options), body).await.map(|r| r.id) },
        )
        .await
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        self.call(
            "start_container",
            self.timeouts().create_start,
            |c| async move { c.start_container(id, None).await },
        )
        .await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::new()
            .t(stop_seconds(grace))
            .build();
        let limit = grace + self.timeouts().stop_margin;
        self.call("stop_container", limit, |c| async move {
            c.stop_container(id, Some(options)).await
        })
        .await
    }

    async fn kill_container(&self, id: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.call("kill_container", self.timeouts().request, |c| async move {
            c.kill_container(id, Some(options)).await
        })
        .await
    }

    async fn remove_container(&self, id: &str, force: bool) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(force).build();
        self.call(
            "remove_container",
            self.timeouts().request,
            |c| async move { c.remove_container(id, Some(options)).await },
        )
        .await
    }

    async fn wait_container(&self, id: &str) -> Result<i64, DockerError> {
        let client = self.client().await?;
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut stream = std::pin::pin!(client.wait_container(id, Some(options)));
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit status as an error; for us it is a result.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(map_error(e)),
            None => Err(DockerError::Stream {
                message: "wait stream ended without a status".to_owned(),
            }),
        }
    }

    async fn logs(
        &self,
        id: &str,
        request: LogsRequest,
    ) -> Result<BoxStream<'static, Result<OutputChunk, DockerError>>, DockerError> {
        let client = self.client().await?;
        let options = LogsOptionsBuilder::new()
            .follow(request.follow)
            .stdout(true)
            .stderr(true)
            .since(i32::try_from(request.since_unix).unwrap_or(i32::MAX))
            .timestamps(request.timestamps)
            .build();
        let stream = client
            .logs(id, Some(options))
            .map_err(map_error)
            .try_filter_map(|o| futures::future::ready(Ok(chunk(o))));
        Ok(stream.boxed())
    }

    async fn stats_once(&self, id: &str) -> Result<ContainerStatsResponse, DockerError> {
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(false)
            .build();
        self.call("stats", self.timeouts().request, |c| async move {
            let mut s = std::pin::pin!(c.stats(id, Some(options)));
            match s.next().await {
                Some(r) => r,
                None => Err(BollardError::DockerStreamError {
                    error: "stats response was empty".to_owned(),
                }),
            }
        })
        .await
    }

    async fn stats_stream(
        &self,
        id: &str,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse, DockerError>>, DockerError> {
        let client = self.client().await?;
        let options = StatsOptionsBuilder::new().stream(true).build();
        Ok(client.stats(id, Some(options)).map_err(map_error).boxed())
    }

    async fn create_exec(&self, id: &str, request: ExecRequest) -> Result<String, DockerError> {
        let options = CreateExecOptions {
            attach_stdin: Some(request.attach_stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            env: (!request.env.is_empty()).then_some(request.env),
            cmd: Some(request.cmd),
            ..CreateExecOptions::default()
        };
        self.call("create_exec", self.timeouts().request, |c| async move {
            c.create_exec(id, options).await.map(|r| r.id)
        })
        .await
    }

    async fn start_exec(&self, exec_id: &str, tty: bool) -> Result<ExecIo, DockerError> {
        let options = StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        let started = self
            .call("start_exec", self.timeouts().exec_attach, |c| async move {
                c.start_exec(exec_id, Some(options)).await
            })
            .await?;
        match started {
            StartExecResults::Attached { output, input } => Ok(ExecIo {
                output: output
                    .map_err(map_error)
                    .try_filter_map(|o| futures::future::ready(Ok(chunk(o))))
                    .boxed(),
                input,
            }),
            StartExecResults::Detached => Err(DockerError::Stream {
                message: "exec started detached although attach was requested".to_owned(),
            }),
        }
    }

    async fn inspect_exec(&self, exec_id: &str) -> Result<ExecInspectResponse, DockerError> {
        self.call("inspect_exec", self.timeouts().request, |c| async move {
            c.inspect_exec(exec_id).await
        })
        .await
    }

    async fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError> {
        let options = ResizeExecOptionsBuilder::new()
            .h(i32::from(height))
            .w(i32::from(width))
            .build();
        self.call("resize_exec", self.timeouts().request, |c| async move {
            c.resize_exec(exec_id, options).await
        })
        .await
    }

    async fn inspect_image(&self, image: &str) -> Result<ImageInspect, DockerError> {
        self.call("inspect_image", self.timeouts().request, |c| async move {
            c.inspect_image(image).await
        })
        .await
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<'static, Result<PullMessage, DockerError>>, DockerError> {
        let client = self.client().await?;
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: a.username,
            password: a.password,
            serveraddress: a.server_address,
            identitytoken: a.identity_token,
            registrytoken: a.registry_token,
            ..bollard::auth::DockerCredentials::default()
        });
        let stream = client
            .create_image(Some(options), None, credentials)
            .map_err(map_error)
            .map_ok(|info| PullMessage {
                layer: info.id,
                status: info.status.unwrap_or_default(),
                current: info.progress_detail.as_ref().and_then(|p| p.current),
                total: info.progress_detail.as_ref().and_then(|p| p.total),
            });
        Ok(stream.boxed())
    }

    async fn remove_image(&self, image: &str, force: bool) -> Result<(), DockerError> {
        let options = RemoveImageOptionsBuilder::new().force(force).build();
        self.call("remove_image", self.timeouts().request, |c| async move {
            c.remove_image(image, Some(options), None).await.map(drop)
        })
        .await
    }

    async fn load_image(&self, tarball: &Path) -> Result<(), DockerError> {
        let io_error = |e: std::io::Error| DockerError::Io {
            context: format!("failed to read image tarball {}", tarball.display()),
            message: e.to_string(),
        };
        let file = tokio::fs::File::open(tarball).await.map_err(io_error)?;
        let body = futures::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0u8; LOAD_CHUNK_BYTES];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), file)))
        });
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        self.call(
            "load_image",
            self.timeouts().image_transfer,
            |c| async move {
                let mut s = std::pin::pin!(c.import_image_stream(options, body, None));
                while let Some(item) = s.next().await {
                    item?;
                }
                Ok(())
            },
        )
        .await
    }

    async fn import_image(
        &self,
        request: ImportRequest,
        rootfs_tar: Bytes,
    ) -> Result<(), DockerError> {
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(&request.repo)
            .tag(&request.tag)
            .changes(request.changes)
            .build();
        self.call(
            "import_image",
            self.timeouts().image_transfer,
            |c| async move {
                let mut s = std::pin::pin!(c.create_image(
                    Some(options),
                    Some(bollard::body_full(rootfs_tar)),
                    None
                ));
                while let Some(item) = s.next().await {
                    item?;
                }
                Ok(())
            },
        )
        .await
    }

    async fn inspect_network(&self, name: &str) -> Result<NetworkInspect, DockerError> {
        self.call("inspect_network", self.timeouts().request, |c| async move {
            c.inspect_network(name, None).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_grace_rounds_up_to_whole_seconds() {
        assert_eq!(stop_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(stop_seconds(Duration::from_secs(5)), 5);
        assert_eq!(stop_seconds(Duration::ZERO), 0);
    }
}
