//! From a [`TaskSpec`] to Docker's container-create body: name, labels, binds, resources,
//! ports and the task options, read from the validated [`TaskConfig`] the spec carries.
//! Adding a Docker option means adding it to the schema, the validated type (and its
//! conversion from the raw one) and here. Pure functions but for reading `seccomp=<file>`
//! profiles, so they are unit-tested without a daemon.

use std::collections::{BTreeMap, HashMap};

use crate::docker::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType, ResourcesUlimits,
};

use super::TaskError;
use super::host_options::{self, HOSTS_FILE, HOSTS_TARGET};
use super::options::{capabilities, in_task_dir, security_opts, user_volumes};
use super::ports::{port_bindings, port_map_env};
use super::resolv;
use super::spec::TaskSpec;
use crate::config::validate::glob_match;
use crate::config::{LoggingConfig, MountKind, PluginConfig, TaskConfig};

/// Label present on every task and pause container: the ownership marker.
pub const LABEL_ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
/// Job name label.
pub const LABEL_JOB_NAME: &str = "com.hashicorp.nomad.job_name";
/// Job id label.
pub const LABEL_JOB_ID: &str = "com.hashicorp.nomad.job_id";
/// Parent job id label (only when non-empty).
pub const LABEL_PARENT_JOB_ID: &str = "com.hashicorp.nomad.parent_job_id";
/// Task group label.
pub const LABEL_TASK_GROUP_NAME: &str = "com.hashicorp.nomad.task_group_name";
/// Task name label.
pub const LABEL_TASK_NAME: &str = "com.hashicorp.nomad.task_name";
/// Namespace label.
pub const LABEL_NAMESPACE: &str = "com.hashicorp.nomad.namespace";
/// Node name label.
pub const LABEL_NODE_NAME: &str = "com.hashicorp.nomad.node_name";
/// Node id label. dockhand sets it on every container it creates once it knows the node's
/// id, whatever `extra_labels` says: it is what keeps other clients sharing the daemon away.
pub const LABEL_NODE_ID: &str = "com.hashicorp.nomad.node_id";
/// dockhand's driver label: present on every container dockhand creates (tasks and
/// group-network sandboxes), so that its reconciler can tell them from the containers of Nomad's
/// builtin `docker` driver on the same daemon, which carry the same Nomad labels.
pub const LABEL_DRIVER: &str = "dockhand.driver";
/// The value of [`LABEL_DRIVER`]; only the label's presence matters.
pub const DRIVER_LABEL_VALUE: &str = "dockhand";

/// The labels that mark a container as dockhand's own: its driver label, and this node's id
/// when known (empty `node_id`: not known yet).
pub fn identity_labels(node_id: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(LABEL_DRIVER.to_owned(), DRIVER_LABEL_VALUE.to_owned())]);
    if !node_id.is_empty() {
        labels.insert(LABEL_NODE_ID.to_owned(), node_id.to_owned());
    }
    labels
}

/// What the container builder needs from the agent's plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSettings {
    /// `extra_labels` glob patterns over `job_name, job_id, parent_job_id, task_group_name,
    /// task_name, namespace, node_name, node_id`.
    pub extra_labels: Vec<String>,
    /// `volumes.selinuxlabel`, appended to the Nomad binds and the task's `volumes`.
    pub selinux_label: Option<String>,
    /// `allow_caps`: the capabilities outside it are dropped (Nomad's capability delta).
    pub allow_caps: Vec<String>,
    /// `pids_limit`: the limit of a task that sets none; `None` is unlimited.
    pub pids_limit: Option<i64>,
    /// `logging`: the log driver of a task that sets neither its type nor its config.
    pub logging: LoggingConfig,
}

impl ContainerSettings {
    /// The settings of the plugin config `config`.
    pub fn from_config(config: &PluginConfig) -> Self {
        Self {
            extra_labels: config.extra_labels.clone(),
            selinux_label: config.volumes.selinux_label.clone(),
            allow_caps: config.allow_caps.clone(),
            pids_limit: config.pids_limit,
            logging: config.logging.clone(),
        }
    }
}

