//! gRPC service implementations bridging the generated `BasePlugin` and `Driver` servers to a
//! [`DriverPlugin`].
//!
//! Every server stream is cut when the plugin shuts down, so that a graceful server stop is
//! not held open by the never-ending `Fingerprint`/`TaskEvents` streams.

use std::sync::Arc;

use futures::StreamExt as _;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::driver::{DriverPlugin, ResponseStream};
use crate::error::PluginError;
use crate::proto::base::{self, base_plugin_server::BasePlugin};
use crate::proto::drivers::{self, driver_server::Driver};

/// A stream handed to tonic.
pub(crate) type GrpcStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Resolves once shutdown was requested. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub(crate) fn new(receiver: watch::Receiver<bool>) -> Self {
        ShutdownSignal(receiver)
    }

    /// Waits until shutdown is requested (or the sender is gone).
    pub(crate) async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Converts a driver stream into a tonic stream that ends on shutdown.
pub(crate) fn to_grpc<T: Send + 'static>(
    stream: ResponseStream<T>,
    shutdown: &ShutdownSignal,
) -> GrpcStream<T> {
    Box::pin(
        stream
            .map(|item| item.map_err(Status::from))
            .take_until(shutdown.clone().wait()),
    )
}

/// `hashicorp.nomad.plugins.base.proto.BasePlugin`.
pub(crate) struct BaseService<D> {
    pub(crate) driver: Arc<D>,
}

#[tonic::async_trait]
impl<D: DriverPlugin> BasePlugin for BaseService<D> {
    async fn plugin_info(
        &self,
        _request: Request<base::PluginInfoRequest>,
    ) -> Result<Response<base::PluginInfoResponse>, Status> {
        let info = self.driver.plugin_info();
        Ok(Response::new(base::PluginInfoResponse {
            r#type: base::PluginType::Driver.into(),
            plugin_api_versions: info.api_versions,
            plugin_version: info.version,
            name: info.name,
        }))
    }

    async fn config_schema(
        &self,
        _request: Request<base::ConfigSchemaRequest>,
    ) -> Result<Response<base::ConfigSchemaResponse>, Status> {
        Ok(Response::new(base::ConfigSchemaResponse {
            spec: self.driver.config_schema().map(|s| s.to_proto()),
        }))
    }

    async fn set_config(
        &self,
        request: Request<base::SetConfigRequest>,
    ) -> Result<Response<base::SetConfigResponse>, Status> {
        let req = request.into_inner();
        tracing::debug!(
            bytes = req.msgpack_config.len(),
            nomad_config = req.nomad_config.is_some(),
            api_version = %req.plugin_api_version,
            "SetConfig"
        );
        self.driver
            .set_config(req.msgpack_config, req.nomad_config)
            .await?;
        Ok(Response::new(base::SetConfigResponse {}))
    }
}

/// `hashicorp.nomad.plugins.drivers.proto.Driver`.
pub(crate) struct DriverService<D> {
    pub(crate) driver: Arc<D>,
    pub(crate) shutdown: ShutdownSignal,
}

fn reading_requests(status: Status) -> PluginError {
    PluginError::internal("reading the request stream", status)
}

#[tonic::async_trait]
impl<D: DriverPlugin> Driver for DriverService<D> {
    async fn task_config_schema(
        &self,
        _request: Request<drivers::TaskConfigSchemaRequest>,
    ) -> Result<Response<drivers::TaskConfigSchemaResponse>, Status> {
        Ok(Response::new(drivers::TaskConfigSchemaResponse {
            spec: Some(self.driver.task_config_schema().to_proto()),
        }))
    }

    async fn capabilities(
        &self,
        _request: Request<drivers::CapabilitiesRequest>,
    ) -> Result<Response<drivers::CapabilitiesResponse>, Status> {
        Ok(Response::new(drivers::CapabilitiesResponse {
            capabilities: Some(self.driver.capabilities()),
        }))
    }

    type FingerprintStream = GrpcStream<drivers::FingerprintResponse>;

    async fn fingerprint(
        &self,
        _request: Request<drivers::FingerprintRequest>,
    ) -> Result<Response<Self::FingerprintStream>, Status> {
        let stream = self.driver.fingerprint().await?;
        Ok(Response::new(to_grpc(stream, &self.shutdown)))
    }

    async fn recover_task(
        &self,
        request: Request<drivers::RecoverTaskRequest>,
    ) -> Result<Response<drivers::RecoverTaskResponse>, Status> {
        self.driver.recover_task(request.into_inner()).await?;
        Ok(Response::new(drivers::RecoverTaskResponse {}))
    }

