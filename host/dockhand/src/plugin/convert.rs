//! Translations between Nomad's wire types and the engine's plain Rust types.
//!
//! * [`PluginConfig`] → [`DockerConnection`];
//! * a proto `TaskConfig` → the engine's view of the task ([`TaskSpec`]), which carries the
//!   validated task configuration ([`TaskConfig`]) as it is;
//! * engine results (exit results, usage samples, events, timestamps) → proto messages.
//!
//! Nothing here performs I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;

use crate::config::{Device, Mount, MountKind, PluginConfig, TaskConfig};
use crate::docker::{DockerConnection, TlsFiles};
use crate::tasks::spec::{DnsSpec, HostsSpec, PortMapping, TaskNetwork, TaskResources};
use crate::tasks::{DriverNetwork, ExitResult, TaskEvent, TaskSpec, TaskUsage};

/// Label Nomad puts on a group network's isolation spec naming the sandbox container.
pub const SANDBOX_CONTAINER_LABEL: &str = "docker_sandbox_container_id";

/// `0001-01-01T00:00:00Z`, what Go clients expect for "unset".
pub const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// The Docker connection for the plugin config: its `endpoint`, with TLS when the endpoint
/// is set and any `tls` file is (validation has made sure then that all three are; without
/// an endpoint the environment decides, as in Nomad).
pub fn docker_connection(config: &PluginConfig) -> DockerConnection {
    let tls = match (
        &config.endpoint,
        &config.tls.cert,
        &config.tls.key,
        &config.tls.ca,
    ) {
        (Some(_), cert, key, ca) if cert.is_some() || key.is_some() || ca.is_some() => {
            let path = |f: &Option<String>| PathBuf::from(f.clone().unwrap_or_default());
            Some(TlsFiles {
                cert: path(cert),
                key: path(key),
                ca: path(ca),
            })
        }
        _ => None,
    };
    DockerConnection {
        endpoint: config.endpoint.clone(),
        tls,
        ..DockerConnection::default()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The task directory Nomad creates for `task`: `<alloc_dir>/<name>`.
pub fn task_dir(task: &pb::TaskConfig) -> Option<PathBuf> {
    non_empty(&task.alloc_dir).map(|d| Path::new(&d).join(&task.name))
}

fn resources(task: &pb::TaskConfig) -> Result<TaskResources, String> {
    let mut out = TaskResources::default();
    let Some(r) = &task.resources else {
        return Ok(out);
    };
    if let Some(alloc) = &r.allocated_resources {
        if let Some(m) = &alloc.memory {
            out.memory_mb = m.memory_mb;
            out.memory_max_mb = m.memory_max_mb;
        }
        if let Some(c) = &alloc.cpu {
            out.cpu_shares = c.cpu_shares;
        }
    }
    if let Some(linux) = &r.linux_resources {
        if out.memory_mb == 0 && linux.memory_limit_bytes > 0 {
            out.memory_mb = linux.memory_limit_bytes / (1024 * 1024);
        }
        if out.cpu_shares == 0 {
            out.cpu_shares = linux.cpu_shares;
        }
        out.cpuset_cpus = non_empty(&linux.cpuset_cpus);
        out.cpu_period = linux.cpu_period;
        out.percent_ticks = linux.percent_ticks;
    }
    for p in &r.ports {
        let port = |field: &str, v: i32| {
            u16::try_from(v).map_err(|_| {
                format!(
                    "resources.ports[{}].{field}: {v} is not a port number",
                    p.label
                )
            })
        };
        out.ports.push(PortMapping {
            label: p.label.clone(),
            value: port("value", p.value)?,
            to: port("to", p.to)?,
            host_ip: p.host_ip.clone(),
        });
    }
    let networks = r
        .allocated_resources
        .as_ref()
        .map(|a| a.networks.as_slice())
        .unwrap_or_default();
    for (i, n) in networks.iter().enumerate() {
        let ports = |field: &str, list: &[pb::NetworkPort]| {
            list.iter()
                .map(|p| {
                    u16::try_from(p.value)
                        .map(|v| (p.label.clone(), v))
                        .map_err(|_| {
                            format!(
                                "resources.networks[{i}].{field}[{}]: {} is not a port number",
                                p.label, p.value
                            )
                        })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        out.networks.push(TaskNetwork {
            ip: n.ip.clone(),
            reserved_ports: ports("reserved_ports", &n.reserved_ports)?,
            dynamic_ports: ports("dynamic_ports", &n.dynamic_ports)?,
        });
    }
    Ok(out)
}

/// Builds the engine's [`TaskSpec`] from Nomad's `TaskConfig` and the decoded, validated docker
/// task configuration, which the spec carries as it is. Errors name the offending field.
pub fn task_spec(task: &pb::TaskConfig, config: TaskConfig) -> Result<TaskSpec, String> {
    // Nomad's order: a group `network.dns` wins over the driver's `dns_*` options.
    let group_dns = task.dns.as_ref().map(|dns| DnsSpec {
        servers: dns.servers.clone(),
        searches: dns.searches.clone(),
        options: dns.options.clone(),
    });
    let group = task
        .network_isolation_spec
        .as_ref()
        .filter(|iso| iso.mode == NetworkIsolationMode::Group as i32);
    let group_sandbox = group.and_then(|iso| iso.labels.get(SANDBOX_CONTAINER_LABEL).cloned());
    let group_hosts = group
        .and_then(|iso| iso.hosts_config.as_ref())
        .filter(|h| !h.address.is_empty() && !h.hostname.is_empty())
        .map(|h| HostsSpec {
            hostname: h.hostname.clone(),
            address: h.address.clone(),
        });
    let devices = task
        .devices
        .iter()
        .map(|d| Device {
            host_path: d.host_path.clone(),
            container_path: non_empty(&d.task_path).unwrap_or_else(|| d.host_path.clone()),
            cgroup_permissions: non_empty(&d.cgroup_permissions)
                .unwrap_or_else(|| "rwm".to_owned()),
        })
        .collect();
    let mounts = task
        .mounts
        .iter()
        .map(|m| Mount {
            kind: MountKind::Bind { propagation: None },
            source: m.host_path.clone(),
            target: m.task_path.clone(),
            readonly: m.readonly,
        })
        .collect();
    Ok(TaskSpec {
        id: task.id.clone(),
        name: task.name.clone(),
        alloc_id: task.alloc_id.clone(),
        job_name: task.job_name.clone(),
        job_id: task.job_id.clone(),
        parent_job_id: task.parent_job_id.clone(),
        task_group_name: task.task_group_name.clone(),
        namespace: task.namespace.clone(),
        node_id: task.node_id.clone(),
        node_name: task.node_name.clone(),
        user: non_empty(&task.user),
        env: sorted(&task.env),
        device_env: sorted(&task.device_env),
        resources: resources(task)?,
        alloc_dir: non_empty(&task.alloc_dir).map(PathBuf::from),
        stdout_path: non_empty(&task.stdout_path).map(PathBuf::from),
        stderr_path: non_empty(&task.stderr_path).map(PathBuf::from),
        group_dns,
        group_sandbox,
        group_hosts,
        devices,
        mounts,
        config,
    })
}

/// An exit result on the wire (exit codes outside `i32` saturate).
pub fn exit_result(r: &ExitResult) -> pb::ExitResult {
    pb::ExitResult {
        exit_code: i32::try_from(r.exit_code).unwrap_or(if r.exit_code < 0 {
            i32::MIN
        } else {
            i32::MAX
        }),
        signal: r.signal,
        oom_killed: r.oom_killed,
    }
}

/// The network override for a driver network.
pub fn network_override(n: &DriverNetwork) -> pb::NetworkOverride {
    pb::NetworkOverride {
        port_map: n
            .port_map
            .iter()
            .map(|(k, v)| (k.clone(), i32::from(*v)))
            .collect(),
        addr: n.ip.clone(),
        auto_advertise: n.auto_advertise,
    }
}

/// A wire timestamp.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => prost_types::Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(e) => {
            let d: Duration = e.duration();
            prost_types::Timestamp {
                seconds: -i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: 0,
            }
        }
    }
}

/// Go's zero time, Nomad's "unset".
pub fn zero_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: GO_ZERO_TIME_SECONDS,
        nanos: 0,
    }
}

