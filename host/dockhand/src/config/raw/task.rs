//! The job-side table: `task { driver = "dockhand" config { … } }`.
//!
//! Every key of the builtin docker driver's `taskConfigSpec`, including the ones Nomad
//! accepts and ignores (`auth.email`, `cpuset_cpus`, `container_exists_attempts`), so that an
//! existing jobspec decodes unchanged after switching `driver = "docker"` to dockhand. The
//! map-valued keys keep Nomad's `list(map(T))` typing (see [`nomad_plugin::cty`]) and
//! `storage_opt` stays a `BlockAttrs`, exactly as upstream.
//!
//! A new Docker option is one line here, one field of the validated
//! [`crate::config::TaskConfig`], and its use in the create body.
//!
//! One deliberate difference: `image_pull_timeout` has no schema default, so that an unset
//! task value falls back to the plugin-wide `image_pull_timeout` (Nomad ≥ 1.10 behaviour).

use nomad_plugin::hclspec::Spec;

use super::wire_objects;
use crate::config::defaults::{self as d, hcl_str};

wire_objects! {
    /// The whole task configuration as sent in `TaskConfig.msgpack_driver_config`.
    pub struct RawTaskConfig {
        image: required_string,
        advertise_ipv6_address: bool,
        args: strings,
        auth: block<RawTaskAuth>,
        auth_soft_fail: bool,
        cap_add: strings,
        cap_drop: strings,
        cgroupns: string,
        command: string,
        container_exists_attempts: number,
        cpu_cfs_period: number = d::TASK_CPU_CFS_PERIOD.to_string(),
        cpu_hard_limit: bool,
        cpuset_cpus: string,
        devices: blocks<RawDevice>,
        dns_search_domains: strings,
        dns_options: strings,
        dns_servers: strings,
        entrypoint: strings,
        extra_hosts: strings,
        force_pull: bool,
        group_add: strings,
        healthchecks: block<RawHealthchecks>,
        hostname: string,
        image_pull_timeout: string,
        init: bool,
        interactive: bool,
        ipc_mode: string,
        ipv4_address: string,
        ipv6_address: string,
        isolation: string,
        labels: string_map,
        load: string,
        logging: block<RawTaskLogging>,
        mac_address: string,
        memory_hard_limit: number,
        mount: blocks<RawMount>,
        mounts: blocks<RawMount>,
        network_aliases: strings,
        network_mode: string,
        oom_score_adj: number,
        pid_mode: string,
        pids_limit: number,
        port_map: number_map,
        ports: strings,
        privileged: bool,
        readonly_rootfs: bool,
        runtime: string,
        security_opt: strings,
        shm_size: number,
        storage_opt: attrs,
        sysctl: string_map,
        tty: bool,
        ulimit: string_map,
        userns_mode: string,
        uts_mode: string,
        volume_driver: string,
        volumes: strings,
        work_dir: string,
    }

    /// Task `auth { … }`.
    pub struct RawTaskAuth {
        username: string,
        password: string,
        email: string,
        server_address: string,
    }

    /// Task `devices { … }` entry.
    pub struct RawDevice {
        host_path: string,
        container_path: string,
        cgroup_permissions: string,
    }

    /// Task `healthchecks { disable }`.
    pub struct RawHealthchecks {
        disable: bool,
    }

    /// Task `logging { … }`.
    pub struct RawTaskLogging {
        r#type: string,
        driver: string,
        config: string_map,
    }

    /// Task `mount { … }` / `mounts = [ … ]` entry.
    pub struct RawMount {
        r#type: string = hcl_str(d::TASK_MOUNT_TYPE),
        target: string,
        source: string,
        readonly: bool,
        bind_options: block<RawBindOptions>,
        tmpfs_options: block<RawTmpfsOptions>,
        volume_options: block<RawVolumeOptions>,
    }

    /// `mount.bind_options { … }`.
    pub struct RawBindOptions {
        propagation: string,
    }

    /// `mount.tmpfs_options { … }`.
    pub struct RawTmpfsOptions {
        size: number,
        mode: number,
    }

    /// `mount.volume_options { … }`.
    pub struct RawVolumeOptions {
        no_copy: bool,
        labels: string_map,
        driver_config: block<RawDriverConfig>,
    }

    /// `mount.volume_options.driver_config { … }`.
    pub struct RawDriverConfig {
        name: string,
        options: string_map,
    }
}

/// The schema returned from `TaskConfigSchema`.
pub fn task_config_spec() -> Spec {
    RawTaskConfig::spec()
}
