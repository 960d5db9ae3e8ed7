//! dockhand's default ownership policy: Nomad's `isNomadContainer` rules,
//! made safe for a Docker daemon shared by several Nomad clients.
//!
//! In order:
//!
//! 1. A `com.hashicorp.nomad.node_id` label naming another node ⇒ `not-nomad`
//!    (it is someone else's, whatever else it carries). While this node's id
//!    is not known yet (the driver learns it from its first task), such a
//!    label makes the container `unknown`: it may belong to another node.
//! 2. A `com.hashicorp.nomad.alloc_id` label ⇒ `owned` by that allocation
//!    (an empty value ⇒ `unknown`). If the environment is known and its
//!    `NOMAD_ALLOC_ID` disagrees with the label ⇒ `unknown`.
//! 3. No label, but mounts `/alloc`, `/local`, `/secrets` and a name
//!    `/<task>-<uuid>` (Nomad's fallback for unlabelled containers) ⇒ ask the
//!    host to inspect the environment first (`need-inspect`); once known,
//!    a `NOMAD_ALLOC_ID` different from the name's UUID ⇒ `unknown`,
//!    otherwise `owned` by the name's UUID.
//! 4. Anything else ⇒ `not-nomad` (or `unknown` when the environment names
//!    an allocation without any other sign of Nomad).

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

use dockhand_policy_sdk::helpers::{has_alloc_mounts, nomad_name_alloc_id};
use dockhand_policy_sdk::labels::{ALLOC_ID, ENV_ALLOC_ID, NODE_ID};
use dockhand_policy_sdk::{ContainerRef, InputSelection};

struct DefaultOwnership;

impl OwnershipPolicy for DefaultOwnership {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("default-ownership", env!("CARGO_PKG_VERSION")).reading(
            InputSelection::nothing()
                .with_names()
                .with_mount_destinations()
                .with_labels(&[ALLOC_ID, NODE_ID])
                .with_env(&[ENV_ALLOC_ID]),
        )
    }

    fn classify(ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch.containers().map(|c| classify_one(&ctx, &c)).collect()
    }
}

fn classify_one(ctx: &EvalContext, c: &ContainerRef<'_>) -> Verdict {
    if let Some(node) = c.label(NODE_ID) {
        if ctx.node.id.is_empty() {
            return Verdict::unknown(format!(
                "node_id label ({node}) but this node's id is not known yet"
            ));
        }
        if node != ctx.node.id {
            return Verdict::not_nomad(format!("node_id label names another node ({node})"));
        }
    }
    let env_alloc = c.env_var(ENV_ALLOC_ID);
    if let Some(alloc) = c.label(ALLOC_ID) {
        if alloc.is_empty() {
            return Verdict::unknown("alloc_id label is empty");
        }
        if let Some(from_env) = env_alloc
            && from_env != alloc
        {
            return Verdict::unknown(format!(
                "alloc_id label ({alloc}) disagrees with NOMAD_ALLOC_ID ({from_env})"
            ));
        }
        return Verdict::owned(alloc, "alloc_id label");
    }
    if has_alloc_mounts(c)
        && let Some(from_name) = nomad_name_alloc_id(c)
    {
        return match (c.env_known(), env_alloc) {
            (false, _) => Verdict::need_inspect("alloc mounts and Nomad name but no label"),
            (true, Some(from_env)) if from_env != from_name => Verdict::unknown(format!(
                "name names alloc {from_name} but NOMAD_ALLOC_ID is {from_env}"
            )),
            (true, _) => Verdict::owned(from_name, "alloc mounts and Nomad task name"),
        };
    }
    if env_alloc.is_some() {
        return Verdict::unknown("NOMAD_ALLOC_ID set but no Nomad label, name or mounts");
    }
    Verdict::not_nomad("no Nomad label, and not both alloc mounts and a Nomad name")
}

dockhand_policy_sdk::export_ownership!(DefaultOwnership);
