//! `CreateNetwork` / `DestroyNetwork`: group networking through a sandbox container per
//! allocation, translated to and from the engine's [`Sandbox`].
//!
//! The isolation spec carries the sandbox container id under
//! [`super::convert::SANDBOX_CONTAINER_LABEL`] (tasks join it as `container:<id>`, see
//! [`super::convert`]) and the requested hostname under [`SANDBOX_HOSTNAME_LABEL`], the labels
//! Nomad's docker driver uses.
//!
//! When the long-lived instance starts, `spawn_sandbox_scan` tracks the running sandboxes of
//! this node before any sweep may run (see [`crate::tasks`]' network module).

use nomad_plugin::PluginError;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;
use nomad_plugin::proto::drivers::{
    CreateNetworkRequest, CreateNetworkResponse, DestroyNetworkRequest, NetworkIsolationSpec,
};

use super::convert::SANDBOX_CONTAINER_LABEL;
use crate::tasks::{NetworkError, Sandbox, TaskEngine};
use nomad_plugin::error_chain;

/// Pause between attempts of the start-up sandbox scan while Docker does not answer.
pub const SANDBOX_SCAN_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Tracks every running sandbox of this node (`node_id`, empty when not known yet) in the
/// background, retrying until Docker answers. The tracked set counts as incomplete — and the
/// reconciler does not sweep — until the scan has completed.
pub(super) fn spawn_sandbox_scan(engine: TaskEngine, node_id: String) {
    engine.store().set_scanning(true);
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            match engine.track_running_sandboxes(&node_id).await {
                Ok(count) => {
                    tracing::info!(
                        tracked = count,
                        "start-up scan of group network sandboxes done"
                    );
                    engine.store().set_scanning(false);
                    return;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %error_chain(&e), "start-up scan of group network sandboxes failed; retrying (no sweep runs meanwhile)");
                        warned = true;
                    }
                }
            }
            tokio::time::sleep(SANDBOX_SCAN_RETRY).await;
        }
    });
}

/// Label of the isolation spec holding the group network's hostname, when one was requested.
pub const SANDBOX_HOSTNAME_LABEL: &str = "docker_sandbox_hostname";

/// The isolation spec tasks of the allocation receive.
pub fn isolation_spec(sandbox: &Sandbox) -> NetworkIsolationSpec {
    let mut labels = std::collections::HashMap::from([(
        SANDBOX_CONTAINER_LABEL.to_owned(),
        sandbox.container_id.clone(),
    )]);
    if let Some(hostname) = &sandbox.hostname {
        labels.insert(SANDBOX_HOSTNAME_LABEL.to_owned(), hostname.clone());
    }
    NetworkIsolationSpec {
        mode: NetworkIsolationMode::Group.into(),
        path: sandbox.netns_path.clone(),
        labels,
        hosts_config: None,
    }
}

fn network_error(err: NetworkError) -> PluginError {
    let message = error_chain(&err);
    match err {
        NetworkError::InvalidAllocId(_) => PluginError::InvalidArgument(message),
        NetworkError::NameTaken { .. } => PluginError::AlreadyExists(message),
        e if e.is_transient() => PluginError::Unavailable(message),
        _ => PluginError::FailedPrecondition(message),
    }
}

/// `CreateNetwork`: creates or re-adopts the allocation's sandbox, labelled with `node_id`
/// when this node's id is known.
pub(super) async fn create(
    engine: &TaskEngine,
    request: CreateNetworkRequest,
    node_id: &str,
) -> Result<CreateNetworkResponse, PluginError> {
    let sandbox = engine
        .create_network(&request.alloc_id, &request.hostname, node_id)
        .await
        .map_err(network_error)?;
    Ok(CreateNetworkResponse {
        isolation_spec: Some(isolation_spec(&sandbox)),
        created: sandbox.created,
    })
}

/// `DestroyNetwork`: removes the allocation's sandbox; already gone is success.
pub(super) async fn destroy(
    engine: &TaskEngine,
    request: DestroyNetworkRequest,
) -> Result<(), PluginError> {
    let container_id = request
        .isolation_spec
        .as_ref()
        .and_then(|spec| spec.labels.get(SANDBOX_CONTAINER_LABEL))
        .map(String::as_str);
    engine
        .destroy_network(&request.alloc_id, container_id)
        .await
        .map_err(network_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_names_the_sandbox_and_its_namespace() {
        let sandbox = Sandbox {
            alloc_id: "a1".to_owned(),
            container_id: "c0ffee".to_owned(),
            netns_path: "/proc/42/ns/net".to_owned(),
            hostname: Some("web".to_owned()),
            created: true,
        };
        let spec = isolation_spec(&sandbox);
        assert_eq!(spec.mode, NetworkIsolationMode::Group as i32);
        assert_eq!(spec.path, "/proc/42/ns/net");
        assert_eq!(spec.labels[SANDBOX_CONTAINER_LABEL], "c0ffee");
        assert_eq!(spec.labels[SANDBOX_HOSTNAME_LABEL], "web");
        let bare = isolation_spec(&Sandbox {
            hostname: None,
            ..sandbox
        });
        assert!(!bare.labels.contains_key(SANDBOX_HOSTNAME_LABEL));
    }

    #[test]
    fn bad_alloc_ids_are_invalid_arguments() {
        let err = network_error(NetworkError::InvalidAllocId("a/b".to_owned()));
        assert!(matches!(err, PluginError::InvalidArgument(m) if m.contains("\"a/b\"")));
    }
}
