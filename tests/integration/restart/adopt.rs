//! A StartTask that finds a running container with its task's name adopts it; the container
//! is in the tracked set before the engine does anything more with it, so no sweep can take it
//! for an orphan while the adoption is under way. Checked deterministically: a Docker client
//! that forwards every call to the real daemon records, at each inspection of the adopted
//! container by id, whether the tracked set held it.
//!
//! The other order: a sweep that has begun stopping the container when StartTask finds it.
//! The same forwarding client holds the sweep's stop call until the test releases it, and
//! StartTask must wait for that action instead of adopting a container about to die. The same
//! for CreateNetwork and a group-network sandbox left untracked by a restart: it must not
//! re-adopt a sandbox a sweep is stopping, but replace it once the stop has ended.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dockhand::docker::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStatsResponse, ContainerSummary,
    ExecInspectResponse, ImageInspect, NetworkInspect, SystemInfo, SystemVersion,
};
use dockhand::docker::{
    ContainerFilter, DockerApi, DockerError, ExecIo, ExecRequest, ImportRequest, LogsRequest,
    OutputChunk, PullMessage, RegistryAuth,
};
use dockhand::fingerprint::RuntimeCatalog;
use dockhand::reconcile::{AlwaysHealthy, Reconciler, SweepReport};
use dockhand::tasks::{EngineSettings, TaskEngine, TaskSpec, TaskStore};
use futures::stream::BoxStream;
use tokio::sync::{Notify, Semaphore};

use crate::reconcile::{
    ALLOC_LABEL, Kind, NODE, default_policies, dockhand_labels, make, settings, state, task_spec,
};
use crate::support::TestContainers;
use crate::support::docker_with_image;
use crate::support::image::SANDBOX_IMAGE;

/// The real daemon, with a record of what the tracked set held at each inspection by id.
#[derive(Debug)]
struct Spy {
    inner: Arc<dyn DockerApi>,
    store: OnceLock<TaskStore>,
    /// `(id, tracked at that moment)` for each inspection by a 64-hex-digit id.
    inspections: Mutex<Vec<(String, bool)>>,
    /// When set, every stop call waits for a permit of this gate.
    stop_gate: Option<Gate>,
    /// When set, every start call waits for a permit of this gate.
    start_gate: Option<Gate>,
}

/// Holds calls: `entered` is notified as one arrives, which then waits for a permit.
#[derive(Debug)]
struct Gate {
    entered: Notify,
    release: Semaphore,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            entered: Notify::new(),
            release: Semaphore::new(0),
        }
    }

    /// Returns once `what` has reached the gate.
    async fn wait_entered(&self, what: &str) {
        tokio::time::timeout(Duration::from_secs(30), self.entered.notified())
            .await
            .unwrap_or_else(|_| panic!("{what} never reached the gate"));
    }

    /// Waits at the gate for a permit.
    async fn pass(&self) {
        self.entered.notify_one();
        self.release.acquire().await.expect("gate open").forget();
    }

    /// Lets the held stop go and checks that `sweep` then stopped `existing`.
    async fn release(&self, sweep: tokio::task::JoinHandle<SweepReport>, existing: &str) {
        self.release.add_permits(1);
        let report = sweep.await.expect("join");
        let decided = report.decision(existing).expect("decided");
        assert_eq!(decided.outcome.label(), "done", "{}", report.render_table());
    }
}

impl Spy {
    /// A spy whose stop calls wait at a [`Gate`].
    fn gated(inner: Arc<dyn DockerApi>) -> Arc<Self> {
        Self::new(inner, Some(Gate::new()), None)
    }

    /// A spy whose start calls wait at a [`Gate`].
    fn start_gated(inner: Arc<dyn DockerApi>) -> Arc<Self> {
        Self::new(inner, None, Some(Gate::new()))
    }

    fn new(
        inner: Arc<dyn DockerApi>,
        stop_gate: Option<Gate>,
        start_gate: Option<Gate>,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner,
            store: OnceLock::new(),
            inspections: Mutex::new(Vec::new()),
            stop_gate,
            start_gate,
        })
    }
}

