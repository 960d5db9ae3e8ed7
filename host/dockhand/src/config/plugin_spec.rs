//! The agent-side schema: `plugin "dockhand" { config { … } }`.
//!
//! Every key of Nomad's builtin docker driver (`drivers/docker/config.go` `configSpec`, plus
//! the later `image_pull_timeout`, `container_exists_attempts`, `oom_score_adj`,
//! `windows_allow_insecure_container_admin` and `allowed_modes`) with the same names, types,
//! nesting and defaults, so an existing `plugin "docker"` stanza works unchanged. dockhand's
//! own settings live in one extra block, `dockhand { … }`, documented on
//! [`super::DockhandConfig`].

use nomad_plugin::hclspec::Spec;

use super::defaults as d;

fn string(name: &str) -> Spec {
    Spec::attr(name, "string")
}

fn bool_default(name: &str, value: bool) -> Spec {
    Spec::attr(name, "bool").with_default(d::hcl_bool(value))
}

fn number_default(name: &str, value: i64) -> Spec {
    Spec::attr(name, "number").with_default(&value.to_string())
}

fn dangling_literal() -> String {
    d::hcl_object(&[
        ("enabled", d::hcl_bool(d::DANGLING_ENABLED).to_owned()),
        ("dry_run", d::hcl_bool(d::DANGLING_DRY_RUN).to_owned()),
        ("period", d::hcl_str(d::DANGLING_PERIOD)),
        ("creation_grace", d::hcl_str(d::DANGLING_CREATION_GRACE)),
    ])
}

fn gc_spec() -> Spec {
    let dangling = Spec::object([
        ("enabled", bool_default("enabled", d::DANGLING_ENABLED)),
        ("dry_run", bool_default("dry_run", d::DANGLING_DRY_RUN)),
        ("period", string("period").default_str(d::DANGLING_PERIOD)),
        (
            "creation_grace",
            string("creation_grace").default_str(d::DANGLING_CREATION_GRACE),
        ),
    ]);
    let gc = Spec::object([
        ("image", bool_default("image", d::GC_IMAGE)),
        (
            "image_delay",
            string("image_delay").default_str(d::GC_IMAGE_DELAY),
        ),
        ("container", bool_default("container", d::GC_CONTAINER)),
        (
            "dangling_containers",
            Spec::block("dangling_containers", dangling).with_default(&dangling_literal()),
        ),
    ]);
    let literal = d::hcl_object(&[
        ("image", d::hcl_bool(d::GC_IMAGE).to_owned()),
        ("image_delay", d::hcl_str(d::GC_IMAGE_DELAY)),
        ("container", d::hcl_bool(d::GC_CONTAINER).to_owned()),
        ("dangling_containers", dangling_literal()),
    ]);
    Spec::block("gc", gc).with_default(&literal)
}

fn logging_spec() -> Spec {
    let config_pairs: Vec<(&str, String)> = d::LOGGING_CONFIG
        .iter()
        .map(|(k, v)| (*k, d::hcl_str(v)))
        .collect();
    let literal = d::hcl_object(&[
        ("type", d::hcl_str(d::LOGGING_TYPE)),
        ("config", d::hcl_object(&config_pairs)),
    ]);
    Spec::block(
        "logging",
        Spec::object([
            ("type", string("type")),
            ("config", Spec::block_attrs("config", "string")),
        ]),
    )
    .with_default(&literal)
}

fn allowed_modes_spec() -> Spec {
    let modes = ["pid", "ipc", "userns", "uts"];
    let nested = Spec::object(modes.map(|m| (m, Spec::attr(m, "list(string)").with_default("[]"))));
    let literal = d::hcl_object(&modes.map(|m| (m, "[]".to_owned())));
    Spec::block("allowed_modes", nested).with_default(&literal)
}

fn policy_source_spec(name: &str) -> Spec {
    Spec::block(
        name,
        Spec::object([
            ("path", Spec::required_attr("path", "string")),
            ("sha256", string("sha256")),
        ]),
    )
}

