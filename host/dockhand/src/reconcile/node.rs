//! This node's identity, learnt from Nomad's tasks and kept across restarts.
//!
//! Nomad tells a driver its node id and name only inside task configurations, so the plugin
//! learns them from the first `StartTask`/`RecoverTask` that carries them. Until then the
//! identity is empty: policies must treat node labels as inconclusive, and a group-network
//! sandbox cannot carry this node's label, so another node sharing the daemon would take it for
//! one of its own orphans.
//!
//! The long-lived instance therefore keeps what it learnt in `<data_dir>/node.json`
//! ([`NodeCell::persist_to`]) and starts from it after a restart, before any task arrives. A
//! stale file (the Nomad client's own state was wiped and it came back under a new id) errs on
//! the safe side: this node's sandboxes then carry the old id, which no other node claims, and
//! this node's reconciler sees containers labelled with the new id as another node's and
//! leaves them alone; the first task replaces the file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, PoisonError, RwLock};

use orphan_policy::NodeInfo;
use serde::{Deserialize, Serialize};

/// File under `data_dir` holding the learnt identity.
pub const NODE_FILE_NAME: &str = "node.json";

/// Longest id or name accepted from the file (Nomad's ids are 36-byte UUIDs).
const MAX_FIELD_BYTES: usize = 256;

/// Largest file read: two fields at their limit, with room for JSON escapes.
const MAX_FILE_BYTES: u64 = 4096;

/// This node's identity as learnt at run time; see the module documentation.
#[derive(Debug, Default)]
pub struct NodeCell {
    node: RwLock<NodeInfo>,
    /// Where learnt changes are written, once the long-lived instance has said so.
    file: OnceLock<PathBuf>,
}

/// What `node.json` holds.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    id: String,
    name: String,
}

impl NodeCell {
    /// Records `id`/`name` when they are non-empty; later tasks of the same node change
    /// nothing. A change is written to the file given to [`NodeCell::persist_to`], if any.
    pub fn learn(&self, id: &str, name: &str) {
        if id.is_empty() && name.is_empty() {
            return;
        }
        let mut node = self.node.write().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        if !id.is_empty() && node.id != id {
            node.id = id.to_owned();
            changed = true;
        }
        if !name.is_empty() && node.name != name {
            node.name = name.to_owned();
            changed = true;
        }
        if changed && let Some(path) = self.file.get() {
            // Written under the lock, so the file ends with the last identity learnt.
            save(path, &node);
        }
    }

    /// The identity known so far.
    pub fn get(&self) -> NodeInfo {
        self.node
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps the identity in `path` from now on (the first call wins). An identity already
    /// learnt is written at once; otherwise the one in the file, if usable, is taken as this
    /// node's until a task says otherwise. A missing file is normal; an unreadable or invalid
    /// one is logged and ignored.
    pub fn persist_to(&self, path: PathBuf) {
        let mut node = self.node.write().unwrap_or_else(PoisonError::into_inner);
        if self.file.set(path.clone()).is_err() {
            return;
        }
        if !node.id.is_empty() {
            save(&path, &node);
            return;
        }
        match load(&path) {
            Ok(Some(stored)) => {
                tracing::info!(
                    node_id = %stored.id,
                    node_name = %stored.name,
                    file = %path.display(),
                    "node identity restored from the last run"
                );
                node.id = stored.id;
                node.name = stored.name;
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(
                file = %path.display(),
                "ignoring the saved node identity: {reason}"
            ),
        }
    }
}

/// The identity a plugin saved in `path`, read only (for `dockhand reconcile`'s standalone
/// dry run); `None` when there is no file, an error naming the problem when it is unusable.
pub fn saved_identity(path: &Path) -> Result<Option<NodeInfo>, String> {
    Ok(load(path)?.map(|stored| NodeInfo {
        id: stored.id,
        name: stored.name,
        ..NodeInfo::default()
    }))
}

/// The identity in `path`; `None` when there is no file.
fn load(path: &Path) -> Result<Option<Stored>, String> {
    match std::fs::metadata(path) {
        // Opening a FIFO or a device could block or never end.
        Ok(meta) if !meta.is_file() => return Err("it is not a regular file".to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("it is larger than {MAX_FILE_BYTES} bytes"));
    }
    let stored: Stored =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a node identity: {e}"))?;
    check_field("id", &stored.id)?;
    if !stored.name.is_empty() {
        check_field("name", &stored.name)?;
    }
    Ok(Some(stored))
}

fn check_field(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("its {field} is empty"));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(format!(
            "its {field} is {} bytes, more than {MAX_FIELD_BYTES}",
            value.len()
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "its {field} {value:?} has characters other than printable ASCII"
        ));
    }
    Ok(())
}

/// Writes `node` to `path` atomically (a temporary file renamed over it). Failures are
/// logged: the identity stays known in memory.
fn save(path: &Path, node: &NodeInfo) {
    if node.id.is_empty() {
        return;
    }
    let stored = Stored {
        id: node.id.clone(),
        name: node.name.clone(),
    };
    if let Err(e) = write_atomically(path, &stored) {
        tracing::warn!(file = %path.display(), error = %e, "cannot save the node identity");
    }
}

fn write_atomically(path: &Path, stored: &Stored) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut json = serde_json::to_vec(stored).map_err(|e| e.to_string())?;
    json.push(b'\n');
    crate::atomic_file::write_atomically(path, &json).map_err(|e| nomad_plugin::error_chain(&e))
}

#[cfg(test)]
mod tests;
