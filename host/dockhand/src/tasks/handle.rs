//! A live task: its persisted record, its exit result and its background work (exit watcher,
//! log forwarder).
//!
//! The exit result lives in a `watch` channel: it is set exactly once by the exit watcher and
//! every waiter, however many and whenever they arrive, gets the same value. The watcher waits
//! on the container with no deadline (a container may legitimately run for months) and never
//! gives up without a result: if the container vanishes it reports that as the result's error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::docker::DockerApi;

use super::state::TaskState;

/// Extra inspections of a container that exited with 137 (SIGKILL) but is not yet marked
/// OOM-killed.
const OOM_RECHECKS: u32 = 3;
/// Pause between those inspections.
const OOM_RECHECK_PAUSE: Duration = Duration::from_millis(200);

/// How a task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitResult {
    /// Container exit status.
    pub exit_code: i64,
    /// Terminating signal. Docker does not report it; like Nomad's docker driver this is 0
    /// (an exit code of 128+n is the process's own business and is not reinterpreted).
    pub signal: i32,
    /// Docker's `State.OOMKilled`.
    pub oom_killed: bool,
    /// Error text for Nomad (`OOM Killed`, non-zero exit, container gone).
    pub err: Option<String>,
}

impl ExitResult {
    /// Whether the task succeeded.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.err.is_none()
    }
}

/// Largest pause between retries of a failed wait call.
const WAIT_RETRY_MAX: Duration = Duration::from_secs(30);

/// A tracked task.
#[derive(Debug)]
pub struct TaskHandle {
    state: TaskState,
    exit: watch::Sender<Option<ExitResult>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Set once a background retry of a failed DestroyTask runs for this handle.
    destroy_retrying: AtomicBool,
    log_forwarder: Mutex<Option<JoinHandle<()>>>,
}

impl TaskHandle {
    pub(crate) fn new(state: TaskState) -> Arc<Self> {
        Arc::new(Self {
            state,
            exit: watch::Sender::new(None),
            background: Mutex::new(Vec::new()),
            destroy_retrying: AtomicBool::new(false),
            log_forwarder: Mutex::new(None),
        })
    }

    /// True for the first caller only: that one runs the background retry of a failed
    /// DestroyTask.
    pub(crate) fn claim_destroy_retry(&self) -> bool {
        !self.destroy_retrying.swap(true, Ordering::SeqCst)
    }

    /// Nomad task id.
    pub fn task_id(&self) -> &str {
        &self.state.task_id
    }

    /// Docker container id.
    pub fn container_id(&self) -> &str {
        &self.state.container_id
    }

    /// The persisted record.
    pub fn state(&self) -> &TaskState {
        &self.state
    }

    /// The exit result, once the task has exited.
    pub fn exit_result(&self) -> Option<ExitResult> {
        self.exit.borrow().clone()
    }

