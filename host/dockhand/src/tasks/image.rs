//! Making sure a task's image is present: use the local image, `docker load` a tarball, or
//! pull with an overall deadline and an inactivity watchdog.
//!
//! Unlike upstream Nomad, the pull is not capped by an HTTP client timeout: the only limits are
//! `image_pull_timeout` (overall) and `pull_activity_timeout` (no progress message for that
//! long aborts the pull).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::docker::{DockerApi, DockerError, PullMessage, RegistryAuth};

use super::TaskError;

/// Pull progress, reported to the caller's callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Image being pulled.
    pub image: String,
    /// Layers seen so far.
    pub layers_total: usize,
    /// Layers finished (`Pull complete` / `Already exists`).
    pub layers_done: usize,
    /// Last status text.
    pub last_status: String,
}

impl PullProgress {
    /// Nomad-style progress message.
    pub fn message(&self) -> String {
        format!(
            "Docker image pull progress: Pulled {}/{} layers",
            self.layers_done, self.layers_total
        )
    }
}

/// How a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The daemon reported an error.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// No progress message for longer than `pull_activity_timeout`.
    #[error("image pull aborted due to inactivity after {0:?}")]
    Inactive(Duration),
    /// The overall deadline passed.
    #[error("image pull did not finish within {0:?}")]
    Deadline(Duration),
}

impl PullError {
    /// Whether a later attempt may succeed.
    pub fn is_recoverable(&self) -> bool {
        match self {
            // `Error: image … not found` is permanent; so are auth errors (4xx).
            Self::Docker(DockerError::Stream { message }) => !message.contains("not found"),
            Self::Docker(e) => e.is_transient(),
            Self::Inactive(_) | Self::Deadline(_) => true,
        }
    }
}

/// Image acquisition parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest<'a> {
    /// Image reference.
    pub image: &'a str,
    /// Always pull.
    pub force_pull: bool,
    /// Tarball to load instead of pulling.
    pub load: Option<&'a std::path::Path>,
    /// Credentials.
    pub auth: Option<RegistryAuth>,
    /// Overall pull deadline.
    pub pull_timeout: Duration,
    /// Inactivity limit.
    pub activity_timeout: Duration,
}

