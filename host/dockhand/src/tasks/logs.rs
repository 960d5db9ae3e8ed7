//! Forwarding container output to the task's stdout/stderr sinks.
//!
//! Nomad hands the driver two paths, normally FIFOs read by logmon. The forwarder opens them for
//! writing (a FIFO without a reader is retried rather than blocking a thread), follows
//! `docker logs`, and writes each chunk to the sink of its stream. When the log stream ends while
//! the container still runs (daemon restart, connection reset) it re-follows from "now"; it
//! stops when the container has stopped or is gone. Runs in-process: no helper processes to leak.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::docker::{DockerApi, LogsRequest, OutputStream};

/// How long to keep retrying to open a FIFO that has no reader yet.
pub const SINK_OPEN_PATIENCE: Duration = Duration::from_secs(300);
/// Largest pause between re-follow attempts after stream errors.
const REFOLLOW_MAX_PAUSE: Duration = Duration::from_secs(120);

type Sink = Pin<Box<dyn AsyncWrite + Send>>;

/// Whether `path` means "discard" (unset or `/dev/null`).
pub fn is_discard(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p == Path::new("/dev/null"))
}

/// Opens a sink for writing: a FIFO without blocking, any other path in append mode.
async fn open_sink(path: &Path) -> std::io::Result<Sink> {
    let is_fifo = tokio::fs::metadata(path)
        .await
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    if !is_fifo {
        let f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        return Ok(Box::pin(f));
    }
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(path) {
            Ok(sender) => return Ok(Box::pin(sender)),
            // ENXIO: no reader yet (logmon not attached).
            Err(e)
                if e.raw_os_error() == Some(libc::ENXIO)
                    && started.elapsed() < SINK_OPEN_PATIENCE =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_optional(path: Option<&PathBuf>) -> Option<Sink> {
    let path = path.filter(|p| !is_discard(Some(p)))?;
    match open_sink(path).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "failed to open task log sink; output is discarded");
            None
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn write_chunk(sink: &mut Sink, data: &[u8]) -> std::io::Result<()> {
    sink.write_all(data).await?;
    sink.flush().await
}

/// Follows the logs of `container_id` into the sinks until the container stops.
/// `since_unix` = 0 forwards everything (new task); recovery passes "now".
pub(crate) async fn forward_logs(
    docker: Arc<dyn DockerApi>,
    container_id: String,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
    mut since_unix: i64,
) {
    let mut out = open_optional(stdout.as_ref()).await;
    let mut err = open_optional(stderr.as_ref()).await;
    if out.is_none() && err.is_none() {
        return;
    }
    let mut pause = Duration::from_millis(500);
    loop {
        let request = LogsRequest {
            follow: true,
            since_unix,
        };
        match docker.logs(&container_id, request).await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(chunk) => {
                            pause = Duration::from_millis(500);
                            let sink = match chunk.stream {
                                OutputStream::Stdout => &mut out,
                                OutputStream::Stderr => &mut err,
                            };
                            if let Some(s) = sink.as_mut()
                                && let Err(e) = write_chunk(s, &chunk.data).await
                            {
                                tracing::warn!(container_id, error = %e, "task log sink closed; output of this stream is discarded");
                                *sink = None;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(container_id, error = %e, "log stream error");
                            break;
                        }
                    }
                }
            }
            Err(e) if e.is_not_found() => return,
            Err(e) => tracing::debug!(container_id, error = %e, "failed to follow container logs"),
        }
        // The stream ended: finished container, or a broken connection to a live one?
        match docker.inspect_container(&container_id).await {
            Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            Ok(_) => return,
            Err(e) if e.is_not_found() => return,
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(REFOLLOW_MAX_PAUSE);
        since_unix = now_unix();
        if out.is_none() && err.is_none() {
            return;
        }
    }
}