/// Docker's RFC 3339 time, or Go's zero time when absent or unparsable.
pub fn docker_timestamp(text: Option<&str>) -> prost_types::Timestamp {
    text.and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    })
    .map_or_else(zero_timestamp, |t| prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    })
}

fn memory_field(name: &str) -> Option<pb::memory_usage::Fields> {
    use pb::memory_usage::Fields;
    Some(match name {
        "RSS" => Fields::Rss,
        "Cache" => Fields::Cache,
        "Swap" => Fields::Swap,
        "Usage" => Fields::Usage,
        "Max Usage" => Fields::MaxUsage,
        "Kernel Usage" => Fields::KernelUsage,
        "Kernel Max Usage" => Fields::KernelMaxUsage,
        _ => return None,
    })
}

fn cpu_field(name: &str) -> Option<pb::cpu_usage::Fields> {
    use pb::cpu_usage::Fields;
    Some(match name {
        "System Mode" => Fields::SystemMode,
        "User Mode" => Fields::UserMode,
        "Total Ticks" => Fields::TotalTicks,
        "Throttled Periods" => Fields::ThrottledPeriods,
        "Throttled Time" => Fields::ThrottledTime,
        "Percent" => Fields::Percent,
        _ => return None,
    })
}

/// A usage sample on the wire; `timestamp` and `agg_resource_usage` are always set.
pub fn task_stats(task_id: &str, u: &TaskUsage) -> pb::TaskStatsResponse {
    let memory = pb::MemoryUsage {
        rss: u.memory.rss,
        cache: u.memory.cache,
        max_usage: u.memory.max_usage,
        kernel_usage: 0,
        kernel_max_usage: 0,
        usage: u.memory.usage,
        swap: u.memory.swap,
        measured_fields: u
            .memory
            .measured
            .iter()
            .filter_map(|n| memory_field(n))
            .map(|f| f as i32)
            .collect(),
    };
    let cpu = pb::CpuUsage {
        system_mode: u.cpu.system_mode,
        user_mode: u.cpu.user_mode,
        total_ticks: u.cpu.total_ticks,
        throttled_periods: u.cpu.throttled_periods,
        throttled_time: u.cpu.throttled_time,
        percent: u.cpu.percent,
        measured_fields: u
            .cpu
            .measured
            .iter()
            .filter_map(|n| cpu_field(n))
            .map(|f| f as i32)
            .collect(),
    };
    pb::TaskStatsResponse {
        stats: Some(pb::TaskStats {
            id: task_id.to_owned(),
            timestamp: Some(timestamp(u.timestamp)),
            agg_resource_usage: Some(pb::TaskResourceUsage {
                cpu: Some(cpu),
                memory: Some(memory),
            }),
            resource_usage_by_pid: HashMap::new(),
        }),
    }
}

