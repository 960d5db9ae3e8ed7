//! Making sure a task's image is present: use the local image, `docker load` a tarball, or
//! pull with an overall deadline and an inactivity watchdog.
//!
//! As in Nomad: a reference without tag or digest means `:latest`; a `latest` image (and any
//! image with `force_pull`) is always pulled, others only when missing; credentials come from
//! [`super::auth`]; the task gets a `Downloading image` event, then a `Docker image pull
//! progress: …` event every [`PULL_PROGRESS_INTERVAL`] while the pull runs.
//!
//! Unlike upstream Nomad, the pull is not capped by an HTTP client timeout: the only limits are
//! `image_pull_timeout` (overall) and `pull_activity_timeout` (no progress message for that
//! long aborts the pull).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::docker::{DockerApi, DockerError, PullMessage, RegistryAuth};

use super::TaskError;
use super::auth;
use super::reference::ImageRef;
use crate::config::AuthSources;

/// How often a running pull reports progress to the task (Nomad's slow-pull report interval).
pub const PULL_PROGRESS_INTERVAL: Duration = Duration::from_secs(120);

/// How often a running pull logs its progress at debug level.
const PULL_DEBUG_INTERVAL: Duration = Duration::from_secs(10);

/// Where a layer is in a pull, in the order Docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LayerStatus {
    Starting,
    Waiting,
    Downloading,
    Verifying,
    Downloaded,
    Extracting,
    Complete,
    Exists,
}

