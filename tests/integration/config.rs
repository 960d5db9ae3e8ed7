//! `dockhand config validate` end to end over the fixture files in `tests/fixtures/config/`.
//!
//! These drive the subcommand's library entry point (`cli::config_validate::run`), which the
//! `dockhand` binary calls for `dockhand config validate FILE…`.

use std::path::PathBuf;

use dockhand::cli::config_validate::{StanzaKind, Validity, run, validate_files};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/config")
        .join(name)
}

/// Run on `names`, returning the outcome and the printed output.
fn validate(names: &[&str]) -> (Validity, String) {
    let files: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let mut out = Vec::new();
    let outcome = run(&files, &mut out).expect("writing to a Vec cannot fail");
    (outcome, String::from_utf8(out).expect("utf-8 output"))
}

fn assert_contains(output: &str, needle: &str) {
    assert!(
        output.contains(needle),
        "expected {needle:?} in output:\n{output}"
    );
}

#[test]
fn good_agent_configs_validate() {
    for name in ["agent-docker.hcl", "agent-dockhand.hcl", "agent.json"] {
        let (outcome, output) = validate(&[name]);
        assert_eq!(outcome, Validity::Valid, "{name}:\n{output}");
        assert_eq!(outcome.code(), 0);
        assert_contains(&output, "1 checked: 1 ok, 0 invalid");
    }
}

#[test]
fn bad_agent_config_reports_every_problem_with_lines() {
    let (outcome, output) = validate(&["agent-bad.hcl"]);
    assert_eq!(outcome, Validity::Invalid, "{output}");
    assert_eq!(outcome.code(), 1);
    let file = fixture("agent-bad.hcl").display().to_string();
    assert_contains(
        &output,
        &format!(
            "{file}:11: error: plugin \"docker\": gpu_runtime_name: Invalid label: no argument or block type is named \"gpu_runtime_name\""
        ),
    );
    assert_contains(
        &output,
        &format!(
            "{file}:10: error: plugin \"docker\": allow_privileged: Incorrect attribute value type: bool required, found string"
        ),
    );
    assert_contains(
        &output,
        &format!(
            "{file}:6: error: plugin \"docker\": gc.dangling_containers.creation_grace: creation_grace is less than minimum, 1m0s"
        ),
    );
    assert_contains(
        &output,
        &format!(
            "{file}:9: error: plugin \"docker\": pull_activity_timeout: pull_activity_timeout is less than minimum, 1m0s"
        ),
    );
    assert_contains(
        &output,
        "gc.image_delay: failed to parse 'image_delay' duration: unknown unit \"d\"",
    );
    assert_contains(
        &output,
        "dockhand.mode: must be \"audit\" or \"enforce\", found \"yolo\"",
    );
    let report = validate_files(&[fixture("agent-bad.hcl")]);
    assert_eq!(report.stanzas.len(), 1);
    assert_eq!(report.stanzas[0].errors(), 6, "{output}");
}

#[test]
fn syntax_errors_are_reported_not_panics() {
    let (outcome, output) = validate(&["agent-syntax-error.hcl", "job-malformed.json"]);
    assert_eq!(outcome, Validity::Invalid);
    assert_contains(&output, "HCL syntax error");
    assert_contains(&output, "JSON syntax error");
    assert_contains(&output, "2 checked: 0 ok, 2 invalid");
}

#[test]
fn every_port_map_form_validates_and_other_drivers_are_skipped() {
    let (outcome, output) = validate(&["job-port-map-forms.hcl"]);
    assert_eq!(outcome, Validity::Valid, "{output}");
    assert_contains(&output, "4 checked: 4 ok, 0 invalid");
    assert!(!output.contains("not-ours"), "{output}");
    let report = validate_files(&[fixture("job-port-map-forms.hcl")]);
    let names: Vec<&str> = report.stanzas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "forms/web/block",
            "forms/web/assignment",
            "forms/web/list",
            "forms/web/repeated-blocks"
        ]
    );
    assert!(report.stanzas.iter().all(|s| s.kind == StanzaKind::Task));
}

