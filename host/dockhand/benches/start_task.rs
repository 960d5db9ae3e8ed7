//! StartTask cost: the pure parts (container config, driver_state codec), a full
//! start → wait → destroy of a trivial task against the local daemon, and StartTask through
//! the real plugin binary over gRPC side by side with a bare bollard create + start of the same
//! container (median of [`ROUNDS`] each, interleaved; target ratio ≤ 1.1).
//!
//! `cargo bench --workspace --bench start_task`. The Docker part is skipped (with a message)
//! when no daemon answers; without `--bench` (`cargo test --all-targets`) the plugin comparison
//! is skipped, as it launches processes and containers.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use dockhand::config::TaskConfig;
use dockhand::docker::{BollardDocker, DockerApi};
use dockhand::fingerprint::RuntimeCatalog;
use dockhand::tasks::spec::TaskResources;
use dockhand::tasks::{
    ContainerSettings, EngineSettings, TaskEngine, TaskSpec, TaskState, container_config,
};

// Shared with the integration tests; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../../../tests/integration/support/image.rs"]
mod image;

fn spec(n: u64) -> TaskSpec {
    TaskSpec {
        id: format!("3f0c6c0e-0000-4000-8000-00000000b0b0/bench/{n:08x}"),
        name: "bench".to_owned(),
        alloc_id: "3f0c6c0e-0000-4000-8000-00000000b0b0".to_owned(),
        job_name: "bench".to_owned(),
        job_id: "bench".to_owned(),
        task_group_name: "bench".to_owned(),
        namespace: "default".to_owned(),
        node_id: "node".to_owned(),
        node_name: "node".to_owned(),
        resources: TaskResources {
            memory_mb: 32,
            cpu_shares: 100,
            ..TaskResources::default()
        },
        config: TaskConfig {
            image: image::TEST_IMAGE.to_owned(),
            command: Some("true".to_owned()),
            network_mode: Some("none".to_owned()),
            labels: [
                ("dockhand.test".to_owned(), "1".to_owned()),
                (
                    "dockhand.test.case".to_owned(),
                    "bench_start_task".to_owned(),
                ),
            ]
            .into(),
            ..TaskConfig::default()
        },
        ..TaskSpec::default()
    }
}

fn pure(c: &mut Criterion) {
    let s = spec(1);
    let settings = ContainerSettings {
        extra_labels: vec!["*".to_owned()],
        ..ContainerSettings::default()
    };
    c.bench_function("container_config", |b| {
        b.iter(|| container_config(&s, None, &settings).unwrap());
    });
    let state = TaskState {
        task_id: s.id.clone(),
        task_name: s.name.clone(),
        alloc_id: s.alloc_id.clone(),
        container_id: "f".repeat(64),
        container_name: s.container_name(),
        image: s.config.image.clone(),
        image_id: format!("sha256:{}", "a".repeat(64)),
        ..TaskState::default()
    };
    let bytes = state.encode().unwrap();
    c.bench_function("driver_state_encode", |b| {
        b.iter(|| state.encode().unwrap())
    });
    c.bench_function("driver_state_decode", |b| {
        b.iter(|| TaskState::decode(&bytes).unwrap());
    });
}

fn docker(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let docker: Arc<dyn DockerApi> = match BollardDocker::from_env() {
        Ok(d) if rt.block_on(d.ping()).is_ok() => Arc::new(d),
        _ => {
            eprintln!("start_task bench: Docker unreachable, skipping the daemon benchmarks");
            return;
        }
    };
    rt.block_on(image::ensure_test_image(&docker));
    let engine = TaskEngine::new(docker, EngineSettings::default(), RuntimeCatalog::new());
    let mut n = 0u64;
    let mut group = c.benchmark_group("daemon");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("start_wait_destroy", |b| {
        b.iter(|| {
            n += 1;
            let s = spec(n);
            rt.block_on(async {
                engine.start(s.clone()).await.unwrap();
                engine.wait(&s.id).await.unwrap();
                engine.destroy(&s.id, true).await.unwrap();
            });
        });
    });
    group.finish();
}

// The plugin launcher of the integration tests; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../../../tests/integration/harness.rs"]
mod harness;

/// Measured rounds per side of the plugin comparison.
const ROUNDS: usize = 10;

/// Label value marking the comparison's containers (for clean-up).
const COMPARE_CASE: &str = "bench_plugin_vs_bare";

