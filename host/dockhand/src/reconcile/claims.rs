//! The host's check of ownership claims: an `owned(alloc)` verdict is a claim the container
//! must bear out, whatever policy made it.
//!
//! A claim is accepted only if
//!
//! 1. the container carries the claimed allocation id — its `com.hashicorp.nomad.alloc_id`
//!    label, its `NOMAD_ALLOC_ID` environment variable (when inspected) or the `-<uuid>`
//!    suffix of its name — and neither the label nor the variable names another allocation;
//! 2. a `com.hashicorp.nomad.node_id` label, if any, names this node (whose id must be known);
//! 3. unless `dockhand.daemon = "exclusive"`: a container with Nomad's `alloc_id` label carries
//!    dockhand's driver label (Nomad's builtin driver sets the same Nomad labels), and a
//!    container with dockhand's driver label carries a node label (dockhand sets it whenever
//!    it knows its node, so one without it may be another client's);
//! 4. with `dockhand.daemon = "shared-by-clients"`: the container carries a node label, so
//!    Nomad's label-less fallback (mounts and name) never claims another client's container.
//!
//! A refused claim becomes `unknown`, with a reason that says so and keeps the policy's own;
//! the kill policy never sees it as owned.

use orphan_policy::native::name_alloc_id;
use orphan_policy::{ContainerSnapshot, Ownership, Verdict};

use crate::config::DaemonSharing;
use crate::tasks::{LABEL_ALLOC_ID, LABEL_DRIVER, LABEL_NODE_ID};

/// The environment variable Nomad sets to the allocation id.
const ENV_ALLOC_ID: &str = "NOMAD_ALLOC_ID";

/// `verdict` as the host accepts it for `container`: unchanged unless it is an `owned` claim
/// the container does not bear out, which becomes `unknown` saying why.
pub(super) fn checked(
    daemon: DaemonSharing,
    node_id: &str,
    container: &ContainerSnapshot,
    verdict: Verdict,
) -> Verdict {
    let Ownership::Owned { alloc_id } = &verdict.ownership else {
        return verdict;
    };
    match refusal(daemon, node_id, container, alloc_id) {
        None => verdict,
        Some(why) => Verdict {
            reason: format!(
                "ownership claim refused by the host: owned({alloc_id}) but {why}; the policy \
                 said: {}",
                verdict.reason
            ),
            ownership: Ownership::Unknown,
        },
    }
}

