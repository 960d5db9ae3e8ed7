//! Wire-form configuration: what Nomad sent, field by field, before any validation.
//!
//! Each `Raw*` struct mirrors one object of the schema with every field optional (`nil` on the
//! wire means absent). Decoding only checks *types*; rules and defaults belong to the domain
//! types in [`super::plugin`] and [`super::task`]. Decoding collects every type error rather
//! than stopping at the first, so an operator sees all of them at once.

use std::collections::BTreeMap;

use nomad_plugin::cty::{CtyError, Object};

use super::ConfigError;

/// Collects decode errors while decoding continues.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) errors: Vec<ConfigError>,
}

impl Collector {
    fn take<T>(&mut self, r: Result<Option<T>, CtyError>) -> Option<T> {
        r.unwrap_or_else(|e| {
            self.errors.push(ConfigError::Decode(e));
            None
        })
    }

    fn list<T>(&mut self, r: Result<Vec<T>, CtyError>) -> Vec<T> {
        r.unwrap_or_else(|e| {
            self.errors.push(ConfigError::Decode(e));
            Vec::new()
        })
    }
}

type StrMap = BTreeMap<String, String>;

/// `auth { config, helper }` (plugin).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPluginAuth {
    pub config: Option<String>,
    pub helper: Option<String>,
}

/// `tls { cert, key, ca }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
}

/// `gc.dangling_containers { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawDangling {
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub period: Option<String>,
    pub creation_grace: Option<String>,
}

/// `gc { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawGc {
    pub image: Option<bool>,
    pub image_delay: Option<String>,
    pub container: Option<bool>,
    pub dangling_containers: Option<RawDangling>,
}

/// `volumes { enabled, selinuxlabel }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawVolumes {
    pub enabled: Option<bool>,
    pub selinuxlabel: Option<String>,
}

/// Plugin `logging { type, config }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPluginLogging {
    pub r#type: Option<String>,
    pub config: Option<StrMap>,
}

/// `allowed_modes { pid, ipc, userns, uts }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawAllowedModes {
    pub pid: Option<Vec<String>>,
    pub ipc: Option<Vec<String>>,
    pub userns: Option<Vec<String>>,
    pub uts: Option<Vec<String>>,
}

/// `ownership_policy { path, sha256 }` / `kill_policy { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPolicySource {
    pub path: Option<String>,
    pub sha256: Option<String>,
}

/// `dockhand.admin { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawAdmin {
    pub enabled: Option<bool>,
    pub socket: Option<String>,
    pub allowed_uids: Option<Vec<i64>>,
}

/// `dockhand { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawDockhand {
    pub mode: Option<String>,
    pub data_dir: Option<String>,
    pub ownership_policy: Option<RawPolicySource>,
    pub kill_policy: Option<RawPolicySource>,
    pub policy_memory_mib: Option<i64>,
    pub policy_deadline: Option<String>,
    pub max_actions_per_sweep: Option<i64>,
    pub docker_call_timeout: Option<String>,
    pub label_filter: Option<String>,
    pub daemon: Option<String>,
    pub admin: Option<RawAdmin>,
}

/// The whole plugin configuration as sent in `SetConfig`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPluginConfig {
    pub endpoint: Option<String>,
    pub auth: Option<RawPluginAuth>,
    pub tls: Option<RawTls>,
    pub gc: Option<RawGc>,
    pub volumes: Option<RawVolumes>,
    pub allow_privileged: Option<bool>,
    pub allow_caps: Option<Vec<String>>,
    pub nvidia_runtime: Option<String>,
    pub allow_runtimes: Option<Vec<String>>,
    pub infra_image: Option<String>,
    pub infra_image_pull_timeout: Option<String>,
    pub image_pull_timeout: Option<String>,
    pub pull_activity_timeout: Option<String>,
    pub container_exists_attempts: Option<i64>,
    pub oom_score_adj: Option<i64>,
    pub pids_limit: Option<i64>,
    pub disable_log_collection: Option<bool>,
    pub windows_allow_insecure_container_admin: Option<bool>,
    pub extra_labels: Option<Vec<String>>,
    pub logging: Option<RawPluginLogging>,
    pub allowed_modes: Option<RawAllowedModes>,
    pub dockhand: Option<RawDockhand>,
}

fn policy_source(c: &mut Collector, o: &Object<'_>, key: &str) -> Option<RawPolicySource> {
    let p = c.take(o.opt_object(key))?;
    Some(RawPolicySource {
        path: c.take(p.opt_string("path")),
        sha256: c.take(p.opt_string("sha256")),
    })
}

