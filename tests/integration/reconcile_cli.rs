//! `dockhand reconcile --once` end to end, and the admin API's `Sweep` behind it: the
//! standalone dry run (no plugin, no tracked set, said in the header), the refusal of a real
//! sweep without a plugin, sweeps run by the real plugin binary with its tracked set, and a
//! policy hot-swapped while a sweep is in flight ([`hot_swap`]); the `Sweep` method in-process
//! ([`on_demand`]).
//!
//! Nomad's minimum `creation_grace` is 1m, so every test that expects candidates waits for its
//! containers to be a minute old. Every sweep is fenced with a label filter to the test's own
//! containers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dockhand::reconcile::NODE_FILE_NAME;

use crate::harness::TaskDirs;
use crate::lifecycle::{start, task_config};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::reconcile::{
    Kind, SLEEPER, assert_still_running, dockhand_labels, labelled_orphan, make, plain_container,
    state, uuid_for,
};
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

mod hot_swap;
mod on_demand;

/// Past the 1m creation grace, with a margin.
const AGED: Duration = Duration::from_secs(62);
/// The node the tasks' `TaskConfig` names (see `lifecycle::task_config`).
const TASK_NODE: &str = "node";

/// Runs `dockhand` with `args`: (exit status, stdout, stderr).
pub(crate) fn dockhand(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(args)
        .output()
        .expect("run dockhand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dockhand` with `args`, expecting exit status `code` and JSON on stdout.
fn dockhand_json(args: &[&str], code: i32) -> serde_json::Value {
    let (status, stdout, stderr) = dockhand(args);
    assert_eq!(status, code, "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// An agent config file with a `plugin "docker"` stanza whose `config` body is `body`.
fn agent_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("agent.hcl");
    std::fs::write(
        &path,
        format!("plugin \"docker\" {{\n config {{\n{body}\n }}\n}}\n"),
    )
    .expect("write agent config");
    path
}

/// The JSON object of container `id` in a `--format json` output.
fn container<'a>(json: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    json["containers"]
        .as_array()
        .expect("containers array")
        .iter()
        .find(|c| c["id"] == id)
}

/// Waits until `created` is [`AGED`] ago.
async fn until_aged(created: Instant) {
    tokio::time::sleep(AGED.saturating_sub(created.elapsed())).await;
}

/// The audit file's records (none when it does not exist).
fn audit_lines(data_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

#[tokio::test]
async fn standalone_dry_run_says_it_has_no_tracked_set_and_reports_each_container() {
    let case = "reconcile_cli_standalone";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let ours = labelled_orphan(&docker, &guard, 1, "node-a").await;
    let foreign = labelled_orphan(&docker, &guard, 2, "node-b").await;
    let plain = plain_container(&docker, &guard).await;
    // After the last creation: the grace rounds each listed creation second up.
    let created = Instant::now();

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nothing-here.sock");
    let data_dir = dir.path().join("data");
    let config = agent_config(
        dir.path(),
        &format!(
            "gc {{\n dangling_containers {{\n creation_grace = \"1m\"\n }}\n}}\n\
             dockhand {{\n label_filter = \"{TEST_CASE_LABEL}={case}\"\n \
             data_dir = \"{}\"\n admin {{\n socket = \"{}\"\n }}\n}}",
            data_dir.display(),
            socket.display()
        ),
    );
    let config = config.to_str().expect("utf-8 path");
    let base = [
        "reconcile",
        "--once",
        "--config",
        config,
        "--node-id",
        "node-a",
    ];

    // A real sweep needs a plugin's tracked set: refused, nothing touched.
    let (code, stdout, stderr) = dockhand(&base);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "no dockhand plugin answers on {}",
            socket.display()
        )) && stderr.contains("refusing")
            && stderr.contains("--dry-run"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");

    // Young containers are within the configured grace: listed, not candidates.
    let json = dockhand_json(&[&base[..], &["--dry-run", "--format", "json"]].concat(), 0);
    assert_eq!(json["listed"], 3, "{json}");
    assert_eq!(json["skipped_young"], 3, "{json}");
    assert_eq!(json["containers"].as_array().map(Vec::len), Some(0));

    until_aged(created).await;
    let (code, table, stderr) = dockhand(&[&base[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{table}{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "# standalone dry run: no dockhand plugin answers on {}",
            socket.display()
        )) && lines[0].contains("every container is treated as untracked"),
        "{table}"
    );
    let header = lines
        .iter()
        .position(|l| l.starts_with("CONTAINER"))
        .expect("table header");
    assert_eq!(
        lines[header].split_whitespace().collect::<Vec<_>>(),
        ["CONTAINER", "IMAGE", "AGE", "OWNERSHIP", "ACTION", "REASON"]
    );
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("({})", &id[..12])))
            .unwrap_or_else(|| panic!("no row for {id}:\n{table}"))
            .to_owned()
    };
    let alloc = uuid_for(case, 1);
    assert!(row(&ours).contains(&format!("owned({alloc})")), "{table}");
    assert!(
        row(&ours).contains("stop(SIGTERM,30s)+remove [would-do]"),
        "{table}"
    );
    assert!(row(&foreign).contains("not-nomad"), "{table}");
    assert!(row(&plain).contains("not-nomad"), "{table}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("3 listed, 0 tracked, 0 within grace, 3 candidates")),
        "{table}"
    );

    let json = dockhand_json(&[&base[..], &["--dry-run", "--format", "json"]].concat(), 0);
    assert_eq!(json["source"], "standalone", "{json}");
    assert_eq!(json["tracked_set"], "none", "{json}");
    assert_eq!(json["dry_run"], true, "{json}");
    assert_eq!(json["status"], "completed", "{json}");
    assert_eq!(json["containers"].as_array().map(Vec::len), Some(3));
    let c = container(&json, &ours).expect("our orphan reported");
    assert_eq!(c["name"], format!("{case}-web-{alloc}"));
    assert_eq!(c["ownership"], "owned");
    assert_eq!(c["alloc_id"], alloc);
    assert_eq!(c["action"], "stop");
    assert_eq!(c["outcome"], "would-do");
    assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}");
    for id in [&foreign, &plain] {
        let c = container(&json, id).expect("reported");
        assert_eq!(c["ownership"], "not-nomad", "{c}");
        assert_eq!(c["outcome"], "no-action", "{c}");
    }

    // Without --node-id: the node the plugin saved in its data dir, or none.
    let without_flag = ["reconcile", "--once", "--config", config, "--dry-run"];
    let node_file = data_dir.join(NODE_FILE_NAME);
    let (code, table, stderr) = dockhand(&without_flag);
    assert_eq!(code, 0, "{table}{stderr}");
    assert!(
        table.lines().next().is_some_and(|l| l.contains(&format!(
            "node id unknown ({} does not exist; give --node-id)",
            node_file.display()
        ))),
        "{table}"
    );
    let json = dockhand_json(&[&without_flag[..], &["--format", "json"]].concat(), 0);
    for id in [&ours, &foreign] {
        let c = container(&json, id).expect("reported");
        assert_eq!(c["ownership"], "unknown", "{c}");
    }
    std::fs::create_dir_all(&data_dir).expect("data dir");
    std::fs::write(&node_file, r#"{"id":"node-b","name":"b"}"#).expect("node file");
    let json = dockhand_json(&[&without_flag[..], &["--format", "json"]].concat(), 0);
    assert!(
        json["note"].as_str().is_some_and(|n| n.contains(&format!(
            "node id node-b (saved by the plugin in {})",
            node_file.display()
        ))),
        "{json}"
    );
    let theirs = container(&json, &foreign).expect("reported");
    assert_eq!(theirs["ownership"], "owned", "{theirs}");
    assert_eq!(theirs["alloc_id"], uuid_for(case, 2));
    assert_eq!(
        container(&json, &ours).expect("reported")["ownership"],
        "not-nomad"
    );
    assert_still_running(&docker, &[&ours, &foreign, &plain], "a dry run touched it").await;
}