/// Whether the reference has no tag or the `latest` tag (digest references have neither).
pub fn is_latest_or_untagged(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// Makes sure the image is present and returns its id.
pub async fn ensure_image(
    docker: &dyn DockerApi,
    request: &ImageRequest<'_>,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<String, TaskError> {
    let image = request.image;
    let inspect_id = |i: crate::docker::models::ImageInspect| i.id.unwrap_or_default();

    if !request.force_pull && !is_latest_or_untagged(image) {
        match docker.inspect_image(image).await {
            Ok(i) => return Ok(inspect_id(i)),
            Err(e) if e.is_not_found() => {}
            Err(source) => {
                return Err(TaskError::ImageInspect {
                    image: image.to_owned(),
                    source,
                });
            }
        }
    }

    if let Some(path) = request.load {
        docker
            .load_image(path)
            .await
            .map_err(|source| TaskError::Load {
                path: path.to_owned(),
                source,
            })?;
    } else {
        pull(docker, request, on_progress)
            .await
            .map_err(|source| TaskError::Pull {
                image: image.to_owned(),
                source,
            })?;
    }
    docker
        .inspect_image(image)
        .await
        .map(inspect_id)
        .map_err(|source| TaskError::ImageInspect {
            image: image.to_owned(),
            source,
        })
}

/// Interval between progress callbacks during a pull.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

async fn pull(
    docker: &dyn DockerApi,
    request: &ImageRequest<'_>,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<(), PullError> {
    let body = async {
        let stream = docker
            .pull_image(request.image, request.auth.clone())
            .await?;
        follow_pull(stream, request.image, request.activity_timeout, on_progress).await
    };
    tokio::time::timeout(request.pull_timeout, body)
        .await
        .unwrap_or(Err(PullError::Deadline(request.pull_timeout)))
}

/// Consumes a pull's progress stream, aborting when no message arrives for `activity_timeout`.
pub async fn follow_pull(
    mut stream: BoxStream<'_, Result<PullMessage, DockerError>>,
    image: &str,
    activity_timeout: Duration,
    on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<(), PullError> {
    let mut progress = PullProgress {
        image: image.to_owned(),
        ..PullProgress::default()
    };
    on_progress(&progress);
    let (mut seen, mut done) = (BTreeSet::new(), BTreeSet::new());
    let mut last_report = tokio::time::Instant::now();
    loop {
        let next = tokio::time::timeout(activity_timeout, stream.next())
            .await
            .map_err(|_| PullError::Inactive(activity_timeout))?;
        let Some(msg) = next else { break };
        let PullMessage { layer, status, .. } = msg?;
        if let Some(layer) = layer {
            if status.starts_with("Pull complete") || status.starts_with("Already exists") {
                done.insert(layer.clone());
            }
            if !status.starts_with("Pulling from") {
                seen.insert(layer);
            }
        }
        progress.layers_total = seen.len();
        progress.layers_done = done.len();
        progress.last_status = status;
        if last_report.elapsed() >= PROGRESS_EVERY {
            on_progress(&progress);
            last_report = tokio::time::Instant::now();
        }
    }
    on_progress(&progress);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_detection() {
        assert!(is_latest_or_untagged("busybox"));
        assert!(is_latest_or_untagged("busybox:latest"));
        assert!(is_latest_or_untagged("127.0.0.1:5000/busybox"));
        assert!(!is_latest_or_untagged("127.0.0.1:5000/busybox:1"));
        assert!(!is_latest_or_untagged("busybox@sha256:abc"));
        assert!(!is_latest_or_untagged("dockhand-test/busybox:1"));
    }

    fn msg(layer: &str, status: &str) -> Result<PullMessage, DockerError> {
        Ok(PullMessage {
            layer: Some(layer.to_owned()),
            status: status.to_owned(),
            ..PullMessage::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_pull_is_aborted_by_the_watchdog() {
        // Two messages, then silence: the watchdog fires after the activity timeout.
        let stream =
            futures::stream::iter(vec![msg("a", "Downloading"), msg("a", "Pull complete")])
                .chain(futures::stream::pending())
                .boxed();
        let started = tokio::time::Instant::now();
        let last = std::sync::Mutex::new(PullProgress::default());
        let err = follow_pull(stream, "img:1", Duration::from_secs(60), &|p| {
            *last.lock().unwrap() = p.clone();
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "image pull aborted due to inactivity after 60s"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert!(err.is_recoverable());
    }

    #[tokio::test(start_paused = true)]
    async fn a_progressing_pull_counts_layers_and_finishes() {
        let stream = futures::stream::iter(vec![
            msg("img", "Pulling from library/img"),
            msg("a", "Pulling fs layer"),
            msg("b", "Pulling fs layer"),
            msg("a", "Pull complete"),
            msg("b", "Already exists"),
        ])
        .boxed();
        let last = std::sync::Mutex::new(PullProgress::default());
        follow_pull(stream, "img:1", Duration::from_secs(60), &|p| {
            *last.lock().unwrap() = p.clone();
        })
        .await
        .unwrap();
        let last = last.into_inner().unwrap();
        assert_eq!((last.layers_done, last.layers_total), (2, 2));
        assert_eq!(
            last.message(),
            "Docker image pull progress: Pulled 2/2 layers"
        );
    }

    #[tokio::test]
    async fn a_stream_error_aborts_the_pull() {
        let stream = futures::stream::iter(vec![Err(DockerError::Stream {
            message: "manifest unknown".into(),
        })])
        .boxed();
        let err = follow_pull(stream, "img:1", Duration::from_secs(60), &|_| {})
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "docker stream error: manifest unknown");
    }

    #[test]
    fn missing_image_is_not_recoverable() {
        let e = PullError::Docker(DockerError::Stream {
            message: "Error: image library/x not found".into(),
        });
        assert!(!e.is_recoverable());
        assert!(PullError::Inactive(Duration::from_secs(60)).is_recoverable());
    }
}
