//! Crash safety of policy management through the real plugin binary: SIGKILLed while a policy
//! is being uploaded, or right after an activation was sent, the plugin comes back on the same
//! data directory with exactly one intact active policy, listed as active and usable for a dry
//! run, and without any partial upload in its store.
//!
//! Uploads are streamed by hand (header, then small chunks released one by one) so the test
//! decides how far an upload got before the process dies.

use std::collections::BTreeSet;
use std::time::Duration;

use dockhand::admin::client::AdminClient;
use dockhand::admin::{
    PolicyKindMsg, PolicyModeMsg, PolicyOriginMsg, PolicyStateMsg, UploadResponse,
};
use nix::sys::signal::Signal;
use orphan_policy::guests;
use orphan_policy::store::{STORE_DIR_NAME, sha256_hex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;

use crate::harness::{Plugin, connect_unix};
use crate::plugin_reconciler::{Private, admin_client, started};
use crate::support::{TEST_CASE_LABEL, docker_or_skip};

/// The admin API's upload messages, field for field as in `proto/dockhand/admin/v1`, so the
/// test can pace the stream itself.
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UploadHeader {
        #[prost(int32, tag = "1")]
        pub kind: i32,
        #[prost(string, tag = "2")]
        pub sha256: String,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Part {
        #[prost(message, tag = "1")]
        Header(UploadHeader),
        #[prost(bytes = "vec", tag = "2")]
        Chunk(Vec<u8>),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UploadRequest {
        #[prost(oneof = "Part", tags = "1, 2")]
        pub part: Option<Part>,
    }
}

/// Bytes per upload message in the paced uploads.
const CHUNK: usize = 4 * 1024;
/// Pause between two paced chunks.
const PACE: Duration = Duration::from_millis(10);

/// An upload in flight whose messages the test sends one at a time.
struct PacedUpload {
    tx: Option<mpsc::Sender<wire::UploadRequest>>,
    call: tokio::task::JoinHandle<Result<UploadResponse, tonic::Status>>,
}

impl PacedUpload {
    /// Opens the upload stream on `plugin`'s admin socket and sends the header.
    async fn begin(private: &Private, bytes: &[u8]) -> Self {
        let channel = connect_unix(private.socket()).await;
        let (tx, rx) = mpsc::channel(4);
        let call = tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let codec = tonic_prost::ProstCodec::<wire::UploadRequest, UploadResponse>::default();
            grpc.client_streaming(
                tonic::Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static("/dockhand.admin.v1.PolicyAdmin/Upload"),
                codec,
            )
            .await
            .map(tonic::Response::into_inner)
        });
        let upload = Self { tx: Some(tx), call };
        upload
            .send(wire::Part::Header(wire::UploadHeader {
                kind: PolicyKindMsg::Ownership as i32,
                sha256: sha256_hex(bytes),
                name: String::new(),
                version: String::new(),
            }))
            .await;
        upload
    }

    async fn send(&self, part: wire::Part) {
        let tx = self.tx.as_ref().expect("stream still open");
        tx.send(wire::UploadRequest { part: Some(part) })
            .await
            .expect("upload stream accepts the message");
    }

    /// Sends `bytes` in [`CHUNK`]-sized messages, [`PACE`] apart.
    async fn send_paced(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(CHUNK) {
            self.send(wire::Part::Chunk(chunk.to_vec())).await;
            tokio::time::sleep(PACE).await;
        }
    }

    /// Ends the stream: the server now has the whole component.
    fn close(&mut self) {
        self.tx = None;
    }
}

/// A plugin configuration whose reconciler and admin API use `private`'s directory, never act
/// (dry run) and see no container of other tests.
fn crash_config(private: &Private, case: &str) -> String {
    private.config(
        &format!(
            " label_filter = \"{TEST_CASE_LABEL}={case}-{}\"\n",
            std::process::id()
        ),
        "gc {\n dangling_containers {\n dry_run = true\n }\n}\n",
    )
}

async fn sigkill(plugin: &mut Plugin) {
    plugin.signal(Signal::SIGKILL);
    assert!(
        plugin.wait_exit(Duration::from_secs(10)).await.is_some(),
        "the plugin did not die"
    );
}