fn compare_labels() -> std::collections::BTreeMap<String, String> {
    [
        ("dockhand.test".to_owned(), "1".to_owned()),
        ("dockhand.test.case".to_owned(), COMPARE_CASE.to_owned()),
    ]
    .into()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// StartTask via gRPC to the plugin binary.
async fn plugin_start(
    driver: &mut nomad_plugin::proto::drivers::driver_client::DriverClient<
        tonic::transport::Channel,
    >,
    round: usize,
) -> Duration {
    use nomad_plugin::proto::drivers as pb;
    let dirs = harness::TaskDirs::create("bench");
    let alloc_id = harness::alloc_id_for(&format!("{COMPARE_CASE}-{round}"));
    let config = harness::cty_object(vec![
        ("image", rmpv::Value::from(image::TEST_IMAGE)),
        ("command", rmpv::Value::from("sleep")),
        ("args", rmpv::Value::Array(vec![rmpv::Value::from("600")])),
        ("network_mode", rmpv::Value::from("none")),
        (
            "labels",
            rmpv::Value::Array(vec![harness::cty_string_map(&compare_labels())]),
        ),
    ]);
    let task = pb::TaskConfig {
        id: format!("{alloc_id}/bench/00000001"),
        name: "bench".to_owned(),
        alloc_id,
        msgpack_driver_config: config,
        resources: Some(pb::Resources {
            allocated_resources: Some(pb::AllocatedTaskResources {
                cpu: Some(pb::AllocatedCpuResources { cpu_shares: 100 }),
                memory: Some(pb::AllocatedMemoryResources {
                    memory_mb: 64,
                    memory_max_mb: 0,
                }),
                networks: Vec::new(),
            }),
            ..pb::Resources::default()
        }),
        alloc_dir: dirs.alloc_dir.to_string_lossy().into_owned(),
        stdout_path: dirs.stdout.path.to_string_lossy().into_owned(),
        stderr_path: dirs.stderr.path.to_string_lossy().into_owned(),
        ..pb::TaskConfig::default()
    };
    let id = task.id.clone();
    let started = std::time::Instant::now();
    driver
        .start_task(pb::StartTaskRequest { task: Some(task) })
        .await
        .expect("StartTask");
    let took = started.elapsed();
    driver
        .destroy_task(pb::DestroyTaskRequest {
            task_id: id,
            force: true,
        })
        .await
        .expect("DestroyTask");
    took
}

/// The same container created and started with bollard directly.
async fn bare_start(docker: &bollard::Docker, round: usize) -> Duration {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
    let name = format!("bench-bare-{}-{round}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(image::TEST_IMAGE.to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "600".to_owned()]),
        labels: Some(compare_labels().into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            memory: Some(64 * 1024 * 1024),
            cpu_shares: Some(100),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let started = std::time::Instant::now();
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("create");
    docker
        .start_container(&created.id, None)
        .await
        .expect("start");
    let took = started.elapsed();
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .expect("remove");
    took
}

/// StartTask through the plugin binary versus bare create + start, printed as a table.
fn plugin_vs_bare() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Ok(bare) = bollard::Docker::connect_with_local_defaults() else {
        eprintln!("start_task bench: no Docker client, skipping the plugin comparison");
        return;
    };
    if rt.block_on(bare.ping()).is_err() {
        eprintln!("start_task bench: Docker unreachable, skipping the plugin comparison");
        return;
    }
    rt.block_on(async {
        let api: Arc<dyn DockerApi> = Arc::new(BollardDocker::from_env().unwrap());
        image::ensure_test_image(&api).await;
        let plugin = harness::configured_plugin().await;
        let mut driver = plugin.driver();
        // Warm-up of both paths (first-use costs: engine construction, connections).
        plugin_start(&mut driver, ROUNDS).await;
        bare_start(&bare, ROUNDS).await;
        let (mut via_plugin, mut direct) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            via_plugin.push(plugin_start(&mut driver, round).await);
            direct.push(bare_start(&bare, round).await);
        }
        let (p, d) = (median(via_plugin), median(direct));
        println!();
        println!("StartTask, median of {ROUNDS} (interleaved)");
        println!("{:<34} {:>10}", "path", "median ms");
        println!(
            "{:<34} {:>10.1}",
            "plugin gRPC StartTask",
            p.as_secs_f64() * 1e3
        );
        println!(
            "{:<34} {:>10.1}",
            "bollard create + start",
            d.as_secs_f64() * 1e3
        );
        println!(
            "{:<34} {:>10.2}  (target <= 1.10)",
            "ratio",
            p.as_secs_f64() / d.as_secs_f64()
        );
    });
}

criterion_group!(benches, pure, docker);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        plugin_vs_bare();
    } else {
        println!("start_task: plugin comparison runs only under `cargo bench`");
    }
}