impl Spy {
    fn record(&self, id: &str) {
        let by_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if let (true, Some(store)) = (by_id, self.store.get()) {
            let tracked = store.tracked_container_ids().contains(id);
            self.inspections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id.to_owned(), tracked));
        }
    }
}

#[async_trait::async_trait]
impl DockerApi for Spy {
    async fn ping(&self) -> Result<(), DockerError> {
        self.inner.ping().await
    }
    async fn version(&self) -> Result<SystemVersion, DockerError> {
        self.inner.version().await
    }
    async fn info(&self) -> Result<SystemInfo, DockerError> {
        self.inner.info().await
    }
    async fn list_containers(
        &self,
        filter: &ContainerFilter,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        self.inner.list_containers(filter).await
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.record(id);
        self.inner.inspect_container(id).await
    }
    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        self.inner.create_container(name, body).await
    }
    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        if let Some(gate) = &self.start_gate {
            gate.pass().await;
        }
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), DockerError> {
        if let Some(gate) = &self.stop_gate {
            gate.pass().await;
        }
        self.inner.stop_container(id, grace).await
    }
    async fn kill_container(&self, id: &str, signal: &str) -> Result<(), DockerError> {
        self.inner.kill_container(id, signal).await
    }
    async fn remove_container(&self, id: &str, force: bool) -> Result<(), DockerError> {
        self.inner.remove_container(id, force).await
    }
    async fn wait_container(&self, id: &str) -> Result<i64, DockerError> {
        self.inner.wait_container(id).await
    }
    async fn logs(
        &self,
        id: &str,
        request: LogsRequest,
    ) -> Result<BoxStream<'static, Result<OutputChunk, DockerError>>, DockerError> {
        self.inner.logs(id, request).await
    }
    async fn stats_once(&self, id: &str) -> Result<ContainerStatsResponse, DockerError> {
        self.inner.stats_once(id).await
    }
    async fn stats_stream(
        &self,
        id: &str,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse, DockerError>>, DockerError> {
        self.inner.stats_stream(id).await
    }
    async fn create_exec(&self, id: &str, request: ExecRequest) -> Result<String, DockerError> {
        self.inner.create_exec(id, request).await
    }
    async fn start_exec(&self, exec_id: &str, tty: bool) -> Result<ExecIo, DockerError> {
        self.inner.start_exec(exec_id, tty).await
    }
    async fn inspect_exec(&self, exec_id: &str) -> Result<ExecInspectResponse, DockerError> {
        self.inner.inspect_exec(exec_id).await
    }
    async fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError> {
        self.inner.resize_exec(exec_id, height, width).await
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInspect, DockerError> {
        self.inner.inspect_image(image).await
    }
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<'static, Result<PullMessage, DockerError>>, DockerError> {
        self.inner.pull_image(image, auth).await
    }
    async fn remove_image(&self, image: &str, force: bool) -> Result<(), DockerError> {
        self.inner.remove_image(image, force).await
    }
    async fn load_image(&self, tarball: &std::path::Path) -> Result<(), DockerError> {
        self.inner.load_image(tarball).await
    }
    async fn import_image(
        &self,
        request: ImportRequest,
        rootfs_tar: Bytes,
    ) -> Result<(), DockerError> {
        self.inner.import_image(request, rootfs_tar).await
    }
    async fn inspect_network(&self, name: &str) -> Result<NetworkInspect, DockerError> {
        self.inner.inspect_network(name).await
    }
}

