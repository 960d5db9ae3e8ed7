//! Task RPC helpers shared by the lifecycle and recovery tests: Nomad's `TaskConfig` for a
//! test task, and each RPC with a deadline and the checks Nomad relies on.

use std::time::Duration;

use futures::StreamExt as _;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use tonic::transport::Channel;

use crate::harness::{TaskDirs, alloc_id_for, cty_object, cty_string_map};
use crate::support::{TEST_IMAGE, TestContainers};

/// Generous bound for one RPC against the daemon.
const RPC: Duration = Duration::from_secs(60);

/// Nomad's `TaskConfig` for a task running `script` under `sh -c` in [`TEST_IMAGE`], with no
/// network, labelled for `guard`, logging to the FIFOs of `dirs`.
pub fn task_config(
    guard: &TestContainers,
    dirs: &TaskDirs,
    name: &str,
    script: &str,
    extra: Vec<(&str, rmpv::Value)>,
) -> pb::TaskConfig {
    let alloc_id = alloc_id_for(guard.case());
    let mut entries = vec![
        ("image", rmpv::Value::from(TEST_IMAGE)),
        ("command", rmpv::Value::from("sh")),
        (
            "args",
            rmpv::Value::Array(vec![rmpv::Value::from("-c"), rmpv::Value::from(script)]),
        ),
        ("network_mode", rmpv::Value::from("none")),
        // `labels` is `list(map(string))` in the schema, like Nomad's docker driver.
        (
            "labels",
            rmpv::Value::Array(vec![cty_string_map(&guard.labels())]),
        ),
    ];
    // `extra` replaces defaults of the same name.
    entries.retain(|(key, _)| extra.iter().all(|(k, _)| k != key));
    entries.extend(extra);
    pb::TaskConfig {
        id: format!("{alloc_id}/{name}/5eed5eed"),
        name: name.to_owned(),
        msgpack_driver_config: cty_object(entries),
        env: [("NOMAD_TASK_NAME".to_owned(), name.to_owned())].into(),
        resources: Some(pb::Resources {
            allocated_resources: Some(pb::AllocatedTaskResources {
                cpu: Some(pb::AllocatedCpuResources { cpu_shares: 100 }),
                memory: Some(pb::AllocatedMemoryResources {
                    memory_mb: 64,
                    memory_max_mb: 0,
                }),
                networks: Vec::new(),
            }),
            linux_resources: None,
            ports: Vec::new(),
        }),
        alloc_dir: dirs.alloc_dir.to_string_lossy().into_owned(),
        stdout_path: dirs.stdout.path.to_string_lossy().into_owned(),
        stderr_path: dirs.stderr.path.to_string_lossy().into_owned(),
        task_group_name: "group".to_owned(),
        job_name: "job".to_owned(),
        job_id: "job".to_owned(),
        alloc_id,
        namespace: "default".to_owned(),
        node_name: "node".to_owned(),
        node_id: "node".to_owned(),
        ..pb::TaskConfig::default()
    }
}

pub async fn start(
    driver: &mut DriverClient<Channel>,
    task: pb::TaskConfig,
) -> Result<pb::StartTaskResponse, tonic::Status> {
    tokio::time::timeout(
        RPC,
        driver.start_task(pb::StartTaskRequest { task: Some(task) }),
    )
    .await
    .expect("StartTask hung")
    .map(tonic::Response::into_inner)
}

pub async fn wait(
    driver: &mut DriverClient<Channel>,
    task_id: &str,
) -> Result<pb::WaitTaskResponse, tonic::Status> {
    tokio::time::timeout(
        RPC,
        driver.wait_task(pb::WaitTaskRequest {
            task_id: task_id.to_owned(),
        }),
    )
    .await
    .expect("WaitTask hung")
    .map(tonic::Response::into_inner)
}

