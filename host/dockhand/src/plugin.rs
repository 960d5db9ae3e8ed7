//! dockhand as a Nomad driver: the [`DriverPlugin`] implementation.
//!
//! This module owns the protocol surface: identity (`PluginInfo`), schemas, `SetConfig`,
//! `Capabilities`, `Init`/`Shutdown`, the `Fingerprint` stream, and (in [`tasks`] and
//! `exec_stream`) every task RPC, translated by [`convert`] to the [`TaskEngine`].
//!
//! One process has exactly one Docker client, one
//! [`RuntimeCatalog`](crate::fingerprint::RuntimeCatalog) (written by the fingerprinter, read
//! by the engine) and one [`TaskEngine`] with its tracked set. They are built lazily from the
//! stored configuration, on the first task RPC or when background work starts, never by
//! `SetConfig`; building them performs no I/O. [`Dockhand::engine`] is the accessor other
//! parts (the reconciler) use.
//!
//! Start-once: the agent launches the binary several times, and the validation launch only
//! ever sees `SetConfig`. So `SetConfig` validates and stores; the background work (the
//! fingerprint loop and, in the configured long-lived instance, the start-up scan of group
//! network sandboxes, the reconciler and the admin API) starts from the first `Fingerprint` or
//! `Init` of the process, exactly once, and logs `background tasks started` when it does.
//! Every `Fingerprint` stream is a subscriber to that one fingerprint loop: it receives the
//! latest result at once and each later one.
//!
//! The fingerprint period is 30 s, like Nomad's docker driver; the environment variable
//! [`FINGERPRINT_PERIOD_ENV`] (`DOCKHAND_FINGERPRINT_PERIOD`, e.g. `500ms`, `2s`) overrides it,
//! which tests use to observe several periods quickly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use nomad_plugin::hclspec::Spec;
use nomad_plugin::proto::base::NomadConfig;
use nomad_plugin::proto::drivers::driver_capabilities::{FsIsolation, MountConfigs};
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;
use nomad_plugin::proto::drivers::{
    CreateNetworkRequest, CreateNetworkResponse, DestroyNetworkRequest, DestroyTaskRequest,
    DriverCapabilities, DriverTaskEvent, ExecTaskRequest, ExecTaskResponse,
    ExecTaskStreamingRequest, ExecTaskStreamingResponse, FingerprintResponse, InspectTaskRequest,
    InspectTaskResponse, RecoverTaskRequest, SignalTaskRequest, StartTaskRequest,
    StartTaskResponse, StopTaskRequest, TaskStatsRequest, TaskStatsResponse, WaitTaskRequest,
    WaitTaskResponse,
};
use nomad_plugin::{
    BackgroundOnce, DriverPlugin, PluginError, PluginInfo, RequestStream, ResponseStream,
};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tracing::Instrument as _;

use crate::config::{self, PluginConfig};
use crate::fingerprint::{FingerprintOutcome, FingerprintSettings, Fingerprinter, Health};
use crate::reconcile::{Metrics, NODE_FILE_NAME, NodeCell, PoliciesInForce};
use crate::tasks::TaskEngine;

mod background;
pub mod convert;
mod exec_stream;
mod fingerprint_stream;
pub mod network;
mod runtime;
pub mod tasks;

use fingerprint_stream::fingerprint_loop;
pub use fingerprint_stream::fingerprint_to_proto;
pub use runtime::DriverRuntime;

/// The driver name used unless `--driver-name` says otherwise.
pub const DEFAULT_DRIVER_NAME: &str = "dockhand";

/// Environment variable overriding the fingerprint period (`500ms`, `2s`, or seconds).
pub const FINGERPRINT_PERIOD_ENV: &str = "DOCKHAND_FINGERPRINT_PERIOD";

/// How often the driver re-fingerprints (Nomad's docker driver uses 30 s).
pub const DEFAULT_FINGERPRINT_PERIOD: Duration = Duration::from_secs(30);

