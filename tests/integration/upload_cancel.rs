//! A policy upload whose client goes away, through the real plugin binary's admin API: in the
//! middle of its stream, and after its last chunk while its compile runs. Nothing of it is
//! kept — not in the policy store, not in the compiled-policy cache (`data_dir/policy-cache`)
//! — no compile is started for a load cancelled before it, a compile already running is
//! discarded, the plugin serves on, and the same bytes upload afterwards. An upload in its
//! compile holds up no activation or rollback.
//!
//! Which compiles ran is read from the `Status` counters (`policy_compiles_started`,
//! `policy_compiles_discarded`), so the tests wait on what the plugin did, never on a sleep.

use std::path::Path;
use std::time::{Duration, Instant};

use dockhand::admin::client::{AdminClient, UPLOAD_CHUNK_BYTES};
use dockhand::admin::{PolicyKindMsg, PolicyModeMsg, UploadResponse};
use orphan_policy::store::sha256_hex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::harness::Plugin;
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::support::TEST_CASE_LABEL;

/// Appends `value` as unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = u8::try_from(value & 0x7f).expect("seven bits");
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends section `id` with `body`.
fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    leb(out, body.len());
    out.extend_from_slice(body);
}

/// A core module of `functions` functions `(i32) -> i32`, each `ops` rounds of arithmetic on
/// its parameter, with constants drawn from `seed` (so each seed gives other bytes).
fn arithmetic_module(seed: u8, functions: usize, ops: usize) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(&mut module, 1, &[0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f]);
    let mut funcs = Vec::new();
    leb(&mut funcs, functions);
    funcs.extend(std::iter::repeat_n(0u8, functions));
    section(&mut module, 3, &funcs);
    let mut code = Vec::new();
    leb(&mut code, functions);
    for f in 0..functions {
        let mut body = vec![0x00]; // no locals beyond the parameter
        for op in 0..ops {
            // local.get 0; i32.const c; (i32.mul | i32.add | i32.xor | i32.rotl); local.set 0
            let c = u8::try_from((f * 31 + op * 7 + usize::from(seed)) % 63).expect("< 63") + 1;
            body.extend_from_slice(&[0x20, 0x00, 0x41, c, [0x6c, 0x6a, 0x73, 0x77][op % 4]]);
            body.extend_from_slice(&[0x21, 0x00]);
        }
        body.extend_from_slice(&[0x20, 0x00, 0x0b]);
        leb(&mut code, body.len());
        code.extend_from_slice(&body);
    }
    section(&mut module, 10, &code);
    module
}

/// The bundled default ownership policy with a large core module of `functions` functions
/// appended that it never instantiates: it loads and answers like the default, but its compile
/// (every module of a component is compiled) takes about a second per 1200 functions in a
/// debug build. `seed` makes distinct components.
fn slow_compiling_policy(seed: u8, functions: usize) -> Vec<u8> {
    let mut component = orphan_policy::guests::DEFAULT_OWNERSHIP.to_vec();
    // Component section 1 is a core module.
    section(&mut component, 1, &arithmetic_module(seed, functions, 400));
    component
}

/// `(compiles started, compiles discarded)` as `Status` reports them.
async fn compiles(admin: &mut AdminClient) -> (u64, u64) {
    let status = admin.status().await.expect("Status");
    (
        status.policy_compiles_started,
        status.policy_compiles_discarded,
    )
}