async fn upload_whole(admin: &mut AdminClient, bytes: &[u8]) -> String {
    let digest = sha256_hex(bytes);
    admin
        .upload(
            PolicyKindMsg::Ownership,
            bytes.to_vec(),
            Some(digest.clone()),
            None,
            None,
        )
        .await
        .expect("upload");
    digest
}

/// The one active ownership policy, checked every way the admin API shows it: the listing
/// names exactly one active ownership policy, the status agrees, and dry runs (with the
/// active policies, and with that digest asked for explicitly) evaluate it.
async fn active_ownership(admin: &mut AdminClient) -> String {
    let listing = admin.list().await.expect("list").policies;
    let active: Vec<_> = listing
        .iter()
        .filter(|p| {
            p.kind() == PolicyKindMsg::Ownership
                && matches!(
                    p.state(),
                    PolicyStateMsg::ActiveAudit | PolicyStateMsg::ActiveEnforce
                )
        })
        .collect();
    assert_eq!(
        active.len(),
        1,
        "exactly one active ownership policy: {listing:#?}"
    );
    let digest = active[0].digest.clone();

    let status = admin.status().await.expect("status");
    let in_force = status
        .active
        .iter()
        .find(|a| a.kind == PolicyKindMsg::Ownership as i32)
        .expect("an ownership policy in force");
    assert_eq!(in_force.digest, digest, "{status:#?}");
    assert_eq!(in_force.source(), PolicyOriginMsg::Store, "{status:#?}");

    for asked in [None, Some(digest.clone())] {
        let answer = admin
            .preview(PolicyKindMsg::Ownership, asked.clone())
            .await
            .unwrap_or_else(|e| panic!("dry run with {asked:?}: {e}"));
        assert_eq!(answer.status(), "completed", "{answer:?}");
        let report = answer.report().expect("a report");
        assert_eq!(report.ownership_digest, digest, "dry run with {asked:?}");
    }
    digest
}