/// Shortest accepted fingerprint period; anything faster would hammer the daemon.
pub const MIN_FINGERPRINT_PERIOD: Duration = Duration::from_millis(50);

/// Something that can fingerprint the container runtime.
#[nomad_plugin::async_trait]
pub trait FingerprintSource: Send + Sync + 'static {
    /// One fingerprint.
    async fn fingerprint(&self) -> FingerprintOutcome;
}

#[nomad_plugin::async_trait]
impl FingerprintSource for Fingerprinter {
    async fn fingerprint(&self) -> FingerprintOutcome {
        Fingerprinter::fingerprint(self).await
    }
}

/// A source for when no Docker client could even be built: always undetected.
#[derive(Debug)]
struct NoDockerClient {
    reason: String,
}

#[nomad_plugin::async_trait]
impl FingerprintSource for NoDockerClient {
    async fn fingerprint(&self) -> FingerprintOutcome {
        FingerprintOutcome {
            health: Health::Undetected,
            description: format!("Failed to initialize docker client: {}", self.reason),
            attributes: BTreeMap::new(),
        }
    }
}

/// Builds the fingerprint source once background work starts, from the stored settings and
/// the driver name.
pub type SourceFactory =
    Box<dyn Fn(&PluginSettings, &str) -> Arc<dyn FingerprintSource> + Send + Sync>;

/// Construction-time options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockhandOptions {
    /// `PluginInfo.name` and the `driver.<name>` attribute prefix.
    pub driver_name: String,
    /// Fingerprint period.
    pub fingerprint_period: Duration,
    /// Why [`FINGERPRINT_PERIOD_ENV`] was ignored, logged when background work starts.
    pub period_warning: Option<String>,
}

impl DockhandOptions {
    /// Options for `driver_name`, reading [`FINGERPRINT_PERIOD_ENV`]. An unparsable value is
    /// reported in `period_warning` and the default is used.
    pub fn from_env(driver_name: impl Into<String>) -> Self {
        let (period, warning) = match std::env::var(FINGERPRINT_PERIOD_ENV) {
            Err(_) => (DEFAULT_FINGERPRINT_PERIOD, None),
            Ok(text) => match parse_period(&text) {
                Some(p) => (p.max(MIN_FINGERPRINT_PERIOD), None),
                None => (
                    DEFAULT_FINGERPRINT_PERIOD,
                    Some(format!(
                        "{FINGERPRINT_PERIOD_ENV}={text:?} is not a duration like 500ms or 2s; \
                         using {}s",
                        DEFAULT_FINGERPRINT_PERIOD.as_secs()
                    )),
                ),
            },
        };
        DockhandOptions {
            driver_name: driver_name.into(),
            fingerprint_period: period,
            period_warning: warning,
        }
    }
}

/// A plain number of seconds (`7`) or a Go duration (`500ms`, `2s`, `1m`).
pub fn parse_period(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => config::duration::parse_go_duration(text).ok(),
    }
}

/// The validated agent-side configuration stored by `SetConfig`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginSettings {
    /// The plugin configuration.
    pub config: PluginConfig,
}

impl PluginSettings {
    /// What the fingerprint reports on, for `driver_name`.
    pub fn fingerprint_settings(&self, driver_name: &str) -> FingerprintSettings {
        FingerprintSettings {
            driver_name: driver_name.to_owned(),
            nvidia_runtime: self.config.nvidia_runtime.clone(),
            allow_privileged: self.config.allow_privileged,
            volumes_enabled: self.config.volumes.enabled,
            pids_limit: self.config.pids_limit,
        }
    }
}

/// Background work started once per process.
struct Background {
    fingerprints: watch::Receiver<Option<FingerprintResponse>>,
    /// Set once the reconciler is up (it is built off the RPC path: compiling policies takes
    /// a while and must not delay the first fingerprint).
    reconciler: Arc<OnceLock<background::ReconcilerHandle>>,
}

