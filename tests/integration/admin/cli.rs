//! The `dockhand` CLI's admin commands run as the operator would, against an in-process server.

use std::path::Path;

use orphan_policy::guests;
use orphan_policy::store::sha256_hex;

use super::{Server, our_uid};
use crate::support::docker_or_skip;

/// Exit code, stdout, stderr of the `dockhand` binary.
pub(super) async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(args)
        .output()
        .await
        .expect("running dockhand");
    (
        out.status.code().expect("exited by signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_against_a_running_server() {
    let server = Server::start(vec![our_uid()], true).await;
    let socket = server.socket.to_str().unwrap().to_owned();
    let files = tempfile::tempdir().unwrap();
    let kill_file = write(files.path(), "kill.wasm", guests::DEFAULT_KILL);
    let kill_digest = sha256_hex(guests::DEFAULT_KILL);

    let (code, out, err) = cli(&[
        "policy",
        "upload",
        &kill_file,
        "--kind",
        "kill",
        "--name",
        "k",
        "--version",
        "2",
        "--socket",
        &socket,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("uploaded {kill_digest}")), "{out}");

    let (code, out, err) = cli(&[
        "policy",
        "upload",
        &kill_file,
        "--kind",
        "ownership",
        "--socket",
        &socket,
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("ownership policy refused: not a `ownership` policy"),
        "{err}"
    );

    let (code, out, err) = cli(&["policy", "list", "--socket", &socket]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("DIGEST") && lines[0].contains("STATE"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with(&kill_digest)
            && lines[1].contains(" k ")
            && lines[1].ends_with("inactive"),
        "{out}"
    );

    let (code, out, err) = cli(&[
        "policy",
        "activate",
        &kill_digest,
        "--mode",
        "audit",
        "--socket",
        &socket,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in force from the next sweep"), "{out}");
    assert_eq!(server.slot.current().kill.policy.digest_hex(), kill_digest);

    let (code, out, err) =
        cli(&["policy", "rollback", "--kind", "kill", "--socket", &socket]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("no previous kill policy revision to roll back to"),
        "{err}"
    );

    let (code, out, err) = cli(&["status", "--socket", &socket]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reconciler: running"), "{out}");
    let kill_line = out
        .lines()
        .find(|l| l.starts_with("kill "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        kill_line.contains(&kill_digest)
            && kill_line.contains("audit")
            && kill_line.contains("store"),
        "{out}"
    );
    assert!(
        out.contains("kill policy reads: nothing beyond ids, times and state"),
        "{out}"
    );

    if docker_or_skip("admin cli dry-run").await.is_some() {
        let (code, out, err) = cli(&[
            "policy",
            "dry-run",
            "--kind",
            "kill",
            "--digest",
            &kill_digest,
            "--socket",
            &socket,
        ])
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("dry run (nothing is done)"), "{out}");
        assert!(out.contains(&format!("kill {kill_digest}")), "{out}");
        let (code, out, err) = cli(&["policy", "dry-run", "--json", "--socket", &socket]).await;
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["listed"], 0, "{out}");
        assert_eq!(report["status"]["status"], "completed", "{out}");
        assert_eq!(report["report_only"], true);
    }

    let missing = files.path().join("nope.sock");
    let (code, _, err) = cli(&["policy", "list", "--socket", missing.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "dockhand: admin socket {} not found: is the dockhand plugin running with admin enabled?",
            missing.display()
        )
    );
    server.shutdown().await;
}
