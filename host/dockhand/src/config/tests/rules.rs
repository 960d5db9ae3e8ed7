//! Validation rules and the wire forms of the list(map) keys.

use std::time::Duration;

use rmpv::Value;

use super::*;

// ---- plugin rules -------------------------------------------------------------------------

#[test]
fn creation_grace_and_pull_activity_minimums_use_nomad_messages() {
    let err = plugin_from_agent_hcl(
        "gc {\n dangling_containers {\n creation_grace = \"30s\"\n period = \"0s\"\n }\n image_delay = \"1d\"\n}\npull_activity_timeout = \"59s\"",
    )
    .unwrap_err();
    let msgs = messages(&err);
    assert!(
        msgs.contains(
            &"gc.dangling_containers.creation_grace: creation_grace is less than minimum, 1m0s"
                .to_owned()
        ),
        "{msgs:#?}"
    );
    assert!(
        msgs.contains(
            &"pull_activity_timeout: pull_activity_timeout is less than minimum, 1m0s".to_owned()
        ),
        "{msgs:#?}"
    );
    assert!(
        msgs.contains(
            &"gc.dangling_containers.period: period must be greater than zero".to_owned()
        ),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("gc.image_delay: failed to parse 'image_delay' duration")),
        "{msgs:#?}"
    );
    assert_eq!(msgs.len(), 4);
}

#[test]
fn dockhand_block_rules() {
    let err = plugin_from_agent_hcl(
        "dockhand {\n mode = \"yolo\"\n data_dir = \"relative\"\n policy_memory_mib = 0\n policy_deadline = \"5s\"\n ownership_policy {\n path = \"/p.wasm\"\n sha256 = \"abc\"\n }\n admin {\n allowed_uids = [-1]\n }\n}",
    )
    .unwrap_err();
    let fields: Vec<String> = err.0.iter().map(ConfigError::field).collect();
    for f in [
        "dockhand.mode",
        "dockhand.data_dir",
        "dockhand.policy_memory_mib",
        "dockhand.policy_deadline",
        "dockhand.ownership_policy.sha256",
        "dockhand.admin.allowed_uids",
    ] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    let ok = plugin_from_agent_hcl(&format!(
        "dockhand {{\n mode = \"audit\"\n kill_policy {{\n path = \"/k.wasm\"\n sha256 = \"{}\"\n }}\n max_actions_per_sweep = 0\n}}",
        "AB".repeat(32)
    ))
    .unwrap();
    assert_eq!(ok.dockhand.mode, PolicyMode::Audit);
    assert_eq!(
        ok.dockhand.kill_policy.unwrap().sha256.unwrap(),
        "ab".repeat(32)
    );
    assert_eq!(ok.dockhand.max_actions_per_sweep, 0);
}

#[test]
fn label_filter_is_optional_checked_and_names_its_field() {
    assert_eq!(PluginConfig::default().dockhand.label_filter, None);
    for filter in ["dockhand.fleet", "dockhand.fleet=batch=7"] {
        let ok = plugin_from_agent_hcl(&format!("dockhand {{\n label_filter = \"{filter}\"\n}}"))
            .unwrap();
        assert_eq!(ok.dockhand.label_filter.as_deref(), Some(filter));
    }
    for (filter, message) in [
        (
            "",
            "dockhand.label_filter: must not be empty (expected \"key\" or \"key=value\"; leave \
             it out to consider every container)",
        ),
        (
            "=batch",
            "dockhand.label_filter: has an empty label key in \"=batch\"; expected \"key\" or \
             \"key=value\"",
        ),
        (
            "my fleet=batch",
            "dockhand.label_filter: label key \"my fleet\" contains whitespace or control \
             characters; expected \"key\" or \"key=value\"",
        ),
    ] {
        let err = plugin_from_agent_hcl(&format!("dockhand {{\n label_filter = \"{filter}\"\n}}"))
            .unwrap_err();
        assert_eq!(messages(&err), vec![message.to_owned()], "{filter:?}");
        assert_eq!(err.0[0].field(), "dockhand.label_filter");
    }
    // A wrong wire type is a decode error on the same path.
    let bytes = encode(&obj(vec![(
        "dockhand",
        obj(vec![("label_filter", Value::from(7))]),
    )]));
    let err = PluginConfig::from_msgpack(&bytes).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].field(), "dockhand.label_filter", "{err}");
}