impl RawPluginConfig {
    /// Decode the root object, collecting every type error.
    pub(crate) fn decode(o: &Object<'_>, c: &mut Collector) -> RawPluginConfig {
        let auth = c.take(o.opt_object("auth")).map(|a| RawPluginAuth {
            config: c.take(a.opt_string("config")),
            helper: c.take(a.opt_string("helper")),
        });
        let tls = c.take(o.opt_object("tls")).map(|t| RawTls {
            cert: c.take(t.opt_string("cert")),
            key: c.take(t.opt_string("key")),
            ca: c.take(t.opt_string("ca")),
        });
        let gc = c.take(o.opt_object("gc")).map(|g| RawGc {
            image: c.take(g.opt_bool("image")),
            image_delay: c.take(g.opt_string("image_delay")),
            container: c.take(g.opt_bool("container")),
            dangling_containers: c.take(g.opt_object("dangling_containers")).map(|dc| {
                RawDangling {
                    enabled: c.take(dc.opt_bool("enabled")),
                    dry_run: c.take(dc.opt_bool("dry_run")),
                    period: c.take(dc.opt_string("period")),
                    creation_grace: c.take(dc.opt_string("creation_grace")),
                }
            }),
        });
        let volumes = c.take(o.opt_object("volumes")).map(|v| RawVolumes {
            enabled: c.take(v.opt_bool("enabled")),
            selinuxlabel: c.take(v.opt_string("selinuxlabel")),
        });
        let logging = c.take(o.opt_object("logging")).map(|l| RawPluginLogging {
            r#type: c.take(l.opt_string("type")),
            config: c.take(l.opt_string_map("config")),
        });
        let allowed_modes = c
            .take(o.opt_object("allowed_modes"))
            .map(|m| RawAllowedModes {
                pid: c.take(m.opt_string_list("pid")),
                ipc: c.take(m.opt_string_list("ipc")),
                userns: c.take(m.opt_string_list("userns")),
                uts: c.take(m.opt_string_list("uts")),
            });
        let dockhand = c.take(o.opt_object("dockhand")).map(|dh| RawDockhand {
            mode: c.take(dh.opt_string("mode")),
            data_dir: c.take(dh.opt_string("data_dir")),
            ownership_policy: policy_source(c, &dh, "ownership_policy"),
            kill_policy: policy_source(c, &dh, "kill_policy"),
            policy_memory_mib: c.take(dh.opt_i64("policy_memory_mib")),
            policy_deadline: c.take(dh.opt_string("policy_deadline")),
            max_actions_per_sweep: c.take(dh.opt_i64("max_actions_per_sweep")),
            docker_call_timeout: c.take(dh.opt_string("docker_call_timeout")),
            label_filter: c.take(dh.opt_string("label_filter")),
            daemon: c.take(dh.opt_string("daemon")),
            admin: c.take(dh.opt_object("admin")).map(|a| RawAdmin {
                enabled: c.take(a.opt_bool("enabled")),
                socket: c.take(a.opt_string("socket")),
                allowed_uids: c.take(
                    a.get("allowed_uids")
                        .map(|l| {
                            l.list()?
                                .iter()
                                .map(|u| u.i64())
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .transpose(),
                ),
            }),
        });
        RawPluginConfig {
            endpoint: c.take(o.opt_string("endpoint")),
            auth,
            tls,
            gc,
            volumes,
            allow_privileged: c.take(o.opt_bool("allow_privileged")),
            allow_caps: c.take(o.opt_string_list("allow_caps")),
            nvidia_runtime: c.take(o.opt_string("nvidia_runtime")),
            allow_runtimes: c.take(o.opt_string_list("allow_runtimes")),
            infra_image: c.take(o.opt_string("infra_image")),
            infra_image_pull_timeout: c.take(o.opt_string("infra_image_pull_timeout")),
            image_pull_timeout: c.take(o.opt_string("image_pull_timeout")),
            pull_activity_timeout: c.take(o.opt_string("pull_activity_timeout")),
            container_exists_attempts: c.take(o.opt_i64("container_exists_attempts")),
            oom_score_adj: c.take(o.opt_i64("oom_score_adj")),
            pids_limit: c.take(o.opt_i64("pids_limit")),
            disable_log_collection: c.take(o.opt_bool("disable_log_collection")),
            windows_allow_insecure_container_admin: c
                .take(o.opt_bool("windows_allow_insecure_container_admin")),
            extra_labels: c.take(o.opt_string_list("extra_labels")),
            logging,
            allowed_modes,
            dockhand,
        }
    }
}

/// Task `auth { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTaskAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub email: Option<String>,
    pub server_address: Option<String>,
}

/// Task `devices { … }` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawDevice {
    pub host_path: Option<String>,
    pub container_path: Option<String>,
    pub cgroup_permissions: Option<String>,
}