fn dockhand_spec() -> Spec {
    let uids: Vec<String> = d::DOCKHAND_ADMIN_ALLOWED_UIDS
        .iter()
        .map(i64::to_string)
        .collect();
    let uids_literal = format!("[{}]", uids.join(", "));
    let admin = Spec::object([
        (
            "enabled",
            bool_default("enabled", d::DOCKHAND_ADMIN_ENABLED),
        ),
        (
            "socket",
            string("socket").default_str(d::DOCKHAND_ADMIN_SOCKET),
        ),
        (
            "allowed_uids",
            Spec::attr("allowed_uids", "list(number)").with_default(&uids_literal),
        ),
    ]);
    Spec::block(
        "dockhand",
        Spec::object([
            ("mode", string("mode").default_str(d::DOCKHAND_MODE)),
            (
                "data_dir",
                string("data_dir").default_str(d::DOCKHAND_DATA_DIR),
            ),
            ("ownership_policy", policy_source_spec("ownership_policy")),
            ("kill_policy", policy_source_spec("kill_policy")),
            (
                "policy_memory_mib",
                number_default("policy_memory_mib", d::DOCKHAND_POLICY_MEMORY_MIB),
            ),
            (
                "policy_deadline",
                string("policy_deadline").default_str(d::DOCKHAND_POLICY_DEADLINE),
            ),
            (
                "max_actions_per_sweep",
                number_default("max_actions_per_sweep", d::DOCKHAND_MAX_ACTIONS_PER_SWEEP),
            ),
            (
                "docker_call_timeout",
                string("docker_call_timeout").default_str(d::DOCKHAND_DOCKER_CALL_TIMEOUT),
            ),
            ("label_filter", string("label_filter")),
            ("daemon", string("daemon").default_str(d::DOCKHAND_DAEMON)),
            ("admin", Spec::block("admin", admin)),
        ]),
    )
}

/// The schema returned from `ConfigSchema`.
pub fn plugin_config_spec() -> Spec {
    Spec::object([
        ("endpoint", string("endpoint")),
        (
            "auth",
            Spec::block(
                "auth",
                Spec::object([("config", string("config")), ("helper", string("helper"))]),
            ),
        ),
        (
            "tls",
            Spec::block(
                "tls",
                Spec::object([
                    ("cert", string("cert")),
                    ("key", string("key")),
                    ("ca", string("ca")),
                ]),
            ),
        ),
        ("extra_labels", Spec::attr("extra_labels", "list(string)")),
        ("logging", logging_spec()),
        ("gc", gc_spec()),
        (
            "volumes",
            Spec::block(
                "volumes",
                Spec::object([
                    ("enabled", bool_default("enabled", d::VOLUMES_ENABLED)),
                    ("selinuxlabel", string("selinuxlabel")),
                ]),
            )
            .with_default(&d::hcl_object(&[(
                "enabled",
                d::hcl_bool(d::VOLUMES_ENABLED).to_owned(),
            )])),
        ),
        (
            "allow_privileged",
            bool_default("allow_privileged", d::ALLOW_PRIVILEGED),
        ),
        (
            "allow_caps",
            Spec::attr("allow_caps", "list(string)")
                .with_default(&d::hcl_string_list(&d::ALLOW_CAPS)),
        ),
        (
            "nvidia_runtime",
            string("nvidia_runtime").default_str(d::NVIDIA_RUNTIME),
        ),
        (
            "allow_runtimes",
            Spec::attr("allow_runtimes", "list(string)")
                .with_default(&d::hcl_string_list(&d::ALLOW_RUNTIMES)),
        ),
        (
            "infra_image",
            string("infra_image").default_str(&d::infra_image()),
        ),
        (
            "infra_image_pull_timeout",
            string("infra_image_pull_timeout").default_str(d::INFRA_IMAGE_PULL_TIMEOUT),
        ),
        (
            "image_pull_timeout",
            string("image_pull_timeout").default_str(d::IMAGE_PULL_TIMEOUT),
        ),
        (
            "pull_activity_timeout",
            string("pull_activity_timeout").default_str(d::PULL_ACTIVITY_TIMEOUT),
        ),
        (
            "container_exists_attempts",
            number_default("container_exists_attempts", d::CONTAINER_EXISTS_ATTEMPTS),
        ),
        (
            "oom_score_adj",
            number_default("oom_score_adj", d::PLUGIN_OOM_SCORE_ADJ),
        ),
        ("pids_limit", Spec::attr("pids_limit", "number")),
        (
            "disable_log_collection",
            bool_default("disable_log_collection", d::DISABLE_LOG_COLLECTION),
        ),
        (
            "windows_allow_insecure_container_admin",
            bool_default(
                "windows_allow_insecure_container_admin",
                d::WINDOWS_ALLOW_INSECURE_CONTAINER_ADMIN,
            ),
        ),
        ("allowed_modes", allowed_modes_spec()),
        ("dockhand", dockhand_spec()),
    ])
}
