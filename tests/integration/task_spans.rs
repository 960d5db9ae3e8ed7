//! Every line the plugin logs while serving a task RPC carries that task's `task_id` and
//! `alloc_id` (from the operation's span), so one task can be followed in the plugin's log.

use crate::harness::{TaskDirs, configured_plugin};
use crate::lifecycle::{destroy, start, task_config};
use crate::support::{TestContainers, docker_with_image};

#[tokio::test]
async fn a_line_logged_inside_start_task_carries_the_task_id() {
    let Some(docker) = docker_with_image("task_spans_start").await else {
        return;
    };
    let guard = TestContainers::new(&docker, "task_spans_start").await;
    let dirs = TaskDirs::create("spans");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    // An invalid DNS server is logged (without naming the task) and skipped.
    let extra = vec![(
        "dns_servers",
        rmpv::Value::Array(vec![rmpv::Value::from("not-an-ip")]),
    )];
    let task = task_config(&guard, &dirs, "spans", "sleep 600", extra);
    let (task_id, alloc_id) = (task.id.clone(), task.alloc_id.clone());
    start(&mut driver, task).await.expect("StartTask");
    destroy(&mut driver, &task_id, true)
        .await
        .expect("DestroyTask");

    let lines: Vec<serde_json::Value> = plugin
        .stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let dns = lines
        .iter()
        .find(|l| {
            l["@message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid ip address for container dns server"))
        })
        .unwrap_or_else(|| panic!("no DNS warning in {lines:?}"));
    assert_eq!(dns["task_id"], task_id.as_str(), "{dns}");
    assert_eq!(dns["alloc_id"], alloc_id.as_str(), "{dns}");
    assert_eq!(dns["op"], "start_task", "{dns}");
}
