//! `infra_image` comes from the agent's credential sources and is collected with `gc.image`.

use std::time::{Duration, Instant};

use dockhand::tasks::sandbox_name;
use nomad_plugin::proto::drivers as pb;

use super::{plugin_with, setup};
use crate::harness::alloc_id_for;

/// A pause-like command: idles until SIGTERM or SIGINT.
const PAUSE_CMD: &str =
    r#"CMD ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while true; do sleep 0.2; done"]"#;

#[tokio::test]
async fn infra_image_is_pulled_with_the_agent_credentials_and_collected_after_the_network() {
    let case = "registry_infra_image";
    let Some((_docker, registry, guard)) = setup(case, Some(("dave", "p4use"))).await else {
        return;
    };
    let alloc_id = alloc_id_for(case);
    guard.track(sandbox_name(&alloc_id));
    let (image, _) = registry
        .push_unique_with(case, "pause", "1", "a", PAUSE_CMD)
        .await;
    let config = registry.scratch().join("config.json");
    // base64 of `dave:p4use`
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"ZGF2ZTpwNHVzZQ=="}}}}}}"#,
            registry.host()
        ),
    )
    .expect("write config");
    let plugin = plugin_with(
        &format!(
            "infra_image = \"{image}\"\nauth {{\n config = \"{}\"\n}}\ngc {{\n image_delay = \"1s\"\n}}\n",
            config.display()
        ),
        &[],
    )
    .await;
    let mut driver = plugin.driver();
    let created = tokio::time::timeout(
        Duration::from_secs(120),
        driver.create_network(pb::CreateNetworkRequest {
            alloc_id: alloc_id.clone(),
            hostname: String::new(),
        }),
    )
    .await
    .expect("CreateNetwork hung")
    .unwrap_or_else(|e| panic!("CreateNetwork: {e:?}; registry log:\n{}", registry.log()))
    .into_inner();
    assert!(created.created);
    assert!(registry.is_local(&image).await);

    driver
        .destroy_network(pb::DestroyNetworkRequest {
            alloc_id: alloc_id.clone(),
            isolation_spec: created.isolation_spec,
        })
        .await
        .expect("DestroyNetwork");
    let deadline = Instant::now() + Duration::from_secs(30);
    while registry.is_local(&image).await {
        assert!(
            Instant::now() < deadline,
            "infra_image {image} never collected after DestroyNetwork"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
