//! Behaviour of every store operation and error, on a real directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

mod recovery;

const OWN: PolicyKind = PolicyKind::Ownership;
const KILL: PolicyKind = PolicyKind::Kill;

fn meta(name: &str) -> PolicyMeta {
    PolicyMeta {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
    }
}

fn blob(n: u32) -> Vec<u8> {
    format!("\0asm component number {n}").into_bytes()
}

fn open(dir: &Path, keep: usize) -> PolicyStore {
    PolicyStore::open(dir, keep).unwrap()
}

fn put(store: &PolicyStore, kind: PolicyKind, n: u32) -> String {
    store
        .put(kind, &blob(n), None, meta(&format!("p{n}")))
        .unwrap()
        .digest
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn open_creates_private_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data").join(STORE_DIR_NAME);
    let store = open(&dir, 3);
    assert_eq!(store.dir(), dir);
    for sub in ["", "blobs", "active"] {
        assert_eq!(mode_of(&dir.join(sub)), 0o700, "{sub}");
    }
    assert!(dir.join("lock").is_file());
    assert!(store.list().unwrap().is_empty());
    assert!(store.active(OWN).unwrap().is_none());
    assert!(store.load_active(KILL).unwrap().is_none());
}

#[test]
fn open_tightens_a_loose_directory() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let _store = open(tmp.path(), 3);
    assert_eq!(mode_of(tmp.path()), 0o700);
}

#[test]
fn open_rejects_zero_keep_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let err = PolicyStore::open(tmp.path(), 0).unwrap_err();
    assert_eq!(err.to_string(), "keep_revisions must be at least 1, got 0");
}

#[test]
fn second_owner_is_locked_out_until_the_first_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let first = open(tmp.path(), 3);
    let err = PolicyStore::open(tmp.path(), 3).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is locked by another owner"),
        "{err}"
    );
    drop(first);
    open(tmp.path(), 3);
}

#[test]
fn put_then_get_round_trips_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let bytes = blob(1);
    let declared = sha256_hex(&bytes);
    let stored = store
        .put(OWN, &bytes, Some(&declared), meta("owner-check"))
        .unwrap();
    assert_eq!(stored.digest, declared);
    assert_eq!(stored.kind, OWN);
    assert_eq!(stored.name, "owner-check");
    assert_eq!(stored.version, "1.0.0");
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(stored.state, PolicyState::Inactive);
    assert!(stored.uploaded_at > 1_700_000_000);
    let (got, got_bytes) = store.get(&declared).unwrap();
    assert_eq!(got, stored);
    assert_eq!(got_bytes, bytes);
    assert_eq!(
        mode_of(&tmp.path().join("blobs").join(format!("{declared}.wasm"))),
        0o600
    );
}

#[test]
fn put_is_idempotent_and_keeps_the_first_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let first = store.put(KILL, &blob(1), None, meta("first")).unwrap();
    let again = store.put(KILL, &blob(1), None, meta("second")).unwrap();
    assert_eq!(again, first);
    assert_eq!(store.list().unwrap(), vec![first]);
}

#[test]
fn put_rejects_a_mismatched_declared_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let declared = sha256_hex(b"something else");
    let err = store
        .put(OWN, &blob(1), Some(&declared), meta("p"))
        .unwrap_err();
    let actual = sha256_hex(&blob(1));
    assert_eq!(
        err.to_string(),
        format!("declared sha256 {declared} does not match the uploaded policy's sha256 {actual}")
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn put_rejects_a_malformed_declared_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let err = store
        .put(OWN, &blob(1), Some("../../escape"), meta("p"))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidDigest { .. }), "{err:?}");
}

#[test]
fn put_enforces_the_size_limit_and_rejects_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let big = vec![7u8; MAX_POLICY_BYTES + 1];
    let err = store.put(OWN, &big, None, meta("big")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "policy is {} bytes, larger than the limit of {MAX_POLICY_BYTES} bytes",
            MAX_POLICY_BYTES + 1
        )
    );
    assert_eq!(
        store
            .put(OWN, &[], None, meta("e"))
            .unwrap_err()
            .to_string(),
        "policy is empty (0 bytes)"
    );
    // Exactly at the limit is fine.
    store
        .put(OWN, &big[..MAX_POLICY_BYTES], None, meta("max"))
        .unwrap();
}

