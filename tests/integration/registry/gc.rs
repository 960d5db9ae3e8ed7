//! `gc { image, image_delay }`: pulled images are removed `image_delay` after the last task
//! using them is destroyed, never while another task uses them, and never with `image = false`.

use std::time::{Duration, Instant};

use super::{plugin_with, setup, start_task};
use crate::lifecycle::destroy;
use crate::support::registry::Registry;

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
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "gc", "1", "a").await;
    let plugin = plugin_with("gc {\n image = true\n image_delay = \"2s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();

    let a = start_task(&mut driver, &registry, &guard, "a", &image).await;
    let b = start_task(&mut driver, &registry, &guard, "b", &image).await;

    // One of two users gone: the image stays well past the delay.
    destroy(&mut driver, &a.id, true).await.expect("destroy a");
    tokio::time::sleep(DELAY * 3).await;
    assert!(registry.is_local(&image).await, "kept while task b uses it");
    assert_eq!(
        plugin.count_logs(STILL_USED),
        0,
        "no removal was even scheduled"
    );

    // The last user gone: removed after the delay, not before.
    destroy(&mut driver, &b.id, true).await.expect("destroy b");
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
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "kept", "1", "a").await;
    let plugin = plugin_with("gc {\n image = false\n image_delay = \"1s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();
    let a = start_task(&mut driver, &registry, &guard, "a", &image).await;
    destroy(&mut driver, &a.id, true).await.expect("destroy");
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
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "used", "1", "a").await;
    let plugin = plugin_with(
        "gc {\n image = true\n image_delay = \"1s\"\n container = false\n}\n",
        &[],
    )
    .await;
    let mut driver = plugin.driver();
    let a = start_task(&mut driver, &registry, &guard, "a", &image).await;
    destroy(&mut driver, &a.id, true).await.expect("destroy");
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
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "recovered", "1", "a").await;
    let config = "gc {\n image = true\n image_delay = \"1s\"\n}\n";
    let first = plugin_with(config, &[]).await;
    let mut driver = first.driver();
    let a = start_task(&mut driver, &registry, &guard, "a", &image).await;
    drop(first);

    // A new plugin process: RecoverTask counts the image again; destroying the task then
    // removes it after the delay.
    let second = plugin_with(config, &[]).await;
    let mut driver = second.driver();
    let saved = a.handle.as_ref().expect("handle");
    driver
        .recover_task(crate::recover::recover_request(saved))
        .await
        .expect("recover");
    destroy(&mut driver, &a.id, true).await.expect("destroy");
    assert!(
        gone_within(&registry, &image, Duration::from_secs(30)).await,
        "{image} of a recovered task never removed"
    );
}

#[tokio::test]
async fn a_new_task_within_image_delay_cancels_the_removal() {
    let case = "registry_image_gc_cancel";
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "reused", "1", "a").await;
    let plugin = plugin_with("gc {\n image = true\n image_delay = \"2s\"\n}\n", &[]).await;
    let mut driver = plugin.driver();
    let a = start_task(&mut driver, &registry, &guard, "a", &image).await;
    destroy(&mut driver, &a.id, true).await.expect("destroy a");
    // Within the delay, another task takes the image (present locally: no pull).
    let b = start_task(&mut driver, &registry, &guard, "b", &image).await;
    tokio::time::sleep(DELAY * 3).await;
    assert!(registry.is_local(&image).await, "the removal was cancelled");
    assert_eq!(
        plugin.count_logs(STILL_USED),
        0,
        "kept by its reference count, not by the last-moment container check"
    );
    destroy(&mut driver, &b.id, true).await.expect("destroy b");
    assert!(
        gone_within(&registry, &image, Duration::from_secs(30)).await,
        "{image} never removed after its last task"
    );
}
