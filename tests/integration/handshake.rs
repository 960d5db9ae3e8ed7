//! The plugin binary as a Nomad agent sees it: handshake, side services, process
//! discipline, logging, and the base/driver RPCs of the protocol foundation.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::time::Duration;

use futures::StreamExt as _;
use nix::sys::signal::Signal;
use nomad_plugin::proto::base::{
    ConfigSchemaRequest, NomadConfig, NomadDriverConfig, PluginInfoRequest, PluginType,
    SetConfigRequest,
};
use nomad_plugin::proto::drivers::driver_capabilities::{FsIsolation, MountConfigs};
use nomad_plugin::proto::drivers::fingerprint_response::HealthState;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;
use nomad_plugin::proto::drivers::{
    CapabilitiesRequest, FingerprintRequest, FingerprintResponse, InitRequest,
    TaskConfigSchemaRequest,
};
use nomad_plugin::proto::plugin;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::harness::Launch;

const BACKGROUND_STARTED: &str = "background tasks started";

/// go-cty msgpack of `{disable_log_collection = <value>}`.
fn plugin_config(disable_log_collection: bool) -> Vec<u8> {
    let mut bytes = vec![0x81, 0xb6];
    bytes.extend_from_slice(b"disable_log_collection");
    bytes.push(if disable_log_collection { 0xc3 } else { 0xc2 });
    bytes
}

fn nomad_config() -> NomadConfig {
    NomadConfig {
        driver: Some(NomadDriverConfig {
            client_max_port: 14512,
            client_min_port: 14000,
            topology: None,
        }),
    }
}

fn assert_refused(exited: &crate::harness::Exited, needle: &str) {
    assert_eq!(exited.status.code(), Some(1), "stderr: {}", exited.stderr);
    assert!(
        exited.stdout.is_empty(),
        "stdout must stay empty: {:?}",
        exited.stdout
    );
    assert!(
        exited.stderr.contains(needle),
        "stderr should mention {needle:?}: {}",
        exited.stderr
    );
}

#[tokio::test]
async fn handshake_line_has_go_plugin_format_and_socket_is_private() {
    let plugin = Launch::nomad().start().await;
    let fields: Vec<&str> = plugin.handshake.split('|').collect();
    assert_eq!(fields.len(), 6, "six fields: {:?}", plugin.handshake);
    assert_eq!(fields[0], "1", "core protocol version");
    assert_eq!(fields[1], "2", "app protocol version");
    assert_eq!(fields[2], "unix");
    assert!(fields[3].starts_with('/'), "absolute socket path");
    assert_eq!(fields[4], "grpc");
    assert_eq!(fields[5], "", "no server certificate");

    let meta = std::fs::metadata(&plugin.socket).expect("socket exists");
    assert!(meta.file_type().is_socket());
    let dir = plugin.socket.parent().expect("socket dir");
    assert!(
        dir.starts_with(plugin.tmpdir.path()),
        "socket dir honours TMPDIR"
    );
    let mode = std::fs::metadata(dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "socket directory is private");
}

#[tokio::test]
async fn plugin_socket_dir_variable_wins_over_tmpdir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = Launch::nomad()
        .env("PLUGIN_UNIX_SOCKET_DIR", dir.path().to_str().expect("utf8"))
        .start()
        .await;
    assert!(plugin.socket.starts_with(dir.path()), "{:?}", plugin.socket);
}

#[test]
fn refuses_to_run_without_the_magic_cookie() {
    let exited = Launch::nomad()
        .without("NOMAD_PLUGIN_MAGIC_COOKIE")
        .run_to_exit(Duration::from_secs(10));
    assert_refused(&exited, "not meant to be run directly");
}

#[test]
fn refuses_to_run_with_a_wrong_magic_cookie() {
    let exited = Launch::nomad()
        .env("NOMAD_PLUGIN_MAGIC_COOKIE", "not-the-cookie")
        .run_to_exit(Duration::from_secs(10));
    assert_refused(&exited, "not meant to be run directly");
}

#[test]
fn refuses_unsupported_protocol_versions() {
    let exited = Launch::nomad()
        .env("PLUGIN_PROTOCOL_VERSIONS", "1,3")
        .run_to_exit(Duration::from_secs(10));
    assert_refused(&exited, "PLUGIN_PROTOCOL_VERSIONS=\"1,3\"");
}

