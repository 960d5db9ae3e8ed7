//! A reusable framework for writing HashiCorp Nomad task-driver plugins in Rust.
//!
//! A driver implements [`DriverPlugin`] and calls [`serve`] from `main`; the framework does
//! the rest of what a Nomad agent expects from an external plugin process:
//!
//! * the go-plugin handshake ([`handshake`]): magic-cookie check, protocol version
//!   negotiation, a unix socket in a private directory, and the `1|2|unix|<path>|grpc|` line
//!   printed on stdout only once the socket accepts connections;
//! * one gRPC server (plaintext HTTP/2) carrying `BasePlugin`, `Driver`, `grpc.health.v1`
//!   and go-plugin's `GRPCController`/`GRPCStdio` housekeeping services;
//! * hclog-shaped JSON logs on stderr ([`logging`]), the only format the agent parses;
//! * process discipline: SIGINT ignored, SIGTERM and `GRPCController/Shutdown` stop the
//!   plugin promptly and remove the socket.
//!
//! Design decisions:
//! * **Generated code is fenced** in [`proto`]; drivers use the generated request/response
//!   types in [`DriverPlugin`] so no field the agent sends is lost in translation.
//! * **One error type, one mapping.** Drivers return [`PluginError`]; the single
//!   `From<PluginError> for tonic::Status` renders the full cause chain and attaches Nomad's
//!   `RecoverableError` detail when asked to.
//! * **Nothing starts in `SetConfig`.** Nomad runs throw-away validation instances;
//!   [`BackgroundOnce`] lets a driver start long-running work from the first `Fingerprint`
//!   or `Init` only.
//! * **Schemas are plain Rust** ([`hclspec::Spec`]) lowered to protobuf on the wire;
//!   MessagePack configuration is decoded with the go-cty helpers in [`cty`].
//! * **Offline decoding is Nomad's, not the driver's.** [`hcldec`] applies a schema to a
//!   configuration body as Nomad's `hcldec` does (with the cty type model of [`cty_type`]), so
//!   a driver can check configuration files without an agent and decode the result with the
//!   same code that serves `SetConfig` and `StartTask`.
//!
//! The crate knows nothing of any particular runtime (Docker or otherwise).

pub mod cty;
pub mod cty_type;
pub mod driver;
pub mod error;
mod go_plugin;
pub mod handshake;
pub mod hcldec;
pub mod hclspec;
pub mod logging;
pub mod once;
pub mod proto;
mod serve;
mod services;

pub use driver::{DRIVER_API_VERSION, DriverPlugin, PluginInfo, RequestStream, ResponseStream};
pub use error::{PluginError, error_chain};
pub use logging::setup_tracing;
pub use once::BackgroundOnce;
pub use serve::{
    DEFAULT_LOG_FILTER_ENV, DEFAULT_MAX_MESSAGE_BYTES, HEALTH_SERVICE_NAME, ServeError,
    ServeOptions, serve,
};
/// Re-exported so drivers implement [`DriverPlugin`] with the same macro it is declared with.
pub use tonic::async_trait;
