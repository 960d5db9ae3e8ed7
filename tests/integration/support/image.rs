//! The test image `dockhand-test/busybox:2`: Debian's static busybox plus applet symlinks,
//! packed into a root filesystem tar in Rust and `docker import`ed. No registry is involved.

use std::sync::Arc;

use bytes::Bytes;
use dockhand::docker::{DockerApi, ImportRequest};
use tokio::sync::OnceCell;

/// Repository of the test image.
pub const TEST_IMAGE_REPO: &str = "dockhand-test/busybox";
/// Tag of the test image (bump when the image content changes).
pub const TEST_IMAGE_TAG: &str = "2";
/// The full test image reference.
pub const TEST_IMAGE: &str = "dockhand-test/busybox:2";

/// Where Debian's `busybox-static` installs the binary.
const BUSYBOX: &str = "/bin/busybox";

/// Applets linked into `/bin`.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "true", "false", "kill", "ls", "env", "id", "yes", "head", "dd",
    "top", "ps", "wc", "tail", "grep", "mkdir", "rm", "touch", "printf", "test", "seq", "date",
    "hostname", "uname", "pwd", "tr", "sed", "awk", "nc", "stat", "stty",
];

static BUILT: OnceCell<()> = OnceCell::const_new();

/// Repository of the sandbox (pause) test image: the same root filesystem, whose default
/// command idles until SIGTERM or SIGINT like the real pause image.
pub const SANDBOX_IMAGE_REPO: &str = "dockhand-test/pause";
/// Tag of the sandbox test image (bump when its content changes).
pub const SANDBOX_IMAGE_TAG: &str = "1";
/// The full sandbox test image reference, for the plugin's `infra_image`.
pub const SANDBOX_IMAGE: &str = "dockhand-test/pause:1";

static SANDBOX_BUILT: OnceCell<()> = OnceCell::const_new();

/// Builds the sandbox test image once per process (and not at all when the tag exists).
pub async fn ensure_sandbox_image(docker: &Arc<dyn DockerApi>) {
    SANDBOX_BUILT
        .get_or_init(|| async {
            if docker.inspect_image(SANDBOX_IMAGE).await.is_ok() {
                return;
            }
            let rootfs = rootfs_tar().unwrap_or_else(|e| panic!("{e}"));
            docker
                .import_image(
                    ImportRequest {
                        repo: SANDBOX_IMAGE_REPO.to_owned(),
                        tag: SANDBOX_IMAGE_TAG.to_owned(),
                        changes: vec![
                            r#"CMD ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while true; do sleep 0.2; done"]"#
                                .to_owned(),
                            "ENV PATH=/bin".to_owned(),
                        ],
                    },
                    Bytes::from(rootfs),
                )
                .await
                .unwrap_or_else(|e| panic!("failed to import the sandbox image {SANDBOX_IMAGE}: {e}"));
            docker
                .inspect_image(SANDBOX_IMAGE)
                .await
                .unwrap_or_else(|e| panic!("sandbox image {SANDBOX_IMAGE} missing after import: {e}"));
        })
        .await;
}

/// Builds the test image once per process (and not at all when the tag already exists).
/// Panics with the fix when busybox-static is missing.
pub async fn ensure_test_image(docker: &Arc<dyn DockerApi>) {
    BUILT
        .get_or_init(|| async {
            if docker.inspect_image(TEST_IMAGE).await.is_ok() {
                return;
            }
            let rootfs = rootfs_tar().unwrap_or_else(|e| panic!("{e}"));
            docker
                .import_image(
                    ImportRequest {
                        repo: TEST_IMAGE_REPO.to_owned(),
                        tag: TEST_IMAGE_TAG.to_owned(),
                        changes: vec![r#"CMD ["/bin/sh"]"#.to_owned(), "ENV PATH=/bin".to_owned()],
                    },
                    Bytes::from(rootfs),
                )
                .await
                .unwrap_or_else(|e| panic!("failed to import the test image {TEST_IMAGE}: {e}"));
            docker
                .inspect_image(TEST_IMAGE)
                .await
                .unwrap_or_else(|e| panic!("test image {TEST_IMAGE} missing after import: {e}"));
        })
        .await;
}

/// A `docker save`-format tarball of the busybox root filesystem tagged `tag`, for testing
/// `docker load` (the task option `load`).
pub fn save_tarball(tag: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let layer = rootfs_tar().unwrap_or_else(|e| panic!("{e}"));
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": ["layer/layer.tar"],
    }])
    .to_string();

    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        builder
            .append_data(&mut h, path, data)
            .expect("in-memory tar write");
    };
    add("layer/layer.tar", &layer);
    add(&config_name, config.as_bytes());
    add("manifest.json", manifest.as_bytes());
    builder.into_inner().expect("in-memory tar finish")
}

/// A root filesystem: `/bin/busybox`, applet symlinks, `/etc/passwd`, `/etc/group`, `/tmp`.
fn rootfs_tar() -> Result<Vec<u8>, String> {
    rootfs_tar_with(&[])
}

/// [`rootfs_tar`] plus `extra` regular files (path, content), e.g. to make a layer unique.
pub fn rootfs_tar_with(extra: &[(&str, &[u8])]) -> Result<Vec<u8>, String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        format!(
            "{BUSYBOX} is needed to build the test image ({e}); install it with \
             `apt-get install busybox-static`"
        )
    })?;
    let mut builder = tar::Builder::new(Vec::new());
    let io = |e: std::io::Error| format!("failed to build the test image tar: {e}");

    let dir = |path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        (h, path.to_owned())
    };
    for (path, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
    ] {
        let (mut h, p) = dir(path, mode);
        builder
            .append_data(&mut h, p, std::io::empty())
            .map_err(io)?;
    }

    let mut file = |path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        builder.append_data(&mut h, path, data)
    };
    file("bin/busybox", 0o755, &busybox).map_err(io)?;
    file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .map_err(io)?;
    file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n").map_err(io)?;
    for (path, data) in extra {
        file(path, 0o644, data).map_err(io)?;
    }

    for applet in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        builder
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    builder.into_inner().map_err(io)
}