#[test]
fn daemon_sharing_defaults_to_the_builtin_driver_and_names_its_field() {
    assert_eq!(
        PluginConfig::default().dockhand.daemon,
        DaemonSharing::SharedWithBuiltinDriver
    );
    for (text, want) in [
        ("exclusive", DaemonSharing::Exclusive),
        (
            "shared-with-builtin-driver",
            DaemonSharing::SharedWithBuiltinDriver,
        ),
        ("shared-by-clients", DaemonSharing::SharedByClients),
    ] {
        let ok = plugin_from_agent_hcl(&format!("dockhand {{\n daemon = \"{text}\"\n}}")).unwrap();
        assert_eq!(ok.dockhand.daemon, want, "{text}");
        assert_eq!(want.as_str(), text);
    }
    let err = plugin_from_agent_hcl("dockhand {\n daemon = \"shared\"\n}").unwrap_err();
    assert_eq!(
        messages(&err),
        vec![
            "dockhand.daemon: must be \"exclusive\", \"shared-with-builtin-driver\" or \
             \"shared-by-clients\", found \"shared\""
                .to_owned()
        ]
    );
}

#[test]
fn infra_image_https_prefix_is_stripped() {
    let c = plugin_from_agent_hcl("infra_image = \"https://example.com/pause:1\"").unwrap();
    assert_eq!(c.infra_image, "example.com/pause:1");
}

// ---- task wire forms ---------------------------------------------------------------------

fn task_bytes(extra: &[u8]) -> Vec<u8> {
    // {"image": "redis", "port_map": <extra>}
    let mut v = hex("82 a5 69 6d 61 67 65 a5 72 65 64 69 73 a8 70 6f 72 74 5f 6d 61 70");
    v.extend_from_slice(extra);
    v
}