/// Task `logging { … }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTaskLogging {
    pub r#type: Option<String>,
    pub driver: Option<String>,
    pub config: Option<StrMap>,
}

/// Task `mount { … }` / `mounts = [ … ]` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawMount {
    pub r#type: Option<String>,
    pub target: Option<String>,
    pub source: Option<String>,
    pub readonly: Option<bool>,
    pub bind_propagation: Option<String>,
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<i64>,
    pub volume_no_copy: Option<bool>,
    pub volume_labels: Option<StrMap>,
    pub volume_driver_name: Option<String>,
    pub volume_driver_options: Option<StrMap>,
}

impl RawMount {
    fn decode(m: &Object<'_>, c: &mut Collector) -> RawMount {
        let bind = c.take(m.opt_object("bind_options"));
        let tmpfs = c.take(m.opt_object("tmpfs_options"));
        let vol = c.take(m.opt_object("volume_options"));
        let driver = vol
            .as_ref()
            .and_then(|v| c.take(v.opt_object("driver_config")));
        RawMount {
            r#type: c.take(m.opt_string("type")),
            target: c.take(m.opt_string("target")),
            source: c.take(m.opt_string("source")),
            readonly: c.take(m.opt_bool("readonly")),
            bind_propagation: bind.and_then(|b| c.take(b.opt_string("propagation"))),
            tmpfs_size: tmpfs.as_ref().and_then(|t| c.take(t.opt_i64("size"))),
            tmpfs_mode: tmpfs.as_ref().and_then(|t| c.take(t.opt_i64("mode"))),
            volume_no_copy: vol.as_ref().and_then(|v| c.take(v.opt_bool("no_copy"))),
            volume_labels: vol
                .as_ref()
                .and_then(|v| c.take(v.opt_merged_string_map("labels"))),
            volume_driver_name: driver.as_ref().and_then(|d| c.take(d.opt_string("name"))),
            volume_driver_options: driver
                .as_ref()
                .and_then(|d| c.take(d.opt_merged_string_map("options"))),
        }
    }
}

/// The whole task configuration as sent in `TaskConfig.msgpack_driver_config`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTaskConfig {
    pub image: Option<String>,
    pub advertise_ipv6_address: Option<bool>,
    pub args: Option<Vec<String>>,
    pub auth: Option<RawTaskAuth>,
    pub auth_soft_fail: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroupns: Option<String>,
    pub command: Option<String>,
    pub container_exists_attempts: Option<i64>,
    pub cpu_cfs_period: Option<i64>,
    pub cpu_hard_limit: Option<bool>,
    pub cpuset_cpus: Option<String>,
    pub devices: Vec<RawDevice>,
    pub dns_search_domains: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_servers: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub force_pull: Option<bool>,
    pub group_add: Option<Vec<String>>,
    pub healthchecks_disable: Option<bool>,
    pub hostname: Option<String>,
    pub image_pull_timeout: Option<String>,
    pub init: Option<bool>,
    pub interactive: Option<bool>,
    pub ipc_mode: Option<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub isolation: Option<String>,
    pub labels: Option<StrMap>,
    pub load: Option<String>,
    pub logging: Option<RawTaskLogging>,
    pub mac_address: Option<String>,
    pub memory_hard_limit: Option<i64>,
    pub mount: Vec<RawMount>,
    pub mounts: Vec<RawMount>,
    pub network_aliases: Option<Vec<String>>,
    pub network_mode: Option<String>,
    pub oom_score_adj: Option<i64>,
    pub pid_mode: Option<String>,
    pub pids_limit: Option<i64>,
    pub port_map: Option<BTreeMap<String, i64>>,
    pub ports: Option<Vec<String>>,
    pub privileged: Option<bool>,
    pub readonly_rootfs: Option<bool>,
    pub runtime: Option<String>,
    pub security_opt: Option<Vec<String>>,
    pub shm_size: Option<i64>,
    pub storage_opt: Option<StrMap>,
    pub sysctl: Option<StrMap>,
    pub tty: Option<bool>,
    pub ulimit: Option<StrMap>,
    pub userns_mode: Option<String>,
    pub uts_mode: Option<String>,
    pub volume_driver: Option<String>,
    pub volumes: Option<Vec<String>>,
    pub work_dir: Option<String>,
}

