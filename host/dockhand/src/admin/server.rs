//! The `PolicyAdmin` service implementation and the server loop over peer-checked connections.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use orphan_policy::limits::MAX_POLICY_BYTES;
use orphan_policy::store::{PolicyMeta, PolicyMode, StoreError, StoredPolicy, sha256_hex};
use orphan_policy::{LoadError, LoadedPolicy, PolicyKind};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{metrics_message, origin_message, state_message};
use super::on_demand;
use super::peer::{PeerStream, check_peer};
use super::proto::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use super::proto::{self, upload_request::Part};
use super::{ActiveEntry, AdminError, AdminState, PolicyOrigin};

/// Runs the service on `listener` until `shutdown`.
pub(super) async fn run(
    listener: tokio::net::UnixListener,
    allowed_uids: Vec<u32>,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AdminError> {
    let incoming = UnixListenerStream::new(listener).map(|accepted| accepted.map(PeerStream::new));
    let interceptor = move |request: Request<()>| {
        let cred = request.extensions().get::<super::peer::PeerCred>();
        match check_peer(cred, &allowed_uids) {
            Ok(_) => Ok(request),
            Err(status) => {
                tracing::warn!(peer = ?cred, "admin API request refused: {}", status.message());
                Err(status)
            }
        }
    };
    tonic::transport::Server::builder()
        .add_service(PolicyAdminServer::with_interceptor(
            Service { state },
            interceptor,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

struct Service {
    state: Arc<AdminState>,
}

pub(super) fn kind_from_proto(value: i32, field: &str) -> Result<PolicyKind, Status> {
    match proto::PolicyKind::try_from(value) {
        Ok(proto::PolicyKind::Ownership) => Ok(PolicyKind::Ownership),
        Ok(proto::PolicyKind::Kill) => Ok(PolicyKind::Kill),
        _ => Err(Status::invalid_argument(format!(
            "{field}: policy kind must be ownership or kill"
        ))),
    }
}

fn kind_to_proto(kind: PolicyKind) -> i32 {
    match kind {
        PolicyKind::Ownership => proto::PolicyKind::Ownership as i32,
        PolicyKind::Kill => proto::PolicyKind::Kill as i32,
    }
}

fn mode_to_proto(mode: PolicyMode) -> i32 {
    match mode {
        PolicyMode::Audit => proto::PolicyMode::Audit as i32,
        PolicyMode::Enforce => proto::PolicyMode::Enforce as i32,
    }
}

fn mode_from_proto(value: i32) -> Result<PolicyMode, Status> {
    match proto::PolicyMode::try_from(value) {
        // Enforcing is always asked for explicitly: an activation that names no mode audits.
        Ok(proto::PolicyMode::Audit | proto::PolicyMode::Unspecified) => Ok(PolicyMode::Audit),
        Ok(proto::PolicyMode::Enforce) => Ok(PolicyMode::Enforce),
        Err(_) => Err(Status::invalid_argument(format!(
            "mode: unknown policy mode {value}; expected audit or enforce"
        ))),
    }
}

fn stored_to_proto(p: StoredPolicy) -> proto::StoredPolicy {
    proto::StoredPolicy {
        digest: p.digest,
        kind: kind_to_proto(p.kind),
        name: p.name,
        version: p.version,
        uploaded_at: p.uploaded_at,
        size: p.size,
        state: state_message(p.state) as i32,
    }
}

fn entry_to_proto(e: &ActiveEntry) -> proto::ActivePolicy {
    proto::ActivePolicy {
        kind: kind_to_proto(e.policy.kind()),
        digest: e.policy.digest_hex(),
        name: e.name.clone(),
        version: e.version.clone(),
        mode: mode_to_proto(e.mode),
        source: origin_message(e.origin) as i32,
        activated_at: e.activated_at,
        reads: e.policy.info().reads.to_string(),
    }
}

pub(super) fn store_status(e: StoreError) -> Status {
    let text = nomad_plugin::error_chain(&e);
    match e {
        StoreError::NotFound { .. } => Status::not_found(text),
        StoreError::NothingToRollBack { .. } => Status::failed_precondition(text),
        StoreError::InvalidDigest { .. }
        | StoreError::DigestMismatch { .. }
        | StoreError::TooLarge { .. }
        | StoreError::Empty
        | StoreError::InvalidMeta { .. }
        | StoreError::WrongKind { .. }
        | StoreError::KindConflict { .. } => Status::invalid_argument(text),
        other => {
            tracing::error!(
                error = &other as &dyn std::error::Error,
                "admin API: policy store failure"
            );
            Status::internal(text)
        }
    }
}

fn load_status(kind: PolicyKind, e: &LoadError) -> Status {
    Status::invalid_argument(format!(
        "{kind} policy refused: {}",
        nomad_plugin::error_chain(e)
    ))
}

fn join_status(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("admin API: background task failed: {e}"))
}

impl Service {
    /// Runs blocking store work off the async threads.
    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&orphan_policy::store::PolicyStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.state.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(join_status)?
            .map_err(store_status)
    }

    /// Validates and compiles `bytes` as a `kind` policy off the async threads.
    /// If the request is dropped (the client hung up), the load is cancelled:
    /// it does not start compiling, and a compile under way is discarded.
    async fn load(&self, kind: PolicyKind, bytes: Arc<Vec<u8>>) -> Result<LoadedPolicy, Status> {
        /// Sets the flag when the request's future is dropped.
        struct CancelOnDrop(Arc<AtomicBool>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let engine = self.state.engine.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(cancelled.clone());
        tokio::task::spawn_blocking(move || engine.load_cancellable(kind, &bytes, &cancelled))
            .await
            .map_err(join_status)?
            .map_err(|e| load_status(kind, &e))
    }

    /// A stored policy, loaded and verified.
    async fn load_stored(&self, digest: String) -> Result<(StoredPolicy, LoadedPolicy), Status> {
        let (meta, bytes) = self.store(move |s| s.get(&digest)).await?;
        let policy = self.load(meta.kind, Arc::new(bytes)).await?;
        Ok((meta, policy))
    }

    fn respond_active(&self, entry: ActiveEntry) -> (proto::ActivePolicy, bool) {
        let msg = entry_to_proto(&entry);
        let kind = entry.policy.kind();
        let mode = entry.mode;
        self.state.policies.install(entry);
        // The reconciler reads the policies in force: it uses this one from its next sweep.
        let applied = self.state.sweeper.is_some();
        tracing::info!(%kind, digest = %msg.digest, %mode, applied, "admin API: policy put in force");
        (msg, applied)
    }
}

async fn receive_upload(
    mut stream: Streaming<proto::UploadRequest>,
) -> Result<(proto::UploadHeader, Vec<u8>), Status> {
    let header = match stream.message().await? {
        Some(proto::UploadRequest {
            part: Some(Part::Header(h)),
        }) => h,
        Some(_) => {
            return Err(Status::invalid_argument(
                "upload: the first message must be the header (kind, sha256, name, version)",
            ));
        }
        None => return Err(Status::invalid_argument("upload: empty stream, no header")),
    };
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(Part::Chunk(chunk)) => {
                if bytes.len() + chunk.len() > MAX_POLICY_BYTES {
                    return Err(Status::invalid_argument(format!(
                        "upload: policy exceeds the limit of {MAX_POLICY_BYTES} bytes \
                         (more than {} bytes received); refused",
                        bytes.len() + chunk.len()
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Some(Part::Header(_)) => {
                return Err(Status::invalid_argument(
                    "upload: a second header after the policy bytes started",
                ));
            }
            None => {
                return Err(Status::invalid_argument(
                    "upload: a message without content",
                ));
            }
        }
    }
    if bytes.is_empty() {
        return Err(Status::invalid_argument("upload: no policy bytes received"));
    }
    Ok((header, bytes))
}

#[tonic::async_trait]
impl PolicyAdmin for Service {
    async fn upload(
        &self,
        request: Request<Streaming<proto::UploadRequest>>,
    ) -> Result<Response<proto::UploadResponse>, Status> {
        let (header, bytes) = receive_upload(request.into_inner()).await?;
        let kind = kind_from_proto(header.kind, "upload header kind")?;
        let declared = (!header.sha256.is_empty()).then(|| header.sha256.to_lowercase());
        if let Some(declared) = &declared {
            let actual = sha256_hex(&bytes);
            if *declared != actual {
                return Err(store_status(StoreError::DigestMismatch {
                    declared: declared.chars().take(80).collect(),
                    actual,
                }));
            }
        }
        let bytes = Arc::new(bytes);
        // The compile runs outside the write lock: a slow one (a Python policy takes seconds)
        // holds up no activation or rollback of a policy whose compiled form is cached.
        let policy = self.load(kind, bytes.clone()).await?;
        let info = policy.info().clone();
        let meta = PolicyMeta {
            name: if header.name.is_empty() {
                info.name.clone()
            } else {
                header.name
            },
            version: if header.version.is_empty() {
                info.version.clone()
            } else {
                header.version
            },
        };
        let stored = {
            let _writes = self.state.writes.lock().await;
            self.store(move |s| s.put(kind, &bytes, declared.as_deref(), meta))
                .await?
        };
        tracing::info!(digest = %stored.digest, %kind, name = %stored.name, "admin API: policy uploaded");
        Ok(Response::new(proto::UploadResponse {
            policy: Some(stored_to_proto(stored)),
            described_name: info.name,
            described_version: info.version,
            reads: info.reads.to_string(),
            contract_version: info.contract_version,
        }))
    }

    async fn list(
        &self,
        _request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let policies = self.store(|s| s.list()).await?;
        Ok(Response::new(proto::ListResponse {
            policies: policies.into_iter().map(stored_to_proto).collect(),
        }))
    }

    async fn activate(
        &self,
        request: Request<proto::ActivateRequest>,
    ) -> Result<Response<proto::ActivateResponse>, Status> {
        let request = request.into_inner();
        let mode = mode_from_proto(request.mode)?;
        let digest = request.digest.to_lowercase();
        let _writes = self.state.writes.lock().await;
        let (meta, policy) = self.load_stored(digest.clone()).await?;
        let kind = meta.kind;
        let record = self.store(move |s| s.activate(kind, &digest, mode)).await?;
        let (active, applied) = self.respond_active(ActiveEntry {
            policy,
            name: meta.name,
            version: meta.version,
            mode: record.mode,
            origin: PolicyOrigin::Store,
            activated_at: record.activated_at,
        });
        Ok(Response::new(proto::ActivateResponse {
            active: Some(active),
            applied,
        }))
    }

    async fn rollback(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::RollbackResponse>, Status> {
        let kind = kind_from_proto(request.into_inner().kind, "kind")?;
        let _writes = self.state.writes.lock().await;
        let target = self
            .store(move |s| s.active(kind))
            .await?
            .and_then(|record| record.previous.into_iter().next())
            .ok_or_else(|| store_status(StoreError::NothingToRollBack { kind }))?;
        // Load (and so verify) the target before the pointer moves.
        let (meta, policy) = self.load_stored(target.digest.clone()).await?;
        let record = self.store(move |s| s.rollback(kind)).await?;
        if record.digest != target.digest {
            return Err(Status::aborted(format!(
                "rollback: the store moved {kind} to {} while {} was expected",
                record.digest, target.digest
            )));
        }
        let (active, applied) = self.respond_active(ActiveEntry {
            policy,
            name: meta.name,
            version: meta.version,
            mode: record.mode,
            origin: PolicyOrigin::Store,
            activated_at: record.activated_at,
        });
        Ok(Response::new(proto::RollbackResponse {
            active: Some(active),
            applied,
        }))
    }

    async fn sweep(
        &self,
        request: Request<proto::SweepRequest>,
    ) -> Result<Response<proto::SweepResponse>, Status> {
        let request = request.into_inner();
        let reconciler = on_demand::reconciler(self.state.sweeper.as_ref())?;
        on_demand::check_request(&request)?;
        let policies = if request.digest.is_empty() {
            None
        } else {
            let digest = request.digest.to_lowercase();
            let (meta, policy) = self.load_stored(digest).await?;
            let in_force = reconciler.policies().current();
            Some(on_demand::with_stored(
                &in_force,
                meta,
                policy,
                request.kind,
            )?)
        };
        Ok(Response::new(
            on_demand::sweep(reconciler, &request, policies).await,
        ))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let snapshot = self.state.metrics.as_ref().map(|m| m.snapshot());
        let policies = self.state.policies.current();
        let node = self
            .state
            .sweeper
            .as_ref()
            .map(|r| r.current_node())
            .unwrap_or_default();
        let compiles = self.state.engine.compile_counts();
        Ok(Response::new(proto::StatusResponse {
            reconciler_running: self.state.sweeper.is_some(),
            metrics: snapshot.as_ref().map(metrics_message),
            active: [PolicyKind::Ownership, PolicyKind::Kill]
                .into_iter()
                .map(|k| entry_to_proto(policies.entry(k)))
                .collect(),
            node_id: node.id,
            node_name: node.name,
            policy_compiles_started: compiles.started,
            policy_compiles_discarded: compiles.discarded,
        }))
    }
}
