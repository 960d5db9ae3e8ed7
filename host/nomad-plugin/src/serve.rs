//! [`serve`]: everything between `main` and a running driver.
//!
//! Order matters and is the point of this module:
//! 1. check the handshake environment (before anything else, so a human starting the binary
//!    gets a plain explanation and exit status 1);
//! 2. install hclog logging and the signal handlers (SIGINT is ignored, as go-plugin servers
//!    do: the agent does not put plugins in their own process group, so a Ctrl-C aimed at a
//!    foreground agent must not kill its plugins);
//! 3. bind the socket, start the gRPC server, and only then print the handshake line;
//! 4. run until `plugin.GRPCController/Shutdown`, SIGTERM, or a server failure;
//! 5. stop: server streams end, in-flight calls get [`ServeOptions::shutdown_grace`], the
//!    socket and its directory are removed.
//!
//! Nothing slow happens before the handshake line: the driver must be cheap to construct and
//! defer real work to `Init`/`Fingerprint` (see [`crate::BackgroundOnce`]).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::driver::DriverPlugin;
use crate::go_plugin::{Controller, Stdio};
use crate::handshake::{HandshakeError, HostRequest, PluginListener, handshake_line};
use crate::logging;
use crate::proto::base::base_plugin_server::BasePluginServer;
use crate::proto::drivers::driver_server::DriverServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::services::{BaseService, DriverService, ShutdownSignal};

/// Largest request message accepted (tonic's default is 4 MiB). The Nomad host allows
/// `math.MaxInt32`; task configurations with large embedded files can exceed 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// go-plugin registers its health status under this service name.
pub const HEALTH_SERVICE_NAME: &str = "plugin";

/// Environment variable holding `tracing` filter directives, unless overridden.
pub const DEFAULT_LOG_FILTER_ENV: &str = "NOMAD_PLUGIN_LOG";

/// Tuning for [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// hclog `@module`; defaults to the plugin name.
    pub log_module: Option<String>,
    /// Environment variable with `tracing` filter directives (default `NOMAD_PLUGIN_LOG`,
    /// falling back to `info`).
    pub log_filter_env: String,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// How long in-flight calls may take to finish once shutdown starts. The host kills the
    /// process 2 s after asking it to stop, so keep this well below that.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            log_module: None,
            log_filter_env: DEFAULT_LOG_FILTER_ENV.to_owned(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// Why [`serve`] returned an error. A binary should print it to stderr and exit with status 1.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The environment is not that of a Nomad agent, or asks for something unsupported.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The handshake line could not be written.
    #[error("cannot write the handshake line to stdout")]
    Stdout(#[source] std::io::Error),
    /// The gRPC server stopped with an error.
    #[error("the gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
    /// The gRPC server task ended abnormally.
    #[error("the gRPC server task ended abnormally")]
    ServerTask(#[source] tokio::task::JoinError),
}

/// Runs `driver` as a Nomad plugin until the host stops it. See the module docs.
///
/// Must be called inside a tokio runtime (with the `net`, `signal` and `time` drivers).
pub async fn serve<D: DriverPlugin>(driver: D, options: ServeOptions) -> Result<(), ServeError> {
    let host = HostRequest::from_env()?;

    let info = driver.plugin_info();
    let module = options
        .log_module
        .clone()
        .unwrap_or_else(|| info.name.clone());
    // An embedding program may have installed its own subscriber; keep it then.
    let _ = logging::setup_tracing(&module, &options.log_filter_env);

    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    tokio::spawn(async move {
        while sigint.recv().await.is_some() {
            tracing::debug!("ignoring SIGINT (the plugin host decides when plugins stop)");
        }
    });

    let listener = PluginListener::bind(&host)?;
    let line = handshake_line(host.app_version, listener.path());
    let (listener, socket) = listener.into_parts();

    let (stop, stop_rx) = watch::channel(false);
    let shutdown = ShutdownSignal::new(stop_rx);
    let driver = Arc::new(driver);

    let (health, health_service) = tonic_health::server::health_reporter();
    // The reporter already answers SERVING for "" (the whole server).
    health
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::Serving)
        .await;

    let max = options.max_message_bytes;
    let router = Server::builder()
        .add_service(health_service)
        .add_service(
            BasePluginServer::new(BaseService {
                driver: Arc::clone(&driver),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            DriverServer::new(DriverService {
                driver: Arc::clone(&driver),
                shutdown: shutdown.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(GrpcControllerServer::new(Controller { stop: stop.clone() }))
        .add_service(GrpcStdioServer::new(Stdio {
            shutdown: shutdown.clone(),
        }));
    let mut server =
        tokio::spawn(router.serve_with_incoming_shutdown(
            UnixListenerStream::new(listener),
            shutdown.clone().wait(),
        ));

    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(ServeError::Stdout)?;
    }
    tracing::debug!(
        socket = %socket.path().display(),
        plugin = %info.name,
        version = %info.version,
        "plugin serving"
    );

    let early_exit = tokio::select! {
        _ = sigterm.recv() => {
            tracing::info!("SIGTERM received, stopping");
            None
        }
        () = shutdown.clone().wait() => None,
        result = &mut server => Some(result),
    };

    stop.send_replace(true);
    let outcome = match early_exit {
        Some(result) => result,
        None => match tokio::time::timeout(options.shutdown_grace, &mut server).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::debug!("in-flight calls did not finish within the grace period");
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    drop(socket);
    tracing::debug!("plugin stopped");
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ServeError::Transport(err)),
        Err(join) => Err(ServeError::ServerTask(join)),
    }
}
