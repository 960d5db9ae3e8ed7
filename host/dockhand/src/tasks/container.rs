//! From a [`TaskSpec`] to Docker's container-create body: name, labels, binds, resources,
//! ports and the task options. Pure functions, so they are unit-tested without a daemon.

use std::collections::{BTreeMap, HashMap};

use crate::docker::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType, ResourcesUlimits,
};

use super::TaskError;
use super::host_options::{self, HOSTS_FILE, HOSTS_TARGET};
use super::ports::{port_bindings, port_map_env};
use super::resolv;
use super::spec::TaskSpec;
use crate::config::validate::glob_match;

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

/// What the container builder needs from the engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSettings {
    /// `extra_labels` glob patterns over `job_name, job_id, parent_job_id, task_group_name,
    /// task_name, namespace, node_name, node_id`.
    pub extra_labels: Vec<String>,
    /// `volumes.selinuxlabel`, appended to the Nomad binds.
    pub selinux_label: Option<String>,
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
    let hard_opt = spec.docker.memory_hard_limit_mb.unwrap_or(0);
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

fn ulimits(spec: &TaskSpec) -> Result<Vec<ResourcesUlimits>, TaskError> {
    let mut out = Vec::new();
    for (name, value) in &spec.docker.ulimit {
        let bad =
            || TaskError::InvalidSpec(format!("Malformed ulimit specification {name}: {value:?}"));
        let mut parts = value.splitn(2, ':');
        let soft: i64 = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        let hard: i64 = match parts.next() {
            Some(h) => h.parse().map_err(|_| bad())?,
            None => soft,
        };
        out.push(ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(soft),
            hard: Some(hard),
        });
    }
    Ok(out)
}