#[test]
fn json_api_job_validates() {
    let (outcome, output) = validate(&["job.json"]);
    assert_eq!(outcome, Validity::Valid, "{output}");
    assert_contains(&output, "api/g/t");
}

#[test]
fn plain_object_where_list_of_maps_expected_is_an_error() {
    let (outcome, output) = validate(&["job-plain-object.json"]);
    assert_eq!(outcome, Validity::Invalid);
    assert_contains(
        &output,
        "port_map: Incorrect attribute value type: list of map of number required, found object",
    );
    assert_contains(
        &output,
        "labels[0].b: Incorrect attribute value type: string required, found list",
    );
    // Numbers convert to strings in list(map(string)), as go-cty does.
    assert!(!output.contains("labels[0].a"), "{output}");
}

#[test]
fn bad_job_reports_schema_and_plugin_dependent_problems() {
    let (outcome, output) = validate(&["job-bad.hcl"]);
    assert_eq!(outcome, Validity::Invalid);
    let file = fixture("job-bad.hcl").display().to_string();
    assert_contains(
        &output,
        &format!("{file}:7: error: task \"bad/g/t\": comand: Invalid label"),
    );
    assert_contains(
        &output,
        &format!(
            "{file}:10: error: task \"bad/g/t\": cpu_cfs_period: Incorrect attribute value type: a number is required"
        ),
    );
    assert_contains(
        &output,
        "privileged: Docker privileged mode is disabled on this Nomad agent",
    );
    assert_contains(
        &output,
        "cap_add: driver does not allow the following capabilities: sys_admin",
    );
    assert_contains(
        &output,
        "runtime: requested runtime \"kata\" is not allowed",
    );
    assert_contains(
        &output,
        "volumes[0]: volumes are not enabled; cannot mount host path: \"/etc\"",
    );
    assert_contains(
        &output,
        &format!(
            "{file}:14: error: task \"bad/g/t\": ulimit.nofile: Malformed ulimit specification"
        ),
    );
}

#[test]
fn tasks_are_checked_against_the_agent_config_given_alongside() {
    // Alone: the agent-dependent checks are warnings against the defaults.
    let (alone, output) = validate(&["job-privileged.hcl"]);
    assert_eq!(alone, Validity::Valid, "{output}");
    assert_contains(
        &output,
        "warning: task \"priv/g/t\": privileged: Docker privileged mode is disabled",
    );
    assert_contains(&output, "tasks checked against built-in plugin defaults");

    let (together, output) = validate(&["agent-dockhand.hcl", "job-privileged.hcl"]);
    assert_eq!(together, Validity::Valid, "{output}");
    assert_contains(&output, "tasks checked against plugin \"dockhand\" from");
    let report = validate_files(&[fixture("agent-dockhand.hcl"), fixture("job-privileged.hcl")]);
    let task = report
        .stanzas
        .iter()
        .find(|s| s.kind == StanzaKind::Task)
        .expect("task row");
    assert!(
        task.checked_against
            .as_deref()
            .unwrap_or_default()
            .starts_with("plugin \"dockhand\" from")
    );
}

#[test]
fn summary_table_lists_every_stanza() {
    let (outcome, output) = validate(&["agent-docker.hcl", "job-bad.hcl", "missing-file.hcl"]);
    assert_eq!(outcome, Validity::Invalid);
    assert_contains(&output, "cannot read file");
    let header = output
        .lines()
        .find(|l| l.starts_with("FILE"))
        .expect("table header");
    for col in ["KIND", "NAME", "RESULT", "ERRORS", "WARNINGS"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = output
        .lines()
        .skip_while(|l| !l.starts_with("FILE"))
        .skip(1)
        .take(3)
        .collect();
    assert!(
        rows[0].contains("plugin") && rows[0].contains("docker") && rows[0].contains(" ok "),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("task") && r.contains("bad/g/t") && r.contains("invalid")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("file") && r.contains("missing-file.hcl")),
        "{rows:?}"
    );
    assert_contains(&output, "3 checked: 1 ok, 2 invalid");
}

