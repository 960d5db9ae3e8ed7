//! Generated protobuf messages and gRPC stubs, fenced into this one module.
//!
//! `build.rs` compiles the `.proto` files under `<workspace>/proto` (Nomad's base, driver,
//! hclspec and shared-structs packages, and go-plugin's `plugin` package). prost names its
//! output after the proto package and refers across packages with `super::` paths, so the
//! private module tree below mirrors the package hierarchy exactly. Only the leaf packages are
//! re-exported, under short names.
//!
//! Lint allowances for generated code live here and nowhere else.

// Generated code is not ours to document, and prost/tonic output trips a few pedantic lints
// (e.g. `missing_debug_implementations` on the tonic server wrappers); these allowances apply
// only to the generated modules.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]
mod generated {
    pub mod hashicorp {
        pub mod nomad {
            pub mod plugins {
                pub mod base {
                    pub mod proto {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/hashicorp.nomad.plugins.base.proto.rs"
                        ));
                    }
                }
                pub mod drivers {
                    pub mod proto {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/hashicorp.nomad.plugins.drivers.proto.rs"
                        ));
                    }
                }
                pub mod shared {
                    pub mod hclspec {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/hashicorp.nomad.plugins.shared.hclspec.rs"
                        ));
                    }
                    pub mod structs {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/hashicorp.nomad.plugins.shared.structs.rs"
                        ));
                    }
                }
            }
        }
    }
    pub mod plugin {
        include!(concat!(env!("OUT_DIR"), "/plugin.rs"));
    }
}

/// `hashicorp.nomad.plugins.base.proto`: the `BasePlugin` service and its messages.
pub use generated::hashicorp::nomad::plugins::base::proto as base;
/// `hashicorp.nomad.plugins.drivers.proto`: the `Driver` service and its messages.
pub use generated::hashicorp::nomad::plugins::drivers::proto as drivers;
/// `hashicorp.nomad.plugins.shared.hclspec`: the HCL schema messages.
pub use generated::hashicorp::nomad::plugins::shared::hclspec;
/// `hashicorp.nomad.plugins.shared.structs`: `Attribute`, `RecoverableError`, stats.
pub use generated::hashicorp::nomad::plugins::shared::structs;
/// go-plugin's `plugin` package: controller, stdio and broker services.
pub use generated::plugin;

/// Fully qualified protobuf name of [`structs::RecoverableError`], as used in `Any.type_url`.
pub const RECOVERABLE_ERROR_TYPE_URL: &str =
    "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError";

/// `google.rpc.Status`, the payload of the `grpc-status-details-bin` trailer.
///
/// Declared by hand (three fields) rather than pulling a crate for it; the field numbers are
/// those of `google/rpc/status.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The error message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details; Nomad reads only the first.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

impl drivers::driver_capabilities::MountConfigs {
    /// `ANY_MOUNTS`, the alias prost drops: numerically equal to `UNKNOWN_MOUNTS` (0), which
    /// Nomad reads as "any mounts" for backward compatibility.
    pub const ANY_MOUNTS: Self = Self::UnknownMounts;
}
