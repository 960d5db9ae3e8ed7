//! The default policies' rules written natively in Rust.
//!
//! A reference implementation: the benchmarks compare the Wasm defaults
//! against it, and tests check that both agree on the same inputs. It is not
//! a fallback for failed policy calls (a failed call means no action).

use crate::decision::{Action, ActionKind, Ownership, Signal, Verdict};
use crate::snapshot::{Candidate, ContainerSnapshot, EvalContext};
use std::time::Duration;

/// Label carrying the allocation ID.
pub const LABEL_ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
/// Label carrying the node ID (an `extra_labels` label).
pub const LABEL_NODE_ID: &str = "com.hashicorp.nomad.node_id";
const ENV_ALLOC_ID: &str = "NOMAD_ALLOC_ID";
const ALLOC_MOUNTS: [&str; 3] = ["/alloc", "/local", "/secrets"];

/// The default ownership rules (see `guest-policies/default-ownership`).
pub fn classify(ctx: &EvalContext, containers: &[ContainerSnapshot]) -> Vec<Verdict> {
    containers.iter().map(|c| classify_one(ctx, c)).collect()
}

/// The default kill rules (see `guest-policies/default-kill`).
pub fn decide(_ctx: &EvalContext, candidates: &[Candidate<'_>]) -> Vec<Action> {
    candidates
        .iter()
        .map(|c| match c.ownership {
            Ownership::Owned { alloc_id } => Action {
                kind: ActionKind::Stop {
                    signal: Signal::Term,
                    timeout: Duration::from_secs(30),
                    then_remove: true,
                },
                reason: format!("orphan of allocation {alloc_id}"),
            },
            _ => Action {
                kind: ActionKind::Ignore,
                reason: "not owned by a Nomad allocation of this node".into(),
            },
        })
        .collect()
}

fn verdict(ownership: Ownership, reason: impl Into<String>) -> Verdict {
    Verdict {
        ownership,
        reason: reason.into(),
    }
}

fn owned(alloc_id: &str, reason: &str) -> Verdict {
    verdict(
        Ownership::Owned {
            alloc_id: alloc_id.to_owned(),
        },
        reason,
    )
}

fn env<'a>(c: &'a ContainerSnapshot, name: &str) -> Option<&'a str> {
    c.env
        .as_ref()?
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn classify_one(ctx: &EvalContext, c: &ContainerSnapshot) -> Verdict {
    if let Some(node) = c.labels.get(LABEL_NODE_ID) {
        if ctx.node.id.is_empty() {
            return verdict(
                Ownership::Unknown,
                format!("node_id label ({node}) but this node's id is not known yet"),
            );
        }
        if *node != ctx.node.id {
            return verdict(
                Ownership::NotNomad,
                format!("node_id label names another node ({node})"),
            );
        }
    }
    let env_alloc = env(c, ENV_ALLOC_ID);
    if let Some(alloc) = c.labels.get(LABEL_ALLOC_ID) {
        if alloc.is_empty() {
            return verdict(Ownership::Unknown, "alloc_id label is empty");
        }
        if let Some(from_env) = env_alloc
            && from_env != alloc
        {
            return verdict(
                Ownership::Unknown,
                format!("alloc_id label ({alloc}) disagrees with NOMAD_ALLOC_ID ({from_env})"),
            );
        }
        return owned(alloc, "alloc_id label");
    }
    let has_mounts = ALLOC_MOUNTS
        .iter()
        .all(|want| c.mounts.iter().any(|m| m.destination == *want));
    if has_mounts && let Some(from_name) = c.names.iter().find_map(|n| name_uuid(n)) {
        return match (&c.env, env_alloc) {
            (None, _) => verdict(
                Ownership::NeedInspect,
                "alloc mounts and Nomad name but no label",
            ),
            (Some(_), Some(from_env)) if from_env != from_name => verdict(
                Ownership::Unknown,
                format!("name names alloc {from_name} but NOMAD_ALLOC_ID is {from_env}"),
            ),
            (Some(_), _) => owned(from_name, "alloc mounts and Nomad task name"),
        };
    }
    if env_alloc.is_some() {
        return verdict(
            Ownership::Unknown,
            "NOMAD_ALLOC_ID set but no Nomad label, name or mounts",
        );
    }
    verdict(
        Ownership::NotNomad,
        "no Nomad label, and not both alloc mounts and a Nomad name",
    )
}

/// The allocation id a container name carries: the last `-<uuid>` after a `/` in `name`
/// (Nomad's `/.*-<uuid>` pattern for `/<task>-<alloc id>`), as the default ownership policy
/// reads it. The reconciler uses it to check the claims of any ownership policy.
pub fn name_alloc_id(name: &str) -> Option<&str> {
    name_uuid(name)
}

/// The last `-<uuid>` after a `/` in `name` (Nomad's `/.*-<uuid>` pattern).
fn name_uuid(name: &str) -> Option<&str> {
    let slash = name.find('/')?;
    let bytes = name.as_bytes();
    (slash + 1..bytes.len())
        .rev()
        .filter(|&i| bytes[i] == b'-')
        .find_map(|i| name.get(i + 1..i + 37).filter(|c| is_uuid(c)))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_pattern_matches_like_nomads_regex() {
        let uuid = "72bfa388-024e-a903-45b8-2bc28b74ed69";
        assert_eq!(name_uuid(&format!("/redis-{uuid}")), Some(uuid));
        assert_eq!(name_uuid(&format!("/my-task-{uuid}")), Some(uuid));
        assert_eq!(name_uuid(&format!("/t-{uuid}-extra")), Some(uuid));
        assert_eq!(name_uuid(&format!("/nomad_init_{uuid}")), None);
        assert_eq!(name_uuid(&format!("redis-{uuid}")), None);
        assert_eq!(name_uuid("/serene_keller"), None);
        assert_eq!(name_uuid("/x-72BFA388-024E-A903-45B8-2BC28B74ED69"), None);
    }
}
