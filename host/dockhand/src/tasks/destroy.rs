//! DestroyTask, seen through to the end.
//!
//! Nomad ignores the error of a failed DestroyTask and never calls it again for that task. A
//! handle whose container could not be stopped or removed would then stay tracked for the
//! life of the process — a container the reconciler never judges. So when the Docker calls of
//! a DestroyTask fail, the error still goes back to Nomad and the same steps are retried in the
//! background (with backoff, one retrier per handle); the handle is dropped once the container
//! is gone (or, with `gc.container = false`, stopped). After [`DESTROY_RETRY_ATTEMPTS`] failed
//! attempts the handle is dropped anyway, with a warning: the container then is an untracked
//! container of a destroyed task, which is the reconciler's to judge.
//!
//! A container that is running while DestroyTask was asked without `force` is no Docker failure
//! (Nomad stops a task before destroying it): that answer is returned and nothing is retried.

use std::sync::Arc;
use std::time::Duration;

use super::handle::TaskHandle;
use super::{TaskEngine, TaskError};

/// How long a forced destroy waits for the stopped container's exit status.
const DESTROY_EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long a destroy lets the log forwarder deliver the stopped container's last output.
const DESTROY_LOG_GRACE: Duration = Duration::from_secs(5);
/// First pause before a background retry of a failed DestroyTask; doubled after each attempt.
pub const DESTROY_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Largest pause between background retries.
pub const DESTROY_RETRY_MAX: Duration = Duration::from_secs(30);
/// Background attempts before the handle is dropped regardless (about ten minutes).
pub const DESTROY_RETRY_ATTEMPTS: u32 = 25;

impl TaskEngine {
    /// Destroys the task: refuses a running container unless `force` (which stops it first),
    /// lets the log forwarder deliver the last output (bounded), removes the container when `gc.container` is on, and forgets the task. When a Docker
    /// call fails, the error is returned and the destroy is retried in the background.
    pub async fn destroy(&self, task_id: &str, force: bool) -> Result<(), TaskError> {
        let h = self.handle(task_id)?;
        match self.destroy_container(&h, force).await {
            Ok(()) => {
                self.forget(&h);
                Ok(())
            }
            Err(TaskError::StillRunning) => Err(TaskError::StillRunning),
            Err(e) => {
                if h.claim_destroy_retry() {
                    tracing::warn!(task_id, container_id = h.container_id(), error = %e, "destroy failed; retrying in the background");
                    tokio::spawn(self.clone().retry_destroy(h, force));
                }
                Err(e)
            }
        }
    }

    /// Drops `h` from the store if it is still the tracked handle of its task.
    fn forget(&self, h: &Arc<TaskHandle>) {
        if let Some(tracked) = self.store.get(h.task_id())
            && Arc::ptr_eq(&tracked, h)
        {
            self.store.remove(h.task_id());
            self.images.release(&h.state().image_id, h.task_id());
        }
        h.shutdown();
    }

    /// Background retries of a failed destroy of `h`.
    async fn retry_destroy(self, h: Arc<TaskHandle>, force: bool) {
        let task_id = h.task_id().to_owned();
        let mut pause = DESTROY_RETRY_FIRST;
        for attempt in 1..=DESTROY_RETRY_ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(DESTROY_RETRY_MAX);
            let still_tracked = self
                .store
                .get(&task_id)
                .is_some_and(|t| Arc::ptr_eq(&t, &h));
            if !still_tracked {
                return;
            }
            match self.destroy_container(&h, force).await {
                Ok(()) => {
                    tracing::info!(
                        task_id,
                        container_id = h.container_id(),
                        attempt,
                        "destroy completed in the background"
                    );
                    self.forget(&h);
                    return;
                }
                Err(TaskError::StillRunning) => {
                    tracing::warn!(
                        task_id,
                        container_id = h.container_id(),
                        "container runs again; destroy retries stop, the task stays tracked"
                    );
                    return;
                }
                Err(e) => {
                    tracing::debug!(task_id, attempt, error = %e, "background destroy failed again");
                }
            }
        }
        tracing::warn!(
            task_id,
            container_id = h.container_id(),
            attempts = DESTROY_RETRY_ATTEMPTS,
            "destroy kept failing; the task is no longer tracked and its container is left to the reconciler"
        );
        self.forget(&h);
    }

    /// The Docker side of a destroy: stop (with `force`) and remove when `gc.container`.
    async fn destroy_container(&self, h: &TaskHandle, force: bool) -> Result<(), TaskError> {
        let task_id = h.task_id();
        let id = h.container_id().to_owned();
        let inspected = match self.docker.inspect_container(&id).await {
            Err(e) if e.is_not_found() => {
                tracing::info!(
                    task_id,
                    container_id = id,
                    "container was removed out of band"
                );
                return Ok(());
            }
            Err(source) => return Err(TaskError::Inspect { id, source }),
            Ok(i) => i,
        };
        let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
        if running && !force {
            return Err(TaskError::StillRunning);
        }
        if running {
            match self.docker.stop_container(&id, Duration::ZERO).await {
                // Let the exit watcher publish the real status before the removal.
                Ok(()) => drop(h.wait_timeout(DESTROY_EXIT_GRACE).await),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if !self.settings.gc_container => {
                    return Err(TaskError::Stop { id, source: e });
                }
                Err(e) => {
                    tracing::warn!(task_id, container_id = id, error = %e, "failed to stop container during destroy; removing it by force");
                }
            }
        }
        // The forwarder reads the stopped container's output to its end and returns; after
        // the removal that output would be gone.
        h.finish_logs(DESTROY_LOG_GRACE).await;
        if self.settings.gc_container {
            match self.docker.remove_container(&id, true).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(source) => return Err(TaskError::Remove { id, source }),
            }
        } else {
            tracing::debug!(
                task_id,
                container_id = id,
                "not removing container due to config"
            );
        }
        Ok(())
    }
}