/// The store holds only complete entries of listed policies: `<digest>.wasm` and
/// `<digest>.json` pairs, no temporary files.
async fn store_holds_only_listed(admin: &mut AdminClient, private: &Private) {
    let listed: BTreeSet<String> = admin
        .list()
        .await
        .expect("list")
        .policies
        .into_iter()
        .map(|p| p.digest)
        .collect();
    let blobs = private.data_dir().join(STORE_DIR_NAME).join("blobs");
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&blobs).expect("read the store's blobs") {
        files.insert(
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    let expected: BTreeSet<String> = listed
        .iter()
        .flat_map(|d| [format!("{d}.wasm"), format!("{d}.json")])
        .collect();
    assert_eq!(files, expected, "store content versus listing");
}

#[tokio::test]
async fn a_sigkill_during_an_upload_leaves_the_active_policy_intact() {
    let case = "admin_crash_upload";
    if docker_or_skip(case).await.is_none() {
        return;
    }
    let private = Private::new();
    let config = crash_config(&private, case);
    let active_bytes = guests::test_guest("example-label-allowlist").expect("example policy");
    let new_bytes = guests::DEFAULT_OWNERSHIP;
    let new_digest = sha256_hex(new_bytes);

    let mut plugin = started(&config).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    let active = upload_whole(&mut admin, &active_bytes).await;
    admin
        .activate(active.clone(), PolicyModeMsg::Audit)
        .await
        .expect("activate");
    assert_eq!(active_ownership(&mut admin).await, active);

    let half = new_bytes.len() / 2;
    for stage in ["header only", "half the bytes", "every byte, stream open"] {
        let upload = PacedUpload::begin(&private, new_bytes).await;
        match stage {
            "header only" => {}
            "half the bytes" => upload.send_paced(&new_bytes[..half]).await,
            _ => upload.send_paced(new_bytes).await,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sigkill(&mut plugin).await;
        let outcome = upload.call.await.expect("join");
        assert!(outcome.is_err(), "{stage}: an unfinished upload succeeded");

        plugin = started(&config).await;
        admin = admin_client(&plugin, &private.socket()).await;
        assert_eq!(active_ownership(&mut admin).await, active, "{stage}");
        let listing = admin.list().await.expect("list").policies;
        assert!(
            listing.iter().all(|p| p.digest != new_digest),
            "{stage}: a partial upload is listed: {listing:#?}"
        );
        store_holds_only_listed(&mut admin, &private).await;
    }

    // Killed right after the last byte: stored completely or not at all, never activated.
    let mut upload = PacedUpload::begin(&private, new_bytes).await;
    upload.send_paced(new_bytes).await;
    upload.close();
    sigkill(&mut plugin).await;
    let finished = upload.call.await.expect("join").is_ok();
    let plugin = started(&config).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    assert_eq!(active_ownership(&mut admin).await, active);
    let listing = admin.list().await.expect("list").policies;
    match listing.iter().find(|p| p.digest == new_digest) {
        Some(stored) => {
            assert_eq!(stored.state(), PolicyStateMsg::Inactive, "{stored:?}");
            let answer = admin
                .preview(PolicyKindMsg::Ownership, Some(new_digest.clone()))
                .await
                .expect("a stored upload is whole and loads");
            let report = answer.report().expect("a report");
            assert_eq!(report.ownership_digest, new_digest);
        }
        None => assert!(!finished, "an upload reported as done was lost"),
    }
    store_holds_only_listed(&mut admin, &private).await;
}

#[tokio::test]
async fn a_sigkill_during_an_activation_leaves_one_intact_active_policy() {
    let case = "admin_crash_activate";
    if docker_or_skip(case).await.is_none() {
        return;
    }
    let private = Private::new();
    let config = crash_config(&private, case);
    let a = guests::test_guest("example-label-allowlist").expect("example policy");
    let b = guests::DEFAULT_OWNERSHIP;

    let mut plugin = started(&config).await;
    let mut admin = admin_client(&plugin, &private.socket()).await;
    let digest_a = upload_whole(&mut admin, &a).await;
    let digest_b = upload_whole(&mut admin, b).await;
    admin
        .activate(digest_a.clone(), PolicyModeMsg::Enforce)
        .await
        .expect("activate");
    let mut current = active_ownership(&mut admin).await;
    assert_eq!(current, digest_a);

    let mut switched = 0;
    let mut acknowledged_checked = 0;
    // The long last delays let an activation be acknowledged before the kill.
    let delays_ms = [0u64, 1, 3, 7, 15, 30, 60, 120, 500, 3000];
    for delay in delays_ms {
        let target = if current == digest_a {
            digest_b.clone()
        } else {
            digest_a.clone()
        };
        let mut client = admin.clone();
        let activation = {
            let target = target.clone();
            tokio::spawn(async move { client.activate(target, PolicyModeMsg::Enforce).await })
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        sigkill(&mut plugin).await;
        let acknowledged = activation.await.expect("join").is_ok();

        plugin = started(&config).await;
        admin = admin_client(&plugin, &private.socket()).await;
        let now = active_ownership(&mut admin).await;
        assert!(
            now == current || now == target,
            "after {delay} ms: {now} is neither the previous nor the requested policy"
        );
        if acknowledged {
            assert_eq!(
                now, target,
                "after {delay} ms: an acknowledged activation was lost"
            );
            acknowledged_checked += 1;
        }
        let listing = admin.list().await.expect("list").policies;
        for digest in [&digest_a, &digest_b] {
            assert!(
                listing.iter().any(|p| &p.digest == digest),
                "after {delay} ms: {digest} vanished from the store: {listing:#?}"
            );
        }
        store_holds_only_listed(&mut admin, &private).await;
        if now != current {
            switched += 1;
        }
        current = now;
    }
    eprintln!(
        "activation crash: {switched} of {} kills landed after the new pointer was stored, \
         {acknowledged_checked} after the activation was acknowledged",
        delays_ms.len()
    );
    assert!(
        acknowledged_checked > 0,
        "no acknowledged activation was checked after a kill"
    );
}
