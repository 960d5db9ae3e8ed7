//! Crash recovery at open and retention (garbage collection).

use std::collections::HashSet;

use super::{BOTH_KINDS, BlobMeta, PolicyKind, PolicyStore, StoreError, fsio, referenced_digests};

impl PolicyStore {
    /// Removes leftovers of interrupted writes; returns the next sequence number.
    pub(super) fn recover(&self) -> Result<u64, StoreError> {
        let mut referenced: HashSet<String> = HashSet::new();
        let mut pointers_readable = true;
        for kind in BOTH_KINDS {
            match self.read_active(kind) {
                Ok(Some(record)) => {
                    referenced.extend(referenced_digests(&record).map(str::to_owned));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%kind, %error, "active policy pointer unreadable; keeping every blob");
                    pointers_readable = false;
                }
            }
        }
        let (wasm, json) = self.scan_blobs()?;
        let mut changed = false;
        for digest in wasm.difference(&json) {
            // An upload killed between blob and metadata. Nothing can point
            // at it; if something does, keep it (when in doubt, don't delete).
            if pointers_readable && !referenced.contains(digest) {
                tracing::info!(%digest, "removing blob of an interrupted upload");
                changed |= fsio::remove_if_present(&self.blob_path(digest))?;
            }
        }
        for digest in json.difference(&wasm) {
            // A collection killed between deleting the blob and its metadata.
            if !referenced.contains(digest) {
                tracing::info!(%digest, "removing metadata of a deleted blob");
                changed |= fsio::remove_if_present(&self.meta_path(digest))?;
            }
        }
        if changed {
            fsio::sync_dir(&self.blobs)?;
        }
        Ok(self
            .all_metas()?
            .iter()
            .map(|m| m.seq + 1)
            .max()
            .unwrap_or(0))
    }

    /// Collection after a successful write: a failure here must not turn
    /// the write into an error, so it is only logged.
    pub(super) fn gc_after_write(&self, kind: PolicyKind) {
        if let Err(error) = self.gc_kind(kind) {
            tracing::warn!(%kind, %error, "policy garbage collection failed");
        }
    }

    pub(super) fn gc_kind(&self, kind: PolicyKind) -> Result<Vec<String>, StoreError> {
        // An unreadable pointer makes this fail: nothing is deleted blind.
        let keep: HashSet<String> = self
            .read_active(kind)?
            .iter()
            .flat_map(referenced_digests)
            .map(str::to_owned)
            .collect();
        let mut metas: Vec<BlobMeta> = self
            .all_metas()?
            .into_iter()
            .filter(|m| m.kind == kind)
            .collect();
        metas.sort_by_key(|m| std::cmp::Reverse(m.seq));
        let mut removed = Vec::new();
        for meta in metas.iter().skip(self.keep_revisions) {
            if keep.contains(&meta.sha256) {
                continue;
            }
            // Blob before metadata: `recover` treats metadata without a blob
            // as a finished deletion.
            fsio::remove_if_present(&self.blob_path(&meta.sha256))?;
            fsio::remove_if_present(&self.meta_path(&meta.sha256))?;
            tracing::info!(%kind, digest = %meta.sha256, "deleted old policy revision");
            removed.push(meta.sha256.clone());
        }
        if !removed.is_empty() {
            fsio::sync_dir(&self.blobs)?;
        }
        Ok(removed)
    }
}
