//! Docker's wire models → the policies' [`ContainerSnapshot`].

use orphan_policy::{ContainerSnapshot, ContainerState, Mount};

use crate::docker::models::{ContainerInspectResponse, ContainerSummary};

/// A snapshot of a listed container, without its environment (`env = None`, which a policy may
/// answer with `need-inspect`). `None` when the entry has no id (nothing could be done with it).
pub fn snapshot_from_summary(summary: &ContainerSummary) -> Option<ContainerSnapshot> {
    let id = summary.id.clone().filter(|id| !id.is_empty())?;
    let mut labels: Vec<(String, String)> = summary
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    labels.sort();
    Some(ContainerSnapshot {
        id,
        names: summary.names.clone().unwrap_or_default(),
        image: summary.image.clone().unwrap_or_default(),
        labels: labels.into_iter().collect(),
        env: None,
        mounts: summary
            .mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| Mount {
                source: m.source.clone().unwrap_or_default(),
                destination: m.destination.clone().unwrap_or_default(),
                kind: m.typ.clone().unwrap_or_default(),
            })
            .collect(),
        // A missing creation time is treated as "just created" by the sweep (never touched).
        created_ms: summary.created.map_or(i64::MAX, |s| s.saturating_mul(1000)),
        started_ms: None,
        state: summary.state.map_or(ContainerState::Unknown, |s| {
            ContainerState::from_docker(s.as_ref())
        }),
        exit_code: None,
    })
}

/// `snapshot` with the environment (and exit code) from an inspection. A container whose
/// inspection carries no config gets an empty environment: it was inspected, nothing was set.
pub fn with_inspected_env(
    mut snapshot: ContainerSnapshot,
    inspected: &ContainerInspectResponse,
) -> ContainerSnapshot {
    let env = inspected
        .config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    snapshot.set_env_from_docker(env);
    if let Some(code) = inspected.state.as_ref().and_then(|s| s.exit_code) {
        snapshot.exit_code = i32::try_from(code).ok();
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::MountPoint;
    use std::collections::HashMap;

    #[test]
    fn summary_fields_map_onto_the_snapshot() {
        let summary = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/redis-72bfa388-024e-a903-45b8-2bc28b74ed69".into()]),
            image: Some("redis:7".into()),
            labels: Some(HashMap::from([("k".to_owned(), "v".to_owned())])),
            created: Some(1_700_000_000),
            mounts: Some(vec![MountPoint {
                source: Some("/tmp/a".into()),
                destination: Some("/alloc".into()),
                ..MountPoint::default()
            }]),
            ..ContainerSummary::default()
        };
        let snap = snapshot_from_summary(&summary).unwrap();
        assert_eq!(snap.id, "abc");
        assert_eq!(snap.created_ms, 1_700_000_000_000);
        assert_eq!(snap.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(snap.mounts[0].destination, "/alloc");
        assert_eq!(snap.env, None);
        assert!(snapshot_from_summary(&ContainerSummary::default()).is_none());
        let no_created = ContainerSummary {
            id: Some("x".into()),
            ..ContainerSummary::default()
        };
        assert_eq!(
            snapshot_from_summary(&no_created).unwrap().created_ms,
            i64::MAX
        );
    }
}