#[tokio::test]
async fn picks_version_two_from_a_list() {
    let plugin = Launch::nomad()
        .env("PLUGIN_PROTOCOL_VERSIONS", "1,2")
        .start()
        .await;
    assert!(
        plugin.handshake.starts_with("1|2|unix|"),
        "{}",
        plugin.handshake
    );
}

#[tokio::test]
async fn health_reports_serving_for_plugin_and_server() {
    let plugin = Launch::nomad().start().await;
    for service in ["plugin", ""] {
        let resp = plugin
            .health()
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            resp.status,
            ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }
}

#[tokio::test]
async fn broker_is_unimplemented_and_stdio_is_idle() {
    let plugin = Launch::nomad().start().await;
    let err = plugin
        .broker()
        .start_stream(futures::stream::pending::<plugin::ConnInfo>())
        .await
        .expect_err("broker is not served");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let mut stdio = plugin
        .stdio()
        .stream_stdio(())
        .await
        .expect("stdio stream opens")
        .into_inner();
    let next = tokio::time::timeout(Duration::from_millis(300), stdio.next()).await;
    assert!(
        next.is_err(),
        "stdio stream stays open and silent: {next:?}"
    );
}

#[tokio::test]
async fn controller_shutdown_exits_promptly_and_removes_the_socket() {
    let mut plugin = Launch::nomad()
        .env("DOCKHAND_FINGERPRINT_PERIOD", "100ms")
        .start()
        .await;
    // A long-lived stream must not hold the shutdown open.
    let mut fingerprints = plugin.fingerprints().await;
    let _first = fingerprints.next().await;

    plugin
        .controller()
        .shutdown(plugin::Empty {})
        .await
        .expect("shutdown replies");
    let status = plugin
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exits within 2 s of GRPCController/Shutdown");
    assert!(status.success(), "{status:?}");
    assert!(!plugin.socket.exists(), "socket removed");
    assert!(
        !plugin.socket.parent().expect("dir").exists(),
        "socket dir removed"
    );
    assert!(plugin.stdout_after_handshake().is_empty());
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_removes_the_socket() {
    let mut plugin = Launch::nomad().start().await;
    let _stream = plugin
        .driver()
        .fingerprint(FingerprintRequest {})
        .await
        .expect("fingerprint");
    plugin.signal(Signal::SIGTERM);
    let status = plugin
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!plugin.socket.exists(), "socket removed");
    assert!(
        !plugin.socket.parent().expect("dir").exists(),
        "socket dir removed"
    );
}

#[tokio::test]
async fn sigint_is_ignored() {
    let mut plugin = Launch::nomad().start().await;
    plugin.signal(Signal::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(plugin.is_running(), "SIGINT must not stop the plugin");
    plugin
        .base()
        .plugin_info(PluginInfoRequest {})
        .await
        .expect("still serving");
}

#[tokio::test]
async fn every_stderr_line_is_hclog_json() {
    let mut plugin = Launch::nomad()
        .env("DOCKHAND_LOG", "trace")
        .env("DOCKHAND_FINGERPRINT_PERIOD", "100ms")
        .start()
        .await;
    let mut driver = plugin.driver();
    driver.init(InitRequest {}).await.expect("init");
    let mut stream = driver
        .fingerprint(FingerprintRequest {})
        .await
        .expect("fingerprint")
        .into_inner();
    let _ = stream.next().await;
    plugin
        .controller()
        .shutdown(plugin::Empty {})
        .await
        .expect("shutdown");
    plugin
        .wait_exit(Duration::from_secs(2))
        .await
        .expect("exit");
    // The reader thread may still be draining the pipe.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let logs = plugin.logs();
    assert!(!logs.is_empty(), "trace logging produces lines");
    for line in &logs {
        let level = line["@level"].as_str().expect("@level is a string");
        assert!(
            ["trace", "debug", "info", "warn", "error"].contains(&level),
            "level {level:?}"
        );
        assert!(
            line["@message"].is_string(),
            "@message is a string: {line:?}"
        );
        let ts = line["@timestamp"].as_str().expect("@timestamp is a string");
        assert!(is_hclog_timestamp(ts), "timestamp {ts:?}");
    }
    assert_eq!(plugin.count_logs(BACKGROUND_STARTED), 1);
}

/// `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$`
fn is_hclog_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26);
    let zone = &ts[26.min(ts.len())..];
    fixed
        && (zone == "Z"
            || (zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && zone.as_bytes()[3] == b':'))
}

