//! Image pulls through the real plugin from a real registry on loopback: `:latest` for an
//! untagged name, task credentials, the agent's credential helper and Docker config file,
//! `auth_soft_fail`, pull progress events, `image_pull_timeout`, and image garbage
//! collection. The registry harness is `support::registry`.

mod gc;
mod infra;
mod pull;

use std::time::Duration;

use nomad_plugin::proto::base::{NomadConfig, NomadDriverConfig, SetConfigRequest};
use nomad_plugin::proto::drivers as pb;

use crate::harness::{Launch, Plugin, TaskDirs, agent_config};
use crate::lifecycle::task_config;
use crate::support::TestContainers;

/// A plugin launched with `env` whose long-lived instance got this agent config body.
async fn plugin_with(hcl_body: &str, env: &[(&str, &str)]) -> Plugin {
    let mut launch = Launch::nomad();
    for (k, v) in env {
        launch = launch.env(k, v);
    }
    let plugin = launch.start().await;
    plugin
        .base()
        .set_config(SetConfigRequest {
            msgpack_config: agent_config(hcl_body),
            nomad_config: Some(NomadConfig {
                driver: Some(NomadDriverConfig {
                    client_max_port: 14512,
                    client_min_port: 14000,
                    topology: None,
                }),
            }),
            plugin_api_version: "v0.1.0".to_owned(),
        })
        .await
        .expect("SetConfig");
    plugin
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
