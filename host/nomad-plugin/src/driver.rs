//! The [`DriverPlugin`] trait: what a Nomad task driver implements.
//!
//! Requests and responses are the generated protobuf types (re-exported under
//! [`crate::proto`]) wherever they carry data, so a driver sees every field the agent sends.
//! Empty acknowledgements become `()`, and schemas use the [`crate::hclspec::Spec`] builder.
//! Errors are [`PluginError`]s, mapped to gRPC statuses in one place.
//!
//! Only identity, configuration, capabilities and fingerprinting are required. Every task RPC
//! has a default that answers `UNIMPLEMENTED`, so a driver can grow into them; `Init` and
//! `Shutdown` default to success, and `TaskEvents` to a stream that stays open and silent
//! (the agent re-opens an ending stream at once, so ending it would spin).

use std::pin::Pin;

use futures::Stream;

use crate::error::PluginError;
use crate::hclspec::Spec;
use crate::proto::base::NomadConfig;
use crate::proto::drivers::{
    CreateNetworkRequest, CreateNetworkResponse, DestroyNetworkRequest, DestroyTaskRequest,
    DriverCapabilities, DriverTaskEvent, ExecTaskRequest, ExecTaskResponse,
    ExecTaskStreamingRequest, ExecTaskStreamingResponse, FingerprintResponse, InspectTaskRequest,
    InspectTaskResponse, RecoverTaskRequest, SignalTaskRequest, StartTaskRequest,
    StartTaskResponse, StopTaskRequest, TaskStatsRequest, TaskStatsResponse, WaitTaskRequest,
    WaitTaskResponse,
};

/// The only task-driver API version Nomad speaks (`drivers.ApiVersion010`).
pub const DRIVER_API_VERSION: &str = "v0.1.0";

/// A stream of messages from the driver to the agent.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, PluginError>> + Send + 'static>>;

/// A stream of messages from the agent to the driver.
pub type RequestStream<T> = Pin<Box<dyn Stream<Item = Result<T, PluginError>> + Send + 'static>>;

/// Identity reported by `PluginInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The driver name jobs use (`driver = "<name>"`). Keep it equal to the binary's file
    /// name and the agent's `plugin "<name>"` label.
    pub name: String,
    /// The plugin's version; must parse as a semantic version.
    pub version: String,
    /// Supported driver API versions; Nomad picks one it knows (`v0.1.0`).
    pub api_versions: Vec<String>,
}

impl PluginInfo {
    /// A driver speaking [`DRIVER_API_VERSION`].
    pub fn driver(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            api_versions: vec![DRIVER_API_VERSION.to_owned()],
        }
    }
}

/// A Nomad task driver. See the module docs for the defaults.
#[tonic::async_trait]
pub trait DriverPlugin: Send + Sync + 'static {
    /// `PluginInfo`: name, version and API versions (the plugin type is always DRIVER).
    fn plugin_info(&self) -> PluginInfo;

    /// `ConfigSchema`: the agent-side `plugin "<name>" { config {} }` schema; `None` accepts no
    /// configuration.
    fn config_schema(&self) -> Option<Spec>;

    /// `SetConfig`: the agent-side configuration as go-cty MessagePack (empty when there is
    /// no schema). `nomad_config` is `None` on the agent's throw-away validation launch.
    ///
    /// Validate and store only: this may be a short-lived instance, so start nothing here.
    async fn set_config(
        &self,
        msgpack_config: Vec<u8>,
        nomad_config: Option<NomadConfig>,
    ) -> Result<(), PluginError>;

    /// `TaskConfigSchema`: the schema of a task's `config {}` block (required by Nomad).
    fn task_config_schema(&self) -> Spec;

    /// `Capabilities`.
    fn capabilities(&self) -> DriverCapabilities;

    /// `Fingerprint`: a long-lived stream whose first message is sent immediately. It should
    /// never end by itself (the agent would re-open it at once).
    async fn fingerprint(&self) -> Result<ResponseStream<FingerprintResponse>, PluginError>;

    /// `Init` (Nomad 2.0.4+), after `SetConfig` on every dispense and after a re-attach.
    async fn init(&self) -> Result<(), PluginError> {
        Ok(())
    }

    /// `Shutdown` (Nomad 2.0.4+), on graceful agent shutdown with a 2 s deadline. Running
    /// tasks are expected to survive.
    async fn shutdown(&self) -> Result<(), PluginError> {
        Ok(())
    }

    /// `TaskEvents`: one stream of events for all tasks.
    async fn task_events(&self) -> Result<ResponseStream<DriverTaskEvent>, PluginError> {
        Ok(Box::pin(futures::stream::pending()))
    }

    /// `RecoverTask`: re-attach to a task from its handle (`request.task_id` is empty when the
    /// Nomad client calls; use `handle.config.id`).
    async fn recover_task(&self, request: RecoverTaskRequest) -> Result<(), PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("RecoverTask"))
    }

    /// `StartTask`.
    async fn start_task(
        &self,
        request: StartTaskRequest,
    ) -> Result<StartTaskResponse, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("StartTask"))
    }

    /// `WaitTask`: blocks until the task exits. The future is dropped if the agent cancels.
    async fn wait_task(&self, request: WaitTaskRequest) -> Result<WaitTaskResponse, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("WaitTask"))
    }

    /// `StopTask`.
    async fn stop_task(&self, request: StopTaskRequest) -> Result<(), PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("StopTask"))
    }

    /// `DestroyTask`.
    async fn destroy_task(&self, request: DestroyTaskRequest) -> Result<(), PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("DestroyTask"))
    }

    /// `InspectTask`.
    async fn inspect_task(
        &self,
        request: InspectTaskRequest,
    ) -> Result<InspectTaskResponse, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("InspectTask"))
    }

    /// `TaskStats`: one message per collection interval.
    async fn task_stats(
        &self,
        request: TaskStatsRequest,
    ) -> Result<ResponseStream<TaskStatsResponse>, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("TaskStats"))
    }

    /// `SignalTask`.
    async fn signal_task(&self, request: SignalTaskRequest) -> Result<(), PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("SignalTask"))
    }

    /// `ExecTask`.
    async fn exec_task(&self, request: ExecTaskRequest) -> Result<ExecTaskResponse, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("ExecTask"))
    }

    /// `ExecTaskStreaming`: the first request carries `setup`.
    async fn exec_task_streaming(
        &self,
        requests: RequestStream<ExecTaskStreamingRequest>,
    ) -> Result<ResponseStream<ExecTaskStreamingResponse>, PluginError> {
        let _ = requests;
        Err(PluginError::unimplemented("ExecTaskStreaming"))
    }

    /// `CreateNetwork` (only called when `must_create_network` is reported).
    async fn create_network(
        &self,
        request: CreateNetworkRequest,
    ) -> Result<CreateNetworkResponse, PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("CreateNetwork"))
    }

    /// `DestroyNetwork`.
    async fn destroy_network(&self, request: DestroyNetworkRequest) -> Result<(), PluginError> {
        let _ = request;
        Err(PluginError::unimplemented("DestroyNetwork"))
    }
}