#[test]
fn port_map_every_wire_form_decodes_to_one_map() {
    // list(map(number)) {http=80, redis=6379} — reference §8.4 / vector 32.
    let t = TaskConfig::from_msgpack(&task_bytes(&hex(
        "91 82 a4 68 74 74 70 50 a5 72 65 64 69 73 cd 18 eb",
    )))
    .unwrap();
    assert_eq!(t.port_map.get("http"), Some(&80));
    assert_eq!(t.port_map.get("redis"), Some(&6379));
    // Two one-entry maps [{"a":1},{"b":2}] and a later duplicate overriding.
    let t = TaskConfig::from_msgpack(&task_bytes(&hex("93 81 a1 61 01 81 a1 62 02 81 a1 61 03")))
        .unwrap();
    assert_eq!(
        t.port_map.into_iter().collect::<Vec<_>>(),
        vec![("a".into(), 3), ("b".into(), 2)]
    );
    // Empty block [{}] and absent.
    assert!(
        TaskConfig::from_msgpack(&task_bytes(&hex("91 80")))
            .unwrap()
            .port_map
            .is_empty()
    );
    assert!(
        TaskConfig::from_msgpack(&task_bytes(&hex("c0")))
            .unwrap()
            .port_map
            .is_empty()
    );
    // Plain map: an error naming the field.
    let err = TaskConfig::from_msgpack(&task_bytes(&hex("81 a4 68 74 74 70 50"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port_map: expected list of maps of numbers, found map"
    );
}

#[test]
fn list_of_map_keys_merge_through_the_hcl_path() {
    let spec = task_config_spec();
    let bytes = apply_hcl(
        &spec,
        "image = \"redis\"\nlabels {\n a = \"1\"\n}\nlabels {\n a = \"2\"\n b = \"x\"\n}\nsysctl = { \"net.core.somaxconn\" = \"16384\" }\nulimit {\n nofile = \"1024:2048\"\n}\nlogging {\n type = \"syslog\"\n config {\n tag = \"web\"\n}\n}\nmount {\n type = \"volume\"\n target = \"/data\"\n volume_options {\n labels { x = \"y\" }\n driver_config {\n name = \"local\"\n options = [{ o = \"1\" }, { o = \"2\" }]\n }\n }\n}",
    );
    let t = TaskConfig::from_msgpack(&bytes).unwrap();
    assert_eq!(t.labels.get("a").map(String::as_str), Some("2"));
    assert_eq!(t.labels.get("b").map(String::as_str), Some("x"));
    assert_eq!(
        t.sysctl.get("net.core.somaxconn").map(String::as_str),
        Some("16384")
    );
    assert_eq!(
        t.ulimit.get("nofile"),
        Some(&Ulimit {
            soft: 1024,
            hard: 2048
        })
    );
    assert_eq!(t.logging.driver.as_deref(), Some("syslog"));
    assert_eq!(t.logging.config.get("tag").map(String::as_str), Some("web"));
    let MountKind::Volume {
        labels,
        driver,
        driver_options,
        ..
    } = &t.mounts[0].kind
    else {
        panic!("volume mount expected: {:?}", t.mounts[0]);
    };
    assert_eq!(labels.get("x").map(String::as_str), Some("y"));
    assert_eq!(driver.as_deref(), Some("local"));
    assert_eq!(driver_options.get("o").map(String::as_str), Some("2"));
}

#[test]
fn ulimit_values_are_one_or_two_integers() {
    let cases = [
        ("1024", Some((1024, 1024))),
        ("1024:2048", Some((1024, 2048))),
        (" 1024 : 2048 ", Some((1024, 2048))),
        ("-1", Some((-1, -1))),
        ("", None),
        (":", None),
        ("1024:", None),
        (":2048", None),
        ("1:2:3", None),
        ("unlimited", None),
        ("1.5", None),
        ("99999999999999999999", None),
    ];
    for (value, want) in cases {
        let got = Ulimit::parse(value).map(|u| (u.soft, u.hard));
        assert_eq!(got, want, "{value:?}");
    }
}

#[test]
fn task_rules_report_every_problem() {
    let bytes = apply_hcl(
        &task_config_spec(),
        "image = \"\"\ncommand = \" sleep\"\ncpu_cfs_period = 2000000\ndevices {\n container_path = \"/dev/x\"\n}\ndevices {\n host_path = \"/dev/fuse\"\n cgroup_permissions = \"rwx\"\n}\nulimit { nofile = \"\" }\nmount {\n type = \"nfs\"\n target = \"/x\"\n}\nmount {\n type = \"tmpfs\"\n source = \"/x\"\n target = \"/t\"\n}\nport_map { http = 0 }\nimage_pull_timeout = \"5 minutes\"\nipv4_address = \"300.1.1.1\"\nvolumes = [\"novolume\"]",
    );
    let err = TaskConfig::from_msgpack(&bytes).unwrap_err();
    let fields: Vec<String> = err.0.iter().map(ConfigError::field).collect();
    let msgs = messages(&err);
    for f in [
        "image",
        "command",
        "cpu_cfs_period",
        "devices[0].host_path",
        "devices[1].cgroup_permissions",
        "ulimit.nofile",
        "mount[0].type",
        "mount[1].source",
        "port_map.http",
        "image_pull_timeout",
        "ipv4_address",
        "volumes[0]",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f} missing from {msgs:#?}");
    }
    assert!(msgs.contains(&"image: image name required for docker driver".to_owned()));
    assert!(msgs.contains(&"command: command contains extra white space: \" sleep\"".to_owned()));
}

#[test]
fn ignored_keys_are_accepted_with_warnings() {
    let bytes = apply_hcl(
        &task_config_spec(),
        "image = \"redis\"\ncpuset_cpus = \"0-1\"\ncontainer_exists_attempts = 3\nauth {\n email = \"a@b\"\n}",
    );
    let t = TaskConfig::from_msgpack(&bytes).unwrap();
    assert_eq!(t.warnings.len(), 3, "{:?}", t.warnings);
}

#[test]
fn validate_against_reports_all_plugin_dependent_problems() {
    let bytes = apply_hcl(
        &task_config_spec(),
        "image = \"redis\"\nprivileged = true\nruntime = \"kata\"\ncap_add = [\"net_admin\", \"CHOWN\", \"sys_time\"]\nvolume_driver = \"nfs\"\nvolumes = [\"/etc:/host-etc\", \"local/x:/x\"]\nmount {\n target = \"/data\"\n source = \"vol\"\n}\nmount {\n type = \"bind\"\n source = \"/srv\"\n target = \"/srv\"\n}\npid_mode = \"host\"\npids_limit = 500",
    );
    let task = TaskConfig::from_msgpack(&bytes).unwrap();
    let plugin = PluginConfig {
        pids_limit: Some(100),
        ..PluginConfig::default()
    };
    let errors = task.validate_against(&plugin).unwrap_err();
    let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expect = [
        "privileged: Docker privileged mode is disabled on this Nomad agent",
        "cap_add: driver does not allow the following capabilities: net_admin, sys_time",
        "volume_driver: volumes are not enabled; cannot use volume driver \"nfs\"",
        "volumes[0]: volumes are not enabled; cannot mount host path: \"/etc\"",
        "mount[0]: volumes are not enabled; cannot mount volume: \"vol\"",
        "mount[1]: volumes are not enabled; cannot mount host path: \"/srv\"",
        "pids_limit: pids_limit cannot be greater than nomad plugin config pids_limit: 100",
    ];
    for e in expect {
        assert!(msgs.contains(&e.to_owned()), "{e} missing from {msgs:#?}");
    }
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("runtime: requested runtime \"kata\" is not allowed"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("pid_mode: cannot apply \"pid_mode\" configuration"))
    );
    assert_eq!(msgs.len(), 9, "{msgs:#?}");

    // The same task on a permissive agent is fine.
    let mut open = plugin_from_agent_hcl(
        "allow_privileged = true\nallow_caps = [\"all\"]\nallow_runtimes = [\"kata\"]\nvolumes {\n enabled = true\n}",
    )
    .unwrap();
    open.pids_limit = None;
    assert_eq!(task.validate_against(&open), Ok(()));
}

#[test]
fn allowed_modes_globs_permit_matching_modes() {
    let plugin =
        plugin_from_agent_hcl("allowed_modes {\n pid = [\"host\"]\n ipc = [\"container:*\"]\n}")
            .unwrap();
    let bytes = apply_hcl(
        &task_config_spec(),
        "image = \"x\"\npid_mode = \"host\"\nipc_mode = \"container:abc\"",
    );
    let task = TaskConfig::from_msgpack(&bytes).unwrap();
    assert_eq!(task.validate_against(&plugin), Ok(()));
}

#[test]
fn every_problem_names_its_field_for_bad_wire_types() {
    let bytes = encode(&obj(vec![
        (
            "gc",
            obj(vec![(
                "dangling_containers",
                obj(vec![("period", obj(vec![]))]),
            )]),
        ),
        ("allow_caps", Value::from("CHOWN")),
        ("pids_limit", Value::from("lots")),
    ]));
    let err = PluginConfig::from_msgpack(&bytes).unwrap_err();
    let msgs = messages(&err);
    assert!(
        msgs.contains(&"gc.dangling_containers.period: expected string, found map".to_owned()),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&"allow_caps: expected list, found string".to_owned()),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("pids_limit: ")),
        "{msgs:?}"
    );
}

