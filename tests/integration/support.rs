//! Helpers shared by every Docker-backed integration test.
//!
//! * [`docker_or_skip`]: the daemon, or a loud skip (a failure under `DOCKHAND_REQUIRE_DOCKER=1`).
//! * [`ensure_test_image`]: the tiny busybox image, built by the tests themselves, once.
//! * [`TestContainers`]: labels for a test's containers and a guard that removes them all on
//!   drop, also when the test panics.

pub mod fault_proxy;
pub mod image;
pub mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;

use dockhand::docker::{BollardDocker, ContainerFilter, DockerApi};

pub use image::{TEST_IMAGE, ensure_test_image};

/// Label on every container a test creates.
pub const TEST_LABEL: &str = "dockhand.test";
/// Label naming the test case that created a container.
pub const TEST_CASE_LABEL: &str = "dockhand.test.case";

/// The local Docker daemon, or `None` (with a loud message) when it is unreachable.
/// Panics instead of skipping when `DOCKHAND_REQUIRE_DOCKER=1`.
pub async fn docker_or_skip(test: &str) -> Option<Arc<dyn DockerApi>> {
    let required = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let outcome = match BollardDocker::from_env() {
        Ok(d) => d.ping().await.map(|()| d),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(d) => Some(Arc::new(d)),
        Err(e) if required => {
            panic!("{test}: Docker is required (DOCKHAND_REQUIRE_DOCKER=1) but unreachable: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPING {test}: Docker daemon unreachable ({e}). \
                 Set DOCKHAND_REQUIRE_DOCKER=1 to make this a failure. !!!!!!!!\n"
            );
            None
        }
    }
}

/// The daemon and the test image, or `None` when Docker is unreachable (see [`docker_or_skip`]).
pub async fn docker_with_image(test: &str) -> Option<Arc<dyn DockerApi>> {
    let docker = docker_or_skip(test).await?;
    ensure_test_image(&docker).await;
    Some(docker)
}

/// Owns the containers of one test case: hands out the labels to put on them and removes every
/// container carrying them (plus any id registered with [`TestContainers::track`]) on drop.
#[derive(Debug)]
pub struct TestContainers {
    docker: Arc<dyn DockerApi>,
    case: String,
    extra: std::sync::Mutex<Vec<String>>,
}

impl TestContainers {
    /// A guard for `case`; leftovers of an earlier run of the same case are removed first.
    pub async fn new(docker: &Arc<dyn DockerApi>, case: &str) -> Self {
        let guard = Self {
            docker: docker.clone(),
            case: case.to_owned(),
            extra: std::sync::Mutex::new(Vec::new()),
        };
        remove_case(docker.as_ref(), case, &[]).await;
        guard
    }

    /// The labels every container of this case must carry.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            (TEST_LABEL.to_owned(), "1".to_owned()),
            (TEST_CASE_LABEL.to_owned(), self.case.clone()),
        ]
        .into()
    }

    /// The case name.
    pub fn case(&self) -> &str {
        &self.case
    }

    /// Also remove this container id on drop (for containers created without the labels).
    pub fn track(&self, id: impl Into<String>) {
        self.extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id.into());
    }

    /// Ids of this case's containers that still exist. Panics when Docker cannot list them:
    /// a failed listing is not "nothing left behind".
    pub async fn remaining(&self) -> Vec<String> {
        case_containers(self.docker.as_ref(), &self.case)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

async fn case_containers(docker: &dyn DockerApi, case: &str) -> Result<Vec<String>, String> {
    let filter = ContainerFilter::all().with_label(format!("{TEST_CASE_LABEL}={case}"));
    let listed = docker
        .list_containers(&filter)
        .await
        .map_err(|e| format!("cannot list the containers of test case {case}: {e}"))?;
    Ok(listed.into_iter().filter_map(|c| c.id).collect())
}

/// Removes the case's containers; panics when they cannot be listed (the caller cannot know
/// what is left).
async fn remove_case(docker: &dyn DockerApi, case: &str, extra: &[String]) {
    let mut ids = case_containers(docker, case)
        .await
        .unwrap_or_else(|e| panic!("test cleanup: {e}"));
    ids.extend(extra.iter().cloned());
    for id in ids {
        match docker.remove_container(&id, true).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => eprintln!("test cleanup: failed to remove container {id}: {e}"),
        }
    }
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        let extra = std::mem::take(
            &mut *self
                .extra
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let docker = self.docker.clone();
        let case = self.case.clone();
        // Drop may run inside the test's runtime (where blocking on it is not allowed) and
        // during a panic: run the cleanup on a thread of its own, with its own runtime.
        let cleanup =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(remove_case(docker.as_ref(), &case, &extra)),
                    Err(e) => eprintln!("test cleanup: no runtime for case {case}: {e}"),
                }
            });
        if cleanup.join().is_err() {
            eprintln!("test cleanup for case {} panicked", self.case);
        }
    }
}
