//! The admin API served in-process on a temporary socket with a real policy engine and store:
//! the gRPC methods, the refusals (size, world, imports, digest, peer uid) and the `dockhand`
//! CLI commands end to end.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use dockhand::admin::client::{AdminClient, ClientError};
use dockhand::admin::{
    AdminState, PolicyKindMsg, PolicyModeMsg, PolicyOriginMsg, PolicyStateMsg, restore_from_store,
    serve_admin,
};
use dockhand::docker::BollardDocker;
use dockhand::reconcile::{
    ActivePolicies, AlwaysHealthy, PoliciesInForce, ReconcileSettings, Reconciler, TrackedFn,
};
use orphan_policy::limits::MAX_POLICY_BYTES;
use orphan_policy::store::{PolicyMode, PolicyStore, sha256_hex};
use orphan_policy::{EngineConfig, PolicyEngine, PolicyKind, guests};
use tokio::sync::oneshot;

use crate::support::docker_or_skip;

mod cli;

use cli::cli;

/// An admin server on a temp socket; stopped and cleaned up on drop.
struct Server {
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// The policies in force, as the reconciler reads them.
    slot: PoliciesInForce,
    state: Arc<AdminState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(allowed_uids: Vec<u32>, dry_run: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = PolicyEngine::new(EngineConfig {
            pooling_allocator: false,
            ..EngineConfig::default()
        })
        .unwrap();
        let store = Arc::new(PolicyStore::open(&dir.path().join("policies"), 3).unwrap());
        let slot = PoliciesInForce::new(ActivePolicies::from_config(
            engine.load_default(PolicyKind::Ownership).unwrap(),
            engine.load_default(PolicyKind::Kill).unwrap(),
            PolicyMode::Enforce,
        ));
        // A reconciler reading those policies, as in the plugin; these tests never let it
        // sweep (and it could only report: dry run, no container carries its label).
        let mut settings = ReconcileSettings::new(
            std::time::Duration::from_secs(3600),
            std::time::Duration::ZERO,
        );
        settings.dry_run = true;
        settings.label_filter = Some(format!("dockhand.test.case=admin-{}", std::process::id()));
        let reconciler = Reconciler::new(
            Arc::new(BollardDocker::from_env().unwrap()),
            Arc::new(TrackedFn(Default::default)),
            slot.clone(),
            settings,
            Arc::new(AlwaysHealthy),
        );
        let mut state =
            AdminState::new(engine, store, slot.clone()).with_sweeper(Arc::new(reconciler));
        if dry_run && let Some(docker) = docker_or_skip("admin dry run").await {
            let mut settings = ReconcileSettings::new(
                std::time::Duration::from_secs(60),
                std::time::Duration::ZERO,
            );
            // No container carries this label: the dry run sees an empty, real listing.
            settings.label_filter =
                Some(format!("dockhand.test.case=admin-{}", std::process::id()));
            // A reconciler over the same slot, never run periodically: dry runs sweep with it.
            state = state.with_sweeper(Arc::new(Reconciler::new(
                docker,
                Arc::new(TrackedFn(Default::default)),
                slot.clone(),
                settings,
                Arc::new(AlwaysHealthy),
            )));
        }
        let state = Arc::new(state);
        let socket = dir.path().join("run/admin.sock");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let (socket, state) = (socket.clone(), state.clone());
            async move {
                serve_admin(&socket, allowed_uids, state, async {
                    let _ = stopped.await;
                })
                .await
                .expect("admin server failed");
            }
        });
        for _ in 0..200 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(socket.exists(), "admin socket never appeared");
        Self {
            dir,
            socket,
            slot,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn client(&self) -> AdminClient {
        AdminClient::connect(&self.socket).await.unwrap()
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        assert!(!self.socket.exists(), "socket removed at shutdown");
    }

    fn listing(&self) -> Vec<orphan_policy::store::StoredPolicy> {
        self.state.store().list().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn our_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

async fn upload(
    c: &mut AdminClient,
    kind: PolicyKindMsg,
    bytes: &[u8],
) -> Result<dockhand::admin::UploadResponse, ClientError> {
    c.upload(kind, bytes.to_vec(), Some(sha256_hex(bytes)), None, None)
        .await
}

fn rpc_message(e: ClientError) -> String {
    match e {
        ClientError::Rpc(m) => m,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_activate_rollback_and_status() {
    let server = Server::start(vec![our_uid()], false).await;
    let mut c = server.client().await;
    let socket_mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(socket_mode & 0o777, 0o600, "socket mode {socket_mode:o}");
    let dir_mode = std::fs::metadata(server.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        dir_mode & 0o777,
        0o700,
        "created directory mode {dir_mode:o}"
    );

    let own = upload(&mut c, PolicyKindMsg::Ownership, guests::DEFAULT_OWNERSHIP)
        .await
        .unwrap();
    let kill = c
        .upload(
            PolicyKindMsg::Kill,
            guests::DEFAULT_KILL.to_vec(),
            None,
            Some("my-kill".into()),
            Some("9.9".into()),
        )
        .await
        .unwrap();
    assert_eq!(kill.reads, "nothing beyond ids, times and state");
    assert!(own.reads.starts_with("names, labels ["), "{}", own.reads);
    let own_digest = own.policy.unwrap().digest;
    let kill_p = kill.policy.unwrap();
    assert_eq!(own_digest, sha256_hex(guests::DEFAULT_OWNERSHIP));
    assert_eq!(
        (kill_p.name.as_str(), kill_p.version.as_str()),
        ("my-kill", "9.9")
    );
    assert_eq!(kill.described_name, "default-kill");
    assert_eq!(kill_p.state(), PolicyStateMsg::Inactive);

    let list = c.list().await.unwrap().policies;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].digest, own_digest);
    assert_eq!(
        list[0].name, "default-ownership",
        "name defaults to describe()"
    );
    assert_eq!(list[1].digest, kill_p.digest);

    // Activation swaps the slot (checked by pointer: the same bytes are loaded anew).
    let before = server.slot.current();
    let r = c
        .activate(kill_p.digest.clone(), PolicyModeMsg::Audit)
        .await
        .unwrap();
    assert!(r.applied);
    let active = r.active.unwrap();
    assert_eq!(
        (active.source(), active.mode()),
        (PolicyOriginMsg::Store, PolicyModeMsg::Audit)
    );
    let after = server.slot.current();
    assert!(!Arc::ptr_eq(&before, &after), "slot swapped");
    assert_eq!(after.kill.policy.digest_hex(), kill_p.digest);
    assert_eq!(after.kill.mode, PolicyMode::Audit);
    assert_eq!(server.slot.mode(), PolicyMode::Audit);
    let states: Vec<PolicyStateMsg> = c
        .list()
        .await
        .unwrap()
        .policies
        .into_iter()
        .map(|p| p.state())
        .collect();
    assert_eq!(
        states,
        [PolicyStateMsg::Inactive, PolicyStateMsg::ActiveAudit]
    );

    // Re-activating in enforce, then rolling back returns to the audit revision.
    c.activate(kill_p.digest.clone(), PolicyModeMsg::Enforce)
        .await
        .unwrap();
    assert_eq!(server.slot.current().kill.mode, PolicyMode::Enforce);
    assert_eq!(server.slot.mode(), PolicyMode::Enforce);
    let err = rpc_message(c.rollback(PolicyKindMsg::Kill).await.unwrap_err());
    assert!(err.contains("no previous kill policy revision"), "{err}");
    let err = rpc_message(c.rollback(PolicyKindMsg::Ownership).await.unwrap_err());
    assert!(
        err.contains("no previous ownership policy revision"),
        "{err}"
    );

    // An activation of ownership, a second ownership upload (a different digest), roll back.
    c.activate(own_digest.clone(), PolicyModeMsg::Enforce)
        .await
        .unwrap();
    {
        let other = guests::test_guest("example-label-allowlist").unwrap();
        let o2 = upload(&mut c, PolicyKindMsg::Ownership, &other)
            .await
            .unwrap()
            .policy
            .unwrap();
        c.activate(o2.digest.clone(), PolicyModeMsg::Enforce)
            .await
            .unwrap();
        assert_eq!(
            server.slot.current().ownership.policy.digest_hex(),
            o2.digest
        );
        let r = c.rollback(PolicyKindMsg::Ownership).await.unwrap();
        assert_eq!(r.active.unwrap().digest, own_digest);
        assert_eq!(
            server.slot.current().ownership.policy.digest_hex(),
            own_digest
        );
    }

    let status = c.status().await.unwrap();
    assert_eq!(status.active.len(), 2);
    assert_eq!(status.active[0].digest, own_digest);
    assert_eq!(status.active[1].digest, kill_p.digest);
    assert_eq!(status.active[1].name, "my-kill");
    assert!(status.reconciler_running);

    // What a restarted plugin would restore from the store.
    let engine = PolicyEngine::new(EngineConfig {
        pooling_allocator: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let kill_entry = restore_from_store(&engine, server.state.store(), PolicyKind::Kill)
        .unwrap()
        .expect("an activated kill policy");
    assert_eq!(kill_entry.policy.digest_hex(), kill_p.digest);
    assert_eq!(
        (kill_entry.mode, kill_entry.name.as_str()),
        (PolicyMode::Enforce, "my-kill")
    );

    let err = rpc_message(
        c.activate("ab".repeat(32), PolicyModeMsg::Enforce)
            .await
            .unwrap_err(),
    );
    assert!(err.contains("no stored policy with sha256"), "{err}");
    let err = rpc_message(
        c.activate("nothex".into(), PolicyModeMsg::Enforce)
            .await
            .unwrap_err(),
    );
    assert!(err.contains("invalid sha256 digest"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_say_why_and_change_nothing() {
    let server = Server::start(vec![our_uid()], false).await;
    let mut c = server.client().await;
    upload(&mut c, PolicyKindMsg::Kill, guests::DEFAULT_KILL)
        .await
        .unwrap();
    let slot_before = server.slot.current();
    let listing = server.listing();

    let oversized = vec![0u8; MAX_POLICY_BYTES + 1];
    let err = rpc_message(
        c.upload(PolicyKindMsg::Ownership, oversized, None, None, None)
            .await
            .unwrap_err(),
    );
    assert!(
        err.starts_with("Client specified an invalid argument"),
        "{err}"
    );
    assert!(
        err.contains(&format!("exceeds the limit of {MAX_POLICY_BYTES} bytes")),
        "{err}"
    );

    let err = rpc_message(
        upload(&mut c, PolicyKindMsg::Ownership, guests::DEFAULT_KILL)
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains("ownership policy refused: not a `ownership` policy"),
        "{err}"
    );

    let wasi = guests::test_guest("hostile-wasi-import").unwrap();
    let err = rpc_message(
        upload(&mut c, PolicyKindMsg::Ownership, &wasi)
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains("outside the dockhand:policy contract"),
        "{err}"
    );
    assert!(err.contains("wasi"), "{err}");

    let wrong = sha256_hex(b"something else");
    let err = rpc_message(
        c.upload(
            PolicyKindMsg::Ownership,
            guests::DEFAULT_OWNERSHIP.to_vec(),
            Some(wrong.clone()),
            None,
            None,
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.contains(&format!("declared sha256 {wrong} does not match")),
        "{err}"
    );

    let err = rpc_message(
        c.upload(PolicyKindMsg::Unspecified, b"x".to_vec(), None, None, None)
            .await
            .unwrap_err(),
    );
    assert!(err.contains("kind must be ownership or kill"), "{err}");
    let err = rpc_message(
        c.upload(PolicyKindMsg::Kill, Vec::new(), None, None, None)
            .await
            .unwrap_err(),
    );
    assert!(err.contains("no policy bytes"), "{err}");
    let err = rpc_message(
        c.upload(
            PolicyKindMsg::Kill,
            b"\0asm junk".to_vec(),
            None,
            None,
            None,
        )
        .await
        .unwrap_err(),
    );
    assert!(err.contains("kill policy refused"), "{err}");

    assert_eq!(server.listing(), listing, "store unchanged");
    assert!(
        Arc::ptr_eq(&slot_before, &server.slot.current()),
        "slot unchanged"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_allowed_uids_is_refused() {
    let not_us = if our_uid() == 12345 { 12346 } else { 12345 };
    let server = Server::start(vec![not_us], false).await;
    let mut c = server.client().await;
    let uid = our_uid();
    match c.list().await.unwrap_err() {
        ClientError::PermissionDenied(m) => {
            assert!(m.contains(&format!("uid {uid} is not permitted")), "{m}");
            assert!(m.contains(&not_us.to_string()), "{m}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    // Uploads are refused before any byte is looked at.
    let err = upload(&mut c, PolicyKindMsg::Kill, guests::DEFAULT_KILL)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    assert!(server.listing().is_empty());

    let out = cli(&["status", "--socket", server.socket.to_str().unwrap()]).await;
    assert_eq!(out.0, 1);
    assert!(
        out.2.contains(&format!(
            "access refused by the admin API: admin API: uid {uid} is not permitted"
        )),
        "{}",
        out.2
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_process_of_another_uid_is_refused() {
    if our_uid() != 0 {
        eprintln!("SKIPPING a_real_process_of_another_uid_is_refused: needs root to switch uid");
        return;
    }
    let server = Server::start(vec![0], false).await;
    // Let `nobody` reach the socket, so that only the peer-uid check stands in its way.
    for dir in [
        server.socket.parent().unwrap(),
        server.socket.parent().unwrap().parent().unwrap(),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_dockhand"),
        ])
        .args([
            "policy",
            "list",
            "--socket",
            server.socket.to_str().unwrap(),
        ])
        .output()
        .await
        .expect("running setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("access refused by the admin API: admin API: uid 65534 is not permitted"),
        "{stderr}"
    );

    // With the default 0600 socket the connection itself is refused, with a clear message.
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_dockhand"),
        ])
        .args(["status", "--socket", server.socket.to_str().unwrap()])
        .output()
        .await
        .expect("running setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
    let server = Server::start(vec![our_uid()], false).await;
    // A second server on the same live socket refuses to start.
    let err = serve_admin(&server.socket, vec![0], server.state.clone(), async {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is in use by another running process"),
        "{err}"
    );
    let socket = server.socket.clone();
    let dir = server.dir.path().to_owned();
    let state = server.state.clone();
    // Leave a stale socket file behind: bind and drop a listener.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let stale = stale.clone();
        async move {
            serve_admin(&stale, vec![our_uid()], state, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let mut connected = None;
    for _ in 0..200 {
        if let Ok(c) = AdminClient::connect(&stale).await {
            connected = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    connected
        .expect("server on the stale path")
        .list()
        .await
        .unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    // A regular file at the path is never removed.
    let file = dir.join("file.sock");
    std::fs::write(&file, b"x").unwrap();
    let err = serve_admin(&file, vec![0], server.state.clone(), async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert!(file.exists());
    assert!(socket.exists());
    server.shutdown().await;
}