/// The dockhand driver.
pub struct Dockhand {
    options: DockhandOptions,
    settings: RwLock<Option<PluginSettings>>,
    nomad_config: RwLock<Option<NomadConfig>>,
    source_factory: Option<SourceFactory>,
    runtime: Mutex<Option<Arc<DriverRuntime>>>,
    node: Arc<NodeCell>,
    background: BackgroundOnce<Background>,
}

impl fmt::Debug for Dockhand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dockhand")
            .field("options", &self.options)
            .field("configured", &self.current_settings().is_some())
            .field("background_started", &self.background.is_started())
            .finish_non_exhaustive()
    }
}

impl Dockhand {
    /// A driver fingerprinting the local Docker daemon. Cheap: no I/O happens here.
    pub fn new(options: DockhandOptions) -> Self {
        Self::build(options, None)
    }

    /// A driver with an injected fingerprint source (tests, other runtimes).
    pub fn with_source_factory(options: DockhandOptions, source_factory: SourceFactory) -> Self {
        Self::build(options, Some(source_factory))
    }

    fn build(options: DockhandOptions, source_factory: Option<SourceFactory>) -> Self {
        Dockhand {
            options,
            settings: RwLock::new(None),
            nomad_config: RwLock::new(None),
            source_factory,
            runtime: Mutex::new(None),
            node: Arc::new(NodeCell::default()),
            background: BackgroundOnce::new(),
        }
    }

