//! Schema conformance, defaults agreement, and validation messages.

use std::time::Duration;

use nomad_plugin::cty_type::CtyType;
use nomad_plugin::hcldec::{self, Input, Node};
use nomad_plugin::hclspec::Spec;
use rmpv::Value;

use super::*;

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn apply_hcl(spec: &Spec, hcl_body: &str) -> Vec<u8> {
    let text = format!(
        "job \"j\" {{\n group \"g\" {{\n task \"t\" {{\n driver = \"docker\"\n config {{\n{hcl_body}\n}}\n}}\n}}\n}}"
    );
    let parsed = hcl_file::parse_file(&text).unwrap();
    let (value, diags) = hcldec::apply(spec, &parsed.tasks[0].config);
    assert!(diags.is_empty(), "{diags:?}");
    encode(&value)
}

fn plugin_from_agent_hcl(config_body: &str) -> Result<PluginConfig, ConfigErrors> {
    let text = format!("plugin \"docker\" {{\n config {{\n{config_body}\n}}\n}}");
    let parsed = hcl_file::parse_file(&text).unwrap();
    let (value, diags) = hcldec::apply(&plugin_config_spec(), &parsed.plugins[0].config);
    assert!(diags.is_empty(), "{diags:?}");
    PluginConfig::from_msgpack(&encode(&value))
}

fn messages(e: &ConfigErrors) -> Vec<String> {
    e.0.iter().map(ToString::to_string).collect()
}

// ---- schema literals ------------------------------------------------------------------

fn value_has_type(value: &Value, ty: &CtyType) -> bool {
    match (value, ty) {
        (_, CtyType::Any) => true,
        (Value::String(_), CtyType::String) | (Value::Boolean(_), CtyType::Bool) => true,
        (Value::Integer(_) | Value::F64(_), CtyType::Number) => true,
        (Value::Array(items), CtyType::List(t) | CtyType::Set(t)) => {
            items.iter().all(|v| value_has_type(v, t))
        }
        (Value::Map(entries), CtyType::Map(t)) => entries.iter().all(|(_, v)| value_has_type(v, t)),
        _ => false,
    }
}

/// Check that `value` (a literal's value) could have been produced by `spec`.
fn literal_conforms(spec: &Spec, value: &Value) -> Result<(), String> {
    match spec {
        Spec::Attr { name, r#type, .. } => {
            let ty: CtyType = r#type.parse().map_err(|e| format!("{name}: {e}"))?;
            if value_has_type(value, &ty) {
                Ok(())
            } else {
                Err(format!("{name}: literal {value} is not a {ty}"))
            }
        }
        Spec::BlockAttrs {
            name, element_type, ..
        } => {
            let ty = CtyType::Map(Box::new(
                element_type.parse().map_err(|e| format!("{name}: {e}"))?,
            ));
            if value_has_type(value, &ty) {
                Ok(())
            } else {
                Err(format!("{name}: literal {value} is not a {ty}"))
            }
        }
        Spec::Block { name, nested, .. } => {
            let (Value::Map(entries), Spec::Object(fields)) = (value, nested.as_ref()) else {
                return Err(format!("{name}: block literal {value} is not an object"));
            };
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                let field = fields
                    .get(key)
                    .ok_or_else(|| format!("{name}: literal key {key} not in schema"))?;
                literal_conforms(field, v).map_err(|e| format!("{name}.{e}"))?;
            }
            Ok(())
        }
        Spec::Default { primary, .. } => literal_conforms(primary, value),
        other => Err(format!("unexpected default target {other:?}")),
    }
}

fn check_literals(spec: &Spec, problems: &mut Vec<String>) {
    match spec {
        Spec::Object(map) => map.values().for_each(|s| check_literals(s, problems)),
        Spec::Array(items) => items.iter().for_each(|s| check_literals(s, problems)),
        Spec::Block { nested, .. }
        | Spec::BlockList { nested, .. }
        | Spec::BlockSet { nested, .. }
        | Spec::BlockMap { nested, .. } => {
            check_literals(nested, problems);
        }
        Spec::Default { primary, default } => {
            check_literals(primary, problems);
            match default.as_ref() {
                Spec::Literal(expr) => match hcldec::eval_literal(expr) {
                    Ok(v) => {
                        if let Err(e) = literal_conforms(primary, &v) {
                            problems.push(e);
                        }
                    }
                    Err(e) => problems.push(format!("literal {expr:?} does not parse: {e}")),
                },
                other => check_literals(other, problems),
            }
        }
        Spec::Attr { .. } | Spec::BlockAttrs { .. } | Spec::Literal(_) => {}
    }
}

