//! The task RPCs: decode and validate, call the [`TaskEngine`], encode the answer.
//!
//! Error mapping (one place, `task_error`): an unknown task id is `NOT_FOUND`; invalid input
//! is `INVALID_ARGUMENT` naming the field; a failure the engine calls transient carries the
//! `RecoverableError{recoverable: true}` detail so Nomad retries the task; everything else is
//! `FAILED_PRECONDITION` or `INTERNAL` with the full cause chain in the message.

use std::time::Duration;

use futures::StreamExt as _;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::{PluginError, ResponseStream};
use tokio_stream::wrappers::BroadcastStream;

use super::convert;
use crate::config::{ConfigErrors, PluginConfig, TaskConfig, TaskContext};
use crate::tasks::{DRIVER_STATE_VERSION, TaskEngine, TaskError, TaskState};
use nomad_plugin::error_chain;

/// Timeout of a buffered exec when the request has none.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Default stats interval when the request has none.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Maps an engine error to what the agent sees.
pub(super) fn task_error(err: TaskError) -> PluginError {
    let message = error_chain(&err);
    if err.is_recoverable() {
        return PluginError::recoverable(message);
    }
    match err {
        TaskError::NotFound(_) => PluginError::NotFound(message),
        TaskError::AlreadyStarted(_) => PluginError::AlreadyExists(message),
        TaskError::InvalidSpec(_)
        | TaskError::RuntimeNotAllowed(_)
        | TaskError::RuntimeConflict { .. }
        | TaskError::State(_) => PluginError::InvalidArgument(message),
        TaskError::StillRunning | TaskError::ContainerStopped => {
            PluginError::FailedPrecondition(message)
        }
        TaskError::GpuRuntimeMissing(_) => PluginError::FailedPrecondition(message),
        other => PluginError::internal(message, other),
    }
}

fn config_errors(what: &str, errors: &[crate::config::ConfigError]) -> PluginError {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    PluginError::InvalidArgument(format!("{what}: {}", text.join("; ")))
}

fn duration(
    d: Option<&prost_types::Duration>,
    field: &str,
) -> Result<Option<Duration>, PluginError> {
    match d {
        None => Ok(None),
        Some(d) => Duration::try_from(*d).map(Some).map_err(|_| {
            PluginError::InvalidArgument(format!("{field}: negative or invalid duration {d:?}"))
        }),
    }
}

/// `StartTask`.
pub(super) async fn start(
    engine: &TaskEngine,
    plugin: &PluginConfig,
    request: pb::StartTaskRequest,
) -> Result<pb::StartTaskResponse, PluginError> {
    let task = request
        .task
        .ok_or_else(|| PluginError::InvalidArgument("task: missing task config".to_owned()))?;
    if task.id.is_empty() {
        return Err(PluginError::InvalidArgument(
            "task.id: empty task id".to_owned(),
        ));
    }
    let cfg = TaskConfig::from_msgpack(&task.msgpack_driver_config)
        .map_err(|ConfigErrors(e)| config_errors("task config", &e))?;
    let ctx = TaskContext {
        alloc_dir: (!task.alloc_dir.is_empty()).then(|| task.alloc_dir.clone().into()),
        task_dir: convert::task_dir(&task),
    };
    cfg.validate_in(plugin, &ctx)
        .map_err(|e| config_errors("task config", &e))?;
    for warning in &cfg.warnings {
        tracing::warn!(task_id = task.id, "{warning}");
    }
    let spec = convert::task_spec(&task, cfg).map_err(PluginError::InvalidArgument)?;
    let started = engine.start(spec).await.map_err(task_error)?;
    tracing::info!(
        task_id = task.id,
        container_id = started.handle.container_id(),
        "task started"
    );
    Ok(pb::StartTaskResponse {
        result: pb::start_task_response::Result::Success.into(),
        driver_error_msg: String::new(),
        handle: Some(pb::TaskHandle {
            version: i32::try_from(DRIVER_STATE_VERSION).unwrap_or(i32::MAX),
            config: Some(task),
            state: pb::TaskState::Running.into(),
            driver_state: started.driver_state,
        }),
        network_override: started.network.as_ref().map(convert::network_override),
    })
}