    /// The process's Docker client, runtime catalog and task engine, built on first use from
    /// the stored configuration (defaults when `SetConfig` has not been called).
    pub fn runtime(&self) -> Result<Arc<DriverRuntime>, PluginError> {
        let mut slot = self.runtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rt) = slot.as_ref() {
            return Ok(Arc::clone(rt));
        }
        let settings = self.current_settings().unwrap_or_default();
        let rt = Arc::new(DriverRuntime::new(&settings.config).map_err(|e| {
            PluginError::Unavailable(format!(
                "failed to initialize docker client: {}",
                nomad_plugin::error_chain(&e)
            ))
        })?);
        *slot = Some(Arc::clone(&rt));
        Ok(rt)
    }

    /// The task engine (its [`TaskEngine::store`] is the tracked set).
    pub fn engine(&self) -> Result<TaskEngine, PluginError> {
        Ok(self.runtime()?.engine.clone())
    }

    /// The task engine if it has been built already; never builds it.
    pub fn engine_if_built(&self) -> Option<TaskEngine> {
        self.runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|rt| rt.engine.clone())
    }

    fn plugin_config(&self) -> PluginConfig {
        self.current_settings().unwrap_or_default().config
    }

    /// The settings from the last successful `SetConfig`.
    pub fn current_settings(&self) -> Option<PluginSettings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The agent's own configuration, when the agent sent it.
    pub fn nomad_config(&self) -> Option<NomadConfig> {
        self.nomad_config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The reconciler's counters, once it runs.
    pub fn reconciler_metrics(&self) -> Option<Arc<Metrics>> {
        self.reconciler().map(|r| r.metrics.clone())
    }

    /// The policies in force, with their modes, once the reconciler runs.
    pub fn reconciler_policies(&self) -> Option<PoliciesInForce> {
        self.reconciler().map(|r| r.policies.clone())
    }

    /// The policy engine the reconciler evaluates with (to load further policies), once it runs.
    pub fn policy_engine(&self) -> Option<orphan_policy::PolicyEngine> {
        self.reconciler().map(|r| r.engine.clone())
    }

    fn reconciler(&self) -> Option<&background::ReconcilerHandle> {
        if !self.background.is_started() {
            return None;
        }
        self.background().reconciler.get()
    }

    /// The node identity learnt from task configurations.
    pub fn node(&self) -> &Arc<NodeCell> {
        &self.node
    }

    /// Whether background work has started.
    pub fn background_started(&self) -> bool {
        self.background.is_started()
    }

    /// Starts the background work if this is the first call of the process.
    fn background(&self) -> &Background {
        self.background.get_or_start(|| {
            let settings = self.current_settings().unwrap_or_default();
            let name = &self.options.driver_name;
            let source: Arc<dyn FingerprintSource> = match &self.source_factory {
                Some(factory) => factory(&settings, name),
                None => match self.runtime() {
                    Ok(rt) => Arc::new(Fingerprinter::new(
                        rt.docker.clone(),
                        settings.fingerprint_settings(name),
                        rt.runtimes.clone(),
                    )),
                    Err(e) => Arc::new(NoDockerClient {
                        reason: e.to_string(),
                    }),
                },
            };
            if let Some(warning) = &self.options.period_warning {
                tracing::warn!("{warning}");
            }
            let (tx, rx) = watch::channel(None);
            tokio::spawn(fingerprint_loop(
                source,
                self.options.fingerprint_period,
                tx,
            ));
            let reconciler = Arc::new(OnceLock::new());
            // Only the configured long-lived instance reconciles: Nomad always sends
            // SetConfig before Init/Fingerprint there.
            if self.source_factory.is_none() && self.current_settings().is_some() {
                // Before any task can arrive: a sandbox created next already carries the
                // node label learnt in an earlier run.
                self.node
                    .persist_to(settings.config.dockhand.data_dir.join(NODE_FILE_NAME));
                // Before the reconciler: its sweeps wait for this scan.
                if let Ok(engine) = self.engine() {
                    network::spawn_sandbox_scan(engine, self.node.get().id);
                }
                self.spawn_reconciler(&settings, rx.clone(), Arc::clone(&reconciler));
            }
            tracing::info!(
                driver = %self.options.driver_name,
                fingerprint_period_ms = self.options.fingerprint_period.as_millis() as u64,
                "background tasks started"
            );
            Background {
                fingerprints: rx,
                reconciler,
            }
        })
    }

    /// Builds the reconciler on the blocking pool and publishes its handle into `slot`.
    fn spawn_reconciler(
        &self,
        settings: &PluginSettings,
        fingerprints: watch::Receiver<Option<FingerprintResponse>>,
        slot: Arc<OnceLock<background::ReconcilerHandle>>,
    ) {
        let rt = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "no Docker client; reconciler not started");
                return;
            }
        };
        let inputs = background::ReconcilerInputs {
            config: settings.config.clone(),
            driver_name: self.options.driver_name.clone(),
            docker: rt.docker.clone(),
            tracked: Arc::new(rt.engine.clone()),
            health: Arc::new(background::FingerprintHealth(fingerprints)),
            node: Arc::clone(&self.node),
        };
        tokio::task::spawn_blocking(move || {
            if let Some(handle) = background::start_reconciler(inputs) {
                // The slot is written only here, once per process.
                let _ = slot.set(handle);
            }
        });
    }
}

#[nomad_plugin::async_trait]
impl DriverPlugin for Dockhand {
    fn plugin_info(&self) -> PluginInfo {
        PluginInfo::driver(&self.options.driver_name, env!("CARGO_PKG_VERSION"))
    }

    fn config_schema(&self) -> Option<Spec> {
        Some(config::plugin_config_spec())
    }

    async fn set_config(
        &self,
        msgpack_config: Vec<u8>,
        nomad_config: Option<NomadConfig>,
    ) -> Result<(), PluginError> {
        let config = PluginConfig::from_msgpack(&msgpack_config)
            .map_err(|err| PluginError::InvalidArgument(format!("plugin config: {err}")))?;
        config
            .check_tls_files()
            .map_err(|err| PluginError::InvalidArgument(format!("plugin config: {err}")))?;
        tracing::debug!(
            validation_only = nomad_config.is_none(),
            "configuration stored"
        );
        let settings = PluginSettings { config };
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(settings);
        *self
            .nomad_config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = nomad_config;
        Ok(())
    }

    fn task_config_schema(&self) -> Spec {
        config::task_config_spec()
    }

