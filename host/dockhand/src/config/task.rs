//! The validated job-side (task) configuration.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::defaults as d;
use super::plugin::Problems;
use super::raw::{RawMount, RawTaskConfig};
use super::{ConfigError, ConfigErrors};

/// Registry credentials for one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskAuth {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Registry address.
    pub server_address: Option<String>,
}

/// A host device exposed to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path on the host.
    pub host_path: String,
    /// Path in the container (defaults to `host_path`).
    pub container_path: String,
    /// Cgroup permissions, a subset of `rwm` (default `rwm`).
    pub cgroup_permissions: String,
}

/// What a `mount` entry mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host path.
    Bind {
        /// Bind propagation (`rprivate`, `rshared`, …).
        propagation: Option<String>,
    },
    /// A named Docker volume.
    Volume {
        /// Do not copy image content into a new volume.
        no_copy: bool,
        /// Volume labels.
        labels: BTreeMap<String, String>,
        /// Volume driver name.
        driver: Option<String>,
        /// Volume driver options.
        driver_options: BTreeMap<String, String>,
    },
    /// A tmpfs.
    Tmpfs {
        /// Size in bytes (0 = unlimited).
        size_bytes: i64,
        /// File mode.
        mode: Option<u32>,
    },
}

/// One `mount` / `mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Kind and its options.
    pub kind: MountKind,
    /// Path in the container.
    pub target: String,
    /// Source (host path or volume name; empty for tmpfs).
    pub source: String,
    /// Read-only.
    pub readonly: bool,
}

/// A resource limit from `ulimit`, parsed once (by [`Ulimit::parse`]) and handed to Docker
/// as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit (defaults to the soft one).
    pub hard: i64,
}

impl Ulimit {
    /// Parses a `soft[:hard]` value: one or two integers (white space around each is
    /// allowed), the hard limit defaulting to the soft one. Empty values, a third part and
    /// anything that is not an `i64` are refused, as Nomad refuses them (Nomad does not trim).
    pub fn parse(value: &str) -> Option<Ulimit> {
        let mut parts = value.split(':');
        let soft = parts.next()?.trim().parse().ok()?;
        let hard = match parts.next() {
            Some(h) => h.trim().parse().ok()?,
            None => soft,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Ulimit { soft, hard })
    }
}

/// Task `logging { … }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLogging {
    /// Log driver (`type`, or its alias `driver`); `None` uses the plugin default.
    pub driver: Option<String>,
    /// Driver options.
    pub config: BTreeMap<String, String>,
}

