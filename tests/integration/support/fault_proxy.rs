//! A unix-socket proxy in front of the real Docker socket that can misbehave on demand, to
//! test the driver against a wedged or broken daemon.
//!
//! The mode is read for every chunk in each direction, so switching it also affects
//! connections a client keeps pooled:
//!
//! * [`FaultMode::Pass`]: bytes are forwarded untouched.
//! * [`FaultMode::Hang`]: requests are swallowed and never answered; the connection stays open.
//! * [`FaultMode::Http500`]: every request gets `500 Internal Server Error`, then the
//!   connection is closed.
//! * [`FaultMode::Reset`]: the connection is closed as soon as a request arrives.
//! * [`FaultMode::Slow`]: each request and each response chunk is delayed.
//! * [`FaultMode::Truncate`]: the response is cut in the middle of its first chunk.
//! * [`FaultMode::HangMatching`]: requests containing a pattern (e.g. `/stop`) are swallowed;
//!   every other one passes.
//! * [`FaultMode::HoldMatching`]: requests containing a pattern wait until the mode changes,
//!   then pass; every other one passes at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dockhand::docker::{BollardDocker, DockerApi, DockerConnection, DockerTimeouts};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// The real daemon's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward everything.
    Pass,
    /// Accept requests and never answer.
    Hang,
    /// Answer every request with HTTP 500.
    Http500,
    /// Close the connection when a request arrives.
    Reset,
    /// Delay each request and response chunk.
    Slow(Duration),
    /// Cut each response in the middle of its first chunk.
    Truncate,
    /// Swallow requests whose bytes contain the pattern; forward everything else.
    HangMatching(&'static str),
    /// Hold requests whose bytes contain the pattern until the mode changes, then forward
    /// them; forward everything else.
    HoldMatching(&'static str),
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    mode: Arc<Mutex<FaultMode>>,
    requests: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy in front of `upstream`, in [`FaultMode::Pass`].
    pub fn start(upstream: impl Into<PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the proxy socket");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy socket");
        let mode = Arc::new(Mutex::new(FaultMode::Pass));
        let requests = Arc::new(AtomicU64::new(0));
        let upstream = upstream.into();
        let server = tokio::spawn(serve(listener, upstream, mode.clone(), requests.clone()));
        Self {
            _dir: dir,
            socket,
            mode,
            requests,
            server,
        }
    }

    /// The endpoint to give a Docker client: `unix://<socket>`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Switches the mode for all connections, new and existing.
    pub fn set_mode(&self, mode: FaultMode) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Request chunks received so far (any mode).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// A Docker client talking through the proxy, with `request` as its per-call deadline.
    pub fn docker(&self, request: Duration) -> Arc<dyn DockerApi> {
        let connection = DockerConnection {
            timeouts: DockerTimeouts {
                request,
                stop_margin: request,
                ..DockerTimeouts::default()
            },
            ..DockerConnection::to_endpoint(self.endpoint())
        };
        Arc::new(BollardDocker::new(connection).expect("proxy endpoint is valid"))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn current(mode: &Mutex<FaultMode>) -> FaultMode {
    *mode.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(
    listener: UnixListener,
    upstream: PathBuf,
    mode: Arc<Mutex<FaultMode>>,
    requests: Arc<AtomicU64>,
) {
    // Connection tasks live in the set, so aborting this task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(connection(client, upstream.clone(), mode.clone(), requests.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A complete HTTP 500 response that closes the connection.
fn canned_500() -> Vec<u8> {
    let body = r#"{"message":"injected proxy fault"}"#;
    format!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connection(
    client: UnixStream,
    upstream: PathBuf,
    mode: Arc<Mutex<FaultMode>>,
    requests: Arc<AtomicU64>,
) {
    let Ok(upstream) = UnixStream::connect(&upstream).await else {
        return;
    };
    let (mut client_rd, client_wr) = client.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let client_wr = Arc::new(tokio::sync::Mutex::new(client_wr));

    let down_mode = mode.clone();
    let down_wr = client_wr.clone();
    let mut down = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match up_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match current(&down_mode) {
                // The request was swallowed; nothing comes back for it.
                FaultMode::Hang | FaultMode::Http500 | FaultMode::Reset => continue,
                FaultMode::Truncate => {
                    let mut w = down_wr.lock().await;
                    let _ = w.write_all(&buf[..n / 2]).await;
                    let _ = w.shutdown().await;
                    break;
                }
                FaultMode::Slow(delay) => tokio::time::sleep(delay).await,
                FaultMode::Pass | FaultMode::HangMatching(_) | FaultMode::HoldMatching(_) => {}
            }
            if down_wr.lock().await.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });

    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = client_rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = &mut down => break,
        };
        requests.fetch_add(1, Ordering::SeqCst);
        match current(&mode) {
            FaultMode::Pass | FaultMode::Truncate => {}
            FaultMode::Slow(delay) => tokio::time::sleep(delay).await,
            FaultMode::Hang => continue,
            FaultMode::HangMatching(pattern)
                if buf[..n]
                    .windows(pattern.len())
                    .any(|w| w == pattern.as_bytes()) =>
            {
                continue;
            }
            FaultMode::HangMatching(_) => {}
            FaultMode::HoldMatching(pattern)
                if buf[..n]
                    .windows(pattern.len())
                    .any(|w| w == pattern.as_bytes()) =>
            {
                while current(&mode) == FaultMode::HoldMatching(pattern) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            FaultMode::HoldMatching(_) => {}
            FaultMode::Http500 => {
                let mut w = client_wr.lock().await;
                let _ = w.write_all(&canned_500()).await;
                let _ = w.shutdown().await;
                break;
            }
            FaultMode::Reset => break,
        }
        if up_wr.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    down.abort();
}
