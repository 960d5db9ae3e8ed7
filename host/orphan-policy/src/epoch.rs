//! The epoch ticker: the clock that policy deadlines are counted in.
//!
//! Wasmtime checks a store's deadline against the engine's epoch counter,
//! which only moves when someone calls `Engine::increment_epoch`. The ticker
//! is a thread doing that every `epoch_tick`. The engine owns it: it starts
//! in `PolicyEngine::new` and stops when the engine's shared state is dropped,
//! which every loaded policy keeps alive. So no call can run without a
//! deadline, and no caller keeps a guard beside the engine.
//!
//! Missed ticks are skipped, not caught up: after a stall (suspended VM,
//! overloaded host) a burst of catch-up ticks would expire every in-flight
//! deadline at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use wasmtime::EngineWeak;

/// Handle of a running ticker, owned by the engine; dropping it stops the
/// thread.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    /// True from the spawn until the thread has been joined.
    pub(crate) running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn spawn(engine: EngineWeak, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(true));
        let thread = thread::Builder::new().name("policy-epoch".into()).spawn({
            let stop = stop.clone();
            move || tick_loop(&engine, tick, &stop)
        })?;
        Ok(Self {
            stop,
            running,
            thread: Some(thread),
        })
    }
}

fn tick_loop(engine: &EngineWeak, tick: Duration, stop: &AtomicBool) {
    let mut next = Instant::now() + tick;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            thread::park_timeout(next - now);
            continue;
        }
        // The ticker must not keep the engine alive.
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.increment_epoch();
        next += tick;
        if next <= now {
            next = now + tick;
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The loop only parks for one tick, so this returns promptly; a
            // panic in it cannot happen short of a wasmtime bug, and there is
            // nothing to do about one here.
            let _ = thread.join();
        }
        self.running.store(false, Ordering::Release);
    }
}
