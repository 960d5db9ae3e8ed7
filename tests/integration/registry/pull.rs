//! Pulls and credentials.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use nomad_plugin::proto::drivers as pb;

use super::{auth_block, plugin_with, setup, start_ok, start_task, task};
use crate::harness::TaskDirs;
use crate::lifecycle::{destroy, start};
use crate::support::registry::{Registry, Throttle, ThrottleProxy};

#[tokio::test]
async fn an_untagged_image_pulls_latest_and_no_other_tag() {
    let case = "registry_untagged_latest";
    let Some((docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (latest, latest_id) = registry.push_unique(case, "app", "latest", "latest").await;
    let (other, _) = registry.push_unique(case, "app", "other", "other").await;
    let untagged = latest.trim_end_matches(":latest").to_owned();
    assert!(!registry.is_local(&latest).await && !registry.is_local(&other).await);

    let plugin = plugin_with("", &[]).await;
    let mut driver = plugin.driver();
    let web = start_task(&mut driver, &registry, &guard, "web", &untagged).await;
    let inspected = crate::lifecycle::inspect(&mut driver, &web.id)
        .await
        .expect("inspect");
    assert!(inspected.task.is_some());
    assert!(registry.is_local(&latest).await, "{latest} pulled");
    assert!(
        !registry.is_local(&other).await,
        "an untagged image must pull `:latest` only, yet {other} was pulled too"
    );
    let image = docker.inspect_image(&latest).await.expect("inspect latest");
    assert_eq!(image.id.as_deref(), Some(latest_id.as_str()));
    destroy(&mut driver, &web.id, true).await.expect("destroy");
}

#[tokio::test]
async fn task_credentials_authenticate_and_wrong_ones_fail_clearly_then_a_retry_works() {
    let case = "registry_task_auth";
    let Some((_docker, registry, guard)) = setup(case, Some(("alice", "s3cret"))).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "private", "1", "a").await;
    let plugin = plugin_with("", &[]).await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("app");

    // Anonymous: refused by the registry.
    let anonymous = task(&guard, &dirs, "app", &image, vec![]);
    let err = start(&mut driver, anonymous)
        .await
        .expect_err("no credentials");
    assert!(
        err.message().contains(&format!("Failed to pull `{image}`")),
        "{err:?}"
    );

    // Wrong password: a clear error naming the image and what the registry said.
    let wrong = task(
        &guard,
        &dirs,
        "app",
        &image,
        vec![("auth", auth_block("alice", "wrong"))],
    );
    let id = wrong.id.clone();
    let err = start(&mut driver, wrong)
        .await
        .expect_err("wrong credentials");
    let message = err.message().to_lowercase();
    assert!(
        message.contains(&format!("failed to pull `{image}`")),
        "{err:?}"
    );
    assert!(
        message.contains("unauthorized") || message.contains("authentication required"),
        "{err:?}"
    );
    assert!(
        guard.remaining().await.is_empty(),
        "no container left behind"
    );

    // The same task with the right password starts.
    let right = task(
        &guard,
        &dirs,
        "app",
        &image,
        vec![("auth", auth_block("alice", "s3cret"))],
    );
    assert_eq!(right.id, id);
    start_ok(&mut driver, right, &registry).await;
    destroy(&mut driver, &id, true).await.expect("destroy");
}

/// A `docker-credential-<name>` helper answering `user`/`secret` and recording its input.
fn write_helper(dir: &std::path::Path, name: &str, user: &str, secret: &str) -> std::path::PathBuf {
    let record = dir.join(format!("{name}.input"));
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 3\ncat > '{}'\nprintf '{{\"ServerURL\":\"x\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}'\n",
        record.display()
    );
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).expect("write helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod helper");
    record
}

fn path_with(dir: &std::path::Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn the_agent_credential_helper_supplies_credentials() {
    let case = "registry_auth_helper";
    let Some((_docker, registry, guard)) = setup(case, Some(("bob", "h3lper"))).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "helped", "1", "a").await;
    let bin = registry.scratch();
    let record = write_helper(&bin, "dhtest", "bob", "h3lper");
    let plugin = plugin_with(
        "auth {\n helper = \"dhtest\"\n}\n",
        &[("PATH", &path_with(&bin))],
    )
    .await;
    let mut driver = plugin.driver();
    let app = start_task(&mut driver, &registry, &guard, "app", &image).await;
    assert_eq!(
        std::fs::read_to_string(&record).expect("the helper ran"),
        registry.host(),
        "the helper is asked for the registry host"
    );
    destroy(&mut driver, &app.id, true).await.expect("destroy");
}

