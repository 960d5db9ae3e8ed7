//! The job-side schema: `task { driver = "dockhand" config { … } }`.
//!
//! Every key of the builtin docker driver's `taskConfigSpec`, including the ones Nomad
//! accepts and ignores (`auth.email`, `cpuset_cpus`, `container_exists_attempts`), so that an
//! existing jobspec decodes unchanged after switching `driver = "docker"` to dockhand. The
//! map-valued keys keep Nomad's `list(map(T))` typing (see [`nomad_plugin::cty`]) and
//! `storage_opt` stays a `BlockAttrs`, exactly as upstream.
//!
//! One deliberate difference: `image_pull_timeout` has no schema default, so that an unset
//! task value falls back to the plugin-wide `image_pull_timeout` (Nomad ≥ 1.10 behaviour).

use nomad_plugin::hclspec::Spec;

use super::defaults as d;

fn attr(name: &str, ty: &str) -> Spec {
    Spec::attr(name, ty)
}

fn mount_body() -> Spec {
    Spec::object([
        (
            "type",
            attr("type", "string").default_str(d::TASK_MOUNT_TYPE),
        ),
        ("target", attr("target", "string")),
        ("source", attr("source", "string")),
        ("readonly", attr("readonly", "bool")),
        (
            "bind_options",
            Spec::block(
                "bind_options",
                Spec::object([("propagation", attr("propagation", "string"))]),
            ),
        ),
        (
            "tmpfs_options",
            Spec::block(
                "tmpfs_options",
                Spec::object([
                    ("size", attr("size", "number")),
                    ("mode", attr("mode", "number")),
                ]),
            ),
        ),
        (
            "volume_options",
            Spec::block(
                "volume_options",
                Spec::object([
                    ("no_copy", attr("no_copy", "bool")),
                    ("labels", attr("labels", "list(map(string))")),
                    (
                        "driver_config",
                        Spec::block(
                            "driver_config",
                            Spec::object([
                                ("name", attr("name", "string")),
                                ("options", attr("options", "list(map(string))")),
                            ]),
                        ),
                    ),
                ]),
            ),
        ),
    ])
}

/// The schema returned from `TaskConfigSchema`.
pub fn task_config_spec() -> Spec {
    let strings = [
        "command",
        "cpuset_cpus",
        "hostname",
        "ipc_mode",
        "ipv4_address",
        "ipv6_address",
        "isolation",
        "load",
        "mac_address",
        "network_mode",
        "runtime",
        "pid_mode",
        "uts_mode",
        "userns_mode",
        "volume_driver",
        "work_dir",
        "cgroupns",
        "image_pull_timeout",
    ];
    let string_lists = [
        "args",
        "cap_add",
        "cap_drop",
        "dns_search_domains",
        "dns_options",
        "dns_servers",
        "entrypoint",
        "extra_hosts",
        "group_add",
        "network_aliases",
        "ports",
        "security_opt",
        "volumes",
    ];
    let bools = [
        "advertise_ipv6_address",
        "auth_soft_fail",
        "cpu_hard_limit",
        "force_pull",
        "init",
        "interactive",
        "privileged",
        "readonly_rootfs",
        "tty",
    ];
    let numbers = [
        "memory_hard_limit",
        "pids_limit",
        "shm_size",
        "oom_score_adj",
        "container_exists_attempts",
    ];
    let string_maps = ["labels", "sysctl", "ulimit"];

    let mut fields: Vec<(&str, Spec)> = Vec::new();
    fields.push(("image", Spec::required_attr("image", "string")));
    fields.extend(strings.map(|k| (k, attr(k, "string"))));
    fields.extend(string_lists.map(|k| (k, attr(k, "list(string)"))));
    fields.extend(bools.map(|k| (k, attr(k, "bool"))));
    fields.extend(numbers.map(|k| (k, attr(k, "number"))));
    fields.extend(string_maps.map(|k| (k, attr(k, "list(map(string))"))));
    fields.push(("port_map", attr("port_map", "list(map(number))")));
    fields.push((
        "cpu_cfs_period",
        attr("cpu_cfs_period", "number").with_default(&d::TASK_CPU_CFS_PERIOD.to_string()),
    ));
    fields.push((
        "auth",
        Spec::block(
            "auth",
            Spec::object([
                ("username", attr("username", "string")),
                ("password", attr("password", "string")),
                ("email", attr("email", "string")),
                ("server_address", attr("server_address", "string")),
            ]),
        ),
    ));
    fields.push((
        "devices",
        Spec::block_list(
            "devices",
            Spec::object([
                ("host_path", attr("host_path", "string")),
                ("container_path", attr("container_path", "string")),
                ("cgroup_permissions", attr("cgroup_permissions", "string")),
            ]),
        ),
    ));
    fields.push((
        "healthchecks",
        Spec::block(
            "healthchecks",
            Spec::object([("disable", attr("disable", "bool"))]),
        ),
    ));
    fields.push((
        "logging",
        Spec::block(
            "logging",
            Spec::object([
                ("type", attr("type", "string")),
                ("driver", attr("driver", "string")),
                ("config", attr("config", "list(map(string))")),
            ]),
        ),
    ));
    fields.push(("mount", Spec::block_list("mount", mount_body())));
    fields.push(("mounts", Spec::block_list("mounts", mount_body())));
    fields.push(("storage_opt", Spec::block_attrs("storage_opt", "string")));
    Spec::object(fields)
}
