//! The set of tasks this driver instance tracks. The reconciler treats every container id in
//! here as owned and alive, so a container is added before StartTask returns and removed only
//! by DestroyTask.
//!
//! The store also holds, by allocation id, the full ids of every container whose network
//! namespace the allocation uses: its group-network sandbox (pause) container, added when
//! CreateNetwork creates or re-adopts it or when the plugin starts and finds it running, and
//! any container a task joins with `network_mode = "container:…"` (StartTask, RecoverTask).
//! They are a set, so a task joining another container never pushes the sandbox out; all of
//! them are dropped when DestroyNetwork starts, so the reconciler never judges the network
//! namespace of a live allocation.
//!
//! Two more things count as tracked: **reservations**, taken for a container before the driver
//! adopts it (a StartTask finding a running container with its task's name, a CreateNetwork
//! finding its allocation's running sandbox), so that no sweep can stop it between the
//! decision to adopt and the handle or the tracked sandbox; and the **start-up scan** of
//! running sandboxes: until it has completed the tracked set is incomplete
//! ([`TaskStore::is_complete`]) and the reconciler does not sweep.
//!
//! The other way round, a sweep **holds** a container while it acts on it
//! ([`TaskStore::hold_for_action`]): the check that the container is untracked and the hold
//! are one step under the reservations' lock, and a StartTask, RecoverTask or CreateNetwork
//! that reserves a held container waits for the action to end ([`TaskStore::action_ended`])
//! before it looks at the container again, so it never adopts a container a sweep is stopping.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::handle::TaskHandle;

/// Live task handles by Nomad task id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct TaskStore {
    tasks: Arc<Mutex<HashMap<String, Arc<TaskHandle>>>>,
    sandboxes: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    /// Container ids reserved before adoption, with how many reservations hold each.
    reserved: Arc<Mutex<HashMap<String, usize>>>,
    /// Set while the start-up scan of running sandboxes has not completed.
    scanning: Arc<AtomicBool>,
    /// Containers a sweep is acting on, each with the lock its [`ActionHold`] keeps locked.
    held: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// A container a sweep is acting on: not reservable without waiting while this guard lives
