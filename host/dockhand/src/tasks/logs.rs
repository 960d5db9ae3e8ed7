//! Forwarding container output to the task's stdout/stderr sinks.
//!
//! Nomad hands the driver two paths, normally FIFOs read by logmon. The forwarder opens them for
//! writing (a FIFO without a reader is retried rather than blocking a thread), follows
//! `docker logs` with timestamps, and writes each new message to the sink of its stream. It
//! keeps its position ([`super::log_position`]) in the task directory, so a re-follow after a
//! broken stream (daemon restart, connection reset) and a forwarder started by RecoverTask
//! after a plugin restart both resume after the last delivered message. A failed write reopens
//! the sink and writes the message again. The forwarder stops once it has read the output of a
//! stopped container to the end, or when the container is gone. Runs in-process: no helper
//! processes to leak.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::docker::{DockerApi, LogsRequest, OutputStream};

use super::log_position::{Cursors, PositionFile, StartFrom, split_messages};

/// How long to keep retrying to open a FIFO that has no reader yet.
pub const SINK_OPEN_PATIENCE: Duration = Duration::from_secs(300);
/// Largest pause between re-follow attempts after stream errors.
const REFOLLOW_MAX_PAUSE: Duration = Duration::from_secs(120);
/// Most bytes of log output gathered into one write.
const BATCH_BYTES: usize = 64 * 1024;
/// Re-follows of a stopped container whose log stream broke before its end.
const STOPPED_REFOLLOWS: u32 = 5;

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

/// One output stream's destination.
struct SinkSlot {
    path: Option<PathBuf>,
    sink: Option<Sink>,
}

impl SinkSlot {
    async fn open(path: Option<&PathBuf>) -> Self {
        let path = path.filter(|p| !is_discard(Some(p))).cloned();
        let mut slot = Self { path, sink: None };
        slot.reopen().await;
        slot
    }

    fn is_open(&self) -> bool {
        self.sink.is_some()
    }

    async fn reopen(&mut self) {
        self.sink = None;
        let Some(path) = &self.path else { return };
        match open_sink(path).await {
            Ok(s) => self.sink = Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "failed to open task log sink; output of this stream is discarded");
                self.path = None;
            }
        }
    }

    /// Writes `data`; on failure (the reader went away) reopens the sink once and writes it
    /// again. Gives the stream up only if the sink cannot be reopened.
    async fn write(&mut self, container_id: &str, data: &[u8]) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let Err(e) = write_chunk(sink, data).await else {
            return;
        };
        tracing::info!(container_id, error = %e, "task log sink failed; reopening it");
        self.reopen().await;
        if let Some(sink) = self.sink.as_mut()
            && let Err(e) = write_chunk(sink, data).await
        {
            tracing::warn!(container_id, error = %e, "task log sink failed again after reopening; output of this stream is discarded");
            self.sink = None;
            self.path = None;
        }
    }
}

async fn write_chunk(sink: &mut Sink, data: &[u8]) -> std::io::Result<()> {
    sink.write_all(data).await?;
    sink.flush().await
}

/// What the log forwarder of one container needs.
#[derive(Debug, Clone)]
pub(crate) struct LogForwarding {
    /// The container.
    pub container_id: String,
    /// Task stdout sink.
    pub stdout: Option<PathBuf>,
    /// Task stderr sink.
    pub stderr: Option<PathBuf>,
    /// The position file; `None` keeps the position in memory only.
    pub position_file: Option<PathBuf>,
    /// Where to start.
    pub from: StartFrom,
}

/// How one follow ended.
enum FollowEnd {
    /// The daemon closed the stream normally.
    Clean,
    /// A stream or connection error.
    Broken,
    /// The container does not exist, or its log driver cannot be read: nothing to follow.
    Gone,
}