impl Default for ContainerSettings {
    /// The settings of the default plugin config.
    fn default() -> Self {
        Self::from_config(&PluginConfig::default())
    }
}

/// Nomad's labels for `spec`: `alloc_id` always, the others when an `extra_labels` glob
/// matches their short name.
pub fn nomad_labels(spec: &TaskSpec, extra_label_globs: &[String]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_ALLOC_ID.to_owned(), spec.alloc_id.clone());
    let candidates = [
        ("job_name", LABEL_JOB_NAME, &spec.job_name),
        ("job_id", LABEL_JOB_ID, &spec.job_id),
        ("parent_job_id", LABEL_PARENT_JOB_ID, &spec.parent_job_id),
        (
            "task_group_name",
            LABEL_TASK_GROUP_NAME,
            &spec.task_group_name,
        ),
        ("task_name", LABEL_TASK_NAME, &spec.name),
        ("namespace", LABEL_NAMESPACE, &spec.namespace),
        ("node_name", LABEL_NODE_NAME, &spec.node_name),
        ("node_id", LABEL_NODE_ID, &spec.node_id),
    ];
    for (short, key, value) in candidates {
        if short == "parent_job_id" && value.is_empty() {
            continue;
        }
        if extra_label_globs.iter().any(|g| glob_match(g, short)) {
            labels.insert(key.to_owned(), value.clone());
        }
    }
    labels
}

const MIB: i64 = 1024 * 1024;

/// (hard limit, reservation) in bytes.
fn memory_limits(spec: &TaskSpec) -> Result<(Option<i64>, Option<i64>), TaskError> {
    let r = &spec.resources;
    let hard_opt = spec.config.memory_hard_limit.unwrap_or(0);
    if r.memory_max_mb == -1 {
        return Ok((None, (r.memory_mb > 0).then_some(r.memory_mb * MIB)));
    }
    if hard_opt > 0 || r.memory_max_mb > 0 {
        let hard = hard_opt.max(r.memory_max_mb);
        if r.memory_mb > hard {
            return Err(TaskError::InvalidSpec(format!(
                "task memory requirements exceed driver hard limit of {hard} MB"
            )));
        }
        return Ok((
            Some(hard * MIB),
            (r.memory_mb > 0).then_some(r.memory_mb * MIB),
        ));
    }
    Ok(((r.memory_mb > 0).then_some(r.memory_mb * MIB), None))
}

fn nomad_binds(spec: &TaskSpec, selinux: Option<&str>) -> Vec<String> {
    let (Some(alloc), Some(task)) = (spec.alloc_dir.as_ref(), spec.task_dir()) else {
        return Vec::new();
    };
    let suffix = |ro: bool| match (ro, selinux) {
        (false, None) => String::new(),
        (true, None) => ":ro".to_owned(),
        (false, Some(l)) => format!(":{l}"),
        (true, Some(l)) => format!(":ro,{l}"),
    };
    vec![
        format!("{}:/alloc{}", alloc.join("alloc").display(), suffix(false)),
        format!("{}:/local{}", task.join("local").display(), suffix(false)),
        format!(
            "{}:/secrets{}",
            task.join("secrets").display(),
            suffix(false)
        ),
        format!(
            "{}:/alloc/logs{}",
            alloc.join("alloc").join("logs").display(),
            suffix(true)
        ),
    ]
}

