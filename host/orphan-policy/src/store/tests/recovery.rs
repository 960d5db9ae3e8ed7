//! Damaged files and interrupted writers: what the store detects and repairs.

use std::fs;

use super::*;

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs").join(format!("{digest}.wasm"))
}

#[test]
fn corrupted_blobs_are_detected_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 3);
    let a = put(&store, KILL, 1);
    let b = put(&store, KILL, 2);
    store.activate(KILL, &a, PolicyMode::Enforce).unwrap();
    let before = store.activate(KILL, &b, PolicyMode::Enforce).unwrap();

    // Same length, one byte flipped.
    let mut bytes = blob(1);
    bytes[5] ^= 0xff;
    fs::write(blob_path(tmp.path(), &a), &bytes).unwrap();
    let err = store.get(&a).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "stored policy {a} is corrupt: blob content has sha256 "
        )),
        "{err}"
    );
    // Rolling back to a corrupt revision is refused; the pointer stays.
    assert!(matches!(
        store.rollback(KILL).unwrap_err(),
        StoreError::Corrupt { .. }
    ));
    assert_eq!(store.active(KILL).unwrap().unwrap(), before);
    assert!(matches!(
        store.activate(KILL, &a, PolicyMode::Audit).unwrap_err(),
        StoreError::Corrupt { .. }
    ));

    // Truncated and missing blobs of the active policy.
    fs::write(blob_path(tmp.path(), &b), b"short").unwrap();
    let err = store.load_active(KILL).unwrap_err();
    assert!(err.to_string().contains("blob is 5 bytes"), "{err}");
    fs::remove_file(blob_path(tmp.path(), &b)).unwrap();
    let err = store.get(&b).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("stored policy {b} is corrupt: its blob file is missing")
    );

    // Uploading the same bytes again repairs the blob.
    store.put(KILL, &blob(2), None, meta("again")).unwrap();
    assert_eq!(store.load_active(KILL).unwrap().unwrap().2, blob(2));
}

#[test]
fn open_cleans_up_after_an_interrupted_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join("blobs");
    let active = {
        let store = open(tmp.path(), 3);
        let a = put(&store, OWN, 1);
        store.activate(OWN, &a, PolicyMode::Enforce).unwrap()
    };
    let half_uploaded = sha256_hex(b"half");
    let half_deleted = sha256_hex(b"deleted");
    fs::write(blobs.join(format!("{half_uploaded}.wasm")), b"half").unwrap();
    fs::write(blobs.join(format!("{half_deleted}.json")), b"{}").unwrap();
    fs::write(blobs.join(".tmp-x.wasm-1-0"), b"partial").unwrap();
    fs::write(tmp.path().join("active").join(".tmp-kill.json-1-1"), b"{").unwrap();

    let store = open(tmp.path(), 3);
    let mut names: Vec<_> = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{}.json", active.digest),
            format!("{}.wasm", active.digest)
        ]
    );
    assert_eq!(
        fs::read_dir(tmp.path().join("active")).unwrap().count(),
        1,
        "only ownership.json"
    );
    assert_eq!(store.active(OWN).unwrap().unwrap(), active);
    assert!(store.active(KILL).unwrap().is_none());
}

#[test]
fn a_tampered_pointer_is_reported_and_blocks_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), 1);
    let a = put(&store, OWN, 1);
    let pointer = tmp.path().join("active").join("ownership.json");
    fs::write(
        &pointer,
        r#"{"kind":"ownership","digest":"../../etc/passwd","mode":"enforce","activated_at":1}"#,
    )
    .unwrap();
    let err = store.active(OWN).unwrap_err();
    assert!(matches!(err, StoreError::CorruptFile { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid sha256 digest"), "{err}");
    fs::write(&pointer, b"{not json").unwrap();
    assert!(matches!(
        store.load_active(OWN).unwrap_err(),
        StoreError::CorruptFile { .. }
    ));
    // Retention cannot tell what is referenced, so it deletes nothing.
    put(&store, OWN, 2);
    assert!(store.gc().is_err());
    store.get(&a).unwrap();
    // Activating replaces the damaged pointer.
    let repaired = store.activate(OWN, &a, PolicyMode::Audit).unwrap();
    assert!(repaired.previous.is_empty());
    assert_eq!(store.active(OWN).unwrap().unwrap(), repaired);
    // A pointer in the wrong file is refused too.
    fs::write(
        &pointer,
        format!(r#"{{"kind":"kill","digest":"{a}","mode":"audit","activated_at":1}}"#),
    )
    .unwrap();
    assert!(
        store
            .active(OWN)
            .unwrap_err()
            .to_string()
            .contains("holds the kill pointer")
    );
}

#[test]
fn io_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"").unwrap();
    let err = PolicyStore::open(&file.join("store"), 3).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "policy store: cannot create directory {}",
            file.display()
        )),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
