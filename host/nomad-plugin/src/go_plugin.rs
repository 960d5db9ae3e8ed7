//! go-plugin's housekeeping services: `plugin.GRPCController` and `plugin.GRPCStdio`.
//!
//! `GRPCBroker` is deliberately not served: Nomad opens `StartStream` once, ignores its
//! failure, and never brokers connections for drivers; an unserved service answers
//! `UNIMPLEMENTED`, which the host tolerates.

use futures::StreamExt as _;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::proto::plugin::{
    self, grpc_controller_server::GrpcController, grpc_stdio_server::GrpcStdio,
};
use crate::services::{GrpcStream, ShutdownSignal};

/// `plugin.GRPCController`: `Shutdown` replies, then asks the server to stop.
pub(crate) struct Controller {
    pub(crate) stop: watch::Sender<bool>,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<plugin::Empty>,
    ) -> Result<Response<plugin::Empty>, Status> {
        tracing::info!("shutdown requested by the plugin host");
        // A graceful stop lets this in-flight reply go out before the server closes.
        self.stop.send_replace(true);
        Ok(Response::new(plugin::Empty {}))
    }
}

/// `plugin.GRPCStdio`: nothing is ever written to stdout/stderr outside the handshake line
/// and the hclog stream, so the mirror stays idle until shutdown.
pub(crate) struct Stdio {
    pub(crate) shutdown: ShutdownSignal,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = GrpcStream<plugin::StdioData>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        let shutdown = self.shutdown.clone();
        let idle = futures::stream::once(async move {
            shutdown.wait().await;
        })
        .filter_map(|()| async { None });
        Ok(Response::new(Box::pin(idle)))
    }
}
