use std::collections::BTreeMap;

use super::*;
use crate::snapshot::{Mount, NodeInfo};

fn snapshot() -> ContainerSnapshot {
    ContainerSnapshot {
        id: "abc".into(),
        names: vec!["/web-1".into(), "/alias".into()],
        image: "busybox".into(),
        labels: BTreeMap::from([
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("é".into(), String::new()),
        ]),
        env: Some(vec![("K".into(), "V".into()), ("K".into(), "W=X".into())]),
        mounts: vec![Mount {
            source: "/src".into(),
            destination: "/alloc".into(),
            kind: "bind".into(),
        }],
        created_ms: 5,
        started_ms: Some(6),
        state: ContainerState::Exited,
        exit_code: Some(137),
    }
}

/// Reads string `i` back the way the contract defines it.
fn string(t: &wit::StringTable, i: u32) -> &str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { t.ends[i - 1] as usize };
    &t.text[start..t.ends[i] as usize]
}

fn run(t: &wit::StringTable, r: wit::StrRun) -> Vec<&str> {
    (r.first..r.first + r.count).map(|i| string(t, i)).collect()
}

#[test]
fn a_container_round_trips_through_the_string_table() {
    let batch = container_batch(&[snapshot()], &InputSelection::all()).unwrap();
    let (t, c) = (&batch.strings, &batch.containers[0]);
    assert_eq!(string(t, c.id), "abc");
    assert_eq!(string(t, c.image), "busybox");
    assert_eq!(run(t, c.names), ["/web-1", "/alias"]);
    // Sorted by key bytes, as the contract promises.
    assert_eq!(run(t, c.labels), ["a", "1", "b", "2", "é", ""]);
    assert_eq!(run(t, c.env.unwrap()), ["K", "V", "K", "W=X"]);
    assert_eq!(run(t, c.mounts), ["/src", "/alloc", "bind"]);
    assert_eq!(
        (c.created_ms, c.started_ms, c.exit_code),
        (5, Some(6), Some(137))
    );
    assert!(matches!(c.state, wit::ContainerState::Exited));
    assert_eq!(t.ends.len(), string_count(&snapshot()));
    assert_eq!(t.text.len(), snapshot().input_bytes());
}

#[test]
fn containers_share_one_table_and_keep_their_order() {
    let mut second = snapshot();
    second.id = "def".into();
    second.env = None;
    second.labels.clear();
    second.mounts.clear();
    let batch = container_batch(&[snapshot(), second], &InputSelection::all()).unwrap();
    let t = &batch.strings;
    let ids: Vec<_> = batch.containers.iter().map(|c| string(t, c.id)).collect();
    assert_eq!(ids, ["abc", "def"]);
    let c = &batch.containers[1];
    assert!(c.env.is_none());
    assert_eq!((c.labels.count, c.mounts.count), (0, 0));
    assert_eq!(run(t, c.names), ["/web-1", "/alias"]);
    // Ends never decrease and the last one is the text's length.
    assert!(t.ends.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*t.ends.last().unwrap() as usize, t.text.len());
}

#[test]
fn an_empty_batch_is_an_empty_table() {
    let batch = container_batch(&[], &InputSelection::all()).unwrap();
    assert!(batch.containers.is_empty());
    assert!(batch.strings.text.is_empty() && batch.strings.ends.is_empty());
}

#[test]
fn candidates_carry_their_ownership() {
    let snap = snapshot();
    let owned = Ownership::Owned {
        alloc_id: "x".into(),
    };
    let batch = candidate_batch(
        &[
            Candidate {
                container: &snap,
                ownership: &owned,
            },
            Candidate {
                container: &snap,
                ownership: &Ownership::Unknown,
            },
        ],
        &InputSelection::all(),
    )
    .unwrap();
    assert!(matches!(batch.candidates[0].ownership, wit::Ownership::Owned(ref a) if a == "x"));
    assert!(matches!(
        batch.candidates[1].ownership,
        wit::Ownership::Unknown
    ));
    let t = &batch.strings;
    assert_eq!(string(t, batch.candidates[1].container.id), "abc");
    assert_ne!(
        batch.candidates[0].container.id,
        batch.candidates[1].container.id
    );
}

