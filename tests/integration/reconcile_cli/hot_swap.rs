//! Hot swap through the plugin: a stored policy activated while a sweep is in flight leaves
//! that sweep on the policy it started with; the next sweep uses the new one, with no
//! restart.

use std::time::{Duration, Instant};

use dockhand::admin::{PolicyKindMsg, PolicyModeMsg};
use dockhand::reconcile::{SweepReport, ownership_name};
use orphan_policy::guests;
use orphan_policy::store::sha256_hex;

use super::{audit_lines, until_aged};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::reconcile::{ALLOC_LABEL, Kind, STUBBORN, make, output, state, uuid_for};
use crate::support::{TEST_CASE_LABEL, TestContainers, docker_with_image};

#[tokio::test]
async fn a_policy_activated_during_a_sweep_applies_from_the_next_sweep() {
    let case = "reconcile_cli_hot_swap";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    // Two orphans whose stop blocks for its 30 s grace; with one action per sweep, the first
    // sweep is busy with one of them and leaves the other for the next. They carry Nomad's
    // alloc label only, so the daemon is declared dockhand's alone (`daemon = "exclusive"`):
    // otherwise the host would refuse any claim on them.
    let mut orphans = Vec::new();
    for n in 1..=2 {
        let alloc = uuid_for(case, n);
        orphans.push(
            make(
                &docker,
                &guard,
                Kind {
                    name: format!("{case}-web-{alloc}"),
                    labels: vec![(ALLOC_LABEL, alloc)],
                    start: true,
                    script: Some(STUBBORN),
                    ..Kind::default()
                },
            )
            .await,
        );
    }
    let private = Private::new();
    let body = private.config(
        &format!(
            " mode = \"enforce\"\n max_actions_per_sweep = 1\n \
             label_filter = \"{TEST_CASE_LABEL}={case}\"\n daemon = \"exclusive\"\n"
        ),
        "gc {\n dangling_containers {\n creation_grace = \"1m\"\n }\n}\n",
    );
    let plugin = started(&body).await;
    // On-demand sweeps wait out the plugin's start-up wait (the 1m grace), which also ages the
    // orphans created before it.
    let created = Instant::now();
    let pid = plugin.pid();
    let mut admin = admin_client(&plugin, &private.socket()).await;
    let old = sha256_hex(guests::DEFAULT_OWNERSHIP);
    let new_policy = guests::test_guest("example-label-allowlist").expect("example policy");
    let new = sha256_hex(&new_policy);
    assert_ne!(old, new);
    // Stored (and compiled) before the sweep: what happens while it is in flight is the
    // activation alone, well inside the stop's 30 s grace even on a loaded machine.
    let uploaded = admin
        .upload(
            PolicyKindMsg::Ownership,
            new_policy,
            Some(new.clone()),
            None,
            None,
        )
        .await
        .expect("upload");
    assert_eq!(uploaded.policy.expect("stored").digest, new);
    until_aged(created).await;

    let mut sweeper = admin.clone();
    let in_flight = tokio::spawn(async move { sweeper.sweep(false).await });
    // The stop has begun once an orphan's trap has printed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopping = loop {
        let mut found = None;
        for id in &orphans {
            if output(&docker, id).await.contains("got-term") {
                found = Some(id.clone());
            }
        }
        if let Some(id) = found {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "no stop began: {:?}",
            plugin.stderr_lines()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !in_flight.is_finished(),
        "the sweep is still stopping {stopping}"
    );

    let activated = admin
        .activate(new.clone(), PolicyModeMsg::Enforce)
        .await
        .expect("activate");
    assert!(activated.applied, "{activated:?}");
    assert!(
        !in_flight.is_finished(),
        "activated while the sweep is in flight"
    );

    let first = tokio::time::timeout(Duration::from_secs(120), in_flight)
        .await
        .expect("the sweep ends")
        .expect("join")
        .expect("Sweep");
    assert_eq!(first.status(), "completed", "{first:?}");
    let first = first.report().expect("a report").clone();
    assert_eq!(
        first.ownership_digest, old,
        "the in-flight sweep keeps its policy"
    );
    let decision = |r: &SweepReport, id: &str| {
        r.decision(id).map(|d| {
            let ownership = d
                .verdict
                .as_ref()
                .map_or("", |v| ownership_name(&v.ownership));
            (ownership.to_owned(), d.outcome.label().to_owned())
        })
    };
    let outcome = |r: &SweepReport, id: &str| decision(r, id).map(|d| d.1);
    assert_eq!(
        outcome(&first, &stopping).as_deref(),
        Some("done"),
        "{first:?}"
    );
    let other = orphans
        .iter()
        .find(|id| **id != stopping)
        .expect("two orphans")
        .clone();
    assert_eq!(
        outcome(&first, &other).as_deref(),
        Some("cap-reached"),
        "{first:?}"
    );
    // The stop's intent and outcome, then the other decision.
    let audit = audit_lines(&private.data_dir());
    let records: Vec<(&str, &str)> = audit
        .iter()
        .map(|l| {
            (
                l["record"].as_str().unwrap_or_default(),
                l["container_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("intent", stopping.as_str()),
            ("outcome", stopping.as_str()),
            ("decision", other.as_str())
        ],
        "{audit:?}"
    );
    assert!(
        audit.iter().all(|l| l["ownership_digest"] == old),
        "{audit:?}"
    );

    let second = admin.sweep(false).await.expect("Sweep");
    assert_eq!(second.status(), "completed", "{second:?}");
    let second = second.report().expect("a report").clone();
    assert_eq!(
        second.ownership_digest, new,
        "the next sweep uses the activation"
    );
    // The default policy owned it (alloc_id label); the allow-list one wants a node_id label.
    assert_eq!(
        decision(&first, &other).map(|d| d.0).as_deref(),
        Some("owned"),
        "{first:?}"
    );
    assert_eq!(
        decision(&second, &other),
        Some(("unknown".to_owned(), "no-action".to_owned())),
        "{second:?}"
    );
    assert_eq!(state(&docker, &other).await, Some(true));
    let audit = audit_lines(&private.data_dir());
    let later: Vec<_> = audit
        .iter()
        .filter(|l| l["sweep_ms"] == second.started_ms)
        .collect();
    assert!(!later.is_empty(), "{audit:?}");
    assert!(
        later.iter().all(|l| l["ownership_digest"] == new),
        "{audit:?}"
    );

    // No restart: the same process, whose reconciler started once.
    assert_eq!(plugin.pid(), pid);
    assert_eq!(
        plugin.count_logs("dangling container reconciler started"),
        1
    );
}
