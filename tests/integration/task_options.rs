//! Task options that shape the create body, through the real plugin binary and the real
//! daemon: each test pins an option that used to be accepted and then dropped (or applied
//! unlike Nomad's docker driver). Ports are published on 127.0.0.1 only; networks created
//! here are internal, labelled and removed; no traffic leaves loopback.

mod network;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dockhand::docker::DockerApi;
use dockhand::docker::models::{ContainerInspectResponse, HostConfig};
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use tonic::transport::Channel;

use crate::harness::{TaskDirs, configured_plugin, cty_string_map};
use crate::lifecycle::{destroy, start, task_config, wait};
use crate::plugin_reconciler::long_lived;
use crate::support::{TEST_CASE_LABEL, TEST_LABEL, TestContainers, docker_with_image};

/// How long a short task may take to print and exit.
const TASK_END: Duration = Duration::from_secs(30);

fn strings(items: &[&str]) -> rmpv::Value {
    rmpv::Value::Array(items.iter().map(|s| rmpv::Value::from(*s)).collect())
}

fn map_list(entries: &[(&str, &str)]) -> rmpv::Value {
    let map: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    rmpv::Value::Array(vec![cty_string_map(&map)])
}

/// A cty object value (for blocks such as `mount`).
fn object(entries: Vec<(&str, rmpv::Value)>) -> rmpv::Value {
    rmpv::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (rmpv::Value::from(k), v))
            .collect(),
    )
}

async fn inspect_task(
    docker: &Arc<dyn DockerApi>,
    guard: &TestContainers,
) -> ContainerInspectResponse {
    let ids = guard.remaining().await;
    assert_eq!(ids.len(), 1, "one task container: {ids:?}");
    docker.inspect_container(&ids[0]).await.expect("inspect")
}

/// The host config of the case's one task container.
async fn host_config(docker: &Arc<dyn DockerApi>, guard: &TestContainers) -> HostConfig {
    inspect_task(docker, guard)
        .await
        .host_config
        .expect("host config")
}

/// Starts `task`, waits for it to exit 0 and returns its id.
async fn run_to_end(
    driver: &mut DriverClient<Channel>,
    dirs: &TaskDirs,
    task: pb::TaskConfig,
) -> String {
    let id = task.id.clone();
    start(driver, task).await.expect("StartTask");
    let r = tokio::time::timeout(TASK_END, wait(driver, &id))
        .await
        .expect("task ended")
        .expect("WaitTask");
    let result = r.result.expect("result");
    assert_eq!(result.exit_code, 0, "stderr: {}", dirs.stderr.text());
    id
}