/// (see [`TaskStore::hold_for_action`]).
#[derive(Debug)]
pub struct ActionHold {
    store: TaskStore,
    id: String,
    _locked: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ActionHold {
    fn drop(&mut self) {
        self.store.lock_held().remove(&self.id);
    }
}

/// A container id counted as tracked while this guard lives (see [`TaskStore::reserve`]).
#[derive(Debug)]
pub struct Reservation {
    store: TaskStore,
    id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.store.lock_reserved();
        if let Some(count) = reserved.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                reserved.remove(&self.id);
            }
        }
    }
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

    /// Container ids of every tracked task, network container and reservation (the
    /// reconciler's "tracked" set).
    pub fn tracked_container_ids(&self) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = self
            .lock()
            .values()
            .map(|h| h.container_id().to_owned())
            .collect();
        ids.extend(self.sandbox_ids());
        ids.extend(self.lock_reserved().keys().cloned());
        ids
    }

    fn lock_sandboxes(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_reserved(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.reserved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `container_id` as tracked until the returned guard is dropped: taken before a
    /// container is adopted, so that no sweep judges it while the adoption is under way.
    pub fn reserve(&self, container_id: &str) -> Reservation {
        *self
            .lock_reserved()
            .entry(container_id.to_owned())
            .or_insert(0) += 1;
        Reservation {
            store: self.clone(),
            id: container_id.to_owned(),
        }
    }

    /// Holds `container_id` for a sweep's action, unless it is tracked (a task, a network
    /// container or a reservation) or already held; `None` means "leave it alone". Checked and
    /// held under the reservations' lock, so a reservation is either seen here or waits for
    /// the hold ([`TaskStore::action_ended`]).
    pub fn hold_for_action(&self, container_id: &str) -> Option<ActionHold> {
        let reserved = self.lock_reserved();
        let tracked = reserved.contains_key(container_id)
            || self
                .lock()
                .values()
                .any(|h| h.container_id() == container_id)
            || self
                .lock_sandboxes()
                .values()
                .any(|ids| ids.contains(container_id));
        let mut held = self.lock_held();
        if tracked || held.contains_key(container_id) {
            return None;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let locked = Arc::clone(&lock)
            .try_lock_owned()
            .expect("a new lock is free");
        held.insert(container_id.to_owned(), lock);
        drop(reserved);
        Some(ActionHold {
            store: self.clone(),
            id: container_id.to_owned(),
            _locked: locked,
        })
    }

    /// Returns once no sweep holds `container_id` for an action. Called after
    /// [`TaskStore::reserve`]: from then on no new hold can be taken, so what the caller
    /// inspects next is the container as the action left it.
    pub async fn action_ended(&self, container_id: &str) {
        let lock = self.lock_held().get(container_id).cloned();
        if let Some(lock) = lock {
            tracing::info!(
                container_id,
                "waiting for the reconciler's action on the container to end"
            );
            drop(lock.lock().await);
        }
    }

    fn lock_held(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `container_id` (a full id) to the network containers of `alloc_id`.
    pub fn track_sandbox(&self, alloc_id: &str, container_id: &str) {
        self.lock_sandboxes()
            .entry(alloc_id.to_owned())
            .or_default()
            .insert(container_id.to_owned());
    }

    /// Removes one network container of `alloc_id` (a sandbox whose start failed).
    pub fn untrack_sandbox(&self, alloc_id: &str, container_id: &str) {
        let mut sandboxes = self.lock_sandboxes();
        if let Some(ids) = sandboxes.get_mut(alloc_id) {
            ids.remove(container_id);
            if ids.is_empty() {
                sandboxes.remove(alloc_id);
            }
        }
    }

    /// Stops tracking every network container of `alloc_id`; returns their ids.
    pub fn forget_sandbox(&self, alloc_id: &str) -> BTreeSet<String> {
        self.lock_sandboxes().remove(alloc_id).unwrap_or_default()
    }

    /// Container ids of the tracked network containers of every allocation.
    pub fn sandbox_ids(&self) -> BTreeSet<String> {
        self.lock_sandboxes().values().flatten().cloned().collect()
    }

    /// Marks the start-up scan of running sandboxes as under way (`true`) or done.
    pub fn set_scanning(&self, scanning: bool) {
        self.scanning.store(scanning, Ordering::SeqCst);
    }

    /// Whether the tracked set is complete: false while the start-up scan of running sandboxes
    /// has not completed (a sweep must not judge containers then).
    pub fn is_complete(&self) -> bool {
        !self.scanning.load(Ordering::SeqCst)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_container_never_pushes_the_sandbox_out() {
        let store = TaskStore::new();
        store.track_sandbox("a1", "sandbox");
        store.track_sandbox("a1", "other-task");
        store.track_sandbox("a1", "sandbox");
        store.track_sandbox("a2", "sandbox-2");
        assert_eq!(
            store.tracked_container_ids(),
            BTreeSet::from(["other-task".into(), "sandbox".into(), "sandbox-2".into()])
        );
        store.untrack_sandbox("a1", "other-task");
        assert_eq!(
            store.forget_sandbox("a1"),
            BTreeSet::from(["sandbox".to_owned()])
        );
        assert_eq!(
            store.sandbox_ids(),
            BTreeSet::from(["sandbox-2".to_owned()])
        );
    }

    #[test]
    fn a_reservation_is_tracked_until_its_last_guard_drops() {
        let store = TaskStore::new();
        let first = store.reserve("c1");
        let second = store.reserve("c1");
        assert!(store.tracked_container_ids().contains("c1"));
        drop(first);
        assert!(store.tracked_container_ids().contains("c1"));
        drop(second);
        assert!(store.tracked_container_ids().is_empty());
    }

    #[test]
    fn a_tracked_or_held_container_cannot_be_held_for_an_action() {
        let store = TaskStore::new();
        store.track_sandbox("a1", "sandbox");
        assert!(store.hold_for_action("sandbox").is_none());
        let reservation = store.reserve("adopting");
        assert!(store.hold_for_action("adopting").is_none());
        drop(reservation);
        let hold = store.hold_for_action("adopting").expect("untracked");
        assert!(store.hold_for_action("adopting").is_none(), "held once");
        drop(hold);
        assert!(store.hold_for_action("adopting").is_some());
    }

    #[tokio::test]
    async fn a_reservation_of_a_held_container_waits_for_the_action_to_end() {
        let store = TaskStore::new();
        store.action_ended("c1").await;
        let hold = store.hold_for_action("c1").expect("untracked");
        let _reservation = store.reserve("c1");
        let mut waiting = Box::pin(store.action_ended("c1"));
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "the wait ends only with the hold"
        );
        drop(hold);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends once the hold is dropped");
        assert!(store.hold_for_action("c1").is_none(), "still reserved");
    }

    #[test]
    fn dropping_a_reservation_leaves_the_sandbox_tracked_under_its_id() {
        let store = TaskStore::new();
        let reservation = store.reserve("sandbox");
        store.track_sandbox("a1", "sandbox");
        drop(reservation);
        assert!(store.hold_for_action("sandbox").is_none());
        assert_eq!(
            store.tracked_container_ids(),
            BTreeSet::from(["sandbox".to_owned()])
        );
    }

    #[test]
    fn the_tracked_set_is_incomplete_while_the_start_up_scan_runs() {
        let store = TaskStore::new();
        assert!(store.is_complete());
        store.set_scanning(true);
        assert!(!store.clone().is_complete(), "clones share the flag");
        store.set_scanning(false);
        assert!(store.is_complete());
    }
}