/// Why the claim that `container` belongs to `alloc_id` is refused; `None` accepts it.
fn refusal(
    daemon: DaemonSharing,
    node_id: &str,
    container: &ContainerSnapshot,
    alloc_id: &str,
) -> Option<String> {
    let label = |key: &str| container.labels.get(key).map(String::as_str);
    if alloc_id.is_empty() {
        return Some("the allocation id is empty".to_owned());
    }
    let label_alloc = label(LABEL_ALLOC_ID);
    let env_alloc = container.env.as_ref().and_then(|env| {
        env.iter()
            .rev()
            .find(|(k, _)| k == ENV_ALLOC_ID)
            .map(|(_, v)| v.as_str())
    });
    for (source, value) in [
        ("its alloc_id label", label_alloc),
        ("its NOMAD_ALLOC_ID", env_alloc),
    ] {
        if let Some(value) = value
            && value != alloc_id
        {
            return Some(format!("{source} names allocation {value:?}"));
        }
    }
    let named = container
        .names
        .iter()
        .any(|n| name_alloc_id(n) == Some(alloc_id));
    if label_alloc.is_none() && env_alloc.is_none() && !named {
        return Some(
            "the container carries no such allocation id (no alloc_id label, NOMAD_ALLOC_ID or \
             -<alloc id> name)"
                .to_owned(),
        );
    }

    let driver_label = label(LABEL_DRIVER).is_some();
    match label(LABEL_NODE_ID) {
        Some(node) if node_id.is_empty() => {
            return Some(format!(
                "its node_id label names {node:?} and this node's id is not known yet"
            ));
        }
        Some(node) if node != node_id => {
            return Some(format!("its node_id label names another node ({node:?})"));
        }
        Some(_) => {}
        None if daemon == DaemonSharing::SharedByClients => {
            return Some(
                "it has no node_id label, and with dockhand.daemon = \"shared-by-clients\" \
                 it may be another client's"
                    .to_owned(),
            );
        }
        None if driver_label && daemon != DaemonSharing::Exclusive => {
            return Some(format!(
                "it has dockhand's {LABEL_DRIVER} label but no node_id label (created before \
                 its node was known), so it may be another client's"
            ));
        }
        None => {}
    }
    if label_alloc.is_some() && !driver_label && daemon != DaemonSharing::Exclusive {
        return Some(format!(
            "it has no {LABEL_DRIVER} label: another Nomad driver (such as the builtin docker \
             driver) created it; dockhand.daemon = \"exclusive\" says there is none"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::DRIVER_LABEL_VALUE;

    const ALLOC: &str = "2f1c9d1e-aaaa-bbbb-cccc-000000000001";
    const OTHER: &str = "2f1c9d1e-aaaa-bbbb-cccc-000000000002";
    const NODE: &str = "node-a";

    fn container(name: &str, labels: &[(&str, &str)], env: Option<&[&str]>) -> ContainerSnapshot {
        let mut c = ContainerSnapshot {
            id: "c1".into(),
            names: vec![format!("/{name}")],
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..ContainerSnapshot::default()
        };
        if let Some(env) = env {
            c.set_env_from_docker(env.iter().copied());
        }
        c
    }

    fn dockhand(node: &str) -> Vec<(&str, &str)> {
        vec![
            (LABEL_ALLOC_ID, ALLOC),
            (LABEL_NODE_ID, node),
            (LABEL_DRIVER, DRIVER_LABEL_VALUE),
        ]
    }

    fn claim(daemon: DaemonSharing, node_id: &str, c: &ContainerSnapshot, alloc: &str) -> Verdict {
        let verdict = Verdict {
            ownership: Ownership::Owned {
                alloc_id: alloc.to_owned(),
            },
            reason: "said so".to_owned(),
        };
        checked(daemon, node_id, c, verdict)
    }

    fn accepted(daemon: DaemonSharing, c: &ContainerSnapshot, alloc: &str) -> bool {
        claim(daemon, NODE, c, alloc).ownership != Ownership::Unknown
    }

    const ALL: [DaemonSharing; 3] = [
        DaemonSharing::Exclusive,
        DaemonSharing::SharedWithBuiltinDriver,
        DaemonSharing::SharedByClients,
    ];

    #[test]
    fn dockhands_own_container_of_this_node_is_accepted_in_every_mode() {
        let c = container(&format!("web-{ALLOC}"), &dockhand(NODE), None);
        for daemon in ALL {
            assert!(accepted(daemon, &c, ALLOC), "{daemon:?}");
        }
    }

    #[test]
    fn a_claim_on_a_container_without_that_alloc_id_is_refused() {
        // A plain `docker run` container.
        let plain = container("nginx", &[], None);
        for daemon in ALL {
            let v = claim(daemon, NODE, &plain, ALLOC);
            assert_eq!(v.ownership, Ownership::Unknown);
            assert!(
                v.reason.starts_with("ownership claim refused by the host")
                    && v.reason.contains("carries no such allocation id")
                    && v.reason.ends_with("the policy said: said so"),
                "{}",
                v.reason
            );
        }
        // Another allocation's label, environment or name.
        let c = container(&format!("web-{ALLOC}"), &dockhand(NODE), None);
        assert!(!accepted(DaemonSharing::Exclusive, &c, OTHER));
        let env = format!("NOMAD_ALLOC_ID={OTHER}");
        let c = container(&format!("web-{ALLOC}"), &[], Some(&[&env]));
        assert!(!accepted(DaemonSharing::Exclusive, &c, ALLOC));
        let c = container(&format!("web-{OTHER}"), &[], None);
        assert!(!accepted(DaemonSharing::Exclusive, &c, ALLOC));
        assert!(accepted(DaemonSharing::Exclusive, &c, OTHER));
        let c = container("web", &dockhand(NODE), None);
        assert!(!accepted(DaemonSharing::Exclusive, &c, ""));
    }

    #[test]
    fn another_nodes_container_is_refused_in_every_mode() {
        let c = container(&format!("web-{ALLOC}"), &dockhand("node-b"), None);
        for daemon in ALL {
            let v = claim(daemon, NODE, &c, ALLOC);
            assert_eq!(v.ownership, Ownership::Unknown, "{daemon:?}");
            assert!(
                v.reason.contains("another node (\"node-b\")"),
                "{}",
                v.reason
            );
            // While this node's id is not known, any node label is refused.
            let v = claim(daemon, "", &c, ALLOC);
            assert!(v.reason.contains("not known yet"), "{}", v.reason);
        }
    }

    #[test]
    fn the_builtin_drivers_containers_are_claimable_only_on_an_exclusive_daemon() {
        let labels = &[
            (LABEL_ALLOC_ID, ALLOC),
            (LABEL_NODE_ID, NODE),
            ("com.hashicorp.nomad.task_name", "web"),
        ];
        let c = container(&format!("web-{ALLOC}"), labels, None);
        assert!(accepted(DaemonSharing::Exclusive, &c, ALLOC));
        for daemon in [
            DaemonSharing::SharedWithBuiltinDriver,
            DaemonSharing::SharedByClients,
        ] {
            let v = claim(daemon, NODE, &c, ALLOC);
            assert_eq!(v.ownership, Ownership::Unknown, "{daemon:?}");
            assert!(v.reason.contains("another Nomad driver"), "{}", v.reason);
        }
    }

    #[test]
    fn a_container_without_a_node_label_is_refused_on_a_daemon_shared_by_clients() {
        // An alloc-labelled container of the builtin driver with its default extra_labels.
        let builtin = container(&format!("web-{ALLOC}"), &[(LABEL_ALLOC_ID, ALLOC)], None);
        assert!(accepted(DaemonSharing::Exclusive, &builtin, ALLOC));
        assert!(!accepted(DaemonSharing::SharedByClients, &builtin, ALLOC));
        // A dockhand sandbox made before its node was known: only `exclusive` accepts it.
        let sandbox = container(
            &format!("nomad_init_{ALLOC}"),
            &[(LABEL_ALLOC_ID, ALLOC), (LABEL_DRIVER, DRIVER_LABEL_VALUE)],
            None,
        );
        assert!(accepted(DaemonSharing::Exclusive, &sandbox, ALLOC));
        for daemon in [
            DaemonSharing::SharedWithBuiltinDriver,
            DaemonSharing::SharedByClients,
        ] {
            assert!(!accepted(daemon, &sandbox, ALLOC), "{daemon:?}");
        }
        // Nomad's label-less fallback (name and environment): not on a daemon shared by clients.
        let env = format!("NOMAD_ALLOC_ID={ALLOC}");
        let unlabelled = container(&format!("redis-{ALLOC}"), &[], Some(&[&env]));
        assert!(accepted(DaemonSharing::Exclusive, &unlabelled, ALLOC));
        assert!(accepted(
            DaemonSharing::SharedWithBuiltinDriver,
            &unlabelled,
            ALLOC
        ));
        let v = claim(DaemonSharing::SharedByClients, NODE, &unlabelled, ALLOC);
        assert!(v.reason.contains("shared-by-clients"), "{}", v.reason);
    }

    #[test]
    fn other_verdicts_pass_unchanged() {
        let c = container("nginx", &[], None);
        for ownership in [
            Ownership::NotNomad,
            Ownership::Unknown,
            Ownership::NeedInspect,
        ] {
            let v = Verdict {
                ownership: ownership.clone(),
                reason: "r".into(),
            };
            assert_eq!(
                checked(DaemonSharing::SharedByClients, NODE, &c, v.clone()),
                v
            );
        }
    }
}
