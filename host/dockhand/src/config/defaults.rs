//! Every configuration default, in one place.
//!
//! The schema literals handed to Nomad ([`super::plugin_config_spec`],
//! [`super::task_config_spec`]) are rendered from these constants, and the domain types fall
//! back to the same constants when a value arrives as `nil`. A test decodes an empty
//! configuration both ways and checks that they agree.

/// `gc.image`
pub const GC_IMAGE: bool = true;
/// `gc.image_delay`
pub const GC_IMAGE_DELAY: &str = "3m";
/// `gc.container`
pub const GC_CONTAINER: bool = true;
/// `gc.dangling_containers.enabled`
pub const DANGLING_ENABLED: bool = true;
/// `gc.dangling_containers.dry_run`
pub const DANGLING_DRY_RUN: bool = false;
/// `gc.dangling_containers.period`
pub const DANGLING_PERIOD: &str = "5m";
/// `gc.dangling_containers.creation_grace`
pub const DANGLING_CREATION_GRACE: &str = "5m";
/// `volumes.enabled`
pub const VOLUMES_ENABLED: bool = false;
/// `allow_privileged`
pub const ALLOW_PRIVILEGED: bool = false;
/// `allow_caps`: Docker's default capability set minus `NET_RAW` (Nomad ≥ 1.1.0).
pub const ALLOW_CAPS: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// `nvidia_runtime`
pub const NVIDIA_RUNTIME: &str = "nvidia";
/// `allow_runtimes`
pub const ALLOW_RUNTIMES: [&str; 2] = ["runc", "nvidia"];
/// `infra_image_pull_timeout`
pub const INFRA_IMAGE_PULL_TIMEOUT: &str = "5m";
/// `image_pull_timeout` (plugin-wide default for the task key)
pub const IMAGE_PULL_TIMEOUT: &str = "5m";
/// `pull_activity_timeout`
pub const PULL_ACTIVITY_TIMEOUT: &str = "2m";
/// `container_exists_attempts`
pub const CONTAINER_EXISTS_ATTEMPTS: i64 = 5;
/// `oom_score_adj` (plugin level; parsed and unused, as in Nomad)
pub const PLUGIN_OOM_SCORE_ADJ: i64 = 0;
/// `disable_log_collection`
pub const DISABLE_LOG_COLLECTION: bool = false;
/// `windows_allow_insecure_container_admin`
pub const WINDOWS_ALLOW_INSECURE_CONTAINER_ADMIN: bool = false;
/// `logging.type`
pub const LOGGING_TYPE: &str = "json-file";
/// `logging.config`
pub const LOGGING_CONFIG: [(&str, &str); 2] = [("max-file", "2"), ("max-size", "2m")];

/// `dockhand.mode`: enforce, matching the builtin reaper, which acts by default.
pub const DOCKHAND_MODE: &str = "enforce";
/// `dockhand.data_dir`
pub const DOCKHAND_DATA_DIR: &str = "/var/lib/dockhand";
/// `dockhand.policy_memory_mib`
pub const DOCKHAND_POLICY_MEMORY_MIB: i64 = 32;
/// `dockhand.policy_deadline`
pub const DOCKHAND_POLICY_DEADLINE: &str = "100ms";
/// `dockhand.max_actions_per_sweep`
pub const DOCKHAND_MAX_ACTIONS_PER_SWEEP: i64 = 10;
/// `dockhand.docker_call_timeout`
pub const DOCKHAND_DOCKER_CALL_TIMEOUT: &str = "30s";
/// `dockhand.daemon`: Nomad's builtin driver may share the daemon (the migration path).
pub const DOCKHAND_DAEMON: &str = "shared-with-builtin-driver";
/// `dockhand.admin.enabled`
pub const DOCKHAND_ADMIN_ENABLED: bool = true;
/// `dockhand.admin.socket`
pub const DOCKHAND_ADMIN_SOCKET: &str = "/run/dockhand/admin.sock";
/// `dockhand.admin.allowed_uids`
pub const DOCKHAND_ADMIN_ALLOWED_UIDS: [i64; 1] = [0];

/// Task `cpu_cfs_period`
pub const TASK_CPU_CFS_PERIOD: i64 = 100_000;
/// Task `mount.type`
pub const TASK_MOUNT_TYPE: &str = "volume";

/// `infra_image`: `registry.k8s.io/pause-<GOARCH>:3.3`, as Nomad ≥ 1.9.
pub fn infra_image() -> String {
    format!("registry.k8s.io/pause-{}:3.3", go_arch())
}

/// Go's name for the architecture this binary runs on.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// An HCL bool literal.
pub fn hcl_bool(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// An HCL list-of-strings literal.
pub fn hcl_string_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| nomad_plugin::hclspec::quote_hcl_string(s))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// An HCL object literal from rendered `key = expr` pairs.
pub fn hcl_object(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("  {k} = {v}")).collect();
    format!("{{\n{}\n}}", body.join("\n"))
}

/// An HCL string literal.
pub fn hcl_str(s: &str) -> String {
    nomad_plugin::hclspec::quote_hcl_string(s)
}
