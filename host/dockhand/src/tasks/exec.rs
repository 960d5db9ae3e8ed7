//! Running commands inside a task's container: buffered (script checks) and streaming
//! (`nomad alloc exec`, with TTY and resize).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::docker::{DockerApi, DockerError, ExecIo, ExecRequest, OutputStream};

use super::TaskError;

/// Most output kept per stream by a buffered exec, bytes. Script-check output is shown in the
/// UI; a command that prints more (e.g. `yes`) must not grow the plugin's memory without bound.
pub const MAX_EXEC_OUTPUT_BYTES: usize = 64 * 1024;

/// Interval at which a streaming exec's exit code is polled.
const EXEC_POLL: Duration = Duration::from_millis(100);

/// Exit code reported when a streaming exec's status could never be read (Nomad's convention).
pub const EXEC_UNKNOWN_EXIT: i64 = 999;

/// Output and status of a buffered exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output (at most [`MAX_EXEC_OUTPUT_BYTES`]).
    pub stdout: Vec<u8>,
    /// Standard error (at most [`MAX_EXEC_OUTPUT_BYTES`]).
    pub stderr: Vec<u8>,
    /// Exit code.
    pub exit_code: i64,
}

fn keep(buf: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_EXEC_OUTPUT_BYTES.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

/// Runs `cmd` to completion within `timeout`, capturing output.
pub(crate) async fn exec_buffered(
    docker: &dyn DockerApi,
    container_id: &str,
    cmd: Vec<String>,
    timeout: Duration,
) -> Result<ExecOutput, TaskError> {
    if cmd.is_empty() {
        return Err(TaskError::InvalidSpec("exec command is empty".to_owned()));
    }
    let exec_err = |source: DockerError| TaskError::Exec {
        container_id: container_id.to_owned(),
        source,
    };
    let run = async {
        let exec_id = docker
            .create_exec(
                container_id,
                ExecRequest {
                    cmd,
                    ..ExecRequest::default()
                },
            )
            .await
            .map_err(exec_err)?;
        let ExecIo { mut output, .. } =
            docker.start_exec(&exec_id, false).await.map_err(exec_err)?;
        let mut out = ExecOutput::default();
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(exec_err)?;
            match chunk.stream {
                OutputStream::Stdout => keep(&mut out.stdout, &chunk.data),
                OutputStream::Stderr => keep(&mut out.stderr, &chunk.data),
            }
        }
        out.exit_code = exit_code(docker, &exec_id).await.map_err(exec_err)?;
        Ok::<_, TaskError>(out)
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(TaskError::ExecTimeout(timeout)))
}

/// Polls until the exec stops; its exit code.
async fn exit_code(docker: &dyn DockerApi, exec_id: &str) -> Result<i64, DockerError> {
    loop {
        let i = docker.inspect_exec(exec_id).await?;
        if i.running != Some(true) {
            return Ok(i.exit_code.unwrap_or(EXEC_UNKNOWN_EXIT));
        }
        tokio::time::sleep(EXEC_POLL).await;
    }
}

/// An interactive exec session.
#[derive(Debug)]
pub struct ExecSession {
    docker: Arc<dyn DockerApi>,
    exec_id: String,
    /// The exec's output and stdin.
    pub io: ExecIo,
}

impl ExecSession {
    pub(crate) async fn start(
        docker: Arc<dyn DockerApi>,
        container_id: &str,
        cmd: Vec<String>,
        tty: bool,
    ) -> Result<Self, TaskError> {
        if cmd.is_empty() {
            return Err(TaskError::InvalidSpec("exec command is empty".to_owned()));
        }
        let exec_err = |source: DockerError| TaskError::Exec {
            container_id: container_id.to_owned(),
            source,
        };
        let exec_id = docker
            .create_exec(
                container_id,
                ExecRequest {
                    cmd,
                    tty,
                    attach_stdin: true,
                    env: Vec::new(),
                },
            )
            .await
            .map_err(exec_err)?;
        let io = docker.start_exec(&exec_id, tty).await.map_err(exec_err)?;
        Ok(Self {
            docker,
            exec_id,
            io,
        })
    }

    /// The Docker exec id.
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// A handle for resizing and reading the exit code that does not borrow the I/O.
    pub fn control(&self) -> ExecControl {
        ExecControl {
            docker: self.docker.clone(),
            exec_id: self.exec_id.clone(),
        }
    }
}

/// Resize and status of an exec, usable while its I/O is moved elsewhere.
#[derive(Debug, Clone)]
pub struct ExecControl {
    docker: Arc<dyn DockerApi>,
    exec_id: String,
}

impl ExecControl {
    /// Resizes the exec's TTY.
    pub async fn resize(&self, height: u16, width: u16) -> Result<(), DockerError> {
        self.docker.resize_exec(&self.exec_id, height, width).await
    }

    /// Waits for the exec to stop; its exit code ([`EXEC_UNKNOWN_EXIT`] if never reported).
    pub async fn exit_code(&self) -> Result<i64, DockerError> {
        exit_code(self.docker.as_ref(), &self.exec_id).await
    }
}