    fn capabilities(&self) -> DriverCapabilities {
        let settings = self.current_settings().unwrap_or_default();
        DriverCapabilities {
            send_signals: true,
            exec: true,
            fs_isolation: FsIsolation::Image.into(),
            network_isolation_modes: vec![
                NetworkIsolationMode::Host.into(),
                NetworkIsolationMode::Group.into(),
                NetworkIsolationMode::Task.into(),
            ],
            // Group networks are sandbox containers made by CreateNetwork, as in Nomad's driver.
            must_create_network: true,
            mount_configs: MountConfigs::ANY_MOUNTS.into(),
            disable_log_collection: settings.config.disable_log_collection,
            dynamic_workload_users: false,
        }
    }

    async fn fingerprint(&self) -> Result<ResponseStream<FingerprintResponse>, PluginError> {
        let updates = WatchStream::new(self.background().fingerprints.clone());
        Ok(Box::pin(
            updates.filter_map(|latest| async move { latest.map(Ok) }),
        ))
    }

    async fn init(&self) -> Result<(), PluginError> {
        self.background();
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), PluginError> {
        // Running containers must survive an agent shutdown: nothing to stop here.
        tracing::debug!("driver shutdown requested");
        Ok(())
    }

    async fn task_events(&self) -> Result<ResponseStream<DriverTaskEvent>, PluginError> {
        Ok(tasks::events(&self.engine()?))
    }

