//! The set of tasks this driver instance tracks. The reconciler treats every container id in
//! here as owned and alive, so a container is added before StartTask returns and removed only
//! by DestroyTask.
//!
//! The store also holds the group-network sandbox (pause) containers by allocation id: one is
//! added when CreateNetwork creates or re-adopts it (or RecoverTask re-attaches a task that
//! joins it) and removed when DestroyNetwork starts, so the reconciler never judges the
//! network namespace of a live allocation.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::handle::TaskHandle;

/// Live task handles by Nomad task id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct TaskStore {
    tasks: Arc<Mutex<HashMap<String, Arc<TaskHandle>>>>,
    sandboxes: Arc<Mutex<HashMap<String, String>>>,
}

impl TaskStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<TaskHandle>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle of `task_id`.
    pub fn get(&self, task_id: &str) -> Option<Arc<TaskHandle>> {
        self.lock().get(task_id).cloned()
    }

    /// Whether `task_id` is tracked.
    pub fn contains(&self, task_id: &str) -> bool {
        self.lock().contains_key(task_id)
    }

    /// Inserts `handle` unless its task id is already tracked; returns the tracked handle.
    pub fn insert_if_absent(&self, handle: Arc<TaskHandle>) -> Arc<TaskHandle> {
        self.lock()
            .entry(handle.task_id().to_owned())
            .or_insert(handle)
            .clone()
    }

    /// Removes and returns the handle of `task_id`.
    pub fn remove(&self, task_id: &str) -> Option<Arc<TaskHandle>> {
        self.lock().remove(task_id)
    }

    /// Container ids of every tracked task and sandbox (the reconciler's "tracked" set).
    pub fn tracked_container_ids(&self) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = self
            .lock()
            .values()
            .map(|h| h.container_id().to_owned())
            .collect();
        ids.extend(self.lock_sandboxes().values().cloned());
        ids
    }

    fn lock_sandboxes(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `container_id` as the sandbox of `alloc_id` (replacing an earlier one).
    pub fn track_sandbox(&self, alloc_id: &str, container_id: &str) {
        self.lock_sandboxes()
            .insert(alloc_id.to_owned(), container_id.to_owned());
    }

    /// Stops tracking the sandbox of `alloc_id`; returns its container id.
    pub fn forget_sandbox(&self, alloc_id: &str) -> Option<String> {
        self.lock_sandboxes().remove(alloc_id)
    }

    /// Container ids of the tracked sandboxes.
    pub fn sandbox_ids(&self) -> BTreeSet<String> {
        self.lock_sandboxes().values().cloned().collect()
    }

    /// Tracked task ids.
    pub fn task_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Number of tracked tasks.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no task is tracked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
