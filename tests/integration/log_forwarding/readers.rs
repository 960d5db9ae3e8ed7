//! FIFO readers that misbehave the way a logmon can: one that stalls, one that goes away and
//! comes back.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::make_fifo;

/// Appends what `f` yields to `sink` until its end or a read error.
fn read_to_end_into(f: &mut std::fs::File, sink: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        sink.lock().expect("lock").extend_from_slice(&buf[..n]);
    }
}

/// A FIFO whose reader reads nothing until the gate opens, then everything.
pub struct GatedReader {
    pub path: PathBuf,
    text: Arc<Mutex<Vec<u8>>>,
    gate: Arc<std::sync::atomic::AtomicBool>,
}

impl GatedReader {
    pub fn create(path: &Path) -> Self {
        make_fifo(path);
        let text: Arc<Mutex<Vec<u8>>> = Arc::default();
        let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, open, p) = (text.clone(), gate.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&p).expect("open fifo for reading");
            while !open.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            read_to_end_into(&mut f, &sink);
        });
        Self {
            path: path.to_path_buf(),
            text,
            gate,
        }
    }

    pub fn open(&self) {
        self.gate.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("lock")).into_owned()
    }
}

/// A FIFO whose reader reads until `out-<close_after>`, closes it, waits `gap`, then reads
/// again for good, like a logmon that restarts.
pub struct ReopeningReader {
    pub path: PathBuf,
    text: Arc<Mutex<Vec<u8>>>,
    reopened: Arc<Mutex<Option<usize>>>,
}

impl ReopeningReader {
    pub fn create(path: &Path, close_after: u64, gap: Duration) -> Self {
        make_fifo(path);
        let text: Arc<Mutex<Vec<u8>>> = Arc::default();
        let reopened: Arc<Mutex<Option<usize>>> = Arc::default();
        let (sink, mark, p) = (text.clone(), reopened.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            let needle = format!("out-{close_after}\n");
            let mut buf = [0u8; 4096];
            {
                let mut f = std::fs::File::open(&p).expect("open fifo for reading");
                loop {
                    let Ok(n) = f.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    let mut t = sink.lock().expect("lock");
                    t.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&t).contains(&needle) {
                        break;
                    }
                }
            }
            std::thread::sleep(gap);
            let mut f = std::fs::File::open(&p).expect("reopen fifo for reading");
            *mark.lock().expect("lock") = Some(sink.lock().expect("lock").len());
            read_to_end_into(&mut f, &sink);
        });
        Self {
            path: path.to_path_buf(),
            text,
            reopened,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("lock")).into_owned()
    }

    /// What was read after the reopen.
    pub fn after_reopen(&self) -> Option<String> {
        let at = (*self.reopened.lock().expect("lock"))?;
        Some(String::from_utf8_lossy(&self.text.lock().expect("lock")[at..]).into_owned())
    }
}
