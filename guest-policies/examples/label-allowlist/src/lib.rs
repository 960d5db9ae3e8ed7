//! Example ownership policy: only containers labelled for this node and for
//! an allow-listed Nomad namespace are owned.
//!
//! Stricter than the default: it needs Nomad's `extra_labels` to include
//! `node_id` and `namespace`, and never uses name or mount heuristics.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

use dockhand_policy_sdk::labels::{ALLOC_ID, NAMESPACE, NODE_ID};
use dockhand_policy_sdk::{ContainerRef, InputSelection};

/// Namespaces whose orphans may be reaped.
const ALLOWED_NAMESPACES: &[&str] = &["default", "batch"];

struct LabelAllowlist;

impl OwnershipPolicy for LabelAllowlist {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("example-label-allowlist", env!("CARGO_PKG_VERSION"))
            .reading(InputSelection::nothing().with_labels(&[ALLOC_ID, NODE_ID, NAMESPACE]))
    }

    fn classify(ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch.containers().map(|c| classify_one(&ctx, &c)).collect()
    }
}

fn classify_one(ctx: &EvalContext, c: &ContainerRef<'_>) -> Verdict {
    let Some(alloc) = c.label(ALLOC_ID).filter(|a| !a.is_empty()) else {
        return Verdict::not_nomad("no alloc_id label");
    };
    match c.label(NODE_ID) {
        Some(node) if node == ctx.node.id => {}
        Some(_) => return Verdict::not_nomad("labelled for another node"),
        None => return Verdict::unknown("no node_id label"),
    }
    match c.label(NAMESPACE) {
        Some(ns) if ALLOWED_NAMESPACES.contains(&ns) => {
            Verdict::owned(alloc, format!("namespace {ns} is allow-listed"))
        }
        Some(ns) => Verdict::unknown(format!("namespace {ns} is not allow-listed")),
        None => Verdict::unknown("no namespace label"),
    }
}

dockhand_policy_sdk::export_ownership!(LabelAllowlist);