/// An engine event on the wire.
pub fn task_event(e: TaskEvent) -> pb::DriverTaskEvent {
    pb::DriverTaskEvent {
        task_id: e.task_id,
        alloc_id: e.alloc_id,
        task_name: e.task_name,
        timestamp: Some(timestamp(e.timestamp)),
        message: e.message,
        annotations: e.annotations.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::{ContainerCreateBody, HostConfig};
    use crate::tasks::{ContainerSettings, TaskError, container_config};

    /// The create body of `spec` under the agent config `plugin`.
    fn body(spec: &TaskSpec, plugin: &PluginConfig) -> Result<ContainerCreateBody, TaskError> {
        container_config(spec, None, &ContainerSettings::from_config(plugin))
    }

    fn host_config(spec: &TaskSpec, plugin: &PluginConfig) -> HostConfig {
        body(spec, plugin)
            .expect("body")
            .host_config
            .expect("host config")
    }

    /// `{image = "busybox"}` as go-cty MessagePack.
    fn busybox() -> TaskConfig {
        let mut bytes = vec![0x81, 0xa5];
        bytes.extend_from_slice(b"image");
        bytes.push(0xa7);
        bytes.extend_from_slice(b"busybox");
        TaskConfig::from_msgpack(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_times_parse_and_zero_is_go_zero() {
        let t = docker_timestamp(Some("2024-01-02T03:04:05.5Z"));
        assert_eq!(t.seconds, 1_704_164_645);
        assert_eq!(t.nanos, 500_000_000);
        assert_eq!(docker_timestamp(None).seconds, GO_ZERO_TIME_SECONDS);
        assert_eq!(
            docker_timestamp(Some("garbage")).seconds,
            GO_ZERO_TIME_SECONDS
        );
    }

    #[test]
    fn spec_maps_identity_dirs_and_resources() {
        let task = pb::TaskConfig {
            id: "a/web/1".to_owned(),
            name: "web".to_owned(),
            alloc_id: "a".to_owned(),
            alloc_dir: "/alloc-root".to_owned(),
            resources: Some(pb::Resources {
                allocated_resources: Some(pb::AllocatedTaskResources {
                    memory: Some(pb::AllocatedMemoryResources {
                        memory_mb: 64,
                        memory_max_mb: 128,
                    }),
                    cpu: Some(pb::AllocatedCpuResources { cpu_shares: 250 }),
                    networks: Vec::new(),
                }),
                linux_resources: None,
                ports: vec![pb::PortMapping {
                    label: "http".to_owned(),
                    value: 25000,
                    to: 80,
                    host_ip: "127.0.0.1".to_owned(),
                }],
            }),
            ..pb::TaskConfig::default()
        };
        let mut cfg = busybox();
        cfg.volumes = vec!["data:/data".to_owned()];
        let spec = task_spec(&task, cfg).expect("spec");
        assert_eq!(spec.task_dir(), Some(PathBuf::from("/alloc-root/web")));
        assert_eq!(spec.resources.memory_mb, 64);
        assert_eq!(spec.resources.memory_max_mb, 128);
        assert_eq!(spec.resources.cpu_shares, 250);
        assert_eq!(spec.resources.ports[0].to, 80);
        let binds = host_config(&spec, &PluginConfig::default()).binds;
        assert_eq!(
            binds.expect("binds").last().map(String::as_str),
            Some("/alloc-root/web/data:/data")
        );
    }

    #[test]
    fn group_network_tasks_join_the_sandbox_and_publish_nothing() {
        let task = pb::TaskConfig {
            network_isolation_spec: Some(pb::NetworkIsolationSpec {
                mode: NetworkIsolationMode::Group.into(),
                path: "/proc/7/ns/net".to_owned(),
                labels: [(SANDBOX_CONTAINER_LABEL.to_owned(), "c0ffee".to_owned())].into(),
                hosts_config: None,
            }),
            ..pb::TaskConfig::default()
        };
        let mut cfg = busybox();
        cfg.ports = vec!["http".to_owned()];
        let spec = task_spec(&task, cfg.clone()).expect("spec");
        let hc = host_config(&spec, &PluginConfig::default());
        assert_eq!(hc.network_mode.as_deref(), Some("container:c0ffee"));
        assert_eq!(hc.port_bindings, None);

        cfg.network_mode = Some("none".to_owned());
        let spec = task_spec(&task, cfg).expect("spec");
        let err = body(&spec, &PluginConfig::default()).expect_err("ports honoured");
        assert!(err.to_string().contains("Port \"http\" not found"), "{err}");
        let mut spec = spec;
        spec.resources.ports.push(PortMapping {
            label: "http".to_owned(),
            value: 25000,
            to: 80,
            host_ip: "127.0.0.1".to_owned(),
        });
        let hc = host_config(&spec, &PluginConfig::default());
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert!(hc.port_bindings.expect("bindings").contains_key("80/tcp"));
    }

    #[test]
    fn out_of_range_port_names_the_field() {
        let task = pb::TaskConfig {
            resources: Some(pb::Resources {
                ports: vec![pb::PortMapping {
                    label: "http".to_owned(),
                    value: 70000,
                    ..pb::PortMapping::default()
                }],
                ..pb::Resources::default()
            }),
            ..pb::TaskConfig::default()
        };
        let err = task_spec(&task, busybox()).expect_err("bad port");
        assert!(err.contains("resources.ports[http].value"), "{err}");
    }

    #[test]
    fn capabilities_and_selinux_labels_follow_the_agent_config() {
        let mut plugin = PluginConfig::default();
        let mut cfg = busybox();
        cfg.volumes = vec!["data:/data".to_owned(), "/abs:/abs:ro".to_owned()];
        let spec = task_spec(&pb::TaskConfig::default(), cfg.clone()).expect("spec");
        let hc = host_config(&spec, &plugin);
        assert_eq!(hc.cap_drop, Some(vec!["net_raw".to_owned()]));
        assert_eq!(hc.cap_add, None);
        plugin.volumes.selinux_label = Some("z".to_owned());
        cfg.cap_add = vec!["NET_ADMIN".to_owned()];
        let spec = task_spec(&pb::TaskConfig::default(), cfg.clone()).expect("spec");
        let err = body(&spec, &plugin).expect_err("cap").to_string();
        assert!(err.contains("cap_add: driver does not allow"), "{err}");
        cfg.cap_add.clear();
        let spec = task_spec(&pb::TaskConfig::default(), cfg).expect("spec");
        assert_eq!(
            host_config(&spec, &plugin).binds,
            Some(vec!["data:/data:z".to_owned(), "/abs:/abs:ro,z".to_owned()])
        );
    }
}