/// A `docker` CLI call that must succeed; returns stdout.
pub(crate) fn docker_cli(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The labels of everything a test case creates outside containers, as CLI flags.
pub(crate) fn label_flags(case: &str) -> Vec<String> {
    vec![
        "--label".to_owned(),
        format!("{TEST_LABEL}=1"),
        "--label".to_owned(),
        format!("{TEST_CASE_LABEL}={case}"),
    ]
}

/// The CPUs the plugin may run on (the affinity list Go's `runtime.NumCPU` counts).
fn affinity_cpus() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned();
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<i64>().unwrap() - a.parse::<i64>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[tokio::test]
async fn cpu_hard_limit_sets_the_cfs_quota_and_period_nomad_computes() {
    let case = "taskopt_cpu_hard_limit";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("cpu");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let mut task = task_config(
        &guard,
        &dirs,
        "cpu",
        "sleep 60",
        vec![
            ("cpu_hard_limit", rmpv::Value::from(true)),
            ("cpu_cfs_period", rmpv::Value::from(50_000)),
        ],
    );
    task.resources.as_mut().expect("resources").linux_resources = Some(pb::LinuxResources {
        cpu_shares: 100,
        percent_ticks: 0.1,
        ..pb::LinuxResources::default()
    });
    let id = task.id.clone();
    start(&mut driver, task).await.expect("StartTask");
    let host = host_config(&docker, &guard).await;
    assert_eq!(host.cpu_period, Some(50_000));
    assert_eq!(host.cpu_quota, Some(5_000 * affinity_cpus()));
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

/// `CapEff` of the task's shell, as a number.
fn cap_eff(stdout: &str) -> u64 {
    let hex = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {stdout:?}"))
        .trim();
    u64::from_str_radix(hex, 16).expect("hex")
}

const CAP_NET_RAW_BIT: u64 = 1 << 13;

#[tokio::test]
async fn tasks_run_without_net_raw_unless_allowed_and_asked_for() {
    let case = "taskopt_net_raw";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let script = "grep CapEff /proc/self/status";

    // The default allow_caps: NET_RAW is dropped.
    let dirs = TaskDirs::create("caps");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let task = task_config(&guard, &dirs, "caps", script, Vec::new());
    let id = run_to_end(&mut driver, &dirs, task).await;
    let host = host_config(&docker, &guard).await;
    let dropped = host.cap_drop.unwrap_or_default();
    assert!(
        dropped.iter().any(|c| c.eq_ignore_ascii_case("net_raw")),
        "{dropped:?}"
    );
    assert!(dirs.stdout.wait_for("CapEff", TASK_END).await);
    assert_eq!(cap_eff(&dirs.stdout.text()) & CAP_NET_RAW_BIT, 0);
    // Asking for it without the agent's permission is refused by name.
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    let task = task_config(
        &guard,
        &dirs,
        "caps",
        script,
        vec![("cap_add", strings(&["NET_RAW"]))],
    );
    let err = start(&mut driver, task).await.expect_err("not allowed");
    assert!(err.message().contains("cap_add"), "{}", err.message());
    assert!(err.message().contains("net_raw"), "{}", err.message());
    drop(driver);
    drop(plugin);

    // Allowed by the agent and asked for by the task: the task has it.
    let dirs = TaskDirs::create("caps");
    let plugin = long_lived(
        "allow_caps = [\"CHOWN\", \"DAC_OVERRIDE\", \"FOWNER\", \"FSETID\", \"KILL\", \
         \"SETGID\", \"SETUID\", \"NET_RAW\"]\n",
    )
    .await;
    let mut driver = plugin.driver();
    let task = task_config(
        &guard,
        &dirs,
        "caps",
        script,
        vec![("cap_add", strings(&["NET_RAW"]))],
    );
    let id = run_to_end(&mut driver, &dirs, task).await;
    assert!(dirs.stdout.wait_for("CapEff", TASK_END).await);
    assert_ne!(cap_eff(&dirs.stdout.text()) & CAP_NET_RAW_BIT, 0);
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn a_seccomp_profile_file_is_read_and_handed_to_docker() {
    let case = "taskopt_seccomp";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("sec");
    let profile_dir = tempfile::tempdir().expect("tempdir");
    let profile = profile_dir.path().join("profile.json");
    std::fs::write(
        &profile,
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n    {\n      \
         \"names\": [\"mkdir\", \"mkdirat\"],\n      \"action\": \"SCMP_ACT_ERRNO\"\n    }\n  ]\n}\n",
    )
    .expect("write profile");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let seccomp_task = |script: &str, profile: &Path| {
        let opt = format!("seccomp={}", profile.display());
        task_config(
            &guard,
            &dirs,
            "sec",
            script,
            vec![("security_opt", strings(&[&opt]))],
        )
    };
    let task = seccomp_task(
        "if mkdir /tmp/made; then echo made; else echo refused; fi",
        &profile,
    );
    let id = run_to_end(&mut driver, &dirs, task).await;
    assert!(
        dirs.stdout.wait_for("refused", TASK_END).await,
        "{:?}",
        dirs.stdout.text()
    );
    let host = host_config(&docker, &guard).await;
    let opts = host.security_opt.unwrap_or_default();
    assert!(
        opts.iter()
            .any(|o| o.starts_with("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\"")),
        "{opts:?}"
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");

    // An unreadable profile is refused naming the key and the file.
    let missing = profile_dir.path().join("absent.json");
    let task = seccomp_task("true", &missing);
    let err = start(&mut driver, task).await.expect_err("unreadable");
    assert!(err.message().contains("security_opt"), "{}", err.message());
    assert!(
        err.message().contains(&missing.display().to_string()),
        "{}",
        err.message()
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn mount_sub_options_cgroupns_and_selinux_labels_reach_docker() {
    let case = "taskopt_mounts";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("mnt");
    let volume = format!("dockhand-test-{case}");
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", &volume])
        .output();
    let mut create = vec!["volume", "create"];
    let flags = label_flags(case);
    create.extend(flags.iter().map(String::as_str));
    create.push(&volume);
    docker_cli(&create);
    let plugin = long_lived("volumes {\n  enabled = true\n  selinuxlabel = \"z\"\n}\n").await;
    let mut driver = plugin.driver();
    let bind_src = dirs.alloc_dir.join("mnt").join("local").join("shared");
    std::fs::create_dir_all(&bind_src).expect("bind source");
    let mounts = rmpv::Value::Array(vec![
        object(vec![
            ("type", rmpv::Value::from("tmpfs")),
            ("target", rmpv::Value::from("/scratch")),
            (
                "tmpfs_options",
                object(vec![
                    ("size", rmpv::Value::from(1_048_576)),
                    ("mode", rmpv::Value::from(0o700)),
                ]),
            ),
        ]),
        object(vec![
            ("type", rmpv::Value::from("bind")),
            ("target", rmpv::Value::from("/shared")),
            ("source", rmpv::Value::from("local/shared")),
            (
                "bind_options",
                object(vec![("propagation", rmpv::Value::from("private"))]),
            ),
        ]),
        object(vec![
            ("type", rmpv::Value::from("volume")),
            ("target", rmpv::Value::from("/vol")),
            ("source", rmpv::Value::from(volume.as_str())),
            (
                "volume_options",
                object(vec![
                    ("no_copy", rmpv::Value::from(true)),
                    ("labels", map_list(&[("team", "a")])),
                ]),
            ),
        ]),
    ]);
    let task = task_config(
        &guard,
        &dirs,
        "mnt",
        "stat -c 'mode=%a' /scratch",
        vec![
            ("mount", mounts),
            ("volumes", strings(&[&format!("{volume}:/data:ro")])),
            ("volume_driver", rmpv::Value::from("local")),
            ("cgroupns", rmpv::Value::from("private")),
        ],
    );
    let id = run_to_end(&mut driver, &dirs, task).await;
    assert!(
        dirs.stdout.wait_for("mode=700", TASK_END).await,
        "{:?}",
        dirs.stdout.text()
    );
    let host = host_config(&docker, &guard).await;
    assert_eq!(host.volume_driver.as_deref(), Some("local"));
    assert_eq!(
        host.cgroupns_mode.map(|m| m.to_string()).as_deref(),
        Some("private")
    );
    let binds = host.binds.unwrap_or_default();
    assert!(binds.contains(&format!("{volume}:/data:ro,z")), "{binds:?}");
    assert!(binds.iter().any(|b| b.ends_with(":/alloc:z")), "{binds:?}");
    let mounts = host.mounts.unwrap_or_default();
    let by_target = |t: &str| {
        mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(t))
            .cloned()
            .unwrap_or_else(|| panic!("no mount on {t}: {mounts:?}"))
    };
    let tmpfs = by_target("/scratch").tmpfs_options.expect("tmpfs options");
    assert_eq!(
        (tmpfs.size_bytes, tmpfs.mode),
        (Some(1_048_576), Some(0o700))
    );
    let bind = by_target("/shared").bind_options.expect("bind options");
    assert_eq!(
        bind.propagation.map(|p| p.to_string()).as_deref(),
        Some("private")
    );
    let vol = by_target("/vol").volume_options.expect("volume options");
    assert_eq!(vol.no_copy, Some(true));
    assert_eq!(
        vol.labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("a")
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    docker_cli(&["volume", "rm", "-f", &volume]);
}

#[tokio::test]
async fn a_partial_or_unreadable_tls_configuration_fails_set_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("cert.txt");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let absent = dir.path().join("absent.pem");
    let cases = [
        (
            format!("tls {{\n  cert = \"{}\"\n}}\n", not_pem.display()),
            vec!["tls.key", "tls.ca", "must be set"],
        ),
        (
            format!(
                "tls {{\n  cert = \"{0}\"\n  key = \"{0}\"\n  ca = \"{1}\"\n}}\n",
                not_pem.display(),
                absent.display()
            ),
            vec![
                "tls.cert",
                "is not a PEM file",
                "tls.ca",
                "cannot read",
                "absent.pem",
            ],
        ),
    ];
    for (tls, expected) in cases {
        let plugin = crate::harness::Launch::nomad().start().await;
        let body = format!("endpoint = \"tcp://127.0.0.1:2376\"\n{tls}");
        let err = plugin
            .base()
            .set_config(nomad_plugin::proto::base::SetConfigRequest {
                msgpack_config: crate::harness::agent_config(&body),
                nomad_config: None,
                plugin_api_version: "v0.1.0".to_owned(),
            })
            .await
            .expect_err("bad tls");
        for needle in expected {
            assert!(
                err.message().contains(needle),
                "{needle}: {}",
                err.message()
            );
        }
    }
}
