use super::*;

const ID: &str = "9d5741c1-3954-4b57-8a4c-d7a1e5a1a001";
const OTHER_ID: &str = "0b8c2f4e-7d19-4c3a-9e6b-5f0a2d7c8e02";

fn file_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join(NODE_FILE_NAME)
}

fn identity(cell: &NodeCell) -> (String, String) {
    let node = cell.get();
    (node.id, node.name)
}

#[test]
fn learning_without_a_file_stays_in_memory() {
    let cell = NodeCell::default();
    cell.learn("", "");
    assert_eq!(identity(&cell), (String::new(), String::new()));
    cell.learn(ID, "client-1");
    cell.learn("", "");
    assert_eq!(identity(&cell), (ID.to_owned(), "client-1".to_owned()));
}

#[test]
fn a_learnt_identity_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);

    let first = NodeCell::default();
    first.persist_to(path.clone());
    assert!(!path.exists(), "nothing to save before a task");
    first.learn(ID, "client-1");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved, serde_json::json!({"id": ID, "name": "client-1"}));

    let restarted = NodeCell::default();
    restarted.persist_to(path.clone());
    assert_eq!(identity(&restarted), (ID.to_owned(), "client-1".to_owned()));

    // A task of a node that came back under a new id replaces the saved one.
    restarted.learn(OTHER_ID, "client-1");
    let again = NodeCell::default();
    again.persist_to(path);
    assert_eq!(
        identity(&again),
        (OTHER_ID.to_owned(), "client-1".to_owned())
    );
}

#[test]
fn an_identity_learnt_before_persisting_is_written_and_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!(r#"{{"id":"{OTHER_ID}","name":"old"}}"#)).unwrap();

    let cell = NodeCell::default();
    cell.learn(ID, "client-1");
    cell.persist_to(path.clone());
    assert_eq!(identity(&cell), (ID.to_owned(), "client-1".to_owned()));
    let fresh = NodeCell::default();
    fresh.persist_to(path);
    assert_eq!(identity(&fresh), (ID.to_owned(), "client-1".to_owned()));
}

#[test]
fn the_first_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let cell = NodeCell::default();
    cell.persist_to(a.clone());
    cell.persist_to(b.clone());
    cell.learn(ID, "");
    assert!(a.exists());
    assert!(!b.exists());
}

#[test]
fn unusable_files_are_ignored_and_left_in_place() {
    let cases: &[(&str, &str)] = &[
        ("garbage", "not json"),
        ("empty id", r#"{"id":"","name":"n"}"#),
        (
            "control characters",
            "{\"id\":\"a\\u001b[2Jb\",\"name\":\"n\"}",
        ),
        (
            "space in name",
            &format!(r#"{{"id":"{ID}","name":"two words"}}"#),
        ),
        (
            "unknown field",
            &format!(r#"{{"id":"{ID}","name":"n","x":1}}"#),
        ),
        ("missing name", &format!(r#"{{"id":"{ID}"}}"#)),
    ];
    let long = format!(
        r#"{{"id":"{}","name":"n"}}"#,
        "a".repeat(MAX_FIELD_BYTES + 1)
    );
    let cases = cases.iter().copied().chain([("long id", long.as_str())]);
    for (case, content) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NODE_FILE_NAME);
        std::fs::write(&path, content).unwrap();
        let cell = NodeCell::default();
        cell.persist_to(path.clone());
        assert_eq!(identity(&cell), (String::new(), String::new()), "{case}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content, "{case}");
        assert!(load(&path).is_err(), "{case}");
    }
}

#[test]
fn the_load_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(NODE_FILE_NAME);
    std::fs::write(&path, r#"{"id":"","name":"n"}"#).unwrap();
    assert_eq!(load(&path).unwrap_err(), "its id is empty");
    std::fs::write(&path, format!(r#"{{"id":"{ID}","name":"a b"}}"#)).unwrap();
    assert_eq!(
        load(&path).unwrap_err(),
        r#"its name "a b" has characters other than printable ASCII"#
    );
    std::fs::write(&path, "[]").unwrap();
    assert!(
        load(&path)
            .unwrap_err()
            .starts_with("not a node identity: ")
    );
    std::fs::write(&path, vec![b' '; 1 << 20]).unwrap();
    assert_eq!(
        load(&path).unwrap_err(),
        format!("it is larger than {MAX_FILE_BYTES} bytes")
    );
    assert_eq!(load(dir.path()).unwrap_err(), "it is not a regular file");
    // A FIFO nobody writes to would block an open for reading forever.
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(load(&fifo).unwrap_err(), "it is not a regular file");
    assert_eq!(load(&dir.path().join("absent.json")), Ok(None));
}

#[test]
fn a_file_that_cannot_be_written_leaves_the_identity_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    // A plain file where the directory should be.
    let blocker = dir.path().join("data");
    std::fs::write(&blocker, "").unwrap();
    let cell = NodeCell::default();
    cell.persist_to(blocker.join(NODE_FILE_NAME));
    cell.learn(ID, "client-1");
    assert_eq!(identity(&cell), (ID.to_owned(), "client-1".to_owned()));
}
