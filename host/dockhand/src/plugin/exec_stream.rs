//! `ExecTaskStreaming` (`nomad alloc exec`): bridges the bidirectional gRPC stream to a Docker
//! exec session.
//!
//! The first request must carry `setup`. Afterwards one task forwards `stdin` data (and its
//! close), `tty_size` resizes and ignores heartbeats; another forwards output in chunks of at
//! most [`CHUNK_BYTES`], then sends `stdout{close}`, `stderr{close}` and a final
//! `{exited: true, result}`. If the agent goes away both tasks end. The exec's stdin is closed
//! by `stdin{close: true}`, or (without a TTY) when the agent half-closes its side.

use futures::StreamExt as _;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::{PluginError, RequestStream, ResponseStream};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::convert;
use super::tasks::task_error;
use crate::docker::{ExecIo, OutputStream};
use crate::tasks::{EXEC_UNKNOWN_EXIT, ExecControl, ExitResult, TaskEngine};

/// Largest output chunk per message (what Nomad's Go server uses).
pub const CHUNK_BYTES: usize = 1024;

fn io(data: &[u8], close: bool) -> Option<pb::ExecTaskStreamingIoOperation> {
    Some(pb::ExecTaskStreamingIoOperation {
        data: data.to_vec(),
        close,
    })
}

async fn resize(control: &ExecControl, size: &pb::exec_task_streaming_request::TerminalSize) {
    let (Ok(h), Ok(w)) = (u16::try_from(size.height), u16::try_from(size.width)) else {
        tracing::debug!(?size, "ignoring out-of-range terminal size");
        return;
    };
    if let Err(e) = control.resize(h, w).await {
        tracing::debug!(error = %e, "failed to resize exec terminal");
    }
}

/// Runs one streaming exec.
pub(super) async fn exec_streaming(
    engine: &TaskEngine,
    mut requests: RequestStream<pb::ExecTaskStreamingRequest>,
) -> Result<ResponseStream<pb::ExecTaskStreamingResponse>, PluginError> {
    let first = requests.next().await.ok_or_else(|| {
        PluginError::InvalidArgument("first message should always be setup".to_owned())
    })??;
    let setup = first.setup.ok_or_else(|| {
        PluginError::InvalidArgument("first message should always be setup".to_owned())
    })?;
    let session = engine
        .exec_streaming(&setup.task_id, setup.command.clone(), setup.tty)
        .await
        .map_err(task_error)?;
    let control = session.control();
    if let Some(size) = &first.tty_size {
        resize(&control, size).await;
    }
    let ExecIo {
        mut output,
        mut input,
    } = session.io;

    let tty = setup.tty;
    let input_control = control.clone();
    let pump_in = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Ok(message) = message else { break };
            if let Some(size) = &message.tty_size {
                resize(&input_control, size).await;
            }
            if let Some(stdin) = message.stdin {
                if !stdin.data.is_empty() && input.write_all(&stdin.data).await.is_err() {
                    break;
                }
                if stdin.close {
                    let _ = input.shutdown().await;
                    return;
                }
            }
        }
        // The agent half-closed without closing stdin. Without a TTY that is the end of the
        // input; with one, closing the terminal would hang up the process, so leave it open.
        if !tty {
            let _ = input.shutdown().await;
        }
    });

    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        let mut failure = None;
        while let Some(chunk) = output.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            for piece in chunk.data.chunks(CHUNK_BYTES) {
                let mut msg = pb::ExecTaskStreamingResponse::default();
                match chunk.stream {
                    OutputStream::Stdout => msg.stdout = io(piece, false),
                    OutputStream::Stderr => msg.stderr = io(piece, false),
                }
                if tx.send(Ok(msg)).await.is_err() {
                    pump_in.abort();
                    return;
                }
            }
        }
        pump_in.abort();
        if let Some(e) = failure {
            tracing::warn!(error = %e, "exec output stream failed");
        }
        for msg in [
            pb::ExecTaskStreamingResponse {
                stdout: io(&[], true),
                ..Default::default()
            },
            pb::ExecTaskStreamingResponse {
                stderr: io(&[], true),
                ..Default::default()
            },
        ] {
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
        let exit_code = match control.exit_code().await {
            Ok(code) => code,
            Err(e) => {
                tracing::warn!(error = %e, "failed to read exec exit code");
                EXEC_UNKNOWN_EXIT
            }
        };
        let result = convert::exit_result(&ExitResult {
            exit_code,
            ..ExitResult::default()
        });
        let _ = tx
            .send(Ok(pb::ExecTaskStreamingResponse {
                exited: true,
                result: Some(result),
                ..Default::default()
            }))
            .await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
