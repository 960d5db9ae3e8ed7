//! The reconciler and the admin API inside the real plugin binary: started once, from the
//! configured long-lived instance only, honouring `enabled = false` and `label_filter`,
//! refusing mis-pinned policy files, and serving policy management on the admin socket.
//!
//! The launch helpers here ([`Private`], [`long_lived`], [`started`], [`admin_client`]) are
//! shared with the crash tests.

use std::path::Path;
use std::time::{Duration, Instant};

use dockhand::admin::client::AdminClient;
use futures::StreamExt as _;
use nomad_plugin::proto::base::SetConfigRequest;
use nomad_plugin::proto::drivers::{FingerprintRequest, InitRequest};

use crate::harness::{Launch, Plugin};
use crate::reconcile::{Kind, make};
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

const RECONCILER_STARTED: &str = "dangling container reconciler started";
const RECONCILER_DISABLED: &str = "dangling container reconciler disabled by configuration";
const ADMIN_SERVING: &str = "admin API serving";
/// Policy compilation in a debug build can take a few seconds on a loaded machine.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The msgpack Nomad sends for this `plugin { config { … } }` body.
pub(crate) use crate::harness::agent_config as plugin_config;

/// A private data dir and admin socket, so tests never touch `/var/lib` or `/run`.
pub(crate) struct Private {
    dir: tempfile::TempDir,
}

impl Private {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// `dockhand.data_dir`.
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `extra` goes inside the `dockhand { }` block.
    pub(crate) fn config(&self, extra: &str, outside: &str) -> String {
        format!(
            "dockhand {{\n data_dir = \"{}\"\n admin {{\n socket = \"{}\"\n }}\n{extra}}}\n{outside}",
            self.data_dir().display(),
            self.socket().display()
        )
    }
}

/// `hcl_body` with `gc.image = false` unless it says otherwise: the shared test images must
/// not be collected by one test's plugin while another test still needs them.
fn keeping_images(hcl_body: &str) -> String {
    let sets_image_gc = hcl_body.lines().any(|line| {
        line.trim_start().starts_with("image ") || line.trim_start().starts_with("image=")
    });
    if sets_image_gc {
        hcl_body.to_owned()
    } else if let Some((before, after)) = hcl_body.split_once("gc {\n") {
        format!("{before}gc {{\n image = false\n{after}")
    } else {
        format!("{hcl_body}gc {{\n image = false\n}}\n")
    }
}

/// A launched plugin that received the long-lived instance's `SetConfig` with this body (and
/// `gc.image = false` unless the body sets it).
pub(crate) async fn long_lived(hcl_body: &str) -> Plugin {
    Launch::nomad()
        .start_configured(plugin_config(&keeping_images(hcl_body)))
        .await
}

/// [`long_lived`] plus `Init`, which starts the background work (reconciler, admin API).
pub(crate) async fn started(hcl_body: &str) -> Plugin {
    let plugin = long_lived(hcl_body).await;
    plugin.driver().init(InitRequest {}).await.expect("init");
    plugin
}