#[tokio::test]
async fn plugin_info_identifies_a_driver() {
    let plugin = Launch::nomad().start().await;
    let info = plugin
        .base()
        .plugin_info(PluginInfoRequest {})
        .await
        .expect("plugin info")
        .into_inner();
    assert_eq!(info.r#type, PluginType::Driver as i32);
    assert_eq!(info.plugin_api_versions, vec!["v0.1.0".to_owned()]);
    assert_eq!(info.name, "dockhand");
    assert_eq!(info.plugin_version, env!("CARGO_PKG_VERSION"));
    let parts: Vec<&str> = info.plugin_version.split('.').collect();
    assert_eq!(parts.len(), 3, "semver");
    assert!(parts.iter().all(|p| p.parse::<u64>().is_ok()), "semver");
}

#[tokio::test]
async fn driver_name_argument_renames_the_driver() {
    let plugin = Launch::nomad()
        .arg("--driver-name")
        .arg("docker")
        .start()
        .await;
    let info = plugin
        .base()
        .plugin_info(PluginInfoRequest {})
        .await
        .expect("plugin info")
        .into_inner();
    assert_eq!(info.name, "docker");

    let first = first_fingerprint(&plugin).await;
    for key in first.attributes.keys() {
        assert!(key.starts_with("driver.docker"), "attribute {key}");
    }
}

async fn first_fingerprint(plugin: &crate::harness::Plugin) -> FingerprintResponse {
    let mut stream = plugin.fingerprints().await;
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("first fingerprint within 5 s")
        .expect("stream not ended")
        .expect("not an error")
}

#[tokio::test]
async fn schemas_are_returned() {
    let plugin = Launch::nomad().start().await;
    let config = plugin
        .base()
        .config_schema(ConfigSchemaRequest {})
        .await
        .expect("config schema")
        .into_inner();
    assert!(
        config.spec.and_then(|s| s.block).is_some(),
        "plugin config spec set"
    );
    let task = plugin
        .driver()
        .task_config_schema(TaskConfigSchemaRequest {})
        .await
        .expect("task schema")
        .into_inner();
    assert!(task.spec.and_then(|s| s.block).is_some(), "task spec set");
}

#[tokio::test]
async fn set_config_accepts_validation_and_real_launches() {
    let plugin = Launch::nomad().start().await;
    let mut base = plugin.base();
    // L2: validation launch, nomad_config unset, twice.
    for _ in 0..2 {
        base.set_config(SetConfigRequest {
            msgpack_config: plugin_config(false),
            nomad_config: None,
            plugin_api_version: "v0.1.0".to_owned(),
        })
        .await
        .expect("validation SetConfig");
    }
    // L3: the long-lived instance.
    base.set_config(SetConfigRequest {
        msgpack_config: plugin_config(true),
        nomad_config: Some(nomad_config()),
        plugin_api_version: "v0.1.0".to_owned(),
    })
    .await
    .expect("real SetConfig");
    let caps = plugin
        .driver()
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner()
        .capabilities
        .expect("capabilities set");
    assert!(caps.disable_log_collection, "taken from the stored config");

    // No schema payload at all is accepted too.
    base.set_config(SetConfigRequest::default())
        .await
        .expect("empty SetConfig");
}

#[tokio::test]
async fn set_config_rejects_malformed_msgpack_naming_the_problem() {
    let plugin = Launch::nomad().start().await;
    let mut base = plugin.base();
    // A fixstr announcing 5 bytes followed by one.
    let err = base
        .set_config(SetConfigRequest {
            msgpack_config: vec![0xa5, b'a'],
            ..SetConfigRequest::default()
        })
        .await
        .expect_err("truncated msgpack");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("MessagePack"), "{}", err.message());

    let err = base
        .set_config(SetConfigRequest {
            msgpack_config: vec![0x05],
            ..SetConfigRequest::default()
        })
        .await
        .expect_err("an integer is not a config object");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("object"), "{}", err.message());

    let mut wrong_type = vec![0x81, 0xb6];
    wrong_type.extend_from_slice(b"disable_log_collection");
    wrong_type.push(0x05);
    let err = base
        .set_config(SetConfigRequest {
            msgpack_config: wrong_type,
            nomad_config: Some(nomad_config()),
            ..SetConfigRequest::default()
        })
        .await
        .expect_err("a number is not a bool");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("disable_log_collection"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn capabilities_match_the_docker_driver() {
    let plugin = Launch::nomad().start().await;
    let caps = plugin
        .driver()
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner()
        .capabilities
        .expect("set");
    assert!(caps.send_signals);
    assert!(caps.exec);
    assert_eq!(caps.fs_isolation, FsIsolation::Image as i32);
    assert_eq!(
        caps.network_isolation_modes,
        vec![
            NetworkIsolationMode::Host as i32,
            NetworkIsolationMode::Group as i32,
            NetworkIsolationMode::Task as i32
        ]
    );
    assert!(
        caps.must_create_network,
        "group networks need CreateNetwork"
    );
    assert_eq!(caps.mount_configs, MountConfigs::ANY_MOUNTS as i32);
    assert!(!caps.disable_log_collection, "default config");
}

#[tokio::test]
async fn fingerprint_arrives_promptly_and_the_stream_stays_open() {
    let plugin = Launch::nomad()
        .env("DOCKHAND_FINGERPRINT_PERIOD", "150ms")
        .start()
        .await;
    let mut stream = plugin.fingerprints().await;
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("first fingerprint within 5 s")
        .expect("stream open")
        .expect("no error");
    if first.health == HealthState::Healthy as i32 {
        assert_eq!(first.health_description, "Healthy");
        assert!(first.attributes.contains_key("driver.dockhand"));
    } else {
        eprintln!(
            "docker not reachable: fingerprint says {:?}",
            first.health_description
        );
        assert!(first.attributes.is_empty());
    }
    // At least two more periods without the stream ending.
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("periodic fingerprint");
        assert!(matches!(next, Some(Ok(_))), "stream still open: {next:?}");
    }
}