/// `RecoverTask`: the task id comes from `handle.config.id` (the agent sends `task_id` empty).
pub(super) async fn recover(
    engine: &TaskEngine,
    request: pb::RecoverTaskRequest,
) -> Result<(), PluginError> {
    let handle = request
        .handle
        .ok_or_else(|| PluginError::InvalidArgument("handle: missing task handle".to_owned()))?;
    let config_id = handle
        .config
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let task_id = if config_id.is_empty() {
        request.task_id
    } else {
        config_id
    };
    if task_id.is_empty() {
        return Err(PluginError::InvalidArgument(
            "handle.config.id: empty task id".to_owned(),
        ));
    }
    if engine.store().contains(&task_id) {
        return Ok(());
    }
    if handle.driver_state.is_empty() {
        return Err(PluginError::InvalidArgument(format!(
            "handle.driver_state: empty for task {task_id}; cannot recover"
        )));
    }
    let state = TaskState::decode(&handle.driver_state).map_err(|e| {
        PluginError::InvalidArgument(format!("handle.driver_state: {}", error_chain(&e)))
    })?;
    if state.task_id != task_id {
        // Recovering under another id would track a task the agent can never address.
        return Err(PluginError::InvalidArgument(format!(
            "handle.driver_state: belongs to task {:?}, not {task_id:?}",
            state.task_id
        )));
    }
    let recovered = engine
        .recover(&handle.driver_state)
        .await
        .map_err(task_error)?;
    tracing::info!(
        task_id,
        container_id = recovered.container_id(),
        "task recovered"
    );
    Ok(())
}

/// `WaitTask`: `result` is always set.
pub(super) async fn wait(
    engine: &TaskEngine,
    request: pb::WaitTaskRequest,
) -> Result<pb::WaitTaskResponse, PluginError> {
    let r = engine.wait(&request.task_id).await.map_err(task_error)?;
    Ok(pb::WaitTaskResponse {
        result: Some(convert::exit_result(&r)),
        // Like Nomad's docker driver: `OOM Killed`, or why the exit was not clean.
        err: r.err.clone().unwrap_or_default(),
    })
}

/// `StopTask`.
pub(super) async fn stop(
    engine: &TaskEngine,
    request: pb::StopTaskRequest,
) -> Result<(), PluginError> {
    let timeout = duration(request.timeout.as_ref(), "timeout")?.unwrap_or(Duration::from_secs(5));
    let signal = Some(request.signal.as_str()).filter(|s| !s.is_empty());
    engine
        .stop(&request.task_id, timeout, signal)
        .await
        .map_err(task_error)
}

/// `DestroyTask`.
pub(super) async fn destroy(
    engine: &TaskEngine,
    request: pb::DestroyTaskRequest,
) -> Result<(), PluginError> {
    engine
        .destroy(&request.task_id, request.force)
        .await
        .map_err(task_error)
}

/// `InspectTask`: `task`, both timestamps and `result` are always set.
pub(super) async fn inspect(
    engine: &TaskEngine,
    request: pb::InspectTaskRequest,
) -> Result<pb::InspectTaskResponse, PluginError> {
    let status = engine.inspect(&request.task_id).await.map_err(task_error)?;
    let name = engine
        .store()
        .get(&request.task_id)
        .map(|h| h.state().task_name.clone())
        .unwrap_or_default();
    let state = if status.running {
        pb::TaskState::Running
    } else if status.exit.is_some() || status.finished_at.is_some() {
        pb::TaskState::Exited
    } else {
        pb::TaskState::Unknown
    };
    let result = status
        .exit
        .as_ref()
        .map(convert::exit_result)
        .unwrap_or_default();
    let mut attributes = std::collections::HashMap::new();
    attributes.insert("container_id".to_owned(), status.container_id.clone());
    Ok(pb::InspectTaskResponse {
        task: Some(pb::TaskStatus {
            id: request.task_id,
            name,
            state: state.into(),
            started_at: Some(convert::docker_timestamp(status.started_at.as_deref())),
            completed_at: Some(convert::docker_timestamp(status.finished_at.as_deref())),
            result: Some(result),
        }),
        driver: Some(pb::TaskDriverStatus { attributes }),
        network_override: status.network.as_ref().map(convert::network_override),
    })
}

/// `TaskStats`.
pub(super) fn stats(
    engine: &TaskEngine,
    request: pb::TaskStatsRequest,
) -> Result<ResponseStream<pb::TaskStatsResponse>, PluginError> {
    let interval = duration(request.collection_interval.as_ref(), "collection_interval")?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_STATS_INTERVAL);
    let task_id = request.task_id;
    let samples = engine.stats(&task_id, interval).map_err(task_error)?;
    Ok(Box::pin(
        samples.map(move |u| Ok(convert::task_stats(&task_id, &u))),
    ))
}

