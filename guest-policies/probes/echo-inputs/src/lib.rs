//! Test probe: an ownership policy that reports what it was sent.
//!
//! It declares a narrow input selection (names, mount destinations, the
//! `com.hashicorp.nomad.*` and `tier` labels, `NOMAD_*` and `TZ`) and answers `unknown` for every
//! container, with a reason listing everything it can see, so that the
//! host's tests can check that nothing unselected reaches a policy. Never
//! shipped.

use dockhand_policy_sdk::{ContainerBatch, EvalContext, OwnershipPolicy, PolicyInfo, Verdict};

use dockhand_policy_sdk::{ContainerRef, InputSelection};

struct Probe;

impl OwnershipPolicy for Probe {
    fn describe() -> PolicyInfo {
        PolicyInfo::new("probe-echo-inputs", "0.1.0").reading(
            InputSelection::nothing()
                .with_names()
                .with_mount_destinations()
                .with_labels(&["com.hashicorp.nomad.*", "tier"])
                .with_env(&["NOMAD_*", "TZ"]),
        )
    }

    fn classify(_ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
        batch
            .containers()
            .map(|c| Verdict::unknown(echo(&c)))
            .collect()
    }
}

/// `id=…; names=…; image=…; labels=k=v,…; env=…; mounts=…` (`env=-` when
/// the container was not inspected).
fn echo(c: &ContainerRef<'_>) -> String {
    let join = |items: Vec<String>| items.join(",");
    let labels = join(c.labels().map(|(k, v)| format!("{k}={v}")).collect());
    let env = match c.env() {
        Some(env) => join(env.map(|(k, v)| format!("{k}={v}")).collect()),
        None => "-".into(),
    };
    let mounts = join(
        c.mounts()
            .map(|m| format!("{}:{}:{}", m.source, m.destination, m.kind))
            .collect(),
    );
    format!(
        "id={}; names={}; image={}; labels={labels}; env={env}; mounts={mounts}",
        c.id(),
        join(c.names().map(str::to_owned).collect()),
        c.image(),
    )
}

dockhand_policy_sdk::export_ownership!(Probe);
