//! Task I/O: log forwarding (files, FIFOs, disabled), interactive exec, image tarballs.

use std::time::Duration;

use dockhand::fingerprint::RuntimeCatalog;
use dockhand::tasks::{EngineSettings, TaskEngine};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{engine, setup, spec, wait_for_file};
use crate::support::image::save_tarball;

#[tokio::test]
async fn log_collection_can_be_disabled() {
    let Some((docker, guard, dir)) = setup("logs_disabled").await else {
        return;
    };
    let settings = EngineSettings {
        disable_log_collection: true,
        ..EngineSettings::default()
    };
    let engine = TaskEngine::new(docker.clone(), settings, RuntimeCatalog::new());
    let spec = spec(&guard, dir.path(), "quiet", "echo should-not-appear");
    let started = engine.start(spec.clone()).await.unwrap();
    assert!(!started.handle.state().log_collection);
    assert_eq!(engine.wait(&spec.id).await.unwrap().exit_code, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir.path().join("stdout").exists());
    engine.destroy(&spec.id, false).await.unwrap();
}

#[tokio::test]
async fn streaming_exec_with_a_tty_can_be_resized() {
    let Some((docker, guard, dir)) = setup("exec_streaming").await else {
        return;
    };
    let engine = engine(&docker);
    let spec = spec(
        &guard,
        dir.path(),
        "shell",
        "while true; do sleep 0.2; done",
    );
    engine.start(spec.clone()).await.unwrap();

    let session = engine
        .exec_streaming(&spec.id, vec!["sh".into()], true)
        .await
        .unwrap();
    let control = session.control();
    control.resize(40, 100).await.unwrap();
    let dockhand::docker::ExecIo {
        mut output,
        mut input,
    } = session.io;
    input
        .write_all(b"stty size; echo marker-$((2+3)); exit 5\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let collect = async {
        while let Some(chunk) = output.next().await {
            seen.extend_from_slice(&chunk.unwrap().data);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), collect)
        .await
        .expect("exec output did not end");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("40 100"), "{text:?}");
    assert!(text.contains("marker-5"), "{text:?}");
    assert_eq!(control.exit_code().await.unwrap(), 5);
    engine.destroy(&spec.id, true).await.unwrap();
}

#[tokio::test]
async fn load_uses_the_image_tarball_instead_of_pulling() {
    let Some((docker, guard, dir)) = setup("load_tarball").await else {
        return;
    };
    const LOADED: &str = "dockhand-test/loaded:1";
    match docker.remove_image(LOADED, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("cannot clear {LOADED}: {e}"),
    }
    let tarball = dir.path().join("image.tar");
    std::fs::write(&tarball, save_tarball(LOADED)).unwrap();

    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "loaded", "echo from-loaded-image");
    spec.config.image = LOADED.to_owned();
    spec.config.load = Some(tarball.display().to_string());
    let started = engine.start(spec.clone()).await.unwrap();
    assert!(started.handle.state().image_id.starts_with("sha256:"));
    assert_eq!(engine.wait(&spec.id).await.unwrap().exit_code, 0);
    wait_for_file(
        &dir.path().join("stdout"),
        "from-loaded-image",
        Duration::from_secs(10),
    )
    .await;
    engine.destroy(&spec.id, false).await.unwrap();
    docker.remove_image(LOADED, true).await.unwrap();

    // A tarball that does not exist is a clear error and leaves nothing behind.
    let mut spec = spec.clone();
    spec.id = format!("{}/loaded/00000002", spec.alloc_id);
    spec.config.load = Some(dir.path().join("missing.tar").display().to_string());
    let err = engine.start(spec).await.unwrap_err();
    assert!(
        err.to_string().starts_with("failed to load image from "),
        "{err}"
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn logs_reach_a_fifo_whose_reader_attaches_late() {
    let Some((docker, guard, dir)) = setup("logs_fifo").await else {
        return;
    };
    let fifo = dir.path().join("stdout.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let engine = engine(&docker);
    let mut spec = spec(&guard, dir.path(), "fifo", "echo via-fifo");
    spec.stdout_path = Some(fifo.clone());
    spec.stderr_path = None;
    engine.start(spec.clone()).await.unwrap();
    assert_eq!(engine.wait(&spec.id).await.unwrap().exit_code, 0);

    // Only now does a reader (logmon's role) open the FIFO; the forwarder was waiting for it.
    let reader = std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap());
    let text = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(text, "via-fifo\n");
    engine.destroy(&spec.id, false).await.unwrap();
}