#[tokio::test]
async fn set_config_alone_starts_no_background_work() {
    let plugin = Launch::nomad().start().await;
    let mut base = plugin.base();
    for _ in 0..2 {
        base.set_config(SetConfigRequest {
            msgpack_config: plugin_config(false),
            ..SetConfigRequest::default()
        })
        .await
        .expect("SetConfig");
    }
    base.plugin_info(PluginInfoRequest {}).await.expect("info");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plugin.count_logs(BACKGROUND_STARTED),
        0,
        "{:?}",
        plugin.stderr_lines()
    );
}

#[tokio::test]
async fn fingerprint_streams_and_init_start_background_work_once() {
    let plugin = Launch::nomad()
        .env("DOCKHAND_FINGERPRINT_PERIOD", "100ms")
        .start()
        .await;
    let mut driver = plugin.driver();
    let (mut first_client, mut second_client) = (plugin.driver(), plugin.driver());
    let (a, b) = tokio::join!(
        first_client.fingerprint(FingerprintRequest {}),
        second_client.fingerprint(FingerprintRequest {})
    );
    let (mut a, mut b) = (a.expect("a").into_inner(), b.expect("b").into_inner());
    assert!(a.next().await.is_some_and(|r| r.is_ok()));
    assert!(b.next().await.is_some_and(|r| r.is_ok()));
    driver.init(InitRequest {}).await.expect("init");
    assert!(
        plugin
            .wait_for_log(BACKGROUND_STARTED, Duration::from_secs(2))
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plugin.count_logs(BACKGROUND_STARTED), 1);
}

#[tokio::test]
async fn init_alone_starts_background_work() {
    let plugin = Launch::nomad().start().await;
    plugin
        .driver()
        .init(InitRequest {})
        .await
        .expect("init is implemented");
    assert!(
        plugin
            .wait_for_log(BACKGROUND_STARTED, Duration::from_secs(2))
            .await
    );
}
