//! Image garbage collection (`gc { image, image_delay }`): images are reference-counted by the
//! tasks (task id) and group-network sandboxes (alloc id) that use them, and removed
//! `image_delay` after the last reference went away. A new reference in the meantime cancels
//! the removal.
//!
//! Design decisions:
//! * **Never while a container uses it.** Nomad removes with `force`, which also deletes an
//!   image that stopped containers still use (e.g. with `gc.container = false`). Here the
//!   removal first lists the containers and leaves the image alone if any container, running
//!   or not, was created from it; a failed listing also means "leave it" (when in doubt, don't
//!   delete). `force` is still used, as in Nomad, so an image with several tags goes.
//! * **Counts survive a restart through RecoverTask**: each recovered task (and the sandbox it
//!   joins) references its container's image again. Images whose last task was destroyed
//!   while the plugin was down are not found again (as in Nomad).
//! * Removal is tried up to [`REMOVE_ATTEMPTS`] times [`REMOVE_RETRY_PAUSE`] apart; "not
//!   found" and "conflict" (in use) end the attempts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::docker::{ContainerFilter, DockerApi};

/// Removal attempts per image.
pub const REMOVE_ATTEMPTS: u32 = 3;
/// Pause between removal attempts.
pub const REMOVE_RETRY_PAUSE: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct State {
    /// Image id → callers (task ids, alloc ids) using it.
    references: BTreeMap<String, BTreeSet<String>>,
    /// Image id → generation of its scheduled removal.
    pending: BTreeMap<String, u64>,
    next_generation: u64,
}

/// The reference counter. Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct ImageGc {
    docker: Arc<dyn DockerApi>,
    /// `None` when `gc.image = false`: nothing is counted or removed.
    delay: Option<Duration>,
    state: Arc<Mutex<State>>,
}

impl ImageGc {
    /// A collector removing images `delay` after their last reference; `None` disables it.
    pub fn new(docker: Arc<dyn DockerApi>, delay: Option<Duration>) -> Self {
        Self {
            docker,
            delay,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `caller` uses `image_id` and cancels a scheduled removal.
    pub fn acquire(&self, image_id: &str, caller: &str) {
        if self.delay.is_none() || image_id.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.pending.remove(image_id).is_some() {
            tracing::debug!(image_id, "cancelling removal of container image");
        }
        let refs = st.references.entry(image_id.to_owned()).or_default();
        if refs.insert(caller.to_owned()) {
            tracing::debug!(
                image_id,
                caller,
                references = refs.len(),
                "image reference count incremented"
            );
        }
    }

    /// Drops `caller`'s reference; the last one schedules the removal after the delay.
    pub fn release(&self, image_id: &str, caller: &str) {
        let Some(delay) = self.delay else { return };
        let generation = {
            let mut st = self.lock();
            let Some(refs) = st.references.get_mut(image_id) else {
                tracing::debug!(image_id, caller, "release of an image that is not counted");
                return;
            };
            refs.remove(caller);
            let left = refs.len();
            tracing::debug!(
                image_id,
                references = left,
                "image reference count decremented"
            );
            if left > 0 {
                return;
            }
            st.references.remove(image_id);
            st.next_generation += 1;
            let generation = st.next_generation;
            st.pending.insert(image_id.to_owned(), generation);
            generation
        };
        let gc = self.clone();
        let image_id = image_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            gc.remove_if_still_unused(&image_id, generation).await;
        });
    }

    /// Drops every reference `caller` holds (a destroyed sandbox whose image is unknown).
    pub fn release_caller(&self, caller: &str) {
        if self.delay.is_none() {
            return;
        }
        let held: Vec<String> = self
            .lock()
            .references
            .iter()
            .filter(|(_, callers)| callers.contains(caller))
            .map(|(image, _)| image.clone())
            .collect();
        for image_id in held {
            self.release(&image_id, caller);
        }
    }

    /// How many callers reference `image_id`.
    pub fn references(&self, image_id: &str) -> usize {
        self.lock()
            .references
            .get(image_id)
            .map_or(0, BTreeSet::len)
    }