/// Polls `Status` until `done` holds for the compile counters.
async fn wait_for_compiles(
    admin: &mut AdminClient,
    what: &str,
    timeout: Duration,
    done: impl Fn((u64, u64)) -> bool,
) -> (u64, u64) {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = compiles(admin).await;
        if done(counts) {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: compile counters stuck at {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Files of the compiled-policy cache whose name starts with `digest`.
fn cached(data_dir: &Path, digest: &str) -> Vec<String> {
    let dir = data_dir.join("policy-cache");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("policy cache {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("cache entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(digest))
        .collect()
}

/// The digests the store lists.
async fn stored(admin: &mut AdminClient) -> Vec<String> {
    let list = admin.list().await.expect("List");
    list.policies.into_iter().map(|p| p.digest).collect()
}

/// The plugin process runs, its health service answers SERVING and its admin API answers.
async fn assert_serving(plugin: &mut Plugin, admin: &mut AdminClient) {
    assert!(plugin.is_running(), "{:?}", plugin.stderr_lines());
    let health = plugin
        .health()
        .check(HealthCheckRequest {
            service: "plugin".to_owned(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    admin.status().await.expect("the admin API answers");
}

/// Starts a plugin with the admin API; its reconciler sees only this case's (no) containers.
async fn plugin_with_admin(case: &str) -> (Private, Plugin, AdminClient) {
    let private = Private::new();
    let config = private.config(
        &format!(" label_filter = \"{TEST_CASE_LABEL}={case}\"\n"),
        "",
    );
    let plugin = started(&config).await;
    let admin = admin_client(&plugin, &private.socket()).await;
    (private, plugin, admin)
}

/// An ownership-policy upload of the bytes sent on `chunks` (declaring no digest, so only
/// the stream says where the policy ends) on a connection of its own, as a task that a test
/// can abort: the client going away.
fn upload_task(
    socket: std::path::PathBuf,
    chunks: mpsc::Receiver<Vec<u8>>,
) -> JoinHandle<Result<UploadResponse, String>> {
    tokio::spawn(async move {
        let mut client = AdminClient::connect(&socket)
            .await
            .map_err(|e| e.to_string())?;
        client
            .upload_stream(
                PolicyKindMsg::Ownership,
                None,
                None,
                None,
                tokio_stream::wrappers::ReceiverStream::new(chunks),
            )
            .await
            .map_err(|e| e.to_string())
    })
}

/// A case's plugin and the slow-compiling policy whose upload it cancels.
struct Case {
    private: Private,
    plugin: Plugin,
    admin: AdminClient,
    policy: Vec<u8>,
    digest: String,
    /// The compile counters before the upload.
    before: (u64, u64),
}

impl Case {
    /// Starts the plugin of `case` and an upload of `policy` that is fed its chunks through
    /// the returned sender and cancelled by aborting the returned task.
    async fn begin_upload(
        case: &str,
        policy: Vec<u8>,
    ) -> (
        Self,
        mpsc::Sender<Vec<u8>>,
        JoinHandle<Result<UploadResponse, String>>,
    ) {
        let (private, plugin, mut admin) = plugin_with_admin(case).await;
        let digest = sha256_hex(&policy);
        let before = compiles(&mut admin).await;
        let (tx, rx) = mpsc::channel(1);
        let upload = upload_task(private.socket(), rx);
        let case = Self {
            private,
            plugin,
            admin,
            policy,
            digest,
            before,
        };
        (case, tx, upload)
    }

    /// Sends the whole policy on `tx`, ends the stream and returns once a compile has started
    /// since the counters read `before`.
    async fn send_whole_until_compiling(&mut self, tx: mpsc::Sender<Vec<u8>>, before: (u64, u64)) {
        for chunk in self.policy.chunks(UPLOAD_CHUNK_BYTES) {
            tx.send(chunk.to_vec())
                .await
                .expect("the upload reads its chunks");
        }
        drop(tx);
        wait_for_compiles(
            &mut self.admin,
            "the upload's compile",
            Duration::from_secs(60),
            |c| c.0 > before.0,
        )
        .await;
    }

    /// Nothing of the cancelled upload is in the store (`stored_message` otherwise) or in
    /// the compiled-policy cache, and the plugin serves on.
    async fn assert_nothing_kept(&mut self, stored_message: &str) {
        assert_eq!(
            stored(&mut self.admin).await,
            Vec::<String>::new(),
            "{stored_message}"
        );
        assert_eq!(
            cached(&self.private.data_dir(), &self.digest),
            Vec::<String>::new()
        );
        assert_serving(&mut self.plugin, &mut self.admin).await;
    }

    /// The same bytes, whole, upload afterwards: stored and cached once, with the compile
    /// counters at `compiles_after` then.
    async fn assert_the_same_bytes_upload(mut self, compiles_after: (u64, u64)) {
        let response = self
            .admin
            .upload(
                PolicyKindMsg::Ownership,
                self.policy,
                Some(self.digest.clone()),
                None,
                None,
            )
            .await
            .expect("the same bytes upload afterwards");
        assert_eq!(response.policy.expect("stored").digest, self.digest);
        assert_eq!(compiles(&mut self.admin).await, compiles_after);
        assert_eq!(stored(&mut self.admin).await, vec![self.digest.clone()]);
        assert_eq!(cached(&self.private.data_dir(), &self.digest).len(), 1);
    }
}

#[tokio::test]
async fn an_upload_cancelled_mid_stream_keeps_nothing_and_compiles_nothing() {
    let (mut case, tx, upload) =
        Case::begin_upload("upload_cancel_mid_stream", slow_compiling_policy(1, 1200)).await;

    // Half the chunks go up; the client then goes away.
    let chunks: Vec<&[u8]> = case.policy.chunks(UPLOAD_CHUNK_BYTES).collect();
    assert!(chunks.len() > 16, "{} chunks", chunks.len());
    for chunk in &chunks[..chunks.len() / 2] {
        tx.send(chunk.to_vec())
            .await
            .expect("the upload reads its chunks");
    }
    upload.abort();
    assert!(upload.await.expect_err("aborted").is_cancelled());
    drop(tx);

    case.assert_nothing_kept("a partial upload was stored")
        .await;

    // The same bytes, whole: stored, compiled once (nothing was compiled or cached for the
    // cancelled upload, or this one would not compile).
    let before = case.before;
    case.assert_the_same_bytes_upload((before.0 + 1, before.1))
        .await;
}

#[tokio::test]
async fn an_upload_cancelled_during_its_compile_keeps_nothing_and_the_plugin_serves_on() {
    let (mut case, tx, upload) =
        Case::begin_upload("upload_cancel_in_compile", slow_compiling_policy(2, 1200)).await;
    let before = case.before;

    // Every chunk goes up and the stream ends; the client goes away once the compile runs.
    let compile_started = Instant::now();
    case.send_whole_until_compiling(tx, before).await;
    assert!(
        !upload.is_finished(),
        "the upload ended before it could be cancelled in its compile: {:?}",
        upload.await
    );
    upload.abort();
    assert!(upload.await.expect_err("aborted").is_cancelled());

    // The compile runs to its end (it cannot be interrupted) and is thrown away.
    let after = wait_for_compiles(
        &mut case.admin,
        "the cancelled compile",
        Duration::from_secs(120),
        |c| c.1 > before.1,
    )
    .await;
    eprintln!(
        "compile of {} bytes discarded {:?} after it started",
        case.policy.len(),
        compile_started.elapsed()
    );
    assert_eq!(
        after,
        (before.0 + 1, before.1 + 1),
        "one compile, discarded"
    );
    assert!(
        !case.plugin.logs().iter().any(|l| l.get("@message")
            == Some(&serde_json::Value::from("policy loaded"))
            && l.get("policy") == Some(&serde_json::Value::from(case.digest.as_str()))),
        "the cancelled policy was loaded: {:?}",
        case.plugin.stderr_lines()
    );
    case.assert_nothing_kept("the cancelled upload was stored")
        .await;

    // The same bytes upload afterwards, compiled anew.
    case.assert_the_same_bytes_upload((before.0 + 2, before.1 + 1))
        .await;
}

#[tokio::test]
async fn an_upload_in_its_compile_holds_up_no_activation_or_rollback() {
    // A compile of several seconds, so that the activation and the rollback have time to
    // answer within it even on a loaded machine.
    let (mut case, tx, upload) = Case::begin_upload(
        "upload_compile_beside_activation",
        slow_compiling_policy(3, 6000),
    )
    .await;
    // A policy in the store, ready to activate.
    let quick = case
        .admin
        .upload(
            PolicyKindMsg::Ownership,
            orphan_policy::guests::DEFAULT_OWNERSHIP.to_vec(),
            None,
            None,
            None,
        )
        .await
        .expect("upload the default ownership policy")
        .policy
        .expect("stored")
        .digest;
    let before = compiles(&mut case.admin).await;

    // The slow policy goes up whole; its compile runs…
    case.send_whole_until_compiling(tx, before).await;

    // …and an activation and a rollback answer meanwhile.
    let activated = case
        .admin
        .activate(quick.clone(), PolicyModeMsg::Audit)
        .await
        .expect("Activate");
    assert_eq!(activated.active.expect("in force").digest, quick);
    // One activation in the store's history: nothing to roll back to, said at once.
    let rollback = case.admin.rollback(PolicyKindMsg::Ownership).await;
    assert!(
        !upload.is_finished(),
        "the activation and the rollback waited for the upload's compile: {:?}",
        upload.await
    );
    let err = rollback.expect_err("no earlier revision").to_string();
    assert!(
        err.contains("no previous ownership policy revision"),
        "{err}"
    );

    // The upload then completes as usual.
    let uploaded = upload.await.expect("join").expect("the upload completes");
    assert_eq!(uploaded.policy.expect("stored").digest, case.digest);
    let mut listed = stored(&mut case.admin).await;
    listed.sort();
    let mut want = vec![quick, case.digest.clone()];
    want.sort();
    assert_eq!(listed, want);
}