/// A running container with `spec`'s container name and `labels`: the task's container from
/// an earlier start.
async fn running_under_task_name(
    docker: &Arc<dyn DockerApi>,
    guard: &TestContainers,
    spec: &TaskSpec,
    labels: Vec<(&'static str, String)>,
) -> String {
    make(
        docker,
        guard,
        Kind {
            name: spec.container_name(),
            labels,
            start: true,
            ..Kind::default()
        },
    )
    .await
}

/// Waits until `call` (StartTask or CreateNetwork, spawned) has reserved `existing`, then
/// checks that it still waits half a second later — for the sweep's action under way — and
/// hands the call back.
async fn reserves_and_waits<T: std::fmt::Debug>(
    engine: &TaskEngine,
    existing: &str,
    what: &str,
    call: tokio::task::JoinHandle<T>,
) -> tokio::task::JoinHandle<T> {
    let begun = std::time::Instant::now();
    while !engine.store().tracked_container_ids().contains(existing) {
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "{what} never reserved {existing}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !call.is_finished(),
        "{what} returned while the sweep was stopping {existing}: {:?}",
        call.await
    );
    call
}

#[tokio::test]
async fn a_container_adopted_by_name_is_tracked_before_it_is_adopted() {
    let case = "restart_adopt_by_name";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = task_spec(&guard, dir.path());
    // A running container of this task from an earlier start (a plugin that died mid-start).
    let existing = running_under_task_name(
        &docker,
        &guard,
        &spec,
        vec![(ALLOC_LABEL, spec.alloc_id.clone())],
    )
    .await;
    let spy = Spy::new(docker.clone(), None, None);
    let engine = TaskEngine::new(
        spy.clone(),
        EngineSettings::default(),
        RuntimeCatalog::new(),
    );
    spy.store
        .set(engine.store().clone())
        .expect("store set once");

    let started = engine.start(spec.clone()).await.expect("StartTask adopts");
    assert_eq!(started.handle.container_id(), existing);
    assert!(started.handle.state().adopted);
    let seen: Vec<(String, bool)> = spy
        .inspections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(id, _)| *id == existing)
        .cloned()
        .collect();
    assert!(
        !seen.is_empty(),
        "the adopted container was never inspected by id"
    );
    assert!(
        seen.iter().all(|(_, tracked)| *tracked),
        "the engine worked on the container before it was tracked: {seen:?}"
    );
    assert!(engine.store().tracked_container_ids().contains(&existing));

    engine.destroy(&spec.id, true).await.expect("DestroyTask");
    assert_eq!(state(&docker, &existing).await, None);
    assert!(engine.store().tracked_container_ids().is_empty());
}

#[tokio::test]
async fn a_container_a_sweep_is_stopping_is_not_adopted_until_the_stop_has_ended() {
    let case = "restart_adopt_during_action";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = task_spec(&guard, dir.path());
    // This task's container from an earlier start, untracked: an orphan to the reconciler.
    let existing = running_under_task_name(
        &docker,
        &guard,
        &spec,
        dockhand_labels(spec.alloc_id.clone(), NODE),
    )
    .await;
    let engine = TaskEngine::new(
        docker.clone(),
        EngineSettings::default(),
        RuntimeCatalog::new(),
    );
    // The reconciler's Docker calls go through the gate; the engine's go straight to Docker.
    let spy = Spy::gated(docker.clone());
    let gate = spy.stop_gate.as_ref().expect("gated");
    let rec = Arc::new(Reconciler::new(
        spy.clone(),
        Arc::new(engine.clone()),
        default_policies(),
        settings(&guard, Duration::ZERO),
        Arc::new(AlwaysHealthy),
    ));
    let sweep = tokio::spawn({
        let rec = Arc::clone(&rec);
        async move { rec.sweep_now(false).await.expect("docker is healthy") }
    });
    gate.wait_entered("the sweep's stop of the orphan").await;

    let start = tokio::spawn({
        let (engine, spec) = (engine.clone(), spec.clone());
        async move { engine.start(spec).await }
    });
    // StartTask finds the running container with its name and reserves it, and waits for the
    // stop under way instead of adopting a container about to die.
    let start = reserves_and_waits(&engine, &existing, "StartTask", start).await;
    gate.release(sweep, &existing).await;

    let started = tokio::time::timeout(Duration::from_secs(60), start)
        .await
        .expect("StartTask ends once the stop has")
        .expect("join")
        .expect("StartTask recreates the container");
    let id = started.handle.container_id().to_owned();
    assert_ne!(id, existing, "the stopped container was adopted");
    assert!(!started.handle.state().adopted);
    assert_eq!(state(&docker, &id).await, Some(true));
    assert_ne!(
        state(&docker, &existing).await,
        Some(true),
        "the orphan was stopped"
    );

    engine.destroy(&spec.id, true).await.expect("DestroyTask");
    assert_eq!(state(&docker, &id).await, None);
}