/// The validated task configuration. Each field is the HCL key of the same name.
///
/// The second and last shape of a task's `config { … }` (after [`RawTaskConfig`]): the task
/// engine carries it in its `TaskSpec` and builds the Docker create body from it directly,
/// so a value parsed here (durations, addresses, [`Ulimit`]) is never parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConfig {
    pub image: String,
    pub advertise_ipv6_address: bool,
    pub args: Vec<String>,
    pub auth: Option<TaskAuth>,
    pub auth_soft_fail: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub cgroupns: Option<String>,
    pub command: Option<String>,
    pub cpu_cfs_period: u32,
    pub cpu_hard_limit: bool,
    pub devices: Vec<Device>,
    pub dns_search_domains: Vec<String>,
    pub dns_options: Vec<String>,
    pub dns_servers: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub extra_hosts: Vec<String>,
    pub force_pull: bool,
    pub group_add: Vec<String>,
    pub healthchecks_disabled: bool,
    pub hostname: Option<String>,
    /// `None`: use the plugin-wide `image_pull_timeout`.
    pub image_pull_timeout: Option<Duration>,
    pub init: bool,
    pub interactive: bool,
    pub ipc_mode: Option<String>,
    pub ipv4_address: Option<Ipv4Addr>,
    pub ipv6_address: Option<Ipv6Addr>,
    pub labels: BTreeMap<String, String>,
    pub load: Option<String>,
    pub logging: TaskLogging,
    pub mac_address: Option<String>,
    pub memory_hard_limit: Option<i64>,
    /// `mount` blocks followed by legacy `mounts` entries.
    pub mounts: Vec<Mount>,
    pub network_aliases: Vec<String>,
    pub network_mode: Option<String>,
    pub oom_score_adj: Option<i64>,
    pub pid_mode: Option<String>,
    pub pids_limit: Option<i64>,
    pub port_map: BTreeMap<String, u16>,
    pub ports: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub runtime: Option<String>,
    pub security_opt: Vec<String>,
    pub shm_size: Option<i64>,
    pub storage_opt: BTreeMap<String, String>,
    pub sysctl: BTreeMap<String, String>,
    pub tty: bool,
    pub ulimit: BTreeMap<String, Ulimit>,
    pub userns_mode: Option<String>,
    pub uts_mode: Option<String>,
    pub volume_driver: Option<String>,
    pub volumes: Vec<String>,
    pub work_dir: Option<String>,
    /// Accepted-and-ignored keys that were set (e.g. `cpuset_cpus`), as warnings.
    pub warnings: Vec<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn mount(p: &mut Problems, field: &str, raw: RawMount) -> Option<Mount> {
    let source = raw.source.unwrap_or_default();
    let volume = raw.volume_options.unwrap_or_default();
    let driver = volume.driver_config.unwrap_or_default();
    let tmpfs = raw.tmpfs_options.unwrap_or_default();
    let kind = match raw.r#type.as_deref().unwrap_or(d::TASK_MOUNT_TYPE) {
        "" | "volume" => MountKind::Volume {
            no_copy: volume.no_copy.unwrap_or(false),
            labels: volume.labels.unwrap_or_default(),
            driver: non_empty(driver.name),
            driver_options: driver.options.unwrap_or_default(),
        },
        "bind" => MountKind::Bind {
            propagation: non_empty(raw.bind_options.and_then(|b| b.propagation)),
        },
        "tmpfs" => {
            if !source.is_empty() {
                p.add(
                    &format!("{field}.source"),
                    "invalid source, must be \"\" for tmpfs",
                );
            }
            let mode = tmpfs.mode.and_then(|m| match u32::try_from(m) {
                Ok(m) => Some(m),
                Err(_) => {
                    p.add(
                        &format!("{field}.tmpfs_options.mode"),
                        format!("invalid file mode {m}"),
                    );
                    None
                }
            });
            let size_bytes = tmpfs.size.unwrap_or(0);
            if size_bytes < 0 {
                p.add(
                    &format!("{field}.tmpfs_options.size"),
                    "must not be negative",
                );
            }
            MountKind::Tmpfs { size_bytes, mode }
        }
        other => {
            p.add(
                &format!("{field}.type"),
                format!("invalid mount type, must be \"bind\", \"volume\", \"tmpfs\": {other:?}"),
            );
            return None;
        }
    };
    let target = raw.target.unwrap_or_default();
    if target.is_empty() {
        p.add(&format!("{field}.target"), "mount target must be set");
    }
    Some(Mount {
        kind,
        target,
        source,
        readonly: raw.readonly.unwrap_or(false),
    })
}

impl Default for TaskConfig {
    /// Every key absent: the schema's defaults, and an empty `image` (which
    /// [`TaskConfig::try_from`] refuses). For building a configuration field by field.
    fn default() -> TaskConfig {
        TaskConfig::build(RawTaskConfig::default()).0
    }
}

impl TryFrom<RawTaskConfig> for TaskConfig {
    type Error = ConfigErrors;