impl LayerStatus {
    fn parse(status: &str) -> Option<Self> {
        Some(match status {
            "Pulling fs layer" => Self::Starting,
            "Waiting" => Self::Waiting,
            "Downloading" => Self::Downloading,
            "Verifying Checksum" => Self::Verifying,
            "Download complete" => Self::Downloaded,
            "Extracting" => Self::Extracting,
            "Pull complete" => Self::Complete,
            "Already exists" => Self::Exists,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer {
    status: LayerStatus,
    current: i64,
    total: i64,
}

/// The progress of one pull, layer by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Image being pulled, as configured.
    pub image: String,
    layers: BTreeMap<String, Layer>,
    messages: u64,
}

impl PullProgress {
    fn new(image: &str) -> Self {
        Self {
            image: image.to_owned(),
            ..Self::default()
        }
    }

    /// Takes one message of the pull stream into account.
    fn record(&mut self, msg: &PullMessage) {
        self.messages += 1;
        let (Some(id), Some(status)) = (&msg.layer, LayerStatus::parse(&msg.status)) else {
            return;
        };
        let layer = self.layers.entry(id.clone()).or_insert(Layer {
            status,
            current: 0,
            total: 0,
        });
        layer.status = status;
        if status == LayerStatus::Downloading {
            if let (Some(c), Some(t)) = (msg.current, msg.total) {
                (layer.current, layer.total) = (c, t);
            }
        } else if status == LayerStatus::Downloaded {
            layer.current = layer.total;
        }
    }

    /// Layers finished downloading and layers known.
    pub fn layers(&self) -> (usize, usize) {
        let done = self
            .layers
            .values()
            .filter(|l| l.status >= LayerStatus::Downloaded)
            .count();
        (done, self.layers.len())
    }

    /// Nomad's progress text, e.g. `Pulled 1/2 (1.5MiB/3MiB) layers: 0 waiting/1 pulling -
    /// est 4.0s remaining`, given the time since the pull started.
    pub fn summary(&self, elapsed: Duration) -> String {
        if self.messages == 0 {
            return "No progress".to_owned();
        }
        let (mut waiting, mut pulling) = (0, 0);
        for l in self.layers.values() {
            match l.status {
                LayerStatus::Starting | LayerStatus::Waiting => waiting += 1,
                LayerStatus::Downloading | LayerStatus::Verifying => pulling += 1,
                _ => {}
            }
        }
        let (pulled, known) = self.layers();
        let current: i64 = self.layers.values().map(|l| l.current).sum();
        let total: i64 = self.layers.values().map(|l| l.total).sum();
        let mut text = format!(
            "Pulled {pulled}/{known} ({}/{}) layers: {waiting} waiting/{pulling} pulling",
            bytes_size(current),
            bytes_size(total)
        );
        let elapsed_ns = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
        if current > 0 {
            let est = (elapsed_ns / current).saturating_mul(total) - elapsed_ns;
            if est > 0 {
                text.push_str(&format!(" - est {:.1}s remaining", est as f64 / 1e9));
            }
        }
        text
    }

    /// The task event text Nomad sends for a slow pull.
    pub fn message(&self, elapsed: Duration) -> String {
        format!("Docker image pull progress: {}", self.summary(elapsed))
    }
}

/// A byte count with binary units and four significant digits (`1.5KiB`, `2MiB`).
fn bytes_size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 1.0 {
        3
    } else {
        3 - (value.log10().floor() as usize).min(3)
    };
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
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
            // `Error: image … not found` is permanent (Nomad's rule); anything else the
            // registry or daemon said may be fixed by then (credentials, network).
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
    /// The task's own credentials (`auth`); `None` for the sandbox image.
    pub auth: Option<&'a RegistryAuth>,
    /// The agent's credential sources.
    pub auth_sources: &'a AuthSources,
    /// `auth_soft_fail`: a failed credential lookup pulls anonymously instead of failing.
    pub auth_soft_fail: bool,
    /// Overall pull deadline.
    pub pull_timeout: Duration,
    /// Inactivity limit.
    pub activity_timeout: Duration,
    /// How often progress is reported to the callback.
    pub progress_interval: Duration,
}

/// What happens during a pull, for the task's events.
pub trait PullObserver: Send + Sync {
    /// The pull begins (`Downloading image`); `image` is `<repo>:<tag>`.
    fn started(&self, image: &str);
    /// A periodic progress report.
    fn progress(&self, image: &str, message: &str);
}

/// An observer that reports nothing (the sandbox image).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl PullObserver for Silent {
    fn started(&self, _: &str) {}
    fn progress(&self, _: &str, _: &str) {}
}

/// Whether the reference has no tag or the `latest` tag (digest references have neither).
pub fn is_latest_or_untagged(image: &str) -> bool {
    ImageRef::parse(image).is_latest()
}

/// Makes sure the image is present and returns its id.
pub async fn ensure_image(
    docker: &dyn DockerApi,
    request: &ImageRequest<'_>,
    observer: &dyn PullObserver,
) -> Result<String, TaskError> {
    let image = request.image;
    let reference = ImageRef::parse(image);
    let inspect_id = |i: crate::docker::models::ImageInspect| i.id.unwrap_or_default();

    if !request.force_pull && !reference.is_latest() {
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

    let local_ref = if let Some(path) = request.load {
        docker
            .load_image(path)
            .await
            .map_err(|source| TaskError::Load {
                path: path.to_owned(),
                source,
            })?;
        image.to_owned()
    } else {
        let credentials = match auth::resolve(request.auth, request.auth_sources, &reference).await
        {
            Ok(c) => c,
            Err(source) if request.auth_soft_fail => {
                tracing::warn!(repo = reference.repo, error = %source, "Failed to find docker repo auth");
                None
            }
            Err(source) => {
                return Err(TaskError::Auth {
                    repo: reference.repo.clone(),
                    source,
                });
            }
        };
        if credentials.is_none() {
            tracing::debug!(repo = reference.repo, "did not find docker auth for repo");
        }
        observer.started(&reference.display_ref());
        pull(docker, request, &reference, credentials, observer)
            .await
            .map_err(|source| TaskError::Pull {
                image: image.to_owned(),
                source,
            })?;
        reference.pull_ref()
    };
    docker
        .inspect_image(&local_ref)
        .await
        .map(inspect_id)
        .map_err(|source| TaskError::ImageInspect {
            image: image.to_owned(),
            source,
        })
}

async fn pull(
    docker: &dyn DockerApi,
    request: &ImageRequest<'_>,
    reference: &ImageRef,
    credentials: Option<RegistryAuth>,
    observer: &dyn PullObserver,
) -> Result<(), PullError> {
    let body = async {
        let stream = docker
            .pull_image(&reference.pull_ref(), credentials)
            .await?;
        follow_pull(
            stream,
            request.image,
            request.activity_timeout,
            request.progress_interval,
            observer,
        )
        .await
    };
    tokio::time::timeout(request.pull_timeout, body)
        .await
        .unwrap_or(Err(PullError::Deadline(request.pull_timeout)))
}

/// Consumes a pull's progress stream, aborting when no message arrives for `activity_timeout`
/// and reporting progress every `progress_interval`.
pub async fn follow_pull(
    mut stream: BoxStream<'_, Result<PullMessage, DockerError>>,
    image: &str,
    activity_timeout: Duration,
    progress_interval: Duration,
    observer: &dyn PullObserver,
) -> Result<(), PullError> {
    let mut progress = PullProgress::new(image);
    let started = tokio::time::Instant::now();
    let mut last_report = started;
    let mut last_debug = started;
    let mut last_message = started;
    let mut ticker = tokio::time::interval(progress_interval.min(PULL_DEBUG_INTERVAL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let idle_deadline = last_message + activity_timeout;
        tokio::select! {
            next = stream.next() => {
                let Some(msg) = next else { break };
                let msg = msg?;
                progress.record(&msg);
                last_message = tokio::time::Instant::now();
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                tracing::error!(image, last_event = progress.summary(started.elapsed()), "image pull aborted due to inactivity");
                return Err(PullError::Inactive(activity_timeout));
            }
            _ = ticker.tick() => {}
        }
        let now = tokio::time::Instant::now();
        if now.duration_since(last_debug) >= PULL_DEBUG_INTERVAL {
            tracing::debug!(
                image,
                message = progress.summary(started.elapsed()),
                "image pull progress"
            );
            last_debug = now;
        }
        if now.duration_since(last_report) >= progress_interval {
            observer.progress(image, &progress.message(started.elapsed()));
            last_report = now;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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

    #[test]
    fn byte_sizes_read_like_go_units() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(512), "512B");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(2 * 1024 * 1024), "2MiB");
        assert_eq!(bytes_size(1_234_567), "1.177MiB");
    }

    fn msg(layer: &str, status: &str) -> Result<PullMessage, DockerError> {
        Ok(PullMessage {
            layer: Some(layer.to_owned()),
            status: status.to_owned(),
            ..PullMessage::default()
        })
    }

    fn bytes(layer: &str, current: i64, total: i64) -> Result<PullMessage, DockerError> {
        Ok(PullMessage {
            layer: Some(layer.to_owned()),
            status: "Downloading".to_owned(),
            current: Some(current),
            total: Some(total),
        })
    }

    /// Records what a pull reports.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl PullObserver for Recorder {
        fn started(&self, image: &str) {
            self.0.lock().unwrap().push(format!("started {image}"));
        }
        fn progress(&self, _: &str, message: &str) {
            self.0.lock().unwrap().push(message.to_owned());
        }
    }

    /// [`follow_pull`] of `img:1` with a 60 s activity timeout and Nomad's progress interval.
    async fn follow(
        stream: BoxStream<'_, Result<PullMessage, DockerError>>,
        observer: &dyn PullObserver,
    ) -> Result<(), PullError> {
        follow_pull(
            stream,
            "img:1",
            Duration::from_secs(60),
            PULL_PROGRESS_INTERVAL,
            observer,
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_pull_is_aborted_by_the_watchdog() {
        // Two messages, then silence: the watchdog fires after the activity timeout.
        let stream =
            futures::stream::iter(vec![msg("a", "Downloading"), msg("a", "Pull complete")])
                .chain(futures::stream::pending())
                .boxed();
        let started = tokio::time::Instant::now();
        let err = follow(stream, &Silent).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "image pull aborted due to inactivity after 60s"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert!(err.is_recoverable());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_pull_reports_nomads_progress_text_every_interval() {
        // One message every 50 s for 5 minutes: reports at ~2 min and ~4 min, like Nomad.
        let script = vec![
            msg("a", "Pulling fs layer"),
            msg("b", "Pulling fs layer"),
            bytes("a", 1024, 4096),
            msg("a", "Download complete"),
            bytes("b", 1024, 4096),
            msg("a", "Pull complete"),
        ];
        let stream = futures::stream::iter(script)
            .then(|m| async move {
                tokio::time::sleep(Duration::from_secs(50)).await;
                m
            })
            .boxed();
        let recorder = Recorder::default();
        follow(stream, &recorder).await.unwrap();
        let seen = recorder.0.into_inner().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            seen,
            [
                "Docker image pull progress: Pulled 0/2 (0B/0B) layers: 2 waiting/0 pulling",
                "Docker image pull progress: Pulled 1/2 (4KiB/4KiB) layers: 1 waiting/0 pulling",
            ]
        );
    }

    #[test]
    fn the_summary_estimates_the_remaining_time_from_the_bytes_so_far() {
        let mut p = PullProgress::new("img:1");
        assert_eq!(p.summary(Duration::from_secs(1)), "No progress");
        p.record(&msg("a", "Pulling fs layer").unwrap());
        p.record(&bytes("a", 1024, 4096).unwrap());
        assert_eq!(
            p.summary(Duration::from_secs(10)),
            "Pulled 0/1 (1KiB/4KiB) layers: 0 waiting/1 pulling - est 30.0s remaining"
        );
        assert_eq!(p.layers(), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_pull_reports_no_progress() {
        let stream = futures::stream::iter(vec![
            msg("img", "Pulling from library/img"),
            msg("a", "Pulling fs layer"),
            msg("a", "Pull complete"),
        ])
        .boxed();
        let recorder = Recorder::default();
        follow(stream, &recorder).await.unwrap();
        assert!(recorder.0.into_inner().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stream_error_aborts_the_pull() {
        let stream = futures::stream::iter(vec![Err(DockerError::Stream {
            message: "manifest unknown".into(),
        })])
        .boxed();
        let err = follow(stream, &Silent).await.unwrap_err();
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