/// Sweeps through `docker` restricted to the containers labelled for `alloc_id` (a sandbox
/// carries no test-case label), with `engine`'s tracked set.
fn sandbox_reconciler(
    docker: Arc<dyn DockerApi>,
    guard: &TestContainers,
    engine: &TaskEngine,
    alloc_id: &str,
) -> Arc<Reconciler> {
    let mut settings = settings(guard, Duration::ZERO);
    settings.label_filter = Some(format!("{ALLOC_LABEL}={alloc_id}"));
    Arc::new(Reconciler::new(
        docker,
        Arc::new(engine.clone()),
        default_policies(),
        settings,
        Arc::new(AlwaysHealthy),
    ))
}

#[tokio::test]
async fn a_sandbox_a_sweep_is_stopping_is_replaced_not_re_adopted() {
    let case = "restart_adopt_sandbox_during_action";
    let Some((docker, guard, alloc_id)) = crate::network::setup(case).await else {
        return;
    };
    let infra = || EngineSettings {
        infra_image: SANDBOX_IMAGE.to_owned(),
        ..EngineSettings::default()
    };
    // The allocation's sandbox from before a plugin restart, untracked: an orphan to the
    // reconciler.
    let existing = TaskEngine::new(docker.clone(), infra(), RuntimeCatalog::new())
        .create_network(&alloc_id, "", NODE)
        .await
        .expect("sandbox of the earlier run")
        .container_id;
    // With no grace, a container is a candidate once the second it was created in is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let engine = TaskEngine::new(docker.clone(), infra(), RuntimeCatalog::new());
    // The reconciler's Docker calls go through the gate; the engine's go straight to Docker.
    let spy = Spy::gated(docker.clone());
    let gate = spy.stop_gate.as_ref().expect("gated");
    let rec = sandbox_reconciler(spy.clone(), &guard, &engine, &alloc_id);
    let sweep = tokio::spawn({
        let rec = Arc::clone(&rec);
        async move { rec.sweep_now(false).await.expect("docker is healthy") }
    });
    gate.wait_entered("the sweep's stop of the orphaned sandbox")
        .await;

    let create = tokio::spawn({
        let (engine, alloc_id) = (engine.clone(), alloc_id.clone());
        async move { engine.create_network(&alloc_id, "", NODE).await }
    });
    // CreateNetwork finds the running sandbox and reserves it, and waits for the stop under
    // way instead of re-adopting a sandbox about to die.
    let create = reserves_and_waits(&engine, &existing, "CreateNetwork", create).await;
    gate.release(sweep, &existing).await;

    let sandbox = tokio::time::timeout(Duration::from_secs(60), create)
        .await
        .expect("CreateNetwork ends once the stop has")
        .expect("join")
        .expect("CreateNetwork creates a new sandbox");
    assert!(sandbox.created, "the stopped sandbox was re-adopted");
    assert_ne!(sandbox.container_id, existing);
    assert_eq!(state(&docker, &sandbox.container_id).await, Some(true));
    assert_eq!(
        state(&docker, &existing).await,
        None,
        "the orphan was removed"
    );
    assert_eq!(
        engine.store().tracked_container_ids(),
        [sandbox.container_id.clone()].into(),
        "the new sandbox is tracked, the reservation of the old one gone"
    );

    // A later sweep leaves the new sandbox alone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = sandbox_reconciler(docker.clone(), &guard, &engine, &alloc_id)
        .sweep_once()
        .await;
    assert_eq!(
        (report.listed, report.skipped_tracked),
        (1, 1),
        "{}",
        report.render_table()
    );
    assert!(report.acted_on().is_empty(), "{}", report.render_table());
    assert_eq!(state(&docker, &sandbox.container_id).await, Some(true));

    engine
        .destroy_network(&alloc_id, Some(&sandbox.container_id))
        .await
        .expect("DestroyNetwork");
    assert_eq!(state(&docker, &sandbox.container_id).await, None);
}

