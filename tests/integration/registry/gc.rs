//! `gc { image, image_delay }`: pulled images are removed `image_delay` after the last task
//! using them is destroyed, never while another task uses them, and never with `image = false`.

use std::time::{Duration, Instant};

use super::{plugin_with, task};
use crate::harness::TaskDirs;
use crate::lifecycle::{destroy, start};
use crate::support::registry::{Registry, registry_or_skip};
use crate::support::{TestContainers, docker_with_image};

/// Logged when a scheduled removal finds a container using the image.
const STILL_USED: &str = "image is still used by a container; not removing it";

/// `image_delay` of these tests.
const DELAY: Duration = Duration::from_secs(2);

/// Waits until `reference` is gone from the daemon, up to `limit`.
async fn gone_within(registry: &Registry, reference: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !registry.is_local(reference).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn an_image_is_removed_after_image_delay_once_its_last_task_is_destroyed() {
    let case = "registry_image_gc";
    if !registry_or_skip(case) {
        return;
    }
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let registry = Registry::start(&docker, None).await;
    let guard = TestContainers::new(&docker, case).await;
    let (image, _) = registry.push_unique(case, "gc", "1", "a").await;
    let plugin = plugin_with("gc {\n image = true\n image_delay = \"2s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();

    let dirs_a = TaskDirs::create("a");
    let dirs_b = TaskDirs::create("b");
    let a = task(&guard, &dirs_a, "a", &image, vec![]);
    let b = task(&guard, &dirs_b, "b", &image, vec![]);
    let (id_a, id_b) = (a.id.clone(), b.id.clone());
    start(&mut driver, a).await.expect("start a");
    start(&mut driver, b).await.expect("start b");

    // One of two users gone: the image stays well past the delay.
    destroy(&mut driver, &id_a, true).await.expect("destroy a");
    tokio::time::sleep(DELAY * 3).await;
    assert!(registry.is_local(&image).await, "kept while task b uses it");
    assert_eq!(
        plugin.count_logs(STILL_USED),
        0,
        "no removal was even scheduled"
    );

    // The last user gone: removed after the delay, not before.
    destroy(&mut driver, &id_b, true).await.expect("destroy b");
    let destroyed = Instant::now();
    assert!(
        gone_within(&registry, &image, Duration::from_secs(30)).await,
        "{image} never removed"
    );
    assert!(
        destroyed.elapsed() >= DELAY,
        "removed before image_delay: {:?}",
        destroyed.elapsed()
    );
}

#[tokio::test]
async fn image_gc_off_keeps_pulled_images() {
    let case = "registry_image_gc_off";
    if !registry_or_skip(case) {
        return;
    }
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let registry = Registry::start(&docker, None).await;
    let guard = TestContainers::new(&docker, case).await;
    let (image, _) = registry.push_unique(case, "kept", "1", "a").await;
    let plugin = plugin_with("gc {\n image = false\n image_delay = \"1s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("a");
    let t = task(&guard, &dirs, "a", &image, vec![]);
    let id = t.id.clone();
    start(&mut driver, t).await.expect("start");
    destroy(&mut driver, &id, true).await.expect("destroy");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        registry.is_local(&image).await,
        "gc.image = false keeps the image"
    );
}

#[tokio::test]
async fn an_image_used_by_a_kept_container_is_not_removed() {
    // gc.container = false leaves the stopped container: its image must stay.
    let case = "registry_image_gc_kept_container";
    if !registry_or_skip(case) {
        return;
    }
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let registry = Registry::start(&docker, None).await;
    let guard = TestContainers::new(&docker, case).await;
    let (image, _) = registry.push_unique(case, "used", "1", "a").await;
    let plugin = plugin_with(
        "gc {\n image = true\n image_delay = \"1s\"\n container = false\n}\n",
        &[],
    )
    .await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("a");
    let t = task(&guard, &dirs, "a", &image, vec![]);
    let id = t.id.clone();
    start(&mut driver, t).await.expect("start");
    destroy(&mut driver, &id, true).await.expect("destroy");
    assert_eq!(
        guard.remaining().await.len(),
        1,
        "gc.container = false keeps the container"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        registry.is_local(&image).await,
        "the image of an existing container is never removed"
    );
    assert!(
        plugin
            .wait_for_log(STILL_USED, Duration::from_secs(5))
            .await,
        "{:?}",
        plugin.stderr_lines()
    );
}

#[tokio::test]
async fn recovered_tasks_count_their_image_again() {
    let case = "registry_image_gc_recover";
    if !registry_or_skip(case) {
        return;
    }
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let registry = Registry::start(&docker, None).await;
    let guard = TestContainers::new(&docker, case).await;
    let (image, _) = registry.push_unique(case, "recovered", "1", "a").await;
    let config = "gc {\n image = true\n image_delay = \"1s\"\n}\n";
    let first = plugin_with(config, &[]).await;
    let mut driver = first.driver();
    let dirs = TaskDirs::create("a");
    let t = task(&guard, &dirs, "a", &image, vec![]);
    let id = t.id.clone();
    let saved = start(&mut driver, t)
        .await
        .expect("start")
        .handle
        .expect("handle");
    drop(first);

    // A new plugin process: RecoverTask counts the image again; destroying the task then
    // removes it after the delay.
    let second = plugin_with(config, &[]).await;
    let mut driver = second.driver();
    driver
        .recover_task(crate::recover::recover_request(&saved))
        .await
        .expect("recover");
    destroy(&mut driver, &id, true).await.expect("destroy");
    assert!(
        gone_within(&registry, &image, Duration::from_secs(30)).await,
        "{image} of a recovered task never removed"
    );
}

#[tokio::test]
async fn a_new_task_within_image_delay_cancels_the_removal() {
    let case = "registry_image_gc_cancel";
    if !registry_or_skip(case) {
        return;
    }
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let registry = Registry::start(&docker, None).await;
    let guard = TestContainers::new(&docker, case).await;
    let (image, _) = registry.push_unique(case, "reused", "1", "a").await;
    let plugin = plugin_with("gc {\n image = true\n image_delay = \"2s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();
    let dirs_a = TaskDirs::create("a");
    let dirs_b = TaskDirs::create("b");
    let a = task(&guard, &dirs_a, "a", &image, vec![]);
    let id_a = a.id.clone();
    start(&mut driver, a).await.expect("start a");
    destroy(&mut driver, &id_a, true).await.expect("destroy a");
    // Within the delay, another task takes the image (present locally: no pull).
    let b = task(&guard, &dirs_b, "b", &image, vec![]);
    let id_b = b.id.clone();
    start(&mut driver, b).await.expect("start b");
    tokio::time::sleep(DELAY * 3).await;
    assert!(registry.is_local(&image).await, "the removal was cancelled");
    assert_eq!(
        plugin.count_logs(STILL_USED),
        0,
        "kept by its reference count, not by the last-moment container check"
    );
    destroy(&mut driver, &id_b, true).await.expect("destroy b");
    assert!(
        gone_within(&registry, &image, Duration::from_secs(30)).await,
        "{image} never removed after its last task"
    );
}
