//! What StartTask needs, as plain Rust: the Nomad task identity and environment
//! ([`TaskSpec`]) plus the validated docker task options ([`DockerTaskOptions`]).
//!
//! Nothing here knows about protobuf or msgpack; the gRPC layer fills these from Nomad's
//! `TaskConfig` and the decoded task config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::docker::RegistryAuth;

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
    /// The group network's hosts entry (Nomad's `hostsConfig`), when the task joins the
    /// group network without a `network_mode` of its own: the task then gets the hosts
    /// file Nomad writes for the allocation, `extra_hosts` included, instead of Docker's.
    pub group_hosts: Option<HostsSpec>,
    /// The docker task options.
    pub docker: DockerTaskOptions,
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

/// A device mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Host device path.
    pub host_path: String,
    /// Path in the container (defaults to `host_path`).
    pub container_path: Option<String>,
    /// Cgroup permissions (`rwm` by default).
    pub cgroup_permissions: Option<String>,
}

/// Kind of a `mount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MountKind {
    /// A named volume.
    #[default]
    Volume,
    /// A host path.
    Bind,
    /// A tmpfs.
    Tmpfs,
}

/// A `mount` block, already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSpec {
    /// Kind.
    pub kind: MountKind,
    /// Source (volume name or absolute host path; empty for tmpfs).
    pub source: String,
    /// Target path in the container.
    pub target: String,
    /// Read-only.
    pub readonly: bool,
    /// tmpfs size in bytes.
    pub tmpfs_size: Option<i64>,
    /// tmpfs file mode (`tmpfs_options.mode`).
    pub tmpfs_mode: Option<u32>,
    /// Bind propagation (`bind_options.propagation`).
    pub propagation: Option<String>,
    /// Volume: do not copy image content (`volume_options.no_copy`).
    pub volume_no_copy: bool,
    /// Volume labels (`volume_options.labels`).
    pub volume_labels: BTreeMap<String, String>,
    /// Volume driver (`volume_options.driver_config.name`).
    pub volume_driver: Option<String>,
    /// Volume driver options (`volume_options.driver_config.options`).
    pub volume_driver_options: BTreeMap<String, String>,
}

/// The docker log driver for the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDriver {
    /// Log driver type, e.g. `json-file`.
    pub kind: String,
    /// Log driver options.
    pub config: BTreeMap<String, String>,
}

/// The docker task options (the task's `config { … }` after validation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerTaskOptions {
    /// Image reference.
    pub image: String,
    /// Always pull, even when the image is present locally.
    pub force_pull: bool,
    /// Tarball (absolute path) to `docker load` instead of pulling.
    pub load: Option<PathBuf>,
    /// Registry credentials.
    pub auth: Option<RegistryAuth>,
    /// `auth_soft_fail`: pull anonymously when no credentials can be found.
    pub auth_soft_fail: bool,
    /// Overall pull deadline; `None` uses the engine default.
    pub image_pull_timeout: Option<Duration>,
    /// `command`.
    pub command: Option<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `work_dir`.
    pub work_dir: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `tty`.
    pub tty: bool,
    /// `interactive` (OpenStdin).
    pub interactive: bool,
    /// `init`.
    pub init: bool,
    /// User `labels` (Nomad's labels are written after them and win).
    pub labels: BTreeMap<String, String>,
    /// Legacy `port_map`: port label → container port.
    pub port_map: BTreeMap<String, u16>,
    /// Group `ports` to publish, by label.
    pub ports: Vec<String>,
    /// `network_mode`; `None` is Docker's default.
    pub network_mode: Option<String>,
    /// `dns_servers`.
    pub dns_servers: Vec<String>,
    /// `dns_search_domains`.
    pub dns_search_domains: Vec<String>,
    /// `dns_options`.
    pub dns_options: Vec<String>,
    /// `extra_hosts` (`host:ip`).
    pub extra_hosts: Vec<String>,
    /// `ulimit`: name → `soft[:hard]`.
    pub ulimit: BTreeMap<String, String>,
    /// `sysctl`.
    pub sysctl: BTreeMap<String, String>,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `privileged` (already checked against `allow_privileged`).
    pub privileged: bool,
    /// `runtime`.
    pub runtime: Option<String>,
    /// `devices`.
    pub devices: Vec<DeviceSpec>,
    /// `mount` blocks.
    pub mounts: Vec<MountSpec>,
    /// `volumes` (`src:dst[:mode]`, sources already resolved).
    pub volumes: Vec<String>,
    /// `pids_limit` (task or plugin default); `None` = unlimited.
    pub pids_limit: Option<i64>,
    /// `memory_hard_limit` in MB.
    pub memory_hard_limit_mb: Option<i64>,
    /// `shm_size` in bytes.
    pub shm_size: Option<i64>,
    /// `readonly_rootfs`.
    pub readonly_rootfs: bool,
    /// `security_opt`.
    pub security_opt: Vec<String>,
    /// `ipc_mode`.
    pub ipc_mode: Option<String>,
    /// `pid_mode`.
    pub pid_mode: Option<String>,
    /// `uts_mode`.
    pub uts_mode: Option<String>,
    /// `userns_mode`.
    pub userns_mode: Option<String>,
    /// `oom_score_adj`.
    pub oom_score_adj: Option<i64>,
    /// `group_add`.
    pub group_add: Vec<String>,
    /// `healthchecks { disable = true }`.
    pub healthcheck_disable: bool,
    /// `logging` (task or plugin default).
    pub logging: Option<LogDriver>,
    /// `storage_opt`.
    pub storage_opt: BTreeMap<String, String>,
    /// `cpu_hard_limit`.
    pub cpu_hard_limit: bool,
    /// `cpu_cfs_period` (0: Nomad's period).
    pub cpu_cfs_period: i64,
    /// `cgroupns` (`host` or `private`).
    pub cgroupns: Option<String>,
    /// `volume_driver`.
    pub volume_driver: Option<String>,
    /// `network_aliases`.
    pub network_aliases: Vec<String>,
    /// `ipv4_address`.
    pub ipv4_address: Option<String>,
    /// `ipv6_address`.
    pub ipv6_address: Option<String>,
    /// `mac_address`.
    pub mac_address: Option<String>,
    /// `advertise_ipv6_address`: report the global IPv6 address to Nomad.
    pub advertise_ipv6_address: bool,
}
