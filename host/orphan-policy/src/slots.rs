//! A counting semaphore bounding concurrent calls to the size of the
//! pooling allocator, so a burst waits for a slot instead of failing on an
//! exhausted pool.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Slots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// A held slot, released on drop.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a>(&'a Slots);

impl Slots {
    pub(crate) fn new(count: u32) -> Self {
        Self {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    // The counter is a plain integer; a panic elsewhere while holding the
    // lock cannot leave it inconsistent, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, u32> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `wait` for a free slot.
    pub(crate) fn acquire(&self, wait: Duration) -> Option<SlotGuard<'_>> {
        let until = Instant::now() + wait;
        let mut free = self.lock();
        while *free == 0 {
            let left = until.checked_duration_since(Instant::now())?;
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *free -= 1;
        Some(SlotGuard(self))
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.freed.notify_one();
    }
}