/// `dns_servers` that are IP addresses; others are logged and skipped, as in Nomad.
fn dns_servers(spec: &TaskSpec) -> Vec<String> {
    spec.docker
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

/// The create body for `spec` with image `image` and OCI runtime `runtime`.
pub fn container_config(
    spec: &TaskSpec,
    image: &str,
    runtime: Option<String>,
    settings: &ContainerSettings,
) -> Result<ContainerCreateBody, TaskError> {
    let d = &spec.docker;
    let mut labels: HashMap<String, String> = d.labels.clone().into_iter().collect();
    labels.extend(nomad_labels(spec, &settings.extra_labels));
    // After the user's and `extra_labels`' ones: these identify the creator and cannot be
    // overridden by a task.
    labels.extend(identity_labels(&spec.node_id));

    let mut cmd = Vec::new();
    if let Some(command) = &d.command {
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
    cmd.extend(d.args.iter().cloned());
    // Docker refuses a hostname in another container's namespace; say which field and what
    // to use instead before anything is created.
    if let (Some(hostname), Some(mode)) = (&d.hostname, &d.network_mode)
        && !hostname.is_empty()
        && mode.starts_with("container:")
    {
        return Err(TaskError::InvalidSpec(format!(
            "hostname {hostname:?} cannot be set for a task that joins another container's \
             network (network_mode {mode:?}); in a group network set the group's \
             network.hostname instead"
        )));
    }

    let (memory, reservation) = memory_limits(spec)?;
    let mut binds = nomad_binds(spec, settings.selinux_label.as_deref());
    binds.extend(d.volumes.iter().cloned());
    let mut mounts = d
        .mounts
        .iter()
        .map(host_options::docker_mount)
        .collect::<Result<Vec<Mount>, TaskError>>()?;
    // In a group network Nomad's hosts file (with `extra_hosts` in it) replaces Docker's,
    // which cannot take `extra_hosts` in another container's namespace.
    let mut extra_hosts = d.extra_hosts.clone();
    if spec.group_hosts.is_some() {
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
    } else if !extra_hosts.is_empty()
        && d.network_mode
            .as_deref()
            .is_some_and(|m| m.starts_with("container:"))
    {
        return Err(TaskError::InvalidSpec(format!(
            "extra_hosts cannot be given to Docker for a task that joins another container's \
             network (network_mode {:?}) and Nomad sent no group hosts configuration",
            d.network_mode.as_deref().unwrap_or_default()
        )));
    }
    let group_dns = spec.group_dns.is_some();
    if group_dns {
        let Some(task_dir) = spec.task_dir() else {
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
    let devices: Vec<DeviceMapping> = d
        .devices
        .iter()
        .map(|dev| DeviceMapping {
            path_on_host: Some(dev.host_path.clone()),
            path_in_container: Some(
                dev.container_path
                    .clone()
                    .unwrap_or_else(|| dev.host_path.clone()),
            ),
            cgroup_permissions: Some(
                dev.cgroup_permissions
                    .clone()
                    .unwrap_or_else(|| "rwm".to_owned()),
            ),
        })
        .collect();
    let ports = port_bindings(spec)?;
    let exposed: Vec<String> = ports.keys().cloned().collect();
    let cpu = if d.cpu_hard_limit {
        host_options::cpu_limits(spec, host_options::host_cpu_count())?
    } else {
        None
    };
    // `port_map` rewrites NOMAD_PORT_<label> to the container port, as Nomad does.
    let mut env = spec.env.clone();
    env.extend(port_map_env(&d.port_map));

    let host_config = HostConfig {
        memory,
        memory_reservation: reservation,
        memory_swap: memory,
        cpu_shares: (spec.resources.cpu_shares > 0).then(|| spec.resources.cpu_shares.max(2)),
        cpuset_cpus: spec.resources.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        cpu_period: cpu.map(|(period, _)| period),
        cpu_quota: cpu.map(|(_, quota)| quota),
        cgroupns_mode: host_options::cgroupns_mode(spec)?,
        volume_driver: d.volume_driver.clone(),
        pids_limit: d.pids_limit.filter(|p| *p > 0),
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        devices: non_empty(devices),
        ulimits: non_empty(ulimits(spec)?),
        sysctls: (!d.sysctl.is_empty()).then(|| d.sysctl.clone().into_iter().collect()),
        storage_opt: (!d.storage_opt.is_empty())
            .then(|| d.storage_opt.clone().into_iter().collect()),
        cap_add: non_empty(d.cap_add.clone()),
        cap_drop: non_empty(d.cap_drop.clone()),
        privileged: Some(d.privileged),
        runtime,
        network_mode: d.network_mode.clone(),
        port_bindings: (!ports.is_empty()).then_some(ports),
        // With a group DNS, the task's own resolv.conf (mounted above) replaces these.
        dns: non_empty(dns_servers(spec)).filter(|_| !group_dns),
        dns_search: non_empty(d.dns_search_domains.clone()).filter(|_| !group_dns),
        dns_options: non_empty(d.dns_options.clone()).filter(|_| !group_dns),
        extra_hosts: non_empty(extra_hosts),
        init: d.init.then_some(true),
        shm_size: d.shm_size,
        readonly_rootfs: Some(d.readonly_rootfs),
        security_opt: non_empty(d.security_opt.clone()),
        ipc_mode: d.ipc_mode.clone(),
        pid_mode: d.pid_mode.clone(),
        uts_mode: d.uts_mode.clone(),
        userns_mode: d.userns_mode.clone(),
        oom_score_adj: d.oom_score_adj,
        group_add: non_empty(d.group_add.clone()),
        log_config: d.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.kind.clone()),
            config: Some(l.config.clone().into_iter().collect()),
        }),
        ..HostConfig::default()
    };

    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        hostname: d.hostname.clone(),
        user: spec.user.clone().filter(|u| !u.is_empty()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: non_empty(cmd),
        entrypoint: d.entrypoint.clone(),
        working_dir: d.work_dir.clone(),
        tty: Some(d.tty),
        open_stdin: Some(d.interactive),
        labels: Some(labels),
        exposed_ports: non_empty(exposed),
        healthcheck: d
            .healthcheck_disable
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
            selinux_label: None,
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
        s.docker
            .labels
            .insert(LABEL_ALLOC_ID.into(), "forged".into());
        s.docker.labels.insert("team".into(), "a".into());
        let body = container_config(&s, "img", None, &settings(&[])).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_ALLOC_ID], s.alloc_id);
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key(LABEL_JOB_NAME));
    }

    #[test]
    fn node_and_driver_labels_are_set_whatever_extra_labels_say() {
        let mut s = spec();
        s.docker
            .labels
            .insert(LABEL_NODE_ID.into(), "forged".into());
        s.docker.labels.insert(LABEL_DRIVER.into(), "forged".into());
        for globs in [&[][..], &["*"][..], &["job_*"][..]] {
            let labels = container_config(&s, "img", None, &settings(globs))
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
        let body = container_config(&spec(), "img", None, &settings(&[])).unwrap();
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
        let hc = container_config(&s, "img", None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(hc.memory, Some(300 * MIB));
        assert_eq!(hc.memory_reservation, Some(100 * MIB));
        assert_eq!(hc.memory_swap, Some(300 * MIB));
        s.docker.memory_hard_limit_mb = Some(50);
        s.resources.memory_max_mb = 0;
        let err = container_config(&s, "img", None, &settings(&[])).unwrap_err();
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
        s.docker.ports.push("http".into());
        let hc = container_config(&s, "img", None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        let ports = hc.port_bindings.unwrap();
        assert_eq!(ports.len(), 2);
        let b = ports["8080/udp"].as_ref().unwrap();
        assert_eq!(b[0].host_port.as_deref(), Some("25000"));
        s.docker.ports.push("nope".into());
        let err = container_config(&s, "img", None, &settings(&[])).unwrap_err();
        assert!(err.to_string().contains("Port \"nope\" not found"), "{err}");
    }

    #[test]
    fn malformed_ulimit_is_rejected() {
        let mut s = spec();
        s.docker.ulimit.insert("nofile".into(), "".into());
        let err = container_config(&s, "img", None, &settings(&[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("Malformed ulimit specification nofile"),
            "{err}"
        );
        s.docker.ulimit.insert("nofile".into(), "1024:2048".into());
        let hc = container_config(&s, "img", None, &settings(&[]))
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(hc.ulimits.unwrap()[0].hard, Some(2048));
    }

    #[test]
    fn command_whitespace_is_rejected() {
        let mut s = spec();
        s.docker.command = Some(" sh".into());
        assert!(container_config(&s, "img", None, &settings(&[])).is_err());
        s.docker.command = Some("sh".into());
        s.docker.args = vec!["-c".into(), "true".into()];
        let body = container_config(&s, "img", None, &settings(&[])).unwrap();
        assert_eq!(body.cmd.unwrap(), vec!["sh", "-c", "true"]);
    }

    #[test]
    fn a_hostname_in_another_containers_network_is_refused_by_name() {
        let mut s = spec();
        s.docker.hostname = Some("web".into());
        s.docker.network_mode = Some("container:c0ffee".into());
        let err = container_config(&s, "img", None, &settings(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hostname \"web\" cannot be set"), "{err}");
        assert!(err.contains("network.hostname"), "{err}");
        // Fine in a network of its own, or without a hostname.
        s.docker.network_mode = Some("bridge".into());
        assert!(container_config(&s, "img", None, &settings(&[])).is_ok());
        s.docker.network_mode = Some("container:c0ffee".into());
        s.docker.hostname = None;
        assert!(container_config(&s, "img", None, &settings(&[])).is_ok());
    }
}