    async fn start_task(
        &self,
        request: Request<drivers::StartTaskRequest>,
    ) -> Result<Response<drivers::StartTaskResponse>, Status> {
        Ok(Response::new(
            self.driver.start_task(request.into_inner()).await?,
        ))
    }

    async fn wait_task(
        &self,
        request: Request<drivers::WaitTaskRequest>,
    ) -> Result<Response<drivers::WaitTaskResponse>, Status> {
        Ok(Response::new(
            self.driver.wait_task(request.into_inner()).await?,
        ))
    }

    async fn stop_task(
        &self,
        request: Request<drivers::StopTaskRequest>,
    ) -> Result<Response<drivers::StopTaskResponse>, Status> {
        self.driver.stop_task(request.into_inner()).await?;
        Ok(Response::new(drivers::StopTaskResponse {}))
    }

    async fn destroy_task(
        &self,
        request: Request<drivers::DestroyTaskRequest>,
    ) -> Result<Response<drivers::DestroyTaskResponse>, Status> {
        self.driver.destroy_task(request.into_inner()).await?;
        Ok(Response::new(drivers::DestroyTaskResponse {}))
    }

    async fn inspect_task(
        &self,
        request: Request<drivers::InspectTaskRequest>,
    ) -> Result<Response<drivers::InspectTaskResponse>, Status> {
        Ok(Response::new(
            self.driver.inspect_task(request.into_inner()).await?,
        ))
    }

    type TaskStatsStream = GrpcStream<drivers::TaskStatsResponse>;

    async fn task_stats(
        &self,
        request: Request<drivers::TaskStatsRequest>,
    ) -> Result<Response<Self::TaskStatsStream>, Status> {
        let stream = self.driver.task_stats(request.into_inner()).await?;
        Ok(Response::new(to_grpc(stream, &self.shutdown)))
    }

    type TaskEventsStream = GrpcStream<drivers::DriverTaskEvent>;

    async fn task_events(
        &self,
        _request: Request<drivers::TaskEventsRequest>,
    ) -> Result<Response<Self::TaskEventsStream>, Status> {
        let stream = self.driver.task_events().await?;
        Ok(Response::new(to_grpc(stream, &self.shutdown)))
    }

    async fn signal_task(
        &self,
        request: Request<drivers::SignalTaskRequest>,
    ) -> Result<Response<drivers::SignalTaskResponse>, Status> {
        self.driver.signal_task(request.into_inner()).await?;
        Ok(Response::new(drivers::SignalTaskResponse {}))
    }

    async fn exec_task(
        &self,
        request: Request<drivers::ExecTaskRequest>,
    ) -> Result<Response<drivers::ExecTaskResponse>, Status> {
        Ok(Response::new(
            self.driver.exec_task(request.into_inner()).await?,
        ))
    }

    type ExecTaskStreamingStream = GrpcStream<drivers::ExecTaskStreamingResponse>;

    async fn exec_task_streaming(
        &self,
        request: Request<tonic::Streaming<drivers::ExecTaskStreamingRequest>>,
    ) -> Result<Response<Self::ExecTaskStreamingStream>, Status> {
        let requests = Box::pin(request.into_inner().map(|r| r.map_err(reading_requests)));
        let stream = self.driver.exec_task_streaming(requests).await?;
        Ok(Response::new(to_grpc(stream, &self.shutdown)))
    }

    async fn create_network(
        &self,
        request: Request<drivers::CreateNetworkRequest>,
    ) -> Result<Response<drivers::CreateNetworkResponse>, Status> {
        Ok(Response::new(
            self.driver.create_network(request.into_inner()).await?,
        ))
    }

    async fn destroy_network(
        &self,
        request: Request<drivers::DestroyNetworkRequest>,
    ) -> Result<Response<drivers::DestroyNetworkResponse>, Status> {
        self.driver.destroy_network(request.into_inner()).await?;
        Ok(Response::new(drivers::DestroyNetworkResponse {}))
    }

    async fn init(
        &self,
        _request: Request<drivers::InitRequest>,
    ) -> Result<Response<drivers::InitResponse>, Status> {
        self.driver.init().await?;
        Ok(Response::new(drivers::InitResponse {}))
    }

    async fn shutdown(
        &self,
        _request: Request<drivers::ShutdownRequest>,
    ) -> Result<Response<drivers::ShutdownResponse>, Status> {
        self.driver.shutdown().await?;
        Ok(Response::new(drivers::ShutdownResponse {}))
    }
}