#[test]
fn put_validates_name_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let cases = [
        (meta(""), "invalid policy name: must not be empty"),
        (
            meta("a\nb"),
            "invalid policy name: must not contain control characters",
        ),
        (
            PolicyMeta {
                name: "ok".to_owned(),
                version: "v".repeat(300),
            },
            "invalid policy version: is 300 bytes, more than 256",
        ),
    ];
    for (m, expected) in cases {
        assert_eq!(
            store.put(OWN, &blob(1), None, m).unwrap_err().to_string(),
            expected
        );
    }
}

#[test]
fn same_bytes_cannot_be_stored_as_both_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let digest = put(&store, OWN, 1);
    let err = store.put(KILL, &blob(1), None, meta("x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("policy {digest} is already stored with kind ownership, cannot store it as kill")
    );
}

#[test]
fn get_unknown_and_traversal_digests_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let unknown = sha256_hex(b"never stored");
    assert_eq!(
        store.get(&unknown).unwrap_err().to_string(),
        format!("no stored policy with sha256 {unknown}")
    );
    // A file outside the store that a traversal would reach.
    fs::write(tmp.path().join("secret.json"), b"{}").unwrap();
    for evil in [
        "../secret",
        "../../../../etc/passwd",
        "/etc/passwd",
        &format!("../blobs/{}", &unknown[..50]),
        &format!("{}/../../lock", &unknown[..50]),
    ] {
        for err in [
            store.get(evil).unwrap_err(),
            store.activate(OWN, evil, PolicyMode::Audit).unwrap_err(),
        ] {
            assert!(
                matches!(err, StoreError::InvalidDigest { .. }),
                "{evil}: {err:?}"
            );
        }
    }
    assert!(store.active(OWN).unwrap().is_none());
}

#[test]
fn activate_tracks_history_and_states() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let a = put(&store, OWN, 1);
    let b = put(&store, OWN, 2);
    let k = put(&store, KILL, 3);

    let first = store.activate(OWN, &a, PolicyMode::Audit).unwrap();
    assert_eq!(
        (first.kind, &*first.digest, first.mode),
        (OWN, &*a, PolicyMode::Audit)
    );
    assert!(first.previous.is_empty());
    assert_eq!(store.get(&a).unwrap().0.state, PolicyState::ActiveAudit);

    let second = store.activate(OWN, &b, PolicyMode::Enforce).unwrap();
    assert_eq!(second.digest, b);
    assert_eq!(second.previous.len(), 1);
    assert_eq!(second.previous[0].digest, a);
    assert_eq!(second.previous[0].mode, PolicyMode::Audit);
    assert_eq!(store.active(OWN).unwrap().unwrap(), second);

    let states: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|p| (p.digest, p.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (b.clone(), PolicyState::ActiveEnforce),
            (a.clone(), PolicyState::Previous),
            (k.clone(), PolicyState::Inactive),
        ]
    );

    // Same digest again: a mode change, history untouched.
    let switched = store.activate(OWN, &b, PolicyMode::Audit).unwrap();
    assert_eq!(switched.mode, PolicyMode::Audit);
    assert_eq!(switched.previous, second.previous);

    // Re-activating a previous revision moves it out of the history.
    let back = store.activate(OWN, &a, PolicyMode::Enforce).unwrap();
    assert_eq!(
        back.previous.iter().map(|r| &*r.digest).collect::<Vec<_>>(),
        [&*b]
    );

    // Kinds are independent.
    assert!(store.active(KILL).unwrap().is_none());
    let (record, stored, bytes) = store.load_active(OWN).unwrap().unwrap();
    assert_eq!(record.digest, a);
    assert_eq!(stored.state, PolicyState::ActiveEnforce);
    assert_eq!(bytes, blob(1));
}

#[test]
fn activate_rejects_wrong_kind_and_unknown_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let own = put(&store, OWN, 1);
    let err = store.activate(KILL, &own, PolicyMode::Enforce).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("policy {own} is of kind ownership, not kill")
    );
    let unknown = sha256_hex(b"nope");
    let err = store
        .activate(KILL, &unknown, PolicyMode::Enforce)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(store.active(KILL).unwrap().is_none());
}