/// A client of `plugin`'s admin API on `socket`, once it serves (a plugin killed earlier may
/// have left a stale socket file behind, so connecting is retried).
pub(crate) async fn admin_client(plugin: &Plugin, socket: &Path) -> AdminClient {
    assert!(
        plugin.wait_for_log(ADMIN_SERVING, START_TIMEOUT).await,
        "the admin API never started: {:?}",
        plugin.stderr_lines()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = match AdminClient::connect(socket).await {
            Ok(mut client) => match client.status().await {
                Ok(_) => return client,
                Err(e) => e,
            },
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "admin API on {} unusable: {attempt}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn reconciler_starts_once_from_fingerprint_and_init() {
    let private = Private::new();
    let plugin = long_lived(&private.config("", "")).await;
    let (mut a, mut b) = (plugin.driver(), plugin.driver());
    let (sa, sb) = tokio::join!(
        a.fingerprint(FingerprintRequest {}),
        b.fingerprint(FingerprintRequest {})
    );
    let (mut sa, mut sb) = (sa.expect("a").into_inner(), sb.expect("b").into_inner());
    assert!(sa.next().await.is_some_and(|r| r.is_ok()));
    assert!(sb.next().await.is_some_and(|r| r.is_ok()));
    plugin.driver().init(InitRequest {}).await.expect("init");
    assert!(
        plugin.wait_for_log(RECONCILER_STARTED, START_TIMEOUT).await,
        "{:?}",
        plugin.stderr_lines()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(plugin.count_logs(RECONCILER_STARTED), 1);
}

#[tokio::test]
async fn set_config_alone_starts_no_reconciler() {
    let plugin = Launch::nomad().start().await;
    for _ in 0..2 {
        plugin
            .base()
            .set_config(SetConfigRequest {
                msgpack_config: plugin_config(""),
                ..SetConfigRequest::default()
            })
            .await
            .expect("SetConfig");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(plugin.count_logs(RECONCILER_STARTED), 0);
    assert_eq!(plugin.count_logs(RECONCILER_DISABLED), 0);
}

#[tokio::test]
async fn disabled_reconciler_is_not_started() {
    let private = Private::new();
    let plugin = long_lived(&private.config(
        "",
        "gc {\n dangling_containers {\n enabled = false\n }\n}\n",
    ))
    .await;
    plugin.driver().init(InitRequest {}).await.expect("init");
    assert!(
        plugin
            .wait_for_log(RECONCILER_DISABLED, START_TIMEOUT)
            .await,
        "{:?}",
        plugin.stderr_lines()
    );
    assert_eq!(plugin.count_logs(RECONCILER_STARTED), 0);
}

#[tokio::test]
async fn a_mispinned_policy_file_is_refused_and_the_default_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ownership.wasm");
    std::fs::write(&path, orphan_policy::guests::DEFAULT_OWNERSHIP).expect("write policy");
    let wrong_pin = "0".repeat(64);
    let private = Private::new();
    let body = private.config(
        &format!(
            " ownership_policy {{\n path = \"{}\"\n sha256 = \"{wrong_pin}\"\n }}\n",
            path.display()
        ),
        "",
    );
    let plugin = long_lived(&body).await;
    plugin.driver().init(InitRequest {}).await.expect("init");
    assert!(
        plugin.wait_for_log(RECONCILER_STARTED, START_TIMEOUT).await,
        "{:?}",
        plugin.stderr_lines()
    );
    let refused: Vec<_> = plugin
        .logs()
        .into_iter()
        .filter(|l| {
            l.get("@message").and_then(|m| m.as_str()).is_some_and(|m| {
                m.contains("configured policy refused") && m.contains("sha256 mismatch")
            })
        })
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", plugin.stderr_lines());
    assert_eq!(refused[0]["@level"], "error");
}

fn dockhand_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(args)
        .output()
        .expect("run dockhand")
}

#[tokio::test]
async fn the_plugin_serves_the_admin_api_and_activations_survive_a_restart() {
    let private = Private::new();
    let config = private.config("", "");
    let socket = private.socket();
    let socket = socket.to_str().expect("utf-8 path");
    let policy = private.dir.path().join("allowlist.wasm");
    std::fs::write(
        &policy,
        orphan_policy::guests::test_guest("example-label-allowlist").expect("example policy"),
    )
    .expect("write policy");

    let plugin = long_lived(&config).await;
    plugin.driver().init(InitRequest {}).await.expect("init");
    assert!(
        plugin.wait_for_log(ADMIN_SERVING, START_TIMEOUT).await,
        "{:?}",
        plugin.stderr_lines()
    );
    let status = dockhand_cli(&["status", "--socket", socket]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("default-ownership"), "{text}");

    let upload = dockhand_cli(&[
        "policy",
        "upload",
        policy.to_str().expect("utf-8"),
        "--kind",
        "ownership",
        "--socket",
        socket,
    ]);
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    let digest = orphan_policy::store::sha256_hex(&std::fs::read(&policy).expect("read"));
    let activate = dockhand_cli(&[
        "policy", "activate", &digest, "--mode", "audit", "--socket", socket,
    ]);
    assert!(
        activate.status.success(),
        "{}",
        String::from_utf8_lossy(&activate.stderr)
    );
    drop(plugin);

    // A new plugin process on the same data dir puts the stored activation back in force.
    let plugin = long_lived(&config).await;
    plugin.driver().init(InitRequest {}).await.expect("init");
    assert!(
        plugin
            .wait_for_log("activated policy restored from the store", START_TIMEOUT)
            .await,
        "{:?}",
        plugin.stderr_lines()
    );
    assert!(plugin.wait_for_log(ADMIN_SERVING, START_TIMEOUT).await);
    let status = dockhand_cli(&["status", "--socket", socket]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains(&digest[..12]), "{text}");
    assert!(text.contains("audit"), "{text}");
}

#[tokio::test]
async fn label_filter_fences_what_the_plugin_sees() {
    let case = "plugin_label_filter";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let inside = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-inside"),
            start: true,
            ..Kind::default()
        },
    )
    .await;
    // Same test labels, another case value: outside the fence (removed through `track`).
    let outside = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-outside"),
            labels: vec![(TEST_CASE_LABEL, format!("{case}-outside"))],
            start: true,
            ..Kind::default()
        },
    )
    .await;
    let private = Private::new();
    let filter = format!("{TEST_CASE_LABEL}={case}");
    let config = private.config(&format!(" label_filter = \"{filter}\"\n"), "");
    let plugin = started(&config).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    // With the default 5m grace both containers are too young to be candidates, so the
    // listing count is what shows the fence.
    let answer = admin
        .preview(dockhand::admin::PolicyKindMsg::Unspecified, None)
        .await
        .expect("dry run");
    assert_eq!(answer.status(), "completed", "{answer:?}");
    let report = answer.report().expect("a report");
    assert_eq!(
        report.listed, 1,
        "only {inside} is inside the fence, not {outside}"
    );
    // The CLI prints the same report as JSON.
    let socket = private.socket();
    let out = dockhand_cli(&[
        "policy",
        "dry-run",
        "--json",
        "--socket",
        socket.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report json");
    assert_eq!(json["listed"], 1, "{json}");
}

#[tokio::test]
async fn a_malformed_label_filter_is_refused_by_set_config() {
    let plugin = Launch::nomad().start().await;
    let err = plugin
        .base()
        .set_config(SetConfigRequest {
            msgpack_config: plugin_config("dockhand {\n label_filter = \"=fleet\"\n}\n"),
            ..SetConfigRequest::default()
        })
        .await
        .expect_err("a malformed label_filter is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("dockhand.label_filter: has an empty label key"),
        "{}",
        err.message()
    );
}
