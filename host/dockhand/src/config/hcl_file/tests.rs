//! File front ends.

use super::*;

#[test]
fn agent_config_finds_docker_compatible_plugins_with_lines() {
    let text = "data_dir = \"/opt/nomad\"\n\nplugin \"raw_exec\" {\n config { enabled = true }\n}\n\nplugin \"docker\" {\n  config {\n    gc {\n      image = false\n    }\n  }\n}\nplugin \"dockhand\" {}\n";
    let parsed = parse_file(text).unwrap();
    assert_eq!(parsed.plugins.len(), 2);
    assert_eq!(parsed.plugins[0].name, "docker");
    assert_eq!(parsed.plugins[0].location, "line 7");
    let Input::Object(entries) = &parsed.plugins[0].config.value else {
        panic!()
    };
    assert_eq!(entries[0].0, "gc");
    assert_eq!(entries[0].1.line, Some(9));
    assert!(matches!(&entries[0].1.value, Input::List(items) if items.len() == 1));
    assert_eq!(parsed.plugins[1].config.value, Input::Null);
    assert_eq!(parsed.skipped.len(), 1);
}

#[test]
fn jobspec_tasks_with_and_without_groups() {
    let text = r#"
job "web" {
  group "cache" {
    task "redis" {
      driver = "docker"
      config {
        image = "redis:7"
      }
    }
    task "other" {
      driver = "exec"
    }
  }
}
"#;
    let parsed = parse_file(text).unwrap();
    assert_eq!(parsed.tasks.len(), 1);
    assert_eq!(parsed.tasks[0].name, "web/cache/redis");
    assert_eq!(parsed.tasks[0].location, "line 4");
    assert_eq!(
        parsed.skipped,
        vec!["task \"web/cache/other\" (driver \"exec\")".to_owned()]
    );
}

#[test]
fn config_assignment_in_task_is_reported() {
    let text = "job \"j\" {\n group \"g\" {\n task \"t\" {\n driver = \"docker\"\n config = { image = \"x\" }\n }\n }\n}";
    let parsed = parse_file(text).unwrap();
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].0, Some(5));
}

#[test]
fn syntax_errors_carry_positions() {
    let err = parse_file("plugin \"docker\" {\n config {\n gc = \n}\n").unwrap_err();
    assert!(
        matches!(err, FileError::Hcl { line, .. } if line >= 3),
        "{err}"
    );
    let err = parse_file("{\"Job\": {\"TaskGroups\": [}").unwrap_err();
    assert!(matches!(err, FileError::Json { line: 1, .. }), "{err}");
    assert!(matches!(
        parse_file("x = 1").unwrap_err(),
        FileError::Unrecognized(_)
    ));
    assert!(matches!(
        parse_file("{\"a\": 1}").unwrap_err(),
        FileError::Unrecognized(_)
    ));
}

#[test]
fn json_job_and_agent_forms() {
    let job = r#"{"Job": {"ID": "web", "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "docker", "Config": {"image": "redis", "port_map": [{"http": 80}]}},
        {"Name": "u", "Driver": "exec", "Config": {}}]}]}}"#;
    let parsed = parse_file(job).unwrap();
    assert_eq!(parsed.tasks.len(), 1);
    assert_eq!(parsed.tasks[0].name, "web/g/t");
    assert_eq!(parsed.tasks[0].location, "TaskGroups[0].Tasks[0]");
    for agent in [
        r#"{"plugin": {"docker": {"config": {"allow_privileged": true}}}}"#,
        r#"{"plugin": [{"docker": [{"config": [{"allow_privileged": true}]}]}]}"#,
    ] {
        let parsed = parse_file(agent).unwrap();
        assert_eq!(parsed.plugins.len(), 1, "{agent}");
        let Input::Object(entries) = &parsed.plugins[0].config.value else {
            panic!("{agent}")
        };
        assert_eq!(entries[0].0, "allow_privileged");
    }
}

#[test]
fn labelled_blocks_inside_config_nest_like_blockattrs() {
    let text = "job \"j\" {\n task \"t\" {\n driver = \"docker\"\n config {\n meta \"a\" {\n x = 1\n }\n }\n }\n}";
    let parsed = parse_file(text).unwrap();
    let Input::Object(entries) = &parsed.tasks[0].config.value else {
        panic!()
    };
    let Input::List(items) = &entries[0].1.value else {
        panic!()
    };
    let Input::Object(inner) = &items[0].value else {
        panic!()
    };
    assert_eq!(inner[0].0, "a");
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse_file(&s);
    }

    #[test]
    fn arbitrary_hclish_text_never_panics(s in "[a-z{}\\[\\]=\" \n:,0-9]{0,120}") {
        if let Ok(parsed) = parse_file(&s) {
            for t in &parsed.tasks {
                let _ = crate::cli::config_validate::check_task(&t.config, &crate::config::PluginConfig::default(), crate::cli::config_validate::AgentConfig::Defaults);
            }
            for p in &parsed.plugins {
                let _ = crate::cli::config_validate::check_plugin(&p.config);
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let text = format!(
            "job \"j\" {{\n task \"t\" {{\n driver = \"docker\"\n config {{\n x = {}{}\n }}\n }}\n}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let parsed = parse_file(&text);
        if depth > 1000 {
            assert!(parsed.is_err());
        } else if let Ok(p) = parsed {
            let _ = crate::cli::config_validate::check_task(
                &p.tasks[0].config,
                &crate::config::PluginConfig::default(),
                crate::cli::config_validate::AgentConfig::Defaults,
            );
        }
        let json = format!(
            "{{\"Job\": {{\"TaskGroups\": [{{\"Tasks\": [{{\"Driver\": \"docker\", \"Config\": {{\"x\": {}{}}}}}]}}]}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        // serde_json stops at 128 levels: an error, never an overflow.
        assert!(parse_file(&json).is_err());
    }
}