    /// Waits for the exit result. Any number of concurrent waiters get the same result.
    pub async fn wait(&self) -> ExitResult {
        let mut rx = self.exit.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            // The sender lives in `self`, so it cannot be dropped while we borrow it.
            Err(_) => unreachable_exit(),
        }
    }

    /// Waits up to `limit` for the exit result.
    pub async fn wait_timeout(&self, limit: Duration) -> Option<ExitResult> {
        tokio::time::timeout(limit, self.wait()).await.ok()
    }

    pub(crate) fn add_background(&self, task: JoinHandle<()>) {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
    }

    pub(crate) fn set_log_forwarder(&self, task: JoinHandle<()>) {
        let old = self
            .log_forwarder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Lets the log forwarder deliver the output of the stopped container, for at most
    /// `limit`, then stops it.
    pub(crate) async fn finish_logs(&self, limit: Duration) {
        let task = self
            .log_forwarder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else { return };
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            tracing::warn!(
                task_id = self.state.task_id,
                container_id = self.state.container_id,
                "log forwarder did not finish within {limit:?}; stopping it"
            );
            task.abort();
        }
    }

    /// Stops the background work (exit watcher, log forwarder). Waiters still blocked get a
    /// result saying the task was destroyed, so no WaitTask hangs forever.
    pub(crate) fn shutdown(&self) {
        if let Some(task) = self
            .log_forwarder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        for task in self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        self.exit.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(ExitResult {
                exit_code: -1,
                err: Some("task was destroyed before its exit status was read".to_owned()),
                ..ExitResult::default()
            });
            true
        });
    }

    /// Starts the exit watcher for this handle.
    pub(crate) fn spawn_exit_watcher(self: &Arc<Self>, docker: Arc<dyn DockerApi>) {
        let exit = self.exit.clone();
        let container_id = self.state.container_id.clone();
        let task_id = self.state.task_id.clone();
        let task = tokio::spawn(async move {
            let result = watch_exit(docker.as_ref(), &container_id).await;
            if result.oom_killed {
                tracing::warn!(task_id, container_id, "OOM Killed");
            }
            tracing::debug!(
                task_id,
                container_id,
                exit_code = result.exit_code,
                "task exited"
            );
            exit.send_replace(Some(result));
        });
        self.add_background(task);
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn unreachable_exit() -> ExitResult {
    ExitResult {
        exit_code: -1,
        err: Some("task handle dropped while waiting".to_owned()),
        ..ExitResult::default()
    }
}

/// Waits for `container_id` to stop and builds its exit result. Never returns without one.
async fn watch_exit(docker: &dyn DockerApi, container_id: &str) -> ExitResult {
    let mut pause = Duration::from_millis(500);
    let status = loop {
        match docker.wait_container(container_id).await {
            Ok(code) => break Some(code),
            Err(e) if e.is_not_found() => break None,
            Err(e) => {
                tracing::warn!(container_id, error = %e, "failed to wait for container; retrying");
                // The container may have stopped while the daemon was unreachable.
                match docker.inspect_container(container_id).await {
                    Ok(i) => {
                        let st = i.state.unwrap_or_default();
                        if st.running != Some(true) {
                            break st.exit_code;
                        }
                    }
                    Err(e) if e.is_not_found() => break None,
                    Err(_) => {}
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WAIT_RETRY_MAX);
            }
        }
    };

    let Some(exit_code) = status else {
        return ExitResult {
            exit_code: -1,
            err: Some("container was removed out of band".to_owned()),
            ..ExitResult::default()
        };
    };
    // OOMKilled comes from inspect, never from the exit code. The daemon records the OOM
    // event asynchronously, so a SIGKILL exit (137) reading "not OOM-killed" is inspected
    // again a little later before it is believed. An OOM kill in a container's first
    // instants, before the runtime watches its cgroup, is never recorded at all: such a
    // task ends with 137 and no OOM flag, as under Nomad's own docker driver.
    let mut oom_killed = false;
    let mut sigkill_rechecks = OOM_RECHECKS;
    for _ in 0..3 + OOM_RECHECKS {
        match docker.inspect_container(container_id).await {
            Ok(i) => {
                oom_killed = i.state.and_then(|s| s.oom_killed).unwrap_or(false);
                if !oom_killed && exit_code == 137 && sigkill_rechecks > 0 {
                    sigkill_rechecks -= 1;
                    tokio::time::sleep(OOM_RECHECK_PAUSE).await;
                    continue;
                }
                break;
            }
            Err(e) if e.is_not_found() => break,
            Err(e) => {
                tracing::warn!(container_id, error = %e, "failed to inspect exited container");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let err = if oom_killed {
        Some("OOM Killed".to_owned())
    } else if exit_code != 0 {
        Some(format!(
            "Docker container exited with non-zero exit code: {exit_code}"
        ))
    } else {
        None
    };
    ExitResult {
        exit_code,
        signal: 0,
        oom_killed,
        err,
    }
}
