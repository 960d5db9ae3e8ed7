//! The agent-side table: `plugin "dockhand" { config { … } }`.
//!
//! Every key of Nomad's builtin docker driver (`drivers/docker/config.go` `configSpec`, plus
//! the later `image_pull_timeout`, `container_exists_attempts`, `oom_score_adj`,
//! `windows_allow_insecure_container_admin` and `allowed_modes`) with the same names, types,
//! nesting and defaults, so an existing `plugin "docker"` stanza works unchanged. dockhand's
//! own settings live in one extra block, `dockhand { … }`, documented on
//! [`crate::config::DockhandConfig`].

use nomad_plugin::hclspec::Spec;

use super::wire_objects;
use crate::config::defaults::{self as d, hcl_bool, hcl_object, hcl_str, hcl_string_list};

wire_objects! {
    /// The whole plugin configuration as sent in `SetConfig`.
    pub struct RawPluginConfig {
        endpoint: string,
        auth: block<RawPluginAuth>,
        tls: block<RawTls>,
        gc: block<RawGc> = gc_literal(),
        volumes: block<RawVolumes> = hcl_object(&[("enabled", bool_literal(d::VOLUMES_ENABLED))]),
        allow_privileged: bool = hcl_bool(d::ALLOW_PRIVILEGED),
        allow_caps: strings = hcl_string_list(&d::ALLOW_CAPS),
        nvidia_runtime: string = hcl_str(d::NVIDIA_RUNTIME),
        allow_runtimes: strings = hcl_string_list(&d::ALLOW_RUNTIMES),
        infra_image: string = hcl_str(&d::infra_image()),
        infra_image_pull_timeout: string = hcl_str(d::INFRA_IMAGE_PULL_TIMEOUT),
        image_pull_timeout: string = hcl_str(d::IMAGE_PULL_TIMEOUT),
        pull_activity_timeout: string = hcl_str(d::PULL_ACTIVITY_TIMEOUT),
        container_exists_attempts: number = d::CONTAINER_EXISTS_ATTEMPTS.to_string(),
        oom_score_adj: number = d::PLUGIN_OOM_SCORE_ADJ.to_string(),
        pids_limit: number,
        disable_log_collection: bool = hcl_bool(d::DISABLE_LOG_COLLECTION),
        windows_allow_insecure_container_admin: bool =
            hcl_bool(d::WINDOWS_ALLOW_INSECURE_CONTAINER_ADMIN),
        extra_labels: strings,
        logging: block<RawPluginLogging> = logging_literal(),
        allowed_modes: block<RawAllowedModes> = allowed_modes_literal(),
        dockhand: block<RawDockhand>,
    }

    /// `auth { config, helper }` (plugin).
    pub struct RawPluginAuth {
        config: string,
        helper: string,
    }

    /// `tls { cert, key, ca }`.
    pub struct RawTls {
        cert: string,
        key: string,
        ca: string,
    }

    /// `gc { … }`.
    pub struct RawGc {
        image: bool = hcl_bool(d::GC_IMAGE),
        image_delay: string = hcl_str(d::GC_IMAGE_DELAY),
        container: bool = hcl_bool(d::GC_CONTAINER),
        dangling_containers: block<RawDangling> = dangling_literal(),
    }

    /// `gc.dangling_containers { … }`.
    pub struct RawDangling {
        enabled: bool = hcl_bool(d::DANGLING_ENABLED),
        dry_run: bool = hcl_bool(d::DANGLING_DRY_RUN),
        period: string = hcl_str(d::DANGLING_PERIOD),
        creation_grace: string = hcl_str(d::DANGLING_CREATION_GRACE),
    }

    /// `volumes { enabled, selinuxlabel }`.
    pub struct RawVolumes {
        enabled: bool = hcl_bool(d::VOLUMES_ENABLED),
        selinuxlabel: string,
    }

    /// Plugin `logging { type, config }`.
    pub struct RawPluginLogging {
        r#type: string,
        config: attrs,
    }

    /// `allowed_modes { pid, ipc, userns, uts }`.
    pub struct RawAllowedModes {
        pid: strings = "[]",
        ipc: strings = "[]",
        userns: strings = "[]",
        uts: strings = "[]",
    }

    /// `dockhand { … }`.
    pub struct RawDockhand {
        mode: string = hcl_str(d::DOCKHAND_MODE),
        data_dir: string = hcl_str(d::DOCKHAND_DATA_DIR),
        ownership_policy: block<RawPolicySource>,
        kill_policy: block<RawPolicySource>,
        policy_memory_mib: number = d::DOCKHAND_POLICY_MEMORY_MIB.to_string(),
        policy_deadline: string = hcl_str(d::DOCKHAND_POLICY_DEADLINE),
        max_actions_per_sweep: number = d::DOCKHAND_MAX_ACTIONS_PER_SWEEP.to_string(),
        docker_call_timeout: string = hcl_str(d::DOCKHAND_DOCKER_CALL_TIMEOUT),
        label_filter: string,
        daemon: string = hcl_str(d::DOCKHAND_DAEMON),
        admin: block<RawAdmin>,
    }

    /// `ownership_policy { path, sha256 }` / `kill_policy { … }`.
    pub struct RawPolicySource {
        path: required_string,
        sha256: string,
    }

    /// `dockhand.admin { … }`.
    pub struct RawAdmin {
        enabled: bool = hcl_bool(d::DOCKHAND_ADMIN_ENABLED),
        socket: string = hcl_str(d::DOCKHAND_ADMIN_SOCKET),
        allowed_uids: numbers = uids_literal(),
    }
}

/// The schema returned from `ConfigSchema`.
pub fn plugin_config_spec() -> Spec {
    RawPluginConfig::spec()
}

fn bool_literal(value: bool) -> String {
    hcl_bool(value).to_owned()
}

fn dangling_literal() -> String {
    hcl_object(&[
        ("enabled", bool_literal(d::DANGLING_ENABLED)),
        ("dry_run", bool_literal(d::DANGLING_DRY_RUN)),
        ("period", hcl_str(d::DANGLING_PERIOD)),
        ("creation_grace", hcl_str(d::DANGLING_CREATION_GRACE)),
    ])
}

fn gc_literal() -> String {
    hcl_object(&[
        ("image", bool_literal(d::GC_IMAGE)),
        ("image_delay", hcl_str(d::GC_IMAGE_DELAY)),
        ("container", bool_literal(d::GC_CONTAINER)),
        ("dangling_containers", dangling_literal()),
    ])
}

fn logging_literal() -> String {
    let config: Vec<(&str, String)> = d::LOGGING_CONFIG
        .iter()
        .map(|(k, v)| (*k, hcl_str(v)))
        .collect();
    hcl_object(&[
        ("type", hcl_str(d::LOGGING_TYPE)),
        ("config", hcl_object(&config)),
    ])
}

fn allowed_modes_literal() -> String {
    hcl_object(&["pid", "ipc", "userns", "uts"].map(|m| (m, "[]".to_owned())))
}

fn uids_literal() -> String {
    let uids: Vec<String> = d::DOCKHAND_ADMIN_ALLOWED_UIDS
        .iter()
        .map(i64::to_string)
        .collect();
    format!("[{}]", uids.join(", "))
}