#[test]
fn an_oversized_batch_is_refused_before_packing() {
    let mut big = snapshot();
    big.labels
        .insert("big".into(), "x".repeat(MAX_BATCH_INPUT_BYTES));
    let err = container_batch(std::slice::from_ref(&big), &InputSelection::all()).unwrap_err();
    assert!(err.bytes > MAX_BATCH_INPUT_BYTES);
    // Only what the policy reads counts: the same label unselected is no problem.
    let narrow = InputSelection {
        labels: KeySelection::only("labels", &["a"]).unwrap(),
        ..InputSelection::all()
    };
    let batch = container_batch(&[big], &narrow).unwrap();
    assert!(batch.strings.text.len() < 1024);
}

#[test]
fn the_context_converts_field_by_field() {
    let ctx = EvalContext {
        now_ms: 42,
        node: NodeInfo {
            id: "n1".into(),
            name: "node".into(),
            datacenter: "dc1".into(),
        },
        driver_name: "dockhand".into(),
        creation_grace_ms: 300_000,
    };
    let w = wit::EvalContext::from(&ctx);
    assert_eq!((w.now_ms, w.creation_grace_ms), (42, 300_000));
    assert_eq!(
        (
            w.node.id.as_str(),
            w.node.name.as_str(),
            w.node.datacenter.as_str()
        ),
        ("n1", "node", "dc1")
    );
    assert_eq!(w.driver_name, "dockhand");
}

#[test]
fn only_selected_inputs_are_packed() {
    let mut snap = snapshot();
    snap.labels.insert("com.x.a".into(), "xa".into());
    snap.labels.insert("com.x.b".into(), "xb".into());
    snap.labels.insert("com.y".into(), "y".into());
    let reads = InputSelection {
        names: false,
        image: false,
        labels: KeySelection::only("labels", &["com.x.*", "a", "missing"]).unwrap(),
        env: KeySelection::only("env", &["K"]).unwrap(),
        mounts: MountSelection::None,
    };
    let batch = container_batch(&[snap.clone()], &reads).unwrap();
    let (t, c) = (&batch.strings, &batch.containers[0]);
    assert_eq!(string(t, c.id), "abc");
    assert_eq!(string(t, c.image), "");
    assert_eq!((c.names.count, c.mounts.count), (0, 0));
    // Still sorted by key, whatever the selection's own order.
    assert_eq!(
        run(t, c.labels),
        ["a", "1", "com.x.a", "xa", "com.x.b", "xb"]
    );
    // Once, with the last value.
    assert_eq!(run(t, c.env.unwrap()), ["K", "W=X"]);
    assert!(!t.text.contains("busybox") && !t.text.contains("/alloc"));

    // Exact keys alone are looked up; the order is still the key order.
    let exact = InputSelection {
        labels: KeySelection::only("labels", &["com.y", "b"]).unwrap(),
        env: KeySelection::none(),
        mounts: MountSelection::Destinations,
        ..reads
    };
    let batch = container_batch(&[snap.clone()], &exact).unwrap();
    let (t, c) = (&batch.strings, &batch.containers[0]);
    assert_eq!(run(t, c.labels), ["b", "2", "com.y", "y"]);
    assert_eq!(run(t, c.mounts), ["", "/alloc", ""]);
    // Inspected but nothing selected: known, and empty.
    assert_eq!(c.env.map(|r| r.count), Some(0));
    snap.env = None;
    let batch = container_batch(&[snap], &exact).unwrap();
    assert!(
        batch.containers[0].env.is_none(),
        "not inspected stays none"
    );
}

#[test]
fn selected_environment_is_one_sorted_entry_per_name() {
    let mut snap = snapshot();
    snap.set_env_from_docker([
        "NOMAD_TASK=web",
        "PATH=/bin",
        "NOMAD_ALLOC_ID=old",
        "TZ=UTC",
        "NOMAD_ALLOC_ID=new",
        "SECRET=x",
    ]);
    let env_of = |selection: KeySelection| {
        let reads = InputSelection {
            env: selection,
            ..InputSelection::all()
        };
        let batch = container_batch(std::slice::from_ref(&snap), &reads).unwrap();
        let c = &batch.containers[0];
        run(&batch.strings, c.env.unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        env_of(KeySelection::only("env", &["TZ", "NOMAD_ALLOC_ID", "NOPE"]).unwrap()),
        ["NOMAD_ALLOC_ID", "new", "TZ", "UTC"]
    );
    assert_eq!(
        env_of(KeySelection::only("env", &["NOMAD_*", "TZ"]).unwrap()),
        ["NOMAD_ALLOC_ID", "new", "NOMAD_TASK", "web", "TZ", "UTC"]
    );
    // `all` is Docker's list, duplicates and order included.
    assert_eq!(env_of(KeySelection::All).len(), 12);
    assert_eq!(env_of(KeySelection::none()), Vec::<String>::new());
}