    async fn recover_task(&self, request: RecoverTaskRequest) -> Result<(), PluginError> {
        let config = request.handle.as_ref().and_then(|h| h.config.as_ref());
        if let Some(task) = config {
            self.node.learn(&task.node_id, &task.node_name);
        }
        let span = task_span(
            "recover_task",
            &request.task_id,
            config.map_or("", |c| c.alloc_id.as_str()),
        );
        async { tasks::recover(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn start_task(
        &self,
        request: StartTaskRequest,
    ) -> Result<StartTaskResponse, PluginError> {
        if let Some(task) = request.task.as_ref() {
            self.node.learn(&task.node_id, &task.node_name);
        }
        let span = request.task.as_ref().map_or_else(
            || task_span("start_task", "", ""),
            |t| task_span("start_task", &t.id, &t.alloc_id),
        );
        async { tasks::start(&self.engine()?, &self.plugin_config(), request).await }
            .instrument(span)
            .await
    }

    async fn wait_task(&self, request: WaitTaskRequest) -> Result<WaitTaskResponse, PluginError> {
        let span = task_span("wait_task", &request.task_id, "");
        async { tasks::wait(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn stop_task(&self, request: StopTaskRequest) -> Result<(), PluginError> {
        let span = task_span("stop_task", &request.task_id, "");
        async { tasks::stop(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn destroy_task(&self, request: DestroyTaskRequest) -> Result<(), PluginError> {
        let span = task_span("destroy_task", &request.task_id, "");
        async { tasks::destroy(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn inspect_task(
        &self,
        request: InspectTaskRequest,
    ) -> Result<InspectTaskResponse, PluginError> {
        let span = task_span("inspect_task", &request.task_id, "");
        async { tasks::inspect(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn task_stats(
        &self,
        request: TaskStatsRequest,
    ) -> Result<ResponseStream<TaskStatsResponse>, PluginError> {
        let _entered = task_span("task_stats", &request.task_id, "").entered();
        tasks::stats(&self.engine()?, request)
    }

    async fn signal_task(&self, request: SignalTaskRequest) -> Result<(), PluginError> {
        let span = task_span("signal_task", &request.task_id, "");
        async { tasks::signal(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn exec_task(&self, request: ExecTaskRequest) -> Result<ExecTaskResponse, PluginError> {
        let span = task_span("exec_task", &request.task_id, "");
        async { tasks::exec(&self.engine()?, request).await }
            .instrument(span)
            .await
    }

    async fn exec_task_streaming(
        &self,
        requests: RequestStream<ExecTaskStreamingRequest>,
    ) -> Result<ResponseStream<ExecTaskStreamingResponse>, PluginError> {
        exec_stream::exec_streaming(&self.engine()?, requests).await
    }

    async fn create_network(
        &self,
        request: CreateNetworkRequest,
    ) -> Result<CreateNetworkResponse, PluginError> {
        let node_id = self.node.get().id;
        let span = task_span("create_network", "", &request.alloc_id);
        async { network::create(&self.engine()?, request, &node_id).await }
            .instrument(span)
            .await
    }

    async fn destroy_network(&self, request: DestroyNetworkRequest) -> Result<(), PluginError> {
        let span = task_span("destroy_network", "", &request.alloc_id);
        async { network::destroy(&self.engine()?, request).await }
            .instrument(span)
            .await
    }
}

/// The span of one task operation, named `op`, with the task's `task_id` and the allocation's
/// `alloc_id` when the request names them: every line logged while serving it carries them, so
/// one task can be followed in the log. At `ERROR` level so that no log filter that lets any
/// line through drops the span (and with it those fields).
fn task_span(op: &'static str, task_id: &str, alloc_id: &str) -> tracing::Span {
    let span = tracing::error_span!(
        "task",
        op,
        task_id = tracing::field::Empty,
        alloc_id = tracing::field::Empty
    );
    if !task_id.is_empty() {
        span.record("task_id", task_id);
    }
    if !alloc_id.is_empty() {
        span.record("alloc_id", alloc_id);
    }
    span
}

#[cfg(test)]
mod tests {
    use nomad_plugin::proto::drivers::fingerprint_response::HealthState;
    use nomad_plugin::proto::structs::attribute;

    use super::*;
    use crate::fingerprint::AttrValue;

    #[test]
    fn periods_parse() {
        assert_eq!(parse_period("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_period("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_period("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_period("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_period("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_period("fast"), None);
    }

    #[test]
    fn attributes_lower_to_typed_values() {
        let mut attributes = BTreeMap::new();
        attributes.insert("driver.dockhand".to_owned(), AttrValue::Bool(true));
        let proto = fingerprint_to_proto(FingerprintOutcome {
            health: Health::Healthy,
            description: "Healthy".to_owned(),
            attributes,
        });
        assert_eq!(proto.health, HealthState::Healthy as i32);
        assert_eq!(
            proto.attributes["driver.dockhand"].value,
            Some(attribute::Value::BoolVal(true))
        );
    }

    #[derive(Debug, Default)]
    struct Counting {
        calls: std::sync::atomic::AtomicUsize,
    }

    #[nomad_plugin::async_trait]
    impl FingerprintSource for Counting {
        async fn fingerprint(&self) -> FingerprintOutcome {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            FingerprintOutcome {
                health: Health::Healthy,
                description: "Healthy".to_owned(),
                attributes: BTreeMap::new(),
            }
        }
    }

    fn counting_driver() -> (Dockhand, Arc<std::sync::atomic::AtomicUsize>) {
        let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let options = DockhandOptions {
            driver_name: "dockhand".to_owned(),
            fingerprint_period: Duration::from_millis(50),
            period_warning: None,
        };
        let driver = Dockhand::with_source_factory(
            options,
            Box::new(move |_settings, _name| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Arc::new(Counting::default())
            }),
        );
        (driver, built)
    }

    #[tokio::test]
    async fn set_config_starts_nothing_and_fingerprint_starts_once() {
        let (driver, built) = counting_driver();
        driver
            .set_config(Vec::new(), None)
            .await
            .expect("empty config");
        assert!(!driver.background_started());
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 0);

        let mut a = driver.fingerprint().await.expect("stream a");
        let mut b = driver.fingerprint().await.expect("stream b");
        driver.init().await.expect("init");
        let first_a = a.next().await.expect("a yields").expect("ok");
        let first_b = b.next().await.expect("b yields").expect("ok");
        assert_eq!(first_a.health, HealthState::Healthy as i32);
        assert_eq!(first_a, first_b);
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