    fn try_from(raw: RawTaskConfig) -> Result<TaskConfig, ConfigErrors> {
        let (config, problems) = TaskConfig::build(raw);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

impl TaskConfig {
    /// Convert leniently: every problem is returned, alongside a configuration without the
    /// invalid values (so that [`TaskConfig::validate_against`] can still report its own).
    pub fn build(raw: RawTaskConfig) -> (TaskConfig, Vec<ConfigError>) {
        let mut p = Problems::default();
        let mut warnings = Vec::new();

        let image = raw.image.unwrap_or_default();
        let image = image.strip_prefix("https://").unwrap_or(&image).to_owned();
        if image.is_empty() {
            p.add("image", "image name required for docker driver");
        }
        if let Some(cmd) = &raw.command {
            if cmd.is_empty() {
                p.add("command", format!("command empty: {cmd:?}"));
            } else if cmd.trim() != cmd {
                p.add(
                    "command",
                    format!("command contains extra white space: {cmd:?}"),
                );
            }
        }
        let cpu_cfs_period = raw.cpu_cfs_period.unwrap_or(d::TASK_CPU_CFS_PERIOD);
        let cpu_cfs_period = match u32::try_from(cpu_cfs_period) {
            Ok(v) if v <= 1_000_000 => v,
            _ => {
                p.add(
                    "cpu_cfs_period",
                    format!(
                        "invalid value for cpu_cfs_period: {cpu_cfs_period} (must be 0 to 1000000)"
                    ),
                );
                0
            }
        };
        let mut devices = Vec::new();
        for (i, dev) in raw.devices.into_iter().enumerate() {
            let field = format!("devices[{i}]");
            let Some(host_path) = non_empty(dev.host_path) else {
                p.add(
                    &format!("{field}.host_path"),
                    "host path must be set in configuration for devices",
                );
                continue;
            };
            let perms = non_empty(dev.cgroup_permissions).unwrap_or_else(|| "rwm".to_owned());
            if !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                p.add(
                    &format!("{field}.cgroup_permissions"),
                    format!("invalid cgroup permission string: {perms:?}"),
                );
            }
            devices.push(Device {
                container_path: non_empty(dev.container_path).unwrap_or_else(|| host_path.clone()),
                host_path,
                cgroup_permissions: perms,
            });
        }
        let mut mounts = Vec::new();
        for (i, m) in raw.mount.into_iter().enumerate() {
            mounts.extend(mount(&mut p, &format!("mount[{i}]"), m));
        }
        for (i, m) in raw.mounts.into_iter().enumerate() {
            mounts.extend(mount(&mut p, &format!("mounts[{i}]"), m));
        }
        let mut ulimit = BTreeMap::new();
        for (name, value) in raw.ulimit.unwrap_or_default() {
            match Ulimit::parse(&value) {
                Some(u) => {
                    ulimit.insert(name, u);
                }
                None => p.add(
                    &format!("ulimit.{name}"),
                    format!("Malformed ulimit specification {name}: {value:?}, cannot be empty and must be soft[:hard] integers"),
                ),
            }
        }
        let mut port_map = BTreeMap::new();
        for (label, port) in raw.port_map.unwrap_or_default() {
            match u16::try_from(port) {
                Ok(p16) if p16 > 0 => {
                    port_map.insert(label, p16);
                }
                _ => p.add(
                    &format!("port_map.{label}"),
                    format!("container port must be between 1 and 65535, found {port}"),
                ),
            }
        }
        let image_pull_timeout = raw
            .image_pull_timeout
            .filter(|s| !s.is_empty())
            .map(|s| p.duration("image_pull_timeout", Some(&s), d::IMAGE_PULL_TIMEOUT));
        let ipv4_address = non_empty(raw.ipv4_address).and_then(|s| match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                p.add(
                    "ipv4_address",
                    format!("failed to parse ipv4_address {s:?}"),
                );
                None
            }
        });
        let ipv6_address = non_empty(raw.ipv6_address).and_then(|s| match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                p.add(
                    "ipv6_address",
                    format!("failed to parse ipv6_address {s:?}"),
                );
                None
            }
        });
        if let Some(iso) = non_empty(raw.isolation)
            && !cfg!(windows)
        {
            p.add(
                "isolation",
                format!("isolation {iso:?} is only supported on Windows"),
            );
        }
        if let Some(mode) = raw.cgroupns.as_deref().filter(|m| !m.is_empty())
            && mode != "host"
            && mode != "private"
        {
            p.add(
                "cgroupns",
                format!("invalid value {mode:?} (expected \"host\" or \"private\")"),
            );
        }
        let volumes = raw.volumes.unwrap_or_default();
        for (i, v) in volumes.iter().enumerate() {
            if v.split(':').count() < 2 {
                p.add(
                    &format!("volumes[{i}]"),
                    format!("invalid docker volume: {v:?}"),
                );
            }
        }
        for (field, value) in [
            ("shm_size", raw.shm_size),
            ("memory_hard_limit", raw.memory_hard_limit),
        ] {
            if value.is_some_and(|v| v < 0) {
                p.add(field, "must not be negative");
            }
        }
        if non_empty(raw.cpuset_cpus).is_some() {
            warnings.push("cpuset_cpus is no longer supported; the value is ignored".to_owned());
        }
        if raw.container_exists_attempts.is_some() {
            warnings.push(
                "container_exists_attempts is ignored in task config; only the plugin value is used"
                    .to_owned(),
            );
        }
        if raw.auth.as_ref().is_some_and(|a| a.email.is_some()) {
            warnings.push("auth.email is accepted but ignored".to_owned());
        }
        let logging = raw.logging.unwrap_or_default();
        let config = TaskConfig {
            image,
            advertise_ipv6_address: raw.advertise_ipv6_address.unwrap_or(false),
            args: raw.args.unwrap_or_default(),
            auth: raw.auth.map(|a| TaskAuth {
                username: a.username,
                password: a.password,
                server_address: a.server_address,
            }),
            auth_soft_fail: raw.auth_soft_fail.unwrap_or(false),
            cap_add: raw.cap_add.unwrap_or_default(),
            cap_drop: raw.cap_drop.unwrap_or_default(),
            cgroupns: non_empty(raw.cgroupns),
            command: raw.command,
            cpu_cfs_period,
            cpu_hard_limit: raw.cpu_hard_limit.unwrap_or(false),
            devices,
            dns_search_domains: raw.dns_search_domains.unwrap_or_default(),
            dns_options: raw.dns_options.unwrap_or_default(),
            dns_servers: raw.dns_servers.unwrap_or_default(),
            entrypoint: raw.entrypoint,
            extra_hosts: raw.extra_hosts.unwrap_or_default(),
            force_pull: raw.force_pull.unwrap_or(false),
            group_add: raw.group_add.unwrap_or_default(),
            healthchecks_disabled: raw.healthchecks.and_then(|h| h.disable).unwrap_or(false),
            hostname: non_empty(raw.hostname),
            image_pull_timeout,
            init: raw.init.unwrap_or(false),
            interactive: raw.interactive.unwrap_or(false),
            ipc_mode: non_empty(raw.ipc_mode),
            ipv4_address,
            ipv6_address,
            labels: raw.labels.unwrap_or_default(),
            load: non_empty(raw.load),
            logging: TaskLogging {
                driver: non_empty(logging.r#type).or(non_empty(logging.driver)),
                config: logging.config.unwrap_or_default(),
            },
            mac_address: non_empty(raw.mac_address),
            memory_hard_limit: raw.memory_hard_limit,
            mounts,
            network_aliases: raw.network_aliases.unwrap_or_default(),
            network_mode: non_empty(raw.network_mode),
            oom_score_adj: raw.oom_score_adj,
            pid_mode: non_empty(raw.pid_mode),
            pids_limit: raw.pids_limit,
            port_map,
            ports: raw.ports.unwrap_or_default(),
            privileged: raw.privileged.unwrap_or(false),
            readonly_rootfs: raw.readonly_rootfs.unwrap_or(false),
            runtime: non_empty(raw.runtime),
            security_opt: raw.security_opt.unwrap_or_default(),
            shm_size: raw.shm_size,
            storage_opt: raw.storage_opt.unwrap_or_default(),
            sysctl: raw.sysctl.unwrap_or_default(),
            tty: raw.tty.unwrap_or(false),
            ulimit,
            userns_mode: non_empty(raw.userns_mode),
            uts_mode: non_empty(raw.uts_mode),
            volume_driver: non_empty(raw.volume_driver),
            volumes,
            work_dir: non_empty(raw.work_dir),
            warnings,
        };
        (config, p.0)
    }
}