/// An engine whose sandbox starts wait at the returned spy's start gate.
fn start_gated_engine(docker: &Arc<dyn DockerApi>) -> (Arc<Spy>, TaskEngine) {
    let spy = Spy::start_gated(docker.clone());
    let settings = EngineSettings {
        infra_image: SANDBOX_IMAGE.to_owned(),
        ..EngineSettings::default()
    };
    let engine = TaskEngine::new(spy.clone(), settings, RuntimeCatalog::new());
    (spy, engine)
}

/// The one sandbox `engine` tracks for an allocation.
fn the_tracked_sandbox(engine: &TaskEngine) -> String {
    let ids = engine.store().sandbox_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().expect("one")
}

#[tokio::test]
async fn a_second_create_network_waits_for_the_first_and_adopts_its_sandbox() {
    let case = "restart_adopt_sandbox_concurrent_create";
    let Some((docker, _guard, alloc_id)) = crate::network::setup(case).await else {
        return;
    };
    let (spy, engine) = start_gated_engine(&docker);
    let gate = spy.start_gate.as_ref().expect("gated");
    let create = || {
        let (engine, alloc_id) = (engine.clone(), alloc_id.clone());
        tokio::spawn(async move { engine.create_network(&alloc_id, "", NODE).await })
    };
    let first = create();
    gate.wait_entered("the first CreateNetwork's start").await;
    // The first call's sandbox exists, not yet started, when the second call comes.
    let made = the_tracked_sandbox(&engine);
    assert_eq!(state(&docker, &made).await, Some(false));
    let second = create();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "the second CreateNetwork did not wait for the first: {:?}",
        second.await
    );
    assert_eq!(state(&docker, &made).await, Some(false), "left alone");

    gate.release.add_permits(1);
    let first = tokio::time::timeout(Duration::from_secs(60), first)
        .await
        .expect("the first call ends")
        .expect("join")
        .expect("the first call creates the sandbox");
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the second call ends")
        .expect("join")
        .expect("the second call adopts the sandbox");
    assert!(first.created);
    assert_eq!(first.container_id, made);
    assert!(!second.created, "{second:?}");
    assert_eq!(second.container_id, made);
    assert_eq!(state(&docker, &made).await, Some(true));
    assert_eq!(the_tracked_sandbox(&engine), made);
    engine
        .destroy_network(&alloc_id, Some(&made))
        .await
        .expect("DestroyNetwork");
}

#[tokio::test]
async fn a_create_network_cancelled_before_its_start_leaves_nothing_in_the_way() {
    let case = "restart_adopt_sandbox_cancelled_create";
    let Some((docker, _guard, alloc_id)) = crate::network::setup(case).await else {
        return;
    };
    let (spy, engine) = start_gated_engine(&docker);
    let gate = spy.start_gate.as_ref().expect("gated");
    let first = tokio::spawn({
        let (engine, alloc_id) = (engine.clone(), alloc_id.clone());
        async move { engine.create_network(&alloc_id, "", NODE).await }
    });
    gate.wait_entered("the first CreateNetwork's start").await;
    // Its client goes away: the call is dropped between create and start.
    first.abort();
    assert!(first.await.expect_err("aborted").is_cancelled());
    let left = the_tracked_sandbox(&engine);
    assert_eq!(state(&docker, &left).await, Some(false));

    // The next CreateNetwork replaces the never-started sandbox.
    gate.release.add_permits(1);
    let sandbox = tokio::time::timeout(
        Duration::from_secs(60),
        engine.create_network(&alloc_id, "", NODE),
    )
    .await
    .expect("CreateNetwork ends")
    .expect("CreateNetwork creates a new sandbox");
    assert!(sandbox.created);
    assert_ne!(sandbox.container_id, left);
    assert_eq!(state(&docker, &left).await, None, "removed");
    assert_eq!(state(&docker, &sandbox.container_id).await, Some(true));
    assert_eq!(the_tracked_sandbox(&engine), sandbox.container_id);
    engine
        .destroy_network(&alloc_id, Some(&sandbox.container_id))
        .await
        .expect("DestroyNetwork");
}