#[test]
fn every_literal_parses_with_hcl_rs() {
    for spec in [plugin_config_spec(), task_config_spec()] {
        let literals = spec.literals();
        assert!(!literals.is_empty());
        for lit in literals {
            hcl::edit::parser::parse_expr(lit).unwrap_or_else(|e| panic!("{lit:?}: {e}"));
            hcldec::eval_literal(lit).unwrap_or_else(|e| panic!("{lit:?}: {e}"));
        }
    }
}

#[test]
fn every_default_literal_has_its_attribute_type() {
    for spec in [plugin_config_spec(), task_config_spec()] {
        let mut problems = Vec::new();
        check_literals(&spec, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn regression_nomad_6246_unquoted_duration_literal_is_caught() {
    let bad = Spec::object([(
        "image_delay",
        Spec::attr("image_delay", "string").with_default("3m"),
    )]);
    let mut problems = Vec::new();
    check_literals(&bad, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let wrong_type = Spec::object([("x", Spec::attr("x", "string").with_default("5"))]);
    let mut problems = Vec::new();
    check_literals(&wrong_type, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn every_attr_type_parses() {
    fn walk(spec: &Spec) {
        match spec {
            Spec::Attr { r#type, .. } => {
                r#type.parse::<CtyType>().unwrap();
            }
            Spec::Object(m) => m.values().for_each(walk),
            Spec::Block { nested, .. } | Spec::BlockList { nested, .. } => walk(nested),
            Spec::Default { primary, .. } => walk(primary),
            _ => {}
        }
    }
    walk(&plugin_config_spec());
    walk(&task_config_spec());
}

// ---- key coverage -----------------------------------------------------------------------

fn keys(spec: &Spec) -> Vec<String> {
    match spec {
        Spec::Object(m) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[test]
fn plugin_schema_has_every_builtin_key() {
    let expected = [
        "endpoint",
        "auth",
        "tls",
        "gc",
        "volumes",
        "allow_privileged",
        "allow_caps",
        "nvidia_runtime",
        "allow_runtimes",
        "infra_image",
        "infra_image_pull_timeout",
        "image_pull_timeout",
        "pull_activity_timeout",
        "container_exists_attempts",
        "oom_score_adj",
        "pids_limit",
        "disable_log_collection",
        "windows_allow_insecure_container_admin",
        "extra_labels",
        "logging",
        "allowed_modes",
        "dockhand",
    ];
    let mut have = keys(&plugin_config_spec());
    have.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(have, want);
}

#[test]
fn task_schema_has_every_builtin_key() {
    let expected = [
        "image",
        "image_pull_timeout",
        "force_pull",
        "load",
        "auth",
        "auth_soft_fail",
        "command",
        "args",
        "entrypoint",
        "work_dir",
        "hostname",
        "tty",
        "interactive",
        "init",
        "labels",
        "port_map",
        "ports",
        "network_mode",
        "network_aliases",
        "ipv4_address",
        "ipv6_address",
        "mac_address",
        "advertise_ipv6_address",
        "dns_servers",
        "dns_search_domains",
        "dns_options",
        "extra_hosts",
        "cap_add",
        "cap_drop",
        "privileged",
        "ipc_mode",
        "pid_mode",
        "uts_mode",
        "userns_mode",
        "cgroupns",
        "security_opt",
        "readonly_rootfs",
        "runtime",
        "devices",
        "mount",
        "mounts",
        "volumes",
        "volume_driver",
        "storage_opt",
        "sysctl",
        "ulimit",
        "logging",
        "shm_size",
        "memory_hard_limit",
        "cpu_hard_limit",
        "cpu_cfs_period",
        "cpuset_cpus",
        "pids_limit",
        "oom_score_adj",
        "group_add",
        "healthchecks",
        "isolation",
        "container_exists_attempts",
    ];
    let mut have = keys(&task_config_spec());
    have.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(have, want);
}

// ---- defaults ----------------------------------------------------------------------------

#[test]
fn defaults_are_valid_and_match_nomad() {
    let c = PluginConfig::default();
    assert!(c.gc.image && c.gc.container);
    assert_eq!(c.gc.image_delay, Duration::from_secs(180));
    assert!(c.gc.dangling_containers.enabled && !c.gc.dangling_containers.dry_run);
    assert_eq!(c.gc.dangling_containers.period, Duration::from_secs(300));
    assert_eq!(
        c.gc.dangling_containers.creation_grace,
        Duration::from_secs(300)
    );
    assert_eq!(c.pull_activity_timeout, Duration::from_secs(120));
    assert_eq!(c.allow_runtimes, vec!["runc", "nvidia"]);
    assert_eq!(c.allow_caps.len(), 13);
    assert!(!c.allow_caps.iter().any(|c| c == "NET_RAW"));
    assert!(!c.volumes.enabled && !c.allow_privileged);
    assert_eq!(c.logging.r#type, "json-file");
    assert_eq!(
        c.logging.config.get("max-size").map(String::as_str),
        Some("2m")
    );
    assert!(c.infra_image.starts_with("registry.k8s.io/pause-"));
    assert_eq!(c.dockhand.mode, PolicyMode::Enforce);
    assert_eq!(c.dockhand.admin.allowed_uids, vec![0]);
}

#[test]
fn schema_defaults_and_domain_defaults_agree() {
    let domain = PluginConfig::default();
    // Every `gc` shape of config_test.go TestConfig_DriverConfig_GC, plus nothing at all.
    for body in [
        "",
        "gc {}",
        "gc {\n dangling_containers {}\n}",
        "dockhand {}",
        "volumes {}",
    ] {
        assert_eq!(
            plugin_from_agent_hcl(body).unwrap(),
            domain,
            "body {body:?}"
        );
    }
    assert_eq!(PluginConfig::from_msgpack(&[]).unwrap(), domain);
    assert_eq!(
        PluginConfig::from_msgpack(&encode(&obj(vec![]))).unwrap(),
        domain
    );
    // The admin block defaults the same way whether present-and-empty or absent.
    assert_eq!(
        plugin_from_agent_hcl("dockhand {\n admin {}\n}").unwrap(),
        domain
    );
}

#[test]
fn task_defaults_from_schema_and_domain_agree() {
    let spec = task_config_spec();
    let via_schema = TaskConfig::from_msgpack(&apply_hcl(&spec, "image = \"redis\"")).unwrap();
    let via_domain =
        TaskConfig::from_msgpack(&encode(&obj(vec![("image", Value::from("redis"))]))).unwrap();
    assert_eq!(via_schema, via_domain);
    assert_eq!(via_schema.cpu_cfs_period, 100_000);
    assert_eq!(via_schema.image_pull_timeout, None);
}

mod fuzz;
mod rules;

#[test]
fn tls_files_must_come_together_and_be_readable_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("c.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let text = dir.path().join("c.txt");
    std::fs::write(&text, "plain").expect("write");
    let raw = |cert: &std::path::Path, ca: Option<&std::path::Path>| RawPluginConfig {
        endpoint: Some("tcp://127.0.0.1:2376".to_owned()),
        tls: Some(crate::config::raw::RawTls {
            cert: Some(cert.display().to_string()),
            key: Some(pem.display().to_string()),
            ca: ca.map(|c| c.display().to_string()),
        }),
        ..RawPluginConfig::default()
    };
    let ok = PluginConfig::try_from(raw(&pem, Some(&pem))).expect("complete");
    assert!(ok.check_tls_files().is_ok());
    let err = PluginConfig::try_from(raw(&text, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.ca") && err.contains("must be set"),
        "{err}"
    );
    let bad =
        PluginConfig::try_from(raw(&text, Some(&dir.path().join("absent.pem")))).expect("complete");
    let err = bad.check_tls_files().unwrap_err().to_string();
    assert!(
        err.contains("tls.cert") && err.contains("is not a PEM file"),
        "{err}"
    );
    assert!(
        err.contains("tls.ca") && err.contains("cannot read"),
        "{err}"
    );
    // Without an endpoint the environment decides, as in Nomad: the files are not used.
    let mut no_endpoint = raw(&text, None);
    no_endpoint.endpoint = None;
    let config = PluginConfig::try_from(no_endpoint).expect("valid");
    assert!(config.check_tls_files().is_ok());
}

#[test]
fn cgroupns_takes_host_or_private_only() {
    let raw = |mode: &str| RawTaskConfig {
        image: Some("busybox".to_owned()),
        cgroupns: Some(mode.to_owned()),
        ..RawTaskConfig::default()
    };
    assert!(TaskConfig::try_from(raw("host")).is_ok());
    assert!(TaskConfig::try_from(raw("private")).is_ok());
    let err = TaskConfig::try_from(raw("shared")).unwrap_err().to_string();
    assert!(
        err.contains("cgroupns") && err.contains("\"shared\""),
        "{err}"
    );
}