/// `TaskEvents`: every engine event; the stream stays open (a lagging reader skips events).
pub(super) fn events(engine: &TaskEngine) -> ResponseStream<pb::DriverTaskEvent> {
    let events = BroadcastStream::new(engine.subscribe_events()).filter_map(|e| async move {
        match e {
            Ok(e) => Some(Ok(convert::task_event(e))),
            Err(lagged) => {
                tracing::warn!(error = %lagged, "task event stream lagged; events were dropped");
                None
            }
        }
    });
    Box::pin(events.chain(futures::stream::pending()))
}

/// `SignalTask`.
pub(super) async fn signal(
    engine: &TaskEngine,
    request: pb::SignalTaskRequest,
) -> Result<(), PluginError> {
    if request.signal.is_empty() {
        return Err(PluginError::InvalidArgument(
            "signal: empty signal name".to_owned(),
        ));
    }
    engine
        .signal(&request.task_id, &request.signal)
        .await
        .map_err(task_error)
}

/// `ExecTask`: `result` is always set.
pub(super) async fn exec(
    engine: &TaskEngine,
    request: pb::ExecTaskRequest,
) -> Result<pb::ExecTaskResponse, PluginError> {
    let timeout = duration(request.timeout.as_ref(), "timeout")?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_EXEC_TIMEOUT);
    let out = engine
        .exec(&request.task_id, request.command, timeout)
        .await
        .map_err(task_error)?;
    Ok(pb::ExecTaskResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        result: Some(convert::exit_result(&crate::tasks::ExitResult {
            exit_code: out.exit_code,
            ..crate::tasks::ExitResult::default()
        })),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::PluginConfig;
    use crate::docker::BollardDocker;
    use crate::fingerprint::RuntimeCatalog;
    use crate::tasks::{EngineSettings, TaskSpec};

    fn engine() -> TaskEngine {
        // Building a client performs no I/O; nothing here contacts a daemon.
        let docker =
            BollardDocker::new(super::convert::docker_connection(&PluginConfig::default()))
                .unwrap_or_else(|e| panic!("client: {e}"));
        TaskEngine::new(
            Arc::new(docker),
            EngineSettings::default(),
            RuntimeCatalog::new(),
        )
    }

    #[tokio::test]
    async fn events_are_forwarded_with_routing_fields_and_the_stream_stays_open() {
        let engine = engine();
        let mut events = events(&engine);
        let spec = TaskSpec {
            id: "a1/web/1".to_owned(),
            name: "web".to_owned(),
            alloc_id: "a1".to_owned(),
            ..TaskSpec::default()
        };
        let annotations = [("image".to_owned(), "busybox".to_owned())].into();
        engine.emit(&spec, "Downloading image".to_owned(), annotations);
        let event = events.next().await.expect("one event").expect("ok");
        assert_eq!(
            (
                event.alloc_id.as_str(),
                event.task_name.as_str(),
                event.task_id.as_str()
            ),
            ("a1", "web", "a1/web/1")
        );
        assert_eq!(event.message, "Downloading image");
        assert_eq!(event.annotations["image"], "busybox");
        assert!(event.timestamp.expect("timestamp").seconds > 0);
        let idle = tokio::time::timeout(Duration::from_millis(50), events.next()).await;
        assert!(
            idle.is_err(),
            "the stream neither ends nor yields: {idle:?}"
        );
    }

    #[tokio::test]
    async fn unknown_tasks_and_bad_requests_map_to_their_codes() {
        let engine = engine();
        let err = wait(
            &engine,
            pb::WaitTaskRequest {
                task_id: "nope".to_owned(),
            },
        )
        .await
        .expect_err("unknown");
        assert_eq!(err.code(), tonic::Code::NotFound);
        let err = start(
            &engine,
            &PluginConfig::default(),
            pb::StartTaskRequest { task: None },
        )
        .await
        .expect_err("no task");
        assert!(matches!(err, PluginError::InvalidArgument(ref m) if m.contains("task")));
        let err = signal(
            &engine,
            pb::SignalTaskRequest {
                task_id: "nope".to_owned(),
                signal: String::new(),
            },
        )
        .await
        .expect_err("no signal");
        assert!(matches!(err, PluginError::InvalidArgument(ref m) if m.contains("signal")));
    }
}
