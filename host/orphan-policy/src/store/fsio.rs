//! Crash-safe file primitives: atomic replacement and directory fsync.
//!
//! Every file the store writes goes through [`write_atomic`]: the bytes go to
//! a fresh temporary file in the **same directory** (so the rename cannot
//! cross file systems), are `fsync`ed, renamed over the final name, and then
//! the directory itself is `fsync`ed so the rename is durable. A process
//! killed at any point leaves either the old file, or the new file, plus at
//! worst a temporary file that [`remove_stale_temps`] deletes at the next
//! open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// Prefix of temporary files; names the store writes never start with it.
pub(super) const TEMP_PREFIX: &str = ".tmp-";

/// Distinguishes temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `dir/name` with `bytes` atomically and durably (mode 0600).
pub(super) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{name}-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| StoreError::io("create temporary file", &temp, e))?;
        file.write_all(bytes)
            .map_err(|e| StoreError::io("write", &temp, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("fsync", &temp, e))?;
        let target = dir.join(name);
        fs::rename(&temp, &target).map_err(|e| StoreError::io("rename into place", &target, e))
    })();
    if result.is_err() {
        // Best effort: a leftover is removed at the next open anyway.
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

/// Makes renames and removals in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Deletes temporary files left by a writer that died; returns how many.
pub(super) fn remove_stale_temps(dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove stale temporary file", path, e)),
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temporary files of an interrupted write");
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Reads a whole file, mapping "not there" to `Ok(None)`.
pub(super) fn read_optional(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    if len > limit {
        return Err(StoreError::CorruptFile {
            path: path.to_owned(),
            reason: format!("{len} bytes, more than the {limit} bytes this file may hold"),
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    io::Read::read_to_end(&mut io::Read::take(file, limit + 1), &mut bytes)
        .map_err(|e| StoreError::io("read", path, e))?;
    Ok(Some(bytes))
}

/// Removes a file; a file already gone is not an error.
pub(super) fn remove_if_present(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"one").unwrap();
        write_atomic(dir.path(), "a.json", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn stale_temps_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-x.wasm-1-2"), b"partial").unwrap();
        fs::write(dir.path().join("keep.json"), b"{}").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(!dir.path().join(".tmp-x.wasm-1-2").exists());
        assert!(dir.path().join("keep.json").exists());
    }

    #[test]
    fn read_optional_bounds_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        assert!(read_optional(&path, 4).unwrap().is_none());
        fs::write(&path, b"12345").unwrap();
        let err = read_optional(&path, 4).unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
        assert_eq!(read_optional(&path, 5).unwrap().unwrap(), b"12345");
    }
}
