//! Image pulls through the real plugin from a real registry on loopback: `:latest` for an
//! untagged name, task credentials, the agent's credential helper and Docker config file,
//! `auth_soft_fail`, pull progress events, `image_pull_timeout`, and image garbage
//! collection. The registry harness is `support::registry`.

mod gc;
mod infra;
mod pull;

use std::sync::Arc;
use std::time::Duration;

use dockhand::docker::DockerApi;
use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::driver_client::DriverClient;
use tonic::transport::Channel;

use crate::harness::{Launch, Plugin, TaskDirs, agent_config};
use crate::lifecycle::{start, task_config};
use crate::support::registry::{Registry, registry_or_skip};
use crate::support::{TestContainers, docker_with_image};

/// The daemon, a registry on loopback (requiring `credentials` when given) and the case's
/// container guard; `None` (said loudly) without the registry binary or Docker.
async fn setup(
    case: &str,
    credentials: Option<(&str, &str)>,
) -> Option<(Arc<dyn DockerApi>, Registry, TestContainers)> {
    if !registry_or_skip(case) {
        return None;
    }
    let docker = docker_with_image(case).await?;
    // The registry goes after the guard, so containers are removed before their images.
    let registry = Registry::start(&docker, credentials).await;
    let guard = TestContainers::new(&docker, case).await;
    Some((docker, registry, guard))
}

/// A plugin launched with `env` whose long-lived instance got this agent config body.
async fn plugin_with(hcl_body: &str, env: &[(&str, &str)]) -> Plugin {
    let mut launch = Launch::nomad();
    for (k, v) in env {
        launch = launch.env(k, v);
    }
    launch.start_configured(agent_config(hcl_body)).await
}

/// A task running `sleep` in `image`, with extra task config entries.
fn task(
    guard: &TestContainers,
    dirs: &TaskDirs,
    name: &str,
    image: &str,
    mut extra: Vec<(&str, rmpv::Value)>,
) -> pb::TaskConfig {
    extra.push(("image", rmpv::Value::from(image)));
    task_config(guard, dirs, name, "sleep 30", extra)
}

/// Starts `t`, allowing the pull [`PULL`]; panics with the registry's log when it fails.
async fn start_ok(
    driver: &mut DriverClient<Channel>,
    t: pb::TaskConfig,
    registry: &Registry,
) -> pb::StartTaskResponse {
    let id = t.id.clone();
    let started = tokio::time::timeout(PULL, start(driver, t))
        .await
        .expect("StartTask hung");
    started.unwrap_or_else(|e| panic!("StartTask {id}: {e:?}; registry log:\n{}", registry.log()))
}

/// A task started with [`start_task`].
struct Started {
    id: String,
    handle: Option<pb::TaskHandle>,
    /// Must outlive the task.
    _dirs: TaskDirs,
}

/// Creates the directories of the `sleep` task `name` on `image` and starts it with
/// [`start_ok`].
async fn start_task(
    driver: &mut DriverClient<Channel>,
    registry: &Registry,
    guard: &TestContainers,
    name: &str,
    image: &str,
) -> Started {
    let dirs = TaskDirs::create(name);
    let t = task(guard, &dirs, name, image, vec![]);
    let id = t.id.clone();
    let started = start_ok(driver, t, registry).await;
    Started {
        id,
        handle: started.handle,
        _dirs: dirs,
    }
}

/// The task `auth` block as cty sends it.
fn auth_block(username: &str, password: &str) -> rmpv::Value {
    rmpv::Value::Map(vec![
        (rmpv::Value::from("username"), rmpv::Value::from(username)),
        (rmpv::Value::from("password"), rmpv::Value::from(password)),
        (rmpv::Value::from("email"), rmpv::Value::Nil),
        (rmpv::Value::from("server_address"), rmpv::Value::Nil),
    ])
}

/// How long a pull from the loopback registry may take on a loaded machine.
const PULL: Duration = Duration::from_secs(120);