fn ulimits(config: &TaskConfig) -> Vec<ResourcesUlimits> {
    config
        .ulimit
        .iter()
        .map(|(name, u)| ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect()
}

/// `dns_servers` that are IP addresses; others are logged and skipped, as in Nomad.
fn dns_servers(config: &TaskConfig) -> Vec<String> {
    config
        .dns_servers
        .iter()
        .filter(|ip| {
            let valid = ip.parse::<std::net::IpAddr>().is_ok();
            if !valid {
                tracing::error!(ip = %ip, "invalid ip address for container dns server; skipped");
            }
            valid
        })
        .cloned()
        .collect()
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The bind and tmpfs/volume mounts: the task's `mount` blocks (relative bind sources in the
/// task directory), then Nomad's own mounts.
fn task_mounts(spec: &TaskSpec) -> Result<Vec<Mount>, TaskError> {
    let dir = spec.task_dir();
    let own = spec.config.mounts.iter().map(|m| {
        let mut m = m.clone();
        if matches!(m.kind, MountKind::Bind { .. }) {
            m.source = in_task_dir(dir.as_deref(), &m.source);
        }
        host_options::docker_mount(&m)
    });
    let nomad = spec.mounts.iter().map(host_options::docker_mount);
    own.chain(nomad).collect()
}

/// The log driver: the task's, else the agent's default; none when its type is empty.
fn log_config(config: &TaskConfig, settings: &ContainerSettings) -> Option<HostConfigLogConfig> {
    let logging = config.effective_logging(&settings.logging);
    (!logging.r#type.is_empty()).then(|| HostConfigLogConfig {
        typ: Some(logging.r#type),
        config: Some(logging.config.into_iter().collect()),
    })
}

/// The create body for `spec` with OCI runtime `runtime`.
pub fn container_config(
    spec: &TaskSpec,
    runtime: Option<String>,
    settings: &ContainerSettings,
) -> Result<ContainerCreateBody, TaskError> {
    let c = &spec.config;
    let mut labels: HashMap<String, String> = c.labels.clone().into_iter().collect();
    labels.extend(nomad_labels(spec, &settings.extra_labels));
    // After the user's and `extra_labels`' ones: these identify the creator and cannot be
    // overridden by a task.
    labels.extend(identity_labels(&spec.node_id));

    let mut cmd = Vec::new();
    if let Some(command) = &c.command {
        if command.is_empty() {
            return Err(TaskError::InvalidSpec(format!(
                "command empty: {command:?}"
            )));
        }
        if command.trim() != command {
            return Err(TaskError::InvalidSpec(format!(
                "command contains extra white space: {command:?}"
            )));
        }
        cmd.push(command.clone());
    }
    cmd.extend(c.args.iter().cloned());
    let network_mode = spec.network_mode();
    // Docker refuses a hostname in another container's namespace; say which field and what
    // to use instead before anything is created.
    if let (Some(hostname), Some(mode)) = (&c.hostname, &network_mode)
        && !hostname.is_empty()
        && mode.starts_with("container:")
    {
        return Err(TaskError::InvalidSpec(format!(
            "hostname {hostname:?} cannot be set for a task that joins another container's \
             network (network_mode {mode:?}); in a group network set the group's \
             network.hostname instead"
        )));
    }
    let (cap_add, cap_drop) =
        capabilities(c, &settings.allow_caps).map_err(TaskError::InvalidSpec)?;
    let security_opt = security_opts(&c.security_opt).map_err(TaskError::InvalidSpec)?;

    let (memory, reservation) = memory_limits(spec)?;
    let task_dir = spec.task_dir();
    let mut binds = nomad_binds(spec, settings.selinux_label.as_deref());
    binds.extend(user_volumes(
        c,
        task_dir.as_deref(),
        settings.selinux_label.as_deref(),
    ));
    let mut mounts = task_mounts(spec)?;
    // In a group network Nomad's hosts file (with `extra_hosts` in it) replaces Docker's,
    // which cannot take `extra_hosts` in another container's namespace.
    let mut extra_hosts = c.extra_hosts.clone();
    if spec.joined_group_hosts().is_some() {
        let Some(alloc_dir) = &spec.alloc_dir else {
            return Err(TaskError::InvalidSpec(
                "a group network hosts file needs the allocation directory".to_owned(),
            ));
        };
        extra_hosts.clear();
        mounts.push(Mount {
            target: Some(HOSTS_TARGET.to_owned()),
            source: Some(alloc_dir.join(HOSTS_FILE).display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::PRIVATE),
                ..MountBindOptions::default()
            }),
            ..Mount::default()
        });
    } else if !extra_hosts.is_empty() && spec.shares_netns() {
        return Err(TaskError::InvalidSpec(format!(
            "extra_hosts cannot be given to Docker for a task that joins another container's \
             network (network_mode {:?}) and Nomad sent no group hosts configuration",
            network_mode.as_deref().unwrap_or_default()
        )));
    }
    let group_dns = spec.group_dns.is_some();
    if group_dns {
        let Some(task_dir) = &task_dir else {
            return Err(TaskError::InvalidSpec(
                "a group network DNS needs the task directory for its resolv.conf".to_owned(),
            ));
        };
        mounts.push(Mount {
            target: Some(resolv::TARGET.to_owned()),
            source: Some(task_dir.join("resolv.conf").display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Mount::default()
        });
    }
    let devices: Vec<DeviceMapping> = c
        .devices
        .iter()
        .chain(&spec.devices)
        .map(|dev| DeviceMapping {
            path_on_host: Some(dev.host_path.clone()),
            path_in_container: Some(dev.container_path.clone()),
            cgroup_permissions: Some(dev.cgroup_permissions.clone()),
        })
        .collect();
    let ports = port_bindings(spec)?;
    let exposed: Vec<String> = ports.keys().cloned().collect();
    let cpu = if c.cpu_hard_limit {
        host_options::cpu_limits(spec, host_options::host_cpu_count())?
    } else {
        None
    };
    // `port_map` rewrites NOMAD_PORT_<label> to the container port, as Nomad does.
    let mut env = spec.env.clone();
    env.extend(port_map_env(&c.port_map));

    let host_config = HostConfig {
        memory,
        memory_reservation: reservation,
        memory_swap: memory,
        cpu_shares: (spec.resources.cpu_shares > 0).then(|| spec.resources.cpu_shares.max(2)),
        cpuset_cpus: spec.resources.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        cpu_period: cpu.map(|(period, _)| period),
        cpu_quota: cpu.map(|(_, quota)| quota),
        cgroupns_mode: host_options::cgroupns_mode(spec)?,
        volume_driver: c.volume_driver.clone(),
        pids_limit: c.pids_limit.or(settings.pids_limit).filter(|p| *p > 0),
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        devices: non_empty(devices),
        ulimits: non_empty(ulimits(c)),
        sysctls: (!c.sysctl.is_empty()).then(|| c.sysctl.clone().into_iter().collect()),
        storage_opt: (!c.storage_opt.is_empty())
            .then(|| c.storage_opt.clone().into_iter().collect()),
        cap_add: non_empty(cap_add),
        cap_drop: non_empty(cap_drop),
        privileged: Some(c.privileged),
        runtime,
        port_bindings: (!ports.is_empty()).then_some(ports),
        // With a group DNS, the task's own resolv.conf (mounted above) replaces these.
        dns: non_empty(dns_servers(c)).filter(|_| !group_dns),
        dns_search: non_empty(c.dns_search_domains.clone()).filter(|_| !group_dns),
        dns_options: non_empty(c.dns_options.clone()).filter(|_| !group_dns),
        extra_hosts: non_empty(extra_hosts),
        init: c.init.then_some(true),
        shm_size: c.shm_size.filter(|s| *s > 0),
        readonly_rootfs: Some(c.readonly_rootfs),
        security_opt: non_empty(security_opt),
        ipc_mode: c.ipc_mode.clone(),
        pid_mode: c.pid_mode.clone(),
        uts_mode: c.uts_mode.clone(),
        userns_mode: c.userns_mode.clone(),
        // The agent-level `oom_score_adj` is parsed and unused, as in Nomad.
        oom_score_adj: c.oom_score_adj,
        group_add: non_empty(c.group_add.clone()),
        log_config: log_config(c, settings),
        network_mode,
        ..HostConfig::default()
    };

    Ok(ContainerCreateBody {
        image: Some(c.image.clone()),
        hostname: c.hostname.clone(),
        user: spec.user.clone().filter(|u| !u.is_empty()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: non_empty(cmd),
        entrypoint: c.entrypoint.clone().filter(|e| !e.is_empty()),
        working_dir: c.work_dir.clone(),
        tty: Some(c.tty),
        open_stdin: Some(c.interactive),
        labels: Some(labels),
        exposed_ports: non_empty(exposed),
        healthcheck: c
            .healthchecks_disabled
            .then(|| crate::docker::models::HealthConfig {
                test: Some(vec!["NONE".to_owned()]),
                ..Default::default()
            }),
        host_config: Some(host_config),
        networking_config: host_options::networking_config(spec),
        ..ContainerCreateBody::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ulimit;
    use crate::tasks::spec::PortMapping;

    fn spec() -> TaskSpec {
        TaskSpec {
            id: "a/web/1".into(),
            name: "web/x".into(),
            alloc_id: "2f1c9d1e-aaaa-bbbb-cccc-000000000001".into(),
            job_name: "job".into(),
            job_id: "job-id".into(),
            task_group_name: "tg".into(),
            namespace: "default".into(),
            node_id: "node-1".into(),
            node_name: "n1".into(),
            alloc_dir: Some("/var/nomad/alloc/a1".into()),
            ..TaskSpec::default()
        }
    }

    fn settings(globs: &[&str]) -> ContainerSettings {
        ContainerSettings {
            extra_labels: globs.iter().map(|s| (*s).to_owned()).collect(),
            ..ContainerSettings::default()
        }
    }

    #[test]
    fn name_replaces_slashes() {
        assert_eq!(
            spec().container_name(),
            "web_x-2f1c9d1e-aaaa-bbbb-cccc-000000000001"
        );
    }

    #[test]
    fn alloc_id_label_always_wins_over_user_labels() {
        let mut s = spec();
        s.config
            .labels
            .insert(LABEL_ALLOC_ID.into(), "forged".into());
        s.config.labels.insert("team".into(), "a".into());
        let body = container_config(&s, None, &settings(&[])).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_ALLOC_ID], s.alloc_id);
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key(LABEL_JOB_NAME));
    }

    #[test]
    fn node_and_driver_labels_are_set_whatever_extra_labels_say() {
        let mut s = spec();
        s.config
            .labels
            .insert(LABEL_NODE_ID.into(), "forged".into());
        s.config.labels.insert(LABEL_DRIVER.into(), "forged".into());
        for globs in [&[][..], &["*"][..], &["job_*"][..]] {
            let labels = container_config(&s, None, &settings(globs))
                .unwrap()
                .labels
                .unwrap();
            assert_eq!(labels[LABEL_NODE_ID], "node-1", "{globs:?}");
            assert_eq!(labels[LABEL_DRIVER], DRIVER_LABEL_VALUE, "{globs:?}");
        }
        // A node not known (never the case for a task: Nomad names it) adds no empty label.
        assert_eq!(
            identity_labels(""),
            BTreeMap::from([(LABEL_DRIVER.to_owned(), DRIVER_LABEL_VALUE.to_owned())])
        );
    }

    #[test]
    fn extra_label_globs_select_identity_labels() {
        // `?` is no wildcard (Nomad matches with go-glob, `*` only).
        assert!(!nomad_labels(&spec(), &["node_?d".into()]).contains_key(LABEL_NODE_ID));
        let l = nomad_labels(&spec(), &["job_*".into(), "node_id".into()]);
        assert_eq!(l[LABEL_JOB_NAME], "job");
        assert_eq!(l[LABEL_JOB_ID], "job-id");
        assert_eq!(l[LABEL_NODE_ID], "node-1");
        assert!(!l.contains_key(LABEL_NODE_NAME));
        assert!(
            !l.contains_key(LABEL_PARENT_JOB_ID),
            "empty parent id is never written"
        );
        assert_eq!(nomad_labels(&spec(), &["*".into()]).len(), 8);
    }

    #[test]
    fn binds_cover_alloc_local_secrets_and_readonly_logs() {
        let body = container_config(&spec(), None, &settings(&[])).unwrap();
        let binds = body.host_config.unwrap().binds.unwrap();
        assert_eq!(
            binds,
            vec![
                "/var/nomad/alloc/a1/alloc:/alloc",
                "/var/nomad/alloc/a1/web/x/local:/local",
                "/var/nomad/alloc/a1/web/x/secrets:/secrets",
                "/var/nomad/alloc/a1/alloc/logs:/alloc/logs:ro",
            ]
        );
    }

    #[test]
    fn memory_max_makes_memory_a_reservation() {
        let mut s = spec();
        s.resources.memory_mb = 100;
        s.resources.memory_max_mb = 300;
        let hc = container_config(&s, None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(hc.memory, Some(300 * MIB));
        assert_eq!(hc.memory_reservation, Some(100 * MIB));
        assert_eq!(hc.memory_swap, Some(300 * MIB));
        s.config.memory_hard_limit = Some(50);
        s.resources.memory_max_mb = 0;
        let err = container_config(&s, None, &settings(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid task configuration: task memory requirements exceed driver hard limit of 50 MB"
        );
    }

    #[test]
    fn group_ports_publish_tcp_and_udp() {
        let mut s = spec();
        s.resources.ports.push(PortMapping {
            label: "http".into(),
            value: 25000,
            to: 8080,
            host_ip: "127.0.0.1".into(),
        });
        s.config.ports.push("http".into());
        let hc = container_config(&s, None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        let ports = hc.port_bindings.unwrap();
        assert_eq!(ports.len(), 2);
        let b = ports["8080/udp"].as_ref().unwrap();
        assert_eq!(b[0].host_port.as_deref(), Some("25000"));
        s.config.ports.push("nope".into());
        let err = container_config(&s, None, &settings(&[])).unwrap_err();
        assert!(err.to_string().contains("Port \"nope\" not found"), "{err}");
    }

    #[test]
    fn parsed_ulimits_reach_docker_as_they_are() {
        let mut s = spec();
        let hc = container_config(&s, None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(hc.ulimits, None);
        s.config.ulimit.insert(
            "nofile".into(),
            Ulimit {
                soft: 1024,
                hard: 2048,
            },
        );
        s.config
            .ulimit
            .insert("core".into(), Ulimit { soft: -1, hard: -1 });
        let hc = container_config(&s, None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        let limits: Vec<_> = hc
            .ulimits
            .unwrap()
            .into_iter()
            .map(|u| (u.name.unwrap(), u.soft.unwrap(), u.hard.unwrap()))
            .collect();
        assert_eq!(
            limits,
            vec![("core".into(), -1, -1), ("nofile".into(), 1024, 2048)]
        );
    }

    #[test]
    fn command_whitespace_is_rejected() {
        let mut s = spec();
        s.config.command = Some(" sh".into());
        assert!(container_config(&s, None, &settings(&[])).is_err());
        s.config.command = Some("sh".into());
        s.config.args = vec!["-c".into(), "true".into()];
        let body = container_config(&s, None, &settings(&[])).unwrap();
        assert_eq!(body.cmd.unwrap(), vec!["sh", "-c", "true"]);
    }

    #[test]
    fn a_hostname_in_another_containers_network_is_refused_by_name() {
        let mut s = spec();
        s.config.hostname = Some("web".into());
        s.config.network_mode = Some("container:c0ffee".into());
        let err = container_config(&s, None, &settings(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hostname \"web\" cannot be set"), "{err}");
        assert!(err.contains("network.hostname"), "{err}");
        // Fine in a network of its own, or without a hostname.
        s.config.network_mode = Some("bridge".into());
        assert!(container_config(&s, None, &settings(&[])).is_ok());
        s.config.network_mode = Some("container:c0ffee".into());
        s.config.hostname = None;
        assert!(container_config(&s, None, &settings(&[])).is_ok());
    }
}
