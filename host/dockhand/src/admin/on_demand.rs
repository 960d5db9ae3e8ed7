//! On-demand sweeps (the admin `Sweep` method): one sweep of the running reconciler now,
//! reported per container; a dry run may put a stored policy in place of the one in force,
//! and a preview skips the on-demand checks (`dockhand policy dry-run`). The periodic sweep
//! itself is `reconcile::sweep`; the checks are `reconcile::manual`'s.

use orphan_policy::LoadedPolicy;
use orphan_policy::store::{PolicyMode, StoreError, StoredPolicy};
use tonic::Status;

use super::convert::{skipped_response, sweep_response};
use super::proto;
use super::server::{kind_from_proto, store_status};
use crate::reconcile::{ActiveEntry, ActivePolicies, PolicyOrigin, Reconciler};

/// Message of the `FAILED_PRECONDITION` answer when no reconciler runs.
pub(super) const RECONCILER_DISABLED: &str = "sweep unavailable: the dangling container \
     reconciler is disabled in this plugin (gc.dangling_containers.enabled = false)";

/// The running reconciler, or the answer that there is none.
pub(super) fn reconciler(
    sweeper: Option<&std::sync::Arc<Reconciler>>,
) -> Result<&Reconciler, Status> {
    sweeper
        .map(AsRef::as_ref)
        .ok_or_else(|| Status::failed_precondition(RECONCILER_DISABLED))
}

/// Refuses what only a dry run may ask for in a real sweep.
pub(super) fn check_request(request: &proto::SweepRequest) -> Result<(), Status> {
    if request.dry_run || (request.digest.is_empty() && !request.preview) {
        return Ok(());
    }
    Err(Status::invalid_argument(
        "sweep: `digest` and `preview` are for dry runs only; a real sweep uses the policies \
         in force",
    ))
}

/// The pair in force with `policy` (the stored policy `meta`, loaded) in place of the one of
/// its kind, in audit mode; `asked` is the request's kind, checked against the stored one.
pub(super) fn with_stored(
    in_force: &ActivePolicies,
    meta: StoredPolicy,
    policy: LoadedPolicy,
    asked: i32,
) -> Result<ActivePolicies, Status> {
    if asked != proto::PolicyKind::Unspecified as i32 {
        let asked = kind_from_proto(asked, "kind")?;
        if asked != meta.kind {
            return Err(store_status(StoreError::WrongKind {
                digest: meta.digest,
                expected: asked,
                actual: meta.kind,
            }));
        }
    }
    Ok(in_force.with(ActiveEntry {
        policy,
        name: meta.name,
        version: meta.version,
        mode: PolicyMode::Audit,
        origin: PolicyOrigin::Store,
        activated_at: 0,
    }))
}

/// Runs the sweep `request` asks for on `reconciler`, with `policies` in place of those in
/// force (dry runs only), and reports it.
pub(super) async fn sweep(
    reconciler: &Reconciler,
    request: &proto::SweepRequest,
    policies: Option<ActivePolicies>,
) -> proto::SweepResponse {
    let dry_run = request.dry_run;
    let result = if request.preview {
        Ok(reconciler.preview(policies).await)
    } else if dry_run {
        reconciler.dry_run_now(policies).await
    } else {
        reconciler.sweep_now(false).await
    };
    match result {
        Ok(report) => sweep_response(&report, dry_run),
        Err(skipped) => skipped_response(&skipped, dry_run),
    }
}
