//! Compiles dockhand's own `.proto` files (the admin API) under `<workspace>/proto` with protox
//! (a pure-Rust protobuf compiler, so no `protoc` is needed) into prost messages plus a tonic
//! server and client.

use std::path::PathBuf;

const PROTOS: &[&str] = &["dockhand/admin/v1/admin.proto"];

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