/// Follows the logs of the container into the sinks until the container has stopped and its
/// output is delivered, or it is gone.
pub(crate) async fn forward_logs(docker: Arc<dyn DockerApi>, job: LogForwarding) {
    let container_id = job.container_id.as_str();
    let mut out = SinkSlot::open(job.stdout.as_ref()).await;
    let mut err = SinkSlot::open(job.stderr.as_ref()).await;
    if !out.is_open() && !err.is_open() {
        return;
    }
    let (mut position, mut cursors) =
        PositionFile::open(job.position_file.as_deref(), container_id, job.from);
    let mut pause = Duration::from_millis(500);
    let mut stopped_refollows = 0;
    loop {
        let end = follow_once(
            docker.as_ref(),
            container_id,
            &mut cursors,
            &mut position,
            [&mut out, &mut err],
            &mut pause,
        )
        .await;
        if matches!(end, FollowEnd::Gone) || (!out.is_open() && !err.is_open()) {
            return;
        }
        // The stream ended: finished container, or a broken connection to a live one?
        match docker.inspect_container(container_id).await {
            Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            Ok(_) => {
                // Stopped: a clean end means everything was read; a broken stream is read
                // again from the position (a few times) so the last lines are not lost.
                if matches!(end, FollowEnd::Clean) || stopped_refollows >= STOPPED_REFOLLOWS {
                    return;
                }
                stopped_refollows += 1;
            }
            Err(e) if e.is_not_found() => return,
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(REFOLLOW_MAX_PAUSE);
    }
}

/// Whether a logs error is final: the container's log driver cannot be read back (a
/// `logging` type other than json-file, local or journald), as Nomad's docker logger treats it.
fn cannot_read_logs(message: &str) -> bool {
    message.contains("does not support reading") || message.contains("not implemented")
}

fn unreadable(container_id: &str, e: &crate::docker::DockerError) -> FollowEnd {
    tracing::warn!(container_id, error = %e, "the container's log driver cannot be read; its output is not forwarded");
    FollowEnd::Gone
}

/// One `docker logs --follow --timestamps` from the current position.
async fn follow_once(
    docker: &dyn DockerApi,
    container_id: &str,
    cursors: &mut Cursors,
    position: &mut PositionFile,
    [out, err]: [&mut SinkSlot; 2],
    pause: &mut Duration,
) -> FollowEnd {
    let request = LogsRequest {
        follow: true,
        since_unix: cursors.since_unix(),
        timestamps: true,
    };
    let mut stream = match docker.logs(container_id, request).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return FollowEnd::Gone,
        Err(e) if cannot_read_logs(&e.to_string()) => {
            return unreadable(container_id, &e);
        }
        Err(e) => {
            tracing::debug!(container_id, error = %e, "failed to follow container logs");
            return FollowEnd::Broken;
        }
    };
    cursors.restart();
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    loop {
        // One pending item, then whatever else is ready at once: written and recorded as one
        // batch, so a busy task costs one write per sink and one position update per batch.
        let mut end = None;
        let mut next = stream.next().await;
        let mut batched = 0;
        loop {
            match next {
                Some(Ok(chunk)) => {
                    *pause = Duration::from_millis(500);
                    batched += chunk.data.len();
                    let (cursor, buf) = match chunk.stream {
                        OutputStream::Stdout => (&mut cursors.out, &mut out_buf),
                        OutputStream::Stderr => (&mut cursors.err, &mut err_buf),
                    };
                    for (at, body) in split_messages(&chunk.data) {
                        if cursor.admit(at) {
                            buf.extend_from_slice(body);
                        }
                    }
                }
                // The request's HTTP status arrives as the stream's first item.
                Some(Err(e)) if cannot_read_logs(&e.to_string()) => {
                    end = Some(unreadable(container_id, &e));
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!(container_id, error = %e, "log stream error");
                    end = Some(FollowEnd::Broken);
                    break;
                }
                None => {
                    end = Some(FollowEnd::Clean);
                    break;
                }
            }
            if batched >= BATCH_BYTES {
                break;
            }
            match stream.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        let delivered = !out_buf.is_empty() || !err_buf.is_empty();
        if !out_buf.is_empty() {
            out.write(container_id, &out_buf).await;
            out_buf.clear();
        }
        if !err_buf.is_empty() {
            err.write(container_id, &err_buf).await;
            err_buf.clear();
        }
        if delivered {
            position.save(cursors);
        }
        if let Some(end) = end {
            return end;
        }
        if !out.is_open() && !err.is_open() {
            return FollowEnd::Clean;
        }
    }
}
