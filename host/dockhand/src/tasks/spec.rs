//! What StartTask needs, as plain Rust: a small view of Nomad's task (identity,
//! environment, resources, directories, what Nomad itself mounts and networks) and the
//! validated task configuration ([`TaskConfig`]) as it is.
//!
//! The task configuration is not copied into a second options type: the create body reads
//! it directly (see `container`), with the agent-wide settings it needs
//! ([`ContainerSettings`](super::ContainerSettings)). Nothing here knows about protobuf or
//! msgpack; the gRPC layer fills the task view from Nomad's `TaskConfig`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{Device, Mount, TaskConfig};

/// Environment variable a device plugin sets when NVIDIA GPUs were assigned to the task.
pub const NVIDIA_VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// One task to start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSpec {
    /// Nomad task id (`<alloc_id>/<task>/<8 hex>`).
    pub id: String,
    /// Task name.
    pub name: String,
    /// Allocation id.
    pub alloc_id: String,
    /// Job name.
    pub job_name: String,
    /// Job id.
    pub job_id: String,
    /// Parent job id (Nomad never sends it to external plugins today).
    pub parent_job_id: String,
    /// Task group name.
    pub task_group_name: String,
    /// Namespace.
    pub namespace: String,
    /// Node id.
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// The task's `user`, becomes the container user.
    pub user: Option<String>,
    /// The complete task environment.
    pub env: BTreeMap<String, String>,
    /// The subset of the environment set by device plugins.
    pub device_env: BTreeMap<String, String>,
    /// Resources granted by Nomad.
    pub resources: TaskResources,
    /// Host path of the allocation directory; `None` runs without the Nomad binds (tests).
    pub alloc_dir: Option<PathBuf>,
    /// Where task stdout goes (a FIFO read by logmon, a file, or `/dev/null`).
    pub stdout_path: Option<PathBuf>,
    /// Where task stderr goes.
    pub stderr_path: Option<PathBuf>,
    /// The group's `network.dns`: when set, the task gets its own resolv.conf (see
    /// `tasks::resolv`) and the docker `dns_*` options are ignored, as in Nomad.
    pub group_dns: Option<DnsSpec>,
    /// The group network's sandbox container (its id), when the allocation has a group
    /// network: a task without a `network_mode` of its own joins it (see
    /// [`TaskSpec::network_mode`]).
    pub group_sandbox: Option<String>,
    /// The group network's hosts entry (Nomad's `hostsConfig`). Used only when the task
    /// joins the group network (see [`TaskSpec::joined_group_hosts`]).
    pub group_hosts: Option<HostsSpec>,
    /// Devices Nomad's device plugins assigned (after the task's own `devices`).
    pub devices: Vec<Device>,
    /// Nomad's own mounts (host volumes, CSI), as bind mounts after the task's `mount` blocks.
    pub mounts: Vec<Mount>,
    /// The validated task configuration (`config { … }`).
    pub config: TaskConfig,
}

/// The allocation's own hosts entry in a group network (`NetworkIsolationSpec.hostsConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsSpec {
    /// The allocation's hostname.
    pub hostname: String,
    /// The allocation's address.
    pub address: String,
}

/// A group network's DNS settings (`network { dns { … } }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSpec {
    /// Name servers.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Resolver options.
    pub options: Vec<String>,
}

impl TaskSpec {
    /// The container name: `<task name with / replaced by _>-<alloc id>`.
    pub fn container_name(&self) -> String {
        format!("{}-{}", self.name.replace('/', "_"), self.alloc_id)
    }

    /// The task directory, `<alloc_dir>/<task name>`.
    pub fn task_dir(&self) -> Option<PathBuf> {
        self.alloc_dir.as_ref().map(|d| d.join(&self.name))
    }

    /// The container's network mode: the task's `network_mode`, else the group network's
    /// sandbox (`container:<id>`), else Docker's default (`None`).
    pub fn network_mode(&self) -> Option<String> {
        self.config.network_mode.clone().or_else(|| {
            self.group_sandbox
                .as_ref()
                .map(|id| format!("container:{id}"))
        })
    }

    /// Whether the container joins another container's network namespace, where it can
    /// publish no ports and set no hostname or `extra_hosts` of its own.
    pub fn shares_netns(&self) -> bool {
        self.network_mode()
            .is_some_and(|m| m.starts_with("container:"))
    }

    /// The group network's hosts entry when the task joins the group network without a
    /// `network_mode` of its own: the task then gets the hosts file Nomad writes for the
    /// allocation, `extra_hosts` included, instead of Docker's.
    pub fn joined_group_hosts(&self) -> Option<&HostsSpec> {
        self.group_hosts
            .as_ref()
            .filter(|_| self.config.network_mode.is_none())
    }

    /// Whether a device plugin assigned NVIDIA GPUs.
    pub fn wants_nvidia_gpu(&self) -> bool {
        self.device_env.contains_key(NVIDIA_VISIBLE_DEVICES)
    }
}

/// Task resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskResources {
    /// `resources.memory` in MB (the reservation when a max is set).
    pub memory_mb: i64,
    /// `resources.memory_max` in MB (oversubscription); 0 = unset, -1 = no hard limit.
    pub memory_max_mb: i64,
    /// CPU shares (task MHz).
    pub cpu_shares: i64,
    /// Reserved cores, e.g. `"0,1"`.
    pub cpuset_cpus: Option<String>,
    /// Nomad's CFS period (`linux_resources.cpu_period`; Nomad sends 0).
    pub cpu_period: i64,
    /// The task's share of the node's compute (`linux_resources.PercentTicks`, 0–1).
    pub percent_ticks: f64,
    /// The allocation's (group) ports.
    pub ports: Vec<PortMapping>,
    /// Legacy task-level networks (`AllocatedTaskResources.networks`).
    pub networks: Vec<TaskNetwork>,
}

/// A legacy task-level network: its IP and the ports allocated on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskNetwork {
    /// Host IP the ports are published on.
    pub ip: String,
    /// Reserved (static) ports, label and host port.
    pub reserved_ports: Vec<(String, u16)>,
    /// Dynamic ports, label and host port.
    pub dynamic_ports: Vec<(String, u16)>,
}

/// One allocated port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMapping {
    /// Port label.
    pub label: String,
    /// Host port.
    pub value: u16,
    /// Container port (`to`); 0 means the same as `value`.
    pub to: u16,
    /// Host IP to bind.
    pub host_ip: String,
}