#[tokio::test]
async fn reconcile_once_through_the_plugin_uses_its_tracked_set() {
    let case = "reconcile_cli_plugin";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let private = Private::new();
    let body = private.config(
        &format!(" mode = \"enforce\"\n label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        "gc {\n dangling_containers {\n creation_grace = \"1m\"\n }\n}\n",
    );
    let plugin = started(&body).await;
    let socket = private.socket();
    let socket = socket.to_str().expect("utf-8 path");
    let mut admin = admin_client(&plugin, &private.socket()).await;
    let status_node = || {
        let (code, out, err) = dockhand(&["status", "--socket", socket]);
        assert_eq!(code, 0, "{out}{err}");
        out.lines()
            .find_map(|l| l.strip_prefix("node: "))
            .unwrap_or_else(|| panic!("no node line: {out}"))
            .to_owned()
    };
    assert_eq!(
        status_node(),
        "not known yet (learnt from the first task the plugin starts or recovers)"
    );

    let dirs = TaskDirs::create("web");
    let task = task_config(&guard, &dirs, "web", SLEEPER, Vec::new());
    start(&mut plugin.driver(), task).await.expect("StartTask");
    assert_eq!(status_node(), format!("{TASK_NODE} ({TASK_NODE})"));
    let task_container = guard.remaining().await;
    assert_eq!(task_container.len(), 1, "{task_container:?}");
    let task_container = task_container[0].clone();
    let alloc = uuid_for(case, 1);
    let orphan = make(
        &docker,
        &guard,
        Kind {
            name: format!("{case}-web-{alloc}"),
            labels: dockhand_labels(alloc.clone(), TASK_NODE),
            start: true,
            ..Kind::default()
        },
    )
    .await;
    until_aged(Instant::now()).await;

    // Dry run through the plugin: its tracked set applies, nothing is done or audited.
    let json = dockhand_json(
        &[
            "reconcile",
            "--once",
            "--dry-run",
            "--socket",
            socket,
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(json["source"], "plugin", "{json}");
    assert_eq!(json["tracked_set"], "plugin", "{json}");
    assert_eq!(json["status"], "completed", "{json}");
    assert_eq!(json["listed"], 2, "{json}");
    assert_eq!(json["skipped_tracked"], 1, "{json}");
    assert!(container(&json, &task_container).is_none(), "{json}");
    let c = container(&json, &orphan).expect("the orphan is a candidate");
    assert_eq!(c["ownership"], "owned", "{c}");
    assert_eq!(c["alloc_id"], alloc, "{c}");
    assert_eq!(c["outcome"], "would-do", "{c}");
    assert_eq!(state(&docker, &orphan).await, Some(true));
    assert!(audit_lines(&private.data_dir()).is_empty());

    let (code, table, stderr) = dockhand(&["reconcile", "--once", "--dry-run", "--socket", socket]);
    assert_eq!(code, 0, "{table}{stderr}");
    assert!(
        table.starts_with(&format!("# sweep run by the dockhand plugin on {socket} with its tracked set (1 tracked containers skipped); dry run")),
        "{table}"
    );

    // A real sweep, asked through the agent config's socket: the orphan goes, the task stays.
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = agent_config(config_dir.path(), &body);
    let json = dockhand_json(
        &[
            "reconcile",
            "--once",
            "--config",
            config.to_str().expect("utf-8"),
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(json["source"], "plugin", "{json}");
    assert_eq!(json["dry_run"], false, "{json}");
    assert_eq!(json["report_only"], false, "{json}");
    let c = container(&json, &orphan).expect("the orphan is a candidate");
    assert_eq!(c["outcome"], "done", "{c}");
    assert_eq!(state(&docker, &orphan).await, None, "stopped and removed");
    assert_eq!(state(&docker, &task_container).await, Some(true));
    let audited: Vec<_> = audit_lines(&private.data_dir())
        .into_iter()
        .filter(|l| l["record"] != "summary")
        .map(|l| {
            (
                l["record"].as_str().unwrap_or_default().to_owned(),
                l["container_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        audited,
        vec![
            ("intent".to_owned(), orphan.clone()),
            ("outcome".to_owned(), orphan.clone())
        ]
    );

    // The same RPC, directly: the plugin's counters saw one real sweep and no dry run.
    let status = admin.status().await.expect("status");
    let metrics = status.metrics.expect("a reconciler's counters");
    assert_eq!(metrics.sweeps, 1, "{metrics:?}");
}