impl RawTaskConfig {
    /// Decode the root object, collecting every type error.
    pub(crate) fn decode(o: &Object<'_>, c: &mut Collector) -> RawTaskConfig {
        let auth = c.take(o.opt_object("auth")).map(|a| RawTaskAuth {
            username: c.take(a.opt_string("username")),
            password: c.take(a.opt_string("password")),
            email: c.take(a.opt_string("email")),
            server_address: c.take(a.opt_string("server_address")),
        });
        let devices = c
            .list(o.object_list("devices"))
            .iter()
            .map(|d| RawDevice {
                host_path: c.take(d.opt_string("host_path")),
                container_path: c.take(d.opt_string("container_path")),
                cgroup_permissions: c.take(d.opt_string("cgroup_permissions")),
            })
            .collect();
        let logging = c.take(o.opt_object("logging")).map(|l| RawTaskLogging {
            r#type: c.take(l.opt_string("type")),
            driver: c.take(l.opt_string("driver")),
            config: c.take(l.opt_merged_string_map("config")),
        });
        let healthchecks = c.take(o.opt_object("healthchecks"));
        let mount = c.list(o.object_list("mount"));
        let mount = mount.iter().map(|m| RawMount::decode(m, c)).collect();
        let mounts = c.list(o.object_list("mounts"));
        let mounts = mounts.iter().map(|m| RawMount::decode(m, c)).collect();
        RawTaskConfig {
            image: c.take(o.opt_string("image")),
            advertise_ipv6_address: c.take(o.opt_bool("advertise_ipv6_address")),
            args: c.take(o.opt_string_list("args")),
            auth,
            auth_soft_fail: c.take(o.opt_bool("auth_soft_fail")),
            cap_add: c.take(o.opt_string_list("cap_add")),
            cap_drop: c.take(o.opt_string_list("cap_drop")),
            cgroupns: c.take(o.opt_string("cgroupns")),
            command: c.take(o.opt_string("command")),
            container_exists_attempts: c.take(o.opt_i64("container_exists_attempts")),
            cpu_cfs_period: c.take(o.opt_i64("cpu_cfs_period")),
            cpu_hard_limit: c.take(o.opt_bool("cpu_hard_limit")),
            cpuset_cpus: c.take(o.opt_string("cpuset_cpus")),
            devices,
            dns_search_domains: c.take(o.opt_string_list("dns_search_domains")),
            dns_options: c.take(o.opt_string_list("dns_options")),
            dns_servers: c.take(o.opt_string_list("dns_servers")),
            entrypoint: c.take(o.opt_string_list("entrypoint")),
            extra_hosts: c.take(o.opt_string_list("extra_hosts")),
            force_pull: c.take(o.opt_bool("force_pull")),
            group_add: c.take(o.opt_string_list("group_add")),
            healthchecks_disable: healthchecks.and_then(|h| c.take(h.opt_bool("disable"))),
            hostname: c.take(o.opt_string("hostname")),
            image_pull_timeout: c.take(o.opt_string("image_pull_timeout")),
            init: c.take(o.opt_bool("init")),
            interactive: c.take(o.opt_bool("interactive")),
            ipc_mode: c.take(o.opt_string("ipc_mode")),
            ipv4_address: c.take(o.opt_string("ipv4_address")),
            ipv6_address: c.take(o.opt_string("ipv6_address")),
            isolation: c.take(o.opt_string("isolation")),
            labels: c.take(o.opt_merged_string_map("labels")),
            load: c.take(o.opt_string("load")),
            logging,
            mac_address: c.take(o.opt_string("mac_address")),
            memory_hard_limit: c.take(o.opt_i64("memory_hard_limit")),
            mount,
            mounts,
            network_aliases: c.take(o.opt_string_list("network_aliases")),
            network_mode: c.take(o.opt_string("network_mode")),
            oom_score_adj: c.take(o.opt_i64("oom_score_adj")),
            pid_mode: c.take(o.opt_string("pid_mode")),
            pids_limit: c.take(o.opt_i64("pids_limit")),
            port_map: c.take(o.opt_merged_int_map("port_map")),
            ports: c.take(o.opt_string_list("ports")),
            privileged: c.take(o.opt_bool("privileged")),
            readonly_rootfs: c.take(o.opt_bool("readonly_rootfs")),
            runtime: c.take(o.opt_string("runtime")),
            security_opt: c.take(o.opt_string_list("security_opt")),
            shm_size: c.take(o.opt_i64("shm_size")),
            storage_opt: c.take(o.opt_string_map("storage_opt")),
            sysctl: c.take(o.opt_merged_string_map("sysctl")),
            tty: c.take(o.opt_bool("tty")),
            ulimit: c.take(o.opt_merged_string_map("ulimit")),
            userns_mode: c.take(o.opt_string("userns_mode")),
            uts_mode: c.take(o.opt_string("uts_mode")),
            volume_driver: c.take(o.opt_string("volume_driver")),
            volumes: c.take(o.opt_string_list("volumes")),
            work_dir: c.take(o.opt_string("work_dir")),
        }
    }
}
