//! Compiles the Nomad and go-plugin `.proto` files under `<workspace>/proto` with protox (a
//! pure-Rust protobuf compiler, so no `protoc` is needed) and generates prost messages plus
//! tonic servers and clients (clients serve test harnesses and other tooling).

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "hashicorp/nomad/plugins/base/proto/base.proto",
    "hashicorp/nomad/plugins/drivers/proto/driver.proto",
    "hashicorp/nomad/plugins/shared/hclspec/hcl_spec.proto",
    "hashicorp/nomad/plugins/shared/structs/proto/attribute.proto",
    "hashicorp/nomad/plugins/shared/structs/proto/recoverable_error.proto",
    "hashicorp/nomad/plugins/shared/structs/proto/stats.proto",
    "plugin/grpc_controller.proto",
    "plugin/grpc_stdio.proto",
    "plugin/grpc_broker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    for file in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let files: Vec<PathBuf> = PROTOS.iter().map(|f| proto_root.join(f)).collect();
    let fds = protox::compile(&files, [&proto_root])?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