    /// Whether this removal is still the scheduled one (no new reference, no newer schedule).
    fn still_pending(&self, image_id: &str, generation: u64) -> bool {
        self.lock().pending.get(image_id) == Some(&generation)
    }

    fn finish(&self, image_id: &str, generation: u64) {
        let mut st = self.lock();
        if st.pending.get(image_id) == Some(&generation) {
            st.pending.remove(image_id);
        }
    }

    async fn remove_if_still_unused(&self, image_id: &str, generation: u64) {
        if !self.still_pending(image_id, generation) {
            return;
        }
        match self.docker.list_containers(&ContainerFilter::all()).await {
            Err(e) => {
                tracing::warn!(image_id, error = %e, "cannot list containers; leaving the image in place");
                self.finish(image_id, generation);
                return;
            }
            Ok(list) => {
                if let Some(user) = list
                    .iter()
                    .find(|c| c.image_id.as_deref() == Some(image_id))
                {
                    tracing::info!(
                        image_id,
                        container_id = user.id.as_deref().unwrap_or_default(),
                        "image is still used by a container; not removing it"
                    );
                    self.finish(image_id, generation);
                    return;
                }
            }
        }
        for attempt in 1..=REMOVE_ATTEMPTS {
            if !self.still_pending(image_id, generation) {
                return;
            }
            match self.docker.remove_image(image_id, true).await {
                Ok(()) => {
                    tracing::info!(image_id, "removed unused image");
                    break;
                }
                Err(e) if e.is_not_found() => {
                    tracing::debug!(image_id, "unable to clean up image, does not exist");
                    break;
                }
                Err(e) if e.is_conflict() => {
                    tracing::debug!(image_id, error = %e, "unable to clean up image, still in use");
                    break;
                }
                Err(e) => {
                    tracing::debug!(image_id, attempt, error = %e, "failed to remove image");
                    if attempt < REMOVE_ATTEMPTS {
                        tokio::time::sleep(REMOVE_RETRY_PAUSE).await;
                    } else {
                        tracing::warn!(image_id, error = %e, "giving up removing image");
                    }
                }
            }
        }
        self.finish(image_id, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{BollardDocker, DockerConnection};

    /// A collector whose Docker client points nowhere (building it does no I/O; the delay is
    /// never reached in these tests).
    fn gc(delay: Option<Duration>) -> ImageGc {
        let docker = BollardDocker::new(DockerConnection::to_endpoint("unix:///nonexistent"))
            .expect("client");
        ImageGc::new(Arc::new(docker), delay)
    }

    #[tokio::test(start_paused = true)]
    async fn references_are_per_caller_and_the_last_release_schedules_a_removal() {
        let gc = gc(Some(Duration::from_secs(3600)));
        gc.acquire("sha256:a", "task-1");
        gc.acquire("sha256:a", "task-1");
        gc.acquire("sha256:a", "task-2");
        assert_eq!(gc.references("sha256:a"), 2, "a caller counts once");
        gc.release("sha256:a", "task-1");
        assert_eq!(gc.references("sha256:a"), 1);
        assert!(gc.lock().pending.is_empty(), "still referenced");
        gc.release_caller("task-2");
        assert_eq!(gc.references("sha256:a"), 0);
        let generation = gc.lock().pending["sha256:a"];
        assert!(gc.still_pending("sha256:a", generation));
        gc.acquire("sha256:a", "task-3");
        assert!(
            !gc.still_pending("sha256:a", generation),
            "a new user cancels it"
        );
        assert_eq!(gc.references("sha256:a"), 1);
    }

    #[tokio::test]
    async fn nothing_is_counted_with_gc_off() {
        let gc = gc(None);
        gc.acquire("sha256:a", "task-1");
        assert_eq!(gc.references("sha256:a"), 0);
        gc.release("sha256:a", "task-1");
        assert!(gc.lock().pending.is_empty());
    }
}
