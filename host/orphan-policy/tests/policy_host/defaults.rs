//! The bundled defaults and examples against Nomad's reference cases
//! (reconcile_dangling_test.go), the shared-daemon case, and the native
//! reference implementation.

use std::time::Duration;

use orphan_policy::{
    ActionKind, Candidate, ContainerSnapshot, Ownership, PolicyKind, Signal, Verdict, native,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use crate::support::{
    ALLOC, NODE_ID, OTHER_NODE_ID, container, ctx, guest, harness, with_env, with_label,
    with_mounts,
};

const ALLOC_LABEL: &str = "com.hashicorp.nomad.alloc_id";
const NODE_LABEL: &str = "com.hashicorp.nomad.node_id";

fn classify(containers: &[ContainerSnapshot]) -> Vec<Verdict> {
    let h = harness();
    let policy = h
        .engine
        .load_default(PolicyKind::Ownership)
        .expect("default ownership");
    let verdicts = policy.classify(&ctx(), containers).expect("classify");
    assert_eq!(
        verdicts,
        native::classify(&ctx(), containers),
        "wasm and native rules disagree"
    );
    verdicts
}

fn owned(alloc: &str) -> Ownership {
    Ownership::Owned {
        alloc_id: alloc.into(),
    }
}

#[test]
fn describe_reports_name_and_contract_version() {
    let h = harness();
    let policy = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    assert_eq!(policy.info().name, "default-ownership");
    assert_eq!(policy.info().contract_version, "0.3.0");
    assert_eq!(policy.kind(), PolicyKind::Ownership);
    assert_eq!(policy.digest_hex().len(), 64);
    let kill = h.engine.load_default(PolicyKind::Kill).expect("loads");
    assert_eq!(kill.info().name, "default-kill");
}

/// `reconciler_containers_list.json`: an unlabelled Nomad container and an
/// unrelated one (`Test_HasMount`, `Test_HasNomadName`).
#[test]
fn nomad_fixture_unlabelled_container_is_owned_after_inspection() {
    let redis = with_mounts(
        container("r1", &format!("/redis-{ALLOC}")),
        &["/alloc", "/data", "/local", "/secrets"],
    );
    let keller = container("k1", "/serene_keller");

    let first = classify(&[redis.clone(), keller.clone()]);
    assert_eq!(
        first[0].ownership,
        Ownership::NeedInspect,
        "no label: the env is wanted first"
    );
    assert_eq!(first[1].ownership, Ownership::NotNomad);

    // The host inspects and asks again: an env without NOMAD_ALLOC_ID keeps
    // Nomad's rule (mounts + name), a matching one confirms it.
    let inspected = with_env(redis.clone(), &["PATH=/bin"]);
    let confirmed = with_env(redis.clone(), &[&format!("NOMAD_ALLOC_ID={ALLOC}")]);
    let conflicting = with_env(
        redis,
        &["NOMAD_ALLOC_ID=00000000-0000-0000-0000-000000000000"],
    );
    let second = classify(&[inspected, confirmed, conflicting]);
    assert_eq!(second[0].ownership, owned(ALLOC));
    assert_eq!(second[1].ownership, owned(ALLOC));
    assert_eq!(second[2].ownership, Ownership::Unknown);
}

/// `TestDanglingContainerRemoval_normal`: a labelled untracked container is
/// Nomad's, `mytest-image-<uuid>` matches the name but lacks the mounts.
#[test]
fn nomad_normal_case_label_wins_and_name_alone_is_not_enough() {
    let labelled = with_label(container("l1", "/web-task"), ALLOC_LABEL, ALLOC);
    let lookalike = container("m1", &format!("/mytest-image-{ALLOC}"));
    let verdicts = classify(&[labelled, lookalike.clone(), with_env(lookalike, &["A=b"])]);
    assert_eq!(verdicts[0].ownership, owned(ALLOC));
    assert_eq!(verdicts[1].ownership, Ownership::NotNomad);
    assert_eq!(verdicts[2].ownership, Ownership::NotNomad);
}

#[test]
fn pause_container_is_owned_through_its_label_only() {
    let pause = with_label(
        container("p1", &format!("/nomad_init_{ALLOC}")),
        ALLOC_LABEL,
        ALLOC,
    );
    let unlabelled_pause = with_mounts(
        container("p2", &format!("/nomad_init_{ALLOC}")),
        &["/alloc", "/local", "/secrets"],
    );
    let verdicts = classify(&[pause, unlabelled_pause]);
    assert_eq!(verdicts[0].ownership, owned(ALLOC));
    assert_eq!(verdicts[1].ownership, Ownership::NotNomad);
}

#[test]
fn shared_daemon_another_nodes_alloc_is_never_owned() {
    let base = with_label(
        container("s1", &format!("/web-{ALLOC}")),
        ALLOC_LABEL,
        ALLOC,
    );
    let theirs = with_mounts(
        with_label(base.clone(), NODE_LABEL, OTHER_NODE_ID),
        &["/alloc", "/local", "/secrets"],
    );
    let ours = with_label(base, NODE_LABEL, NODE_ID);
    let verdicts = classify(&[theirs.clone(), ours]);
    assert_eq!(verdicts[0].ownership, Ownership::NotNomad);
    assert!(
        verdicts[0].reason.contains(OTHER_NODE_ID),
        "{}",
        verdicts[0].reason
    );
    assert_eq!(verdicts[1].ownership, owned(ALLOC));

    // Even unlabelled-for-alloc with Nomad name and mounts, another node's label wins.
    let mut unlabelled = theirs;
    unlabelled.labels.remove(ALLOC_LABEL);
    assert_eq!(
        classify(&[with_env(unlabelled, &[])])[0].ownership,
        Ownership::NotNomad
    );
}

#[test]
fn node_labels_are_inconclusive_while_this_nodes_id_is_unknown() {
    let h = harness();
    let policy = h
        .engine
        .load_default(PolicyKind::Ownership)
        .expect("default ownership");
    let mut anonymous = ctx();
    anonymous.node.id.clear();
    let labelled = with_label(
        with_label(
            container("u1", &format!("/web-{ALLOC}")),
            ALLOC_LABEL,
            ALLOC,
        ),
        NODE_LABEL,
        OTHER_NODE_ID,
    );
    let plain = with_label(container("u2", "/db"), ALLOC_LABEL, ALLOC);
    let containers = [labelled, plain];
    let verdicts = policy.classify(&anonymous, &containers).expect("classify");
    assert_eq!(verdicts, native::classify(&anonymous, &containers));
    assert_eq!(verdicts[0].ownership, Ownership::Unknown, "{verdicts:?}");
    assert!(verdicts[0].reason.contains("not known yet"));
    // Without a node label the alloc_id label still decides, as in Nomad.
    assert_eq!(verdicts[1].ownership, owned(ALLOC));
}

#[test]
fn weak_or_contradictory_evidence_is_unknown() {
    let empty_label = with_label(container("e1", "/x"), ALLOC_LABEL, "");
    let env_only = with_env(container("e2", "/y"), &[&format!("NOMAD_ALLOC_ID={ALLOC}")]);
    let disagreeing = with_env(
        with_label(container("e3", "/z"), ALLOC_LABEL, ALLOC),
        &["NOMAD_ALLOC_ID=11111111-2222-3333-4444-555555555555"],
    );
    let verdicts = classify(&[empty_label, env_only, disagreeing]);
    assert!(
        verdicts.iter().all(|v| v.ownership == Ownership::Unknown),
        "{verdicts:?}"
    );
}

#[test]
fn kill_default_stops_with_sigterm_for_30s_then_removes() {
    let h = harness();
    let policy = h
        .engine
        .load_default(PolicyKind::Kill)
        .expect("default kill");
    let c = container("c1", "/web");
    let owned = owned(ALLOC);
    let candidates = vec![
        Candidate {
            container: &c,
            ownership: &owned,
        },
        Candidate {
            container: &c,
            ownership: &Ownership::Unknown,
        },
    ];
    let actions = policy.decide(&ctx(), &candidates).expect("decide");
    assert_eq!(
        actions[0].kind,
        ActionKind::Stop {
            signal: Signal::Term,
            timeout: Duration::from_secs(30),
            then_remove: true
        }
    );
    assert!(actions[0].reason.contains(ALLOC));
    assert_eq!(actions[1].kind, ActionKind::Ignore);
    assert_eq!(actions, native::decide(&ctx(), &candidates));
}

#[test]
fn example_label_allowlist_needs_node_and_namespace_labels() {
    let h = harness();
    let policy = h
        .engine
        .load(PolicyKind::Ownership, &guest("example-label-allowlist"))
        .expect("loads");
    let base = with_label(container("x", "/t"), ALLOC_LABEL, ALLOC);
    let allowed = with_label(
        with_label(base.clone(), NODE_LABEL, NODE_ID),
        "com.hashicorp.nomad.namespace",
        "default",
    );
    let other_ns = with_label(
        with_label(base.clone(), NODE_LABEL, NODE_ID),
        "com.hashicorp.nomad.namespace",
        "prod",
    );
    let verdicts = policy
        .classify(&ctx(), &[allowed, other_ns, base])
        .expect("classify");
    assert_eq!(verdicts[0].ownership, owned(ALLOC));
    assert_eq!(verdicts[1].ownership, Ownership::Unknown);
    assert_eq!(verdicts[2].ownership, Ownership::Unknown);
}

#[test]
fn example_audit_only_ignores_everything_and_logs() {
    let h = harness();
    let policy = h
        .engine
        .load(PolicyKind::Kill, &guest("example-audit-only"))
        .expect("loads");
    let (c, owned) = (container("c", "/w"), owned(ALLOC));
    let candidates = vec![Candidate {
        container: &c,
        ownership: &owned,
    }];
    let eval = policy
        .decide_with_stats(&ctx(), &candidates)
        .expect("decide");
    assert_eq!(eval.output[0].kind, ActionKind::Ignore);
    assert_eq!(eval.log.emitted, 1);
}

fn arb_container() -> impl Strategy<Value = ContainerSnapshot> {
    let uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    (
        prop::option::of(prop_oneof![
            Just(ALLOC.to_owned()),
            Just(String::new()),
            uuid.prop_map(|s| s)
        ]),
        prop::option::of(prop_oneof![
            Just(NODE_ID.to_owned()),
            Just(OTHER_NODE_ID.to_owned())
        ]),
        prop_oneof![
            Just(format!("/web-{ALLOC}")),
            Just("/plain".to_owned()),
            "/[a-z_-]{0,12}".prop_map(|s| s)
        ],
        prop::sample::subsequence(vec!["/alloc", "/local", "/secrets", "/data"], 0..=4),
        prop::option::of(prop::option::of(prop_oneof![
            Just(ALLOC.to_owned()),
            uuid.prop_map(|s| s)
        ])),
    )
        .prop_map(|(alloc, node, name, mounts, env)| {
            let mut c = with_mounts(container("p", &name), &mounts);
            if let Some(a) = alloc {
                c = with_label(c, ALLOC_LABEL, &a);
            }
            if let Some(n) = node {
                c = with_label(c, NODE_LABEL, &n);
            }
            match env {
                None => c,
                Some(None) => with_env(c, &["PATH=/bin"]),
                Some(Some(a)) => with_env(c, &[&format!("NOMAD_ALLOC_ID={a}")]),
            }
        })
}

/// The Wasm default and the native reference agree on arbitrary mixes of
/// the signals both look at.
#[test]
fn wasm_default_matches_native_rules_on_generated_snapshots() {
    let h = harness();
    let policy = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(arb_container(), 0..12), |batch| {
            let wasm = policy.classify(&ctx(), &batch).expect("classify");
            prop_assert_eq!(wasm, native::classify(&ctx(), &batch));
            Ok(())
        })
        .expect("wasm and native agree");
}