#[test]
fn rollback_returns_to_the_previous_revision_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    assert_eq!(
        store.rollback(KILL).unwrap_err().to_string(),
        "no previous kill policy revision to roll back to"
    );
    let a = put(&store, KILL, 1);
    let b = put(&store, KILL, 2);
    let c = put(&store, KILL, 3);
    store.activate(KILL, &a, PolicyMode::Enforce).unwrap();
    assert!(matches!(
        store.rollback(KILL).unwrap_err(),
        StoreError::NothingToRollBack { kind: KILL }
    ));
    store.activate(KILL, &b, PolicyMode::Audit).unwrap();
    store.activate(KILL, &c, PolicyMode::Audit).unwrap();

    let r1 = store.rollback(KILL).unwrap();
    assert_eq!((&*r1.digest, r1.mode), (&*b, PolicyMode::Audit));
    assert_eq!(r1.previous.len(), 1);
    let r2 = store.rollback(KILL).unwrap();
    assert_eq!((&*r2.digest, r2.mode), (&*a, PolicyMode::Enforce));
    assert!(r2.previous.is_empty());
    assert!(store.rollback(KILL).is_err());
    assert_eq!(store.active(KILL).unwrap().unwrap(), r2);
    assert_eq!(store.get(&c).unwrap().0.state, PolicyState::Inactive);
}

#[test]
fn everything_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, record) = {
        let store = open(tmp.path(), 2);
        let a = put(&store, OWN, 1);
        let b = put(&store, OWN, 2);
        store.activate(OWN, &a, PolicyMode::Audit).unwrap();
        let record = store.activate(OWN, &b, PolicyMode::Enforce).unwrap();
        (a, b, record)
    };
    let store = open(tmp.path(), 2);
    assert_eq!(store.active(OWN).unwrap().unwrap(), record);
    assert_eq!(store.get(&a).unwrap().1, blob(1));
    assert_eq!(store.get(&b).unwrap().0.state, PolicyState::ActiveEnforce);
    // Upload order continues after the restart: the new upload is the
    // newest and survives retention, the old inactive ones are referenced.
    let c = put(&store, OWN, 3);
    let d = put(&store, OWN, 4);
    let digests: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|p| p.digest)
        .collect();
    assert_eq!(digests, [d, c, b.clone(), a]);
    assert_eq!(store.rollback(OWN).unwrap().digest.len(), 64);
}

#[test]
fn gc_keeps_recent_and_referenced_revisions_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 2);
    let old_active = put(&store, OWN, 0);
    store
        .activate(OWN, &old_active, PolicyMode::Enforce)
        .unwrap();
    let digests: Vec<_> = (1..=5).map(|n| put(&store, OWN, n)).collect();
    let kill = put(&store, KILL, 9);
    let mut listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|p| p.digest)
        .collect();
    listed.sort();
    let mut expected = vec![
        old_active.clone(),
        digests[4].clone(),
        digests[3].clone(),
        kill,
    ];
    expected.sort();
    assert_eq!(listed, expected, "newest two plus the active one");
    for gone in &digests[..3] {
        assert!(
            !tmp.path()
                .join("blobs")
                .join(format!("{gone}.wasm"))
                .exists()
        );
        assert!(
            !tmp.path()
                .join("blobs")
                .join(format!("{gone}.json"))
                .exists()
        );
        assert!(matches!(
            store.get(gone).unwrap_err(),
            StoreError::NotFound { .. }
        ));
    }
    assert!(store.gc().unwrap().is_empty());

    // History is bounded by keep_revisions and its blobs are kept.
    for d in &digests[3..] {
        store.activate(OWN, d, PolicyMode::Audit).unwrap();
    }
    let more: Vec<_> = (10..13).map(|n| put(&store, OWN, n)).collect();
    let record = store.activate(OWN, &more[2], PolicyMode::Audit).unwrap();
    assert_eq!(record.previous.len(), 2);
    assert_eq!(record.previous[0].digest, digests[4]);
    assert_eq!(record.previous[1].digest, digests[3]);
    for r in &record.previous {
        store.get(&r.digest).unwrap();
    }
    assert!(matches!(
        store.get(&old_active).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        store.get(&more[0]).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    store.get(&more[1]).unwrap();
}

#[test]
fn concurrent_writers_in_one_process_are_serialised() {
    let tmp = tempfile::tempdir().unwrap();
    // Retention large enough that no upload is collected between a
    // thread's put and its activate (see `put`'s docs).
    let store = std::sync::Arc::new(open(tmp.path(), 20));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let kind = if t % 2 == 0 { OWN } else { KILL };
                    let digest = put(&store, kind, t * 100 + i);
                    store.activate(kind, &digest, PolicyMode::Audit).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for kind in [OWN, KILL] {
        let record = store.active(kind).unwrap().unwrap();
        assert_eq!(
            record.previous.len(),
            9,
            "ten distinct activations per kind"
        );
        store.load_active(kind).unwrap().unwrap();
        for r in &record.previous {
            store.get(&r.digest).unwrap();
        }
    }
    assert_eq!(store.list().unwrap().len(), 20);
}