/// `dockhand config validate` as an operator runs it: exit status and report on stdout.
fn validate_with_binary(names: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["config", "validate"])
        .args(names.iter().map(|n| fixture(n)))
        .output()
        .expect("run dockhand")
}

#[test]
fn the_cli_exits_0_on_valid_files_and_1_on_any_error() {
    let good = validate_with_binary(&["agent-docker.hcl", "job-port-map-forms.hcl", "job.json"]);
    let text = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{text}");

    let bad = validate_with_binary(&["agent-docker.hcl", "job-bad.hcl"]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert_contains(&text, "job-bad.hcl");

    let broken = validate_with_binary(&["agent-syntax-error.hcl"]);
    assert_eq!(broken.status.code(), Some(1));

    let missing = validate_with_binary(&[]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "clap refuses a call without files"
    );
}

#[test]
fn values_only_nomad_can_evaluate_are_skipped_with_a_warning() {
    let out = validate_with_binary(&["job-unknown-values.hcl"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let file = fixture("job-unknown-values.hcl").display().to_string();
    for (line, field, source) in [
        (22, "image", "`local.image`"),
        (26, "args[1]", "`<<EOT…`"),
        (31, "shm_size", "`var.shm`"),
        (32, "work_dir", "`${NOMAD_TASK_DIR}/data`"),
        (34, "labels[0].version", "`${var.tag}`"),
    ] {
        assert_contains(
            &text,
            &format!(
                "{file}:{line}: warning: task \"unknowns/g/t\": {field}: value {source} is only known when Nomad evaluates the job; not checked"
            ),
        );
    }
    // No finding is an error (matched as a finding, so a checkout path with "error" in it
    // does not count).
    assert!(!text.contains(": error: "), "{text}");
    assert!(!text.contains("image name required"), "{text}");
    assert!(!text.contains("found null"), "{text}");
}

#[test]
fn agent_dependent_checks_warn_without_an_agent_config_and_fail_with_one() {
    let alone = validate_with_binary(&["job-agent-settings.hcl"]);
    let text = String::from_utf8_lossy(&alone.stdout);
    assert_eq!(alone.status.code(), Some(0), "warnings only:\n{text}");
    for (field, setting) in [
        ("privileged", "`allow_privileged`"),
        ("cap_add", "`allow_caps`"),
        ("runtime", "`allow_runtimes`"),
        ("volumes[0]", "`volumes.enabled`"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("task \"agent/g/t\": {field}: ")))
            .unwrap_or_else(|| panic!("no finding for {field}:\n{text}"));
        assert!(line.contains(": warning: "), "{line}");
        assert!(
            line.contains(&format!("change {setting} in the agent's plugin config")),
            "{line}"
        );
    }
    assert_contains(&text, "agent/g/t  ok");

    // With an agent config that does not allow them, they are errors, as before.
    let with_agent = validate_with_binary(&["agent-docker.hcl", "job-agent-settings.hcl"]);
    let text = String::from_utf8_lossy(&with_agent.stdout);
    assert_eq!(with_agent.status.code(), Some(1), "{text}");
    for needle in [
        "privileged: Docker privileged mode is disabled on this Nomad agent",
        "cap_add: driver does not allow the following capabilities: sys_admin",
        "runtime: requested runtime \"kata\" is not allowed",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?}:\n{text}"));
        assert!(line.contains(": error: "), "{line}");
        assert!(!line.contains("agent config given"), "{line}");
    }
    // agent-docker.hcl enables volumes: the host path is fine there.
    assert!(!text.contains("volumes[0]"), "{text}");
}
