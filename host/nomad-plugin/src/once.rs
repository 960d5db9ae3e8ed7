//! Start background work exactly once per driver instance.
//!
//! A Nomad agent launches a plugin binary several times: a probe (`PluginInfo`,
//! `ConfigSchema`), a throw-away validation instance that only receives `SetConfig`, and the
//! long-lived instance that also gets `Fingerprint` / `Init`. Long-running loops (reconcilers,
//! pollers, admin sockets) must therefore start from the first `Fingerprint` or `Init` of the
//! process and never from `SetConfig`, and must not start twice when the agent re-opens the
//! fingerprint stream. [`BackgroundOnce`] is that guard.

use std::sync::OnceLock;

/// Holds the handle of background work started at most once.
#[derive(Debug)]
pub struct BackgroundOnce<T> {
    cell: OnceLock<T>,
}

impl<T> Default for BackgroundOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BackgroundOnce<T> {
    /// Nothing started yet.
    pub const fn new() -> Self {
        BackgroundOnce {
            cell: OnceLock::new(),
        }
    }

    /// Runs `start` if nothing was started yet and returns the handle it produced (or the one
    /// produced earlier). Concurrent callers wait for the single `start` to finish, so `start`
    /// should only spawn work, not perform it.
    pub fn get_or_start(&self, start: impl FnOnce() -> T) -> &T {
        self.cell.get_or_init(start)
    }

    /// The handle, if background work was started.
    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }

    /// Whether background work was started.
    pub fn is_started(&self) -> bool {
        self.cell.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn concurrent_starts_run_once() {
        let once = Arc::new(BackgroundOnce::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let once = Arc::clone(&once);
                let runs = Arc::clone(&runs);
                std::thread::spawn(move || {
                    *once.get_or_start(|| runs.fetch_add(1, Ordering::SeqCst) + 100)
                })
            })
            .collect();
        let results: Vec<usize> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| *r == 100));
        assert!(once.is_started());
    }

    #[test]
    fn nothing_is_started_until_asked() {
        let once: BackgroundOnce<()> = BackgroundOnce::new();
        assert!(!once.is_started());
        assert!(once.get().is_none());
    }
}