#[test]
fn empty_body_node_applies_plugin_defaults() {
    let (value, diags) = hcldec::apply(&plugin_config_spec(), &Node::new(Input::Null));
    assert!(diags.is_empty());
    assert_eq!(
        PluginConfig::from_msgpack(&encode(&value)).unwrap(),
        PluginConfig::default()
    );
}

#[test]
fn negative_and_unparsable_durations_name_the_field() {
    let err = plugin_from_agent_hcl(
        "gc {\n dangling_containers {\n period = \"-5m\"\n }\n}\ninfra_image_pull_timeout = \"soon\"\ndockhand {\n docker_call_timeout = \"0s\"\n}",
    )
    .unwrap_err();
    let msgs = messages(&err);
    assert!(
        msgs.contains(&"gc.dangling_containers.period: failed to parse 'period' duration: duration \"-5m\" is negative".to_owned()),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("infra_image_pull_timeout: failed to parse 'infra_image_pull_timeout' duration: invalid duration \"soon\"")),
        "{msgs:#?}"
    );
    assert!(
        msgs.contains(&"dockhand.docker_call_timeout: must be greater than zero".to_owned()),
        "{msgs:#?}"
    );
}

#[test]
fn plugin_wide_fallbacks_for_pull_timeout_and_logging() {
    let plugin =
        plugin_from_agent_hcl("image_pull_timeout = \"12m\"\nlogging {\n type = \"journald\"\n}")
            .unwrap();
    let plain = TaskConfig::from_msgpack(&apply_hcl(&task_config_spec(), "image = \"x\"")).unwrap();
    assert_eq!(
        plain.effective_image_pull_timeout(plugin.image_pull_timeout),
        Duration::from_secs(720)
    );
    assert_eq!(plain.effective_logging(&plugin.logging).r#type, "journald");
    let own = TaskConfig::from_msgpack(&apply_hcl(
        &task_config_spec(),
        "image = \"x\"\nimage_pull_timeout = \"1m\"\nlogging {\n driver = \"syslog\"\n}",
    ))
    .unwrap();
    assert_eq!(
        own.effective_image_pull_timeout(plugin.image_pull_timeout),
        Duration::from_secs(60)
    );
    assert_eq!(own.effective_logging(&plugin.logging).r#type, "syslog");
}