pub async fn stop(driver: &mut DriverClient<Channel>, task_id: &str, signal: &str) {
    driver
        .stop_task(pb::StopTaskRequest {
            task_id: task_id.to_owned(),
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            signal: signal.to_owned(),
        })
        .await
        .expect("StopTask");
}

pub async fn destroy(
    driver: &mut DriverClient<Channel>,
    task_id: &str,
    force: bool,
) -> Result<(), tonic::Status> {
    driver
        .destroy_task(pb::DestroyTaskRequest {
            task_id: task_id.to_owned(),
            force,
        })
        .await
        .map(|_| ())
}

pub async fn inspect(
    driver: &mut DriverClient<Channel>,
    task_id: &str,
) -> Result<pb::InspectTaskResponse, tonic::Status> {
    driver
        .inspect_task(pb::InspectTaskRequest {
            task_id: task_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Takes `n` stats messages and checks the fields Nomad dereferences.
pub async fn stats(driver: &mut DriverClient<Channel>, task_id: &str, n: usize) {
    let mut stream = driver
        .task_stats(pb::TaskStatsRequest {
            task_id: task_id.to_owned(),
            collection_interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 300_000_000,
            }),
        })
        .await
        .expect("TaskStats")
        .into_inner();
    for _ in 0..n {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("stats message in time")
            .expect("stream open")
            .expect("stats ok");
        let stats = msg.stats.expect("stats set");
        assert_eq!(stats.id, task_id);
        assert!(stats.timestamp.expect("timestamp set").seconds > 0);
        let usage = stats.agg_resource_usage.expect("agg_resource_usage set");
        let memory = usage.memory.expect("memory set");
        assert!(!memory.measured_fields.is_empty(), "{memory:?}");
        assert!(memory.usage > 0 || memory.rss > 0, "{memory:?}");
        assert!(!usage.cpu.expect("cpu set").measured_fields.is_empty());
    }
}

pub fn streaming_request(
    setup: Option<pb::exec_task_streaming_request::Setup>,
    stdin: Option<(&[u8], bool)>,
    tty: Option<(i32, i32)>,
) -> pb::ExecTaskStreamingRequest {
    pb::ExecTaskStreamingRequest {
        setup,
        tty_size: tty
            .map(|(height, width)| pb::exec_task_streaming_request::TerminalSize { height, width }),
        stdin: stdin.map(|(data, close)| pb::ExecTaskStreamingIoOperation {
            data: data.to_vec(),
            close,
        }),
    }
}

/// Runs a streaming exec; returns (stdout, stderr, exit code) and checks the message order.
pub async fn exec_streaming(
    driver: &mut DriverClient<Channel>,
    requests: Vec<pb::ExecTaskStreamingRequest>,
) -> (String, String, i32) {
    let mut responses = driver
        .exec_task_streaming(tokio_stream::iter(requests))
        .await
        .expect("ExecTaskStreaming")
        .into_inner();
    let (mut out, mut err, mut closed_out, mut closed_err) = (Vec::new(), Vec::new(), false, false);
    let mut exit = None;
    while let Some(msg) = tokio::time::timeout(RPC, responses.next())
        .await
        .expect("exec stream hung")
    {
        let msg = msg.expect("stream message ok");
        assert!(exit.is_none(), "nothing may follow the exited message");
        if let Some(o) = msg.stdout {
            assert!(!closed_out && o.data.len() <= 1024);
            out.extend(o.data);
            closed_out |= o.close;
        }
        if let Some(e) = msg.stderr {
            assert!(!closed_err);
            err.extend(e.data);
            closed_err |= e.close;
        }
        if msg.exited {
            exit = Some(msg.result.expect("result with exited").exit_code);
        }
    }
    assert!(closed_out && closed_err, "both close markers sent");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        exit.expect("final exited message"),
    )
}

pub fn setup(
    task_id: &str,
    command: &[&str],
    tty: bool,
) -> Option<pb::exec_task_streaming_request::Setup> {
    Some(pb::exec_task_streaming_request::Setup {
        task_id: task_id.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        tty,
    })
}