#[tokio::test]
async fn the_agent_docker_config_file_supplies_credentials() {
    let case = "registry_auth_config";
    let Some((_docker, registry, guard)) = setup(case, Some(("carol", "c0nfig"))).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "configured", "1", "a").await;
    let (helped, _) = registry.push_unique(case, "helped", "1", "b").await;
    let scratch = registry.scratch();
    // `auths` with base64 `carol:c0nfig` for the registry.
    let config = scratch.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"https://{}/v1/":{{"auth":"Y2Fyb2w6YzBuZmln"}}}}}}"#,
            registry.host()
        ),
    )
    .expect("write config");
    let plugin = plugin_with(
        &format!("auth {{\n config = \"{}\"\n}}\n", config.display()),
        &[],
    )
    .await;
    let mut driver = plugin.driver();
    let app = start_task(&mut driver, &registry, &guard, "app", &image).await;
    destroy(&mut driver, &app.id, true).await.expect("destroy");
    drop(plugin);

    // `credHelpers` names the helper for this registry.
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    write_helper(&bin, "dhconfig", "carol", "c0nfig");
    let config = scratch.join("helpers.json");
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers":{{"{}":"dhconfig"}}}}"#, registry.host()),
    )
    .expect("write config");
    let plugin = plugin_with(
        &format!("auth {{\n config = \"{}\"\n}}\n", config.display()),
        &[("PATH", &path_with(&bin))],
    )
    .await;
    let mut driver = plugin.driver();
    let helped_task = start_task(&mut driver, &registry, &guard, "helped", &helped).await;
    destroy(&mut driver, &helped_task.id, true)
        .await
        .expect("destroy");
}

#[tokio::test]
async fn a_failed_credential_lookup_fails_the_task_unless_auth_soft_fail() {
    let case = "registry_auth_soft_fail";
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (image, _) = registry.push_unique(case, "public", "1", "a").await;
    let plugin = plugin_with("auth {\n helper = \"dockhand-none-such\"\n}\n", &[]).await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("app");
    let strict = task(&guard, &dirs, "app", &image, vec![]);
    let err = start(&mut driver, strict)
        .await
        .expect_err("helper missing");
    let repo = image.trim_end_matches(":1");
    assert!(
        err.message()
            .contains(&format!("Failed to find docker auth for repo {repo:?}")),
        "{err:?}"
    );
    assert!(
        err.message()
            .contains("docker-credential-dockhand-none-such"),
        "{err:?}"
    );
    let soft = task(
        &guard,
        &dirs,
        "app",
        &image,
        vec![("auth_soft_fail", rmpv::Value::from(true))],
    );
    let id = soft.id.clone();
    start_ok(&mut driver, soft, &registry).await;
    destroy(&mut driver, &id, true).await.expect("destroy");
}

/// A unique image pushed to `registry`, named through a proxy throttled by `mode` (and
/// removed with the registry).
async fn throttled_image(
    registry: &Registry,
    case: &str,
    name: &str,
    mode: Throttle,
) -> (ThrottleProxy, String) {
    let (pushed, _) = registry.push_unique(case, name, "1", "a").await;
    let proxy = ThrottleProxy::start(registry, mode).await;
    let image = pushed.replace(&registry.host(), &proxy.host());
    registry.track_image(image.clone());
    (proxy, image)
}

#[tokio::test]
async fn a_slow_pull_sends_downloading_and_progress_events() {
    let case = "registry_pull_events";
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (_proxy, image) = throttled_image(&registry, case, "slow", Throttle::Slow).await;
    let plugin = plugin_with("", &[("DOCKHAND_PULL_PROGRESS_PERIOD", "500ms")]).await;
    let mut driver = plugin.driver();
    let mut events = driver
        .task_events(pb::TaskEventsRequest {})
        .await
        .expect("TaskEvents")
        .into_inner();
    let app = start_task(&mut driver, &registry, &guard, "app", &image).await;

    let mut seen = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(2), events.next()).await {
        if e.task_id == app.id {
            seen.push((e.message, e.annotations));
        }
    }
    assert_eq!(
        seen.first().map(|e| e.0.as_str()),
        Some("Downloading image"),
        "{seen:?}"
    );
    assert_eq!(seen[0].1.get("image"), Some(&image));
    let progress: Vec<&String> = seen
        .iter()
        .map(|e| &e.0)
        .filter(|m| m.starts_with("Docker image pull progress: Pulled "))
        .collect();
    assert!(
        !progress.is_empty(),
        "progress events during a slow pull: {seen:?}"
    );
    assert!(
        progress.iter().all(|m| m.contains(" layers: ")),
        "{progress:?}"
    );
    destroy(&mut driver, &app.id, true).await.expect("destroy");
}

#[tokio::test]
async fn image_pull_timeout_bounds_a_stalled_pull() {
    let case = "registry_pull_timeout";
    let Some((_docker, registry, guard)) = setup(case, None).await else {
        return;
    };
    let (_proxy, image) = throttled_image(&registry, case, "stalled", Throttle::Stall).await;
    let plugin = plugin_with("", &[]).await;
    let mut driver = plugin.driver();
    let dirs = TaskDirs::create("app");
    let t = task(
        &guard,
        &dirs,
        "app",
        &image,
        vec![("image_pull_timeout", rmpv::Value::from("2s"))],
    );
    let began = Instant::now();
    let err = start(&mut driver, t).await.expect_err("stalled pull");
    assert!(
        err.message()
            .contains("image pull did not finish within 2s"),
        "{err:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    assert!(guard.remaining().await.is_empty());
}
