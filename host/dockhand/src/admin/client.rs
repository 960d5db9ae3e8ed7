//! A client for the admin API over its unix socket, used by the `dockhand` CLI.

use std::io;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::convert::{AnswerError, SweepAnswer};
use super::proto::{self, policy_admin_client::PolicyAdminClient, upload_request::Part};

/// Size of each upload message.
pub const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// Why an admin call failed, worded for operators.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket at the path.
    #[error(
        "admin socket {} not found: is the dockhand plugin running with admin enabled?",
        .0.display()
    )]
    SocketMissing(PathBuf),
    /// The socket exists but this user may not connect to it.
    #[error(
        "admin socket {}: permission denied (the socket is mode 0600; run as a permitted user, \
         usually root)",
        .0.display()
    )]
    SocketAccess(PathBuf),
    /// The socket exists but nothing accepts connections on it.
    #[error("cannot connect to admin socket {}", .path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The gRPC channel could not be set up.
    #[error("admin socket {}", .path.display())]
    Transport {
        /// The socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server refused this user.
    #[error("access refused by the admin API: {0}")]
    PermissionDenied(String),
    /// The server answered with an error.
    #[error("{0}")]
    Rpc(String),
    /// The server's answer is unusable (an unspecified or unknown value).
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::PermissionDenied => Self::PermissionDenied(status.message().to_owned()),
            tonic::Code::Unavailable => {
                Self::Rpc(format!("admin API unavailable: {}", status.message()))
            }
            code => Self::Rpc(format!("{}: {}", code.description(), status.message())),
        }
    }
}

/// A connection to the admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    inner: PolicyAdminClient<Channel>,
}

impl AdminClient {
    /// Connects to the admin socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        // Probe first so that the common failures get precise messages.
        if let Err(e) = tokio::net::UnixStream::connect(socket).await {
            return Err(match e.kind() {
                io::ErrorKind::NotFound => ClientError::SocketMissing(socket.to_owned()),
                io::ErrorKind::PermissionDenied => ClientError::SocketAccess(socket.to_owned()),
                _ => ClientError::Connect {
                    path: socket.to_owned(),
                    source: e,
                },
            });
        }
        let path = socket.to_owned();
        // The authority is meaningless over a unix socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| ClientError::Transport {
                path: socket.to_owned(),
                source,
            })?;
        Ok(Self {
            inner: PolicyAdminClient::new(channel),
        })
    }

    /// Streams `bytes` up as a policy of `kind` (a `proto::PolicyKind` value).
    pub async fn upload(
        &mut self,
        kind: proto::PolicyKind,
        bytes: Vec<u8>,
        sha256: Option<String>,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<proto::UploadResponse, ClientError> {
        let chunks: Vec<Vec<u8>> = bytes
            .chunks(UPLOAD_CHUNK_BYTES)
            .map(<[u8]>::to_vec)
            .collect();
        self.upload_stream(kind, sha256, name, version, tokio_stream::iter(chunks))
            .await
    }

    /// Streams a policy of `kind` up as `chunks` arrive, one upload message each (at most
    /// [`UPLOAD_CHUNK_BYTES`] is what [`upload`](Self::upload) sends). The upload ends when
    /// `chunks` does; dropping the returned future first cancels it.
    pub async fn upload_stream(
        &mut self,
        kind: proto::PolicyKind,
        sha256: Option<String>,
        name: Option<String>,
        version: Option<String>,
        chunks: impl tokio_stream::Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<proto::UploadResponse, ClientError> {
        use tokio_stream::StreamExt as _;
        let header = proto::UploadRequest {
            part: Some(Part::Header(proto::UploadHeader {
                kind: kind as i32,
                sha256: sha256.unwrap_or_default(),
                name: name.unwrap_or_default(),
                version: version.unwrap_or_default(),
            })),
        };
        let chunks = chunks.map(|c| proto::UploadRequest {
            part: Some(Part::Chunk(c)),
        });
        let stream = tokio_stream::once(header).chain(chunks);
        Ok(self.inner.upload(stream).await?.into_inner())
    }

    /// Every stored policy.
    pub async fn list(&mut self) -> Result<proto::ListResponse, ClientError> {
        Ok(self.inner.list(proto::ListRequest {}).await?.into_inner())
    }

    /// Activates a stored policy.
    pub async fn activate(
        &mut self,
        digest: String,
        mode: proto::PolicyMode,
    ) -> Result<proto::ActivateResponse, ClientError> {
        let request = proto::ActivateRequest {
            digest,
            mode: mode as i32,
        };
        Ok(self.inner.activate(request).await?.into_inner())
    }

    /// Rolls `kind` back to its previous policy.
    pub async fn rollback(
        &mut self,
        kind: proto::PolicyKind,
    ) -> Result<proto::RollbackResponse, ClientError> {
        let request = proto::RollbackRequest { kind: kind as i32 };
        Ok(self.inner.rollback(request).await?.into_inner())
    }

    /// One sweep of the running reconciler now; with `dry_run`, reported only.
    pub async fn sweep(&mut self, dry_run: bool) -> Result<SweepAnswer, ClientError> {
        self.sweep_request(proto::SweepRequest {
            dry_run,
            ..proto::SweepRequest::default()
        })
        .await
    }

    /// A preview: a dry run now, whatever the start-up wait, the tracked set or Docker's
    /// health, with the policies in force or with the stored policy `digest` in place of the
    /// active one of its kind (`kind`, when specified, is checked against it).
    pub async fn preview(
        &mut self,
        kind: proto::PolicyKind,
        digest: Option<String>,
    ) -> Result<SweepAnswer, ClientError> {
        self.sweep_request(proto::SweepRequest {
            dry_run: true,
            digest: digest.unwrap_or_default(),
            kind: kind as i32,
            preview: true,
        })
        .await
    }

    async fn sweep_request(
        &mut self,
        request: proto::SweepRequest,
    ) -> Result<SweepAnswer, ClientError> {
        let response = self.inner.sweep(request).await?.into_inner();
        Ok(SweepAnswer::try_from(response)?)
    }

    /// Reconciler counters and the active policies.
    pub async fn status(&mut self) -> Result<proto::StatusResponse, ClientError> {
        Ok(self
            .inner
            .status(proto::StatusRequest {})
            .await?
            .into_inner())
    }
}
