//! On-disk store of operator-uploaded policies: blobs, metadata, and one
//! active pointer per kind, safe against a crash at any moment.
//!
//! # Layout
//!
//! Callers pass a directory of its own, conventionally
//! `<data_dir>/`[`STORE_DIR_NAME`]:
//!
//! ```text
//! policies/                      0700, owned by this process's user
//!   lock                         flock'ed by the owning process
//!   blobs/<sha256>.wasm          the component, named by its content
//!   blobs/<sha256>.json          BlobMeta: kind, name, version, uploaded_at, size, seq
//!   active/ownership.json        ActiveRecord: digest, mode, activated_at, previous[]
//!   active/kill.json
//! ```
//!
//! # Crash safety
//!
//! Every file is written whole to a temporary file in its directory,
//! `fsync`ed, renamed into place, and the directory is `fsync`ed
//! (`fsio::write_atomic`). Writes are ordered so that a pointer never gets
//! ahead of what it points to: blob, then its metadata, then the active
//! pointer; garbage collection deletes the blob before its metadata and never
//! touches a digest the pointer (or its history) names. Killed at any moment,
//! the store therefore holds the old pointer or the new one, each naming a
//! complete blob. [`PolicyStore::open`] removes what an interrupted writer
//! left: temporary files, blobs without metadata, metadata without a blob.
//! Blob content is re-hashed on every read, so bit rot or tampering shows up
//! as [`StoreError::Corrupt`] instead of running unexpected code.
//!
//! # Ownership and concurrency
//!
//! One process owns a store directory: `open` takes an exclusive `flock` on
//! `lock` (released by the kernel when the process dies, even by SIGKILL) and
//! a second owner gets [`StoreError::Locked`]. Inside the process, one mutex
//! serialises all operations. The API is synchronous and does file I/O and
//! hashing; async callers use `spawn_blocking`.
//!
//! # What the store does not do
//!
//! It stores bytes. Checking that they are a loadable component of the
//! declared kind (`PolicyEngine::load`) is the caller's job and must happen
//! **before** [`PolicyStore::put`], so that only validated policies are ever
//! stored and activatable.
//!
//! # Retention
//!
//! After each `put`, `activate` and `rollback`, per kind the store keeps the
//! active policy, its history (at most `keep_revisions` earlier revisions) and
//! the `keep_revisions` most recent uploads; other blobs are deleted.

mod cleanup;
mod digest;
mod error;
mod fsio;
mod record;

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use digest::{DIGEST_HEX_LEN, sha256_hex, validate_digest};
pub use error::StoreError;
pub use record::{
    ActiveRecord, PolicyMeta, PolicyMode, PolicyState, Revision, StoredPolicy, UnknownMode,
};

use crate::decision::PolicyKind;
use crate::limits::{MAX_POLICY_BYTES, MAX_POLICY_INFO_FIELD_BYTES};
use record::{BlobMeta, state_of};

/// Conventional name of the store directory under the driver's data dir.
pub const STORE_DIR_NAME: &str = "policies";

/// Revisions kept per kind when the operator does not say otherwise.
pub const DEFAULT_KEEP_REVISIONS: usize = 3;

/// Largest metadata or pointer file read back; they are a few hundred bytes,
/// so anything bigger was not written by this store.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

const BOTH_KINDS: [PolicyKind; 2] = [PolicyKind::Ownership, PolicyKind::Kill];

/// The policy store; see the [module docs](self).
#[derive(Debug)]
pub struct PolicyStore {
    root: PathBuf,
    blobs: PathBuf,
    active: PathBuf,
    keep_revisions: usize,
    inner: Mutex<Inner>,
    /// Holds the `flock` for the life of the store.
    _lock: File,
}

#[derive(Debug)]
struct Inner {
    /// Sequence number of the next upload.
    next_seq: u64,
}

impl PolicyStore {
    /// Opens (creating if needed) the store in `dir`, taking its lock and
    /// cleaning up after an interrupted writer.
    pub fn open(dir: &Path, keep_revisions: usize) -> Result<Self, StoreError> {
        if keep_revisions == 0 {
            return Err(StoreError::InvalidKeepRevisions(keep_revisions));
        }
        create_private_dir(dir)?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", lock_path, e)),
        }
        // Our uid, learnt from a file we create, so no libc call is needed.
        let uid = tempfile::tempfile_in(dir)
            .and_then(|probe| probe.metadata())
            .map_err(|e| StoreError::io("create a probe file in", dir, e))?
            .uid();
        let dir_meta = fs::metadata(dir).map_err(|e| StoreError::io("stat", dir, e))?;
        if dir_meta.uid() != uid {
            return Err(StoreError::NotOwned {
                path: dir.to_owned(),
                owner: dir_meta.uid(),
                uid,
            });
        }
        if dir_meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| StoreError::io("restrict permissions of", dir, e))?;
        }
        let store = Self {
            root: dir.to_owned(),
            blobs: dir.join("blobs"),
            active: dir.join("active"),
            keep_revisions,
            inner: Mutex::new(Inner { next_seq: 0 }),
            _lock: lock,
        };
        create_private_dir(&store.blobs)?;
        create_private_dir(&store.active)?;
        fsio::sync_dir(dir)?;
        fsio::remove_stale_temps(&store.blobs)?;
        fsio::remove_stale_temps(&store.active)?;
        let next_seq = store.recover()?;
        store.lock_inner().next_seq = next_seq;
        Ok(store)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Stores a policy and returns what is now known about it.
    ///
    /// `bytes` must already have been validated as a component of `kind`
    /// (see the [module docs](self)). If the client declared a sha256 it must
    /// match. Storing the same bytes again is a no-op returning the first
    /// upload's metadata (and repairs a damaged blob).
    ///
    /// An upload that is never activated is collected once `keep_revisions`
    /// newer uploads of its kind exist, so an upload racing with others
    /// before its `activate` can find itself gone ([`StoreError::NotFound`]);
    /// callers that upload concurrently serialise an upload with its activation.
    pub fn put(
        &self,
        kind: PolicyKind,
        bytes: &[u8],
        declared_sha256: Option<&str>,
        meta: PolicyMeta,
    ) -> Result<StoredPolicy, StoreError> {
        validate_meta_field("name", &meta.name)?;
        validate_meta_field("version", &meta.version)?;
        if bytes.is_empty() {
            return Err(StoreError::Empty);
        }
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(StoreError::TooLarge {
                size: bytes.len(),
                max: MAX_POLICY_BYTES,
            });
        }
        let actual = sha256_hex(bytes);
        if let Some(declared) = declared_sha256 {
            validate_digest(declared)?;
            if declared != actual {
                return Err(StoreError::DigestMismatch {
                    declared: declared.to_owned(),
                    actual,
                });
            }
        }
        let mut inner = self.lock_inner();
        let stored = match self.read_meta(&actual)? {
            Some(existing) => {
                if existing.kind != kind {
                    return Err(StoreError::KindConflict {
                        digest: actual,
                        existing: existing.kind,
                        requested: kind,
                    });
                }
                if self.read_blob(&actual, existing.size).is_err() {
                    tracing::warn!(digest = %actual, "stored policy blob damaged; rewriting it from the upload");
                    fsio::write_atomic(&self.blobs, &blob_name(&actual), bytes)?;
                }
                tracing::debug!(digest = %actual, %kind, "policy already stored");
                existing
            }
            None => {
                let meta = BlobMeta {
                    sha256: actual.clone(),
                    kind,
                    name: meta.name,
                    version: meta.version,
                    uploaded_at: unix_now(),
                    size: bytes.len() as u64,
                    seq: inner.next_seq,
                };
                // Blob first: metadata must never name a blob that is not there.
                fsio::write_atomic(&self.blobs, &blob_name(&actual), bytes)?;
                fsio::write_atomic(
                    &self.blobs,
                    &meta_name(&actual),
                    &to_json(&meta, &self.meta_path(&actual))?,
                )?;
                inner.next_seq += 1;
                tracing::info!(digest = %actual, %kind, name = %meta.name, version = %meta.version, size = meta.size, "policy stored");
                meta
            }
        };
        self.gc_after_write(kind);
        let active = self.active_for_state(kind);
        Ok(stored.to_stored(state_of(&stored.sha256, active.as_ref())))
    }

    /// A stored policy and its bytes, whose sha256 is checked against the
    /// digest ([`StoreError::Corrupt`] if it does not match).
    pub fn get(&self, digest: &str) -> Result<(StoredPolicy, Vec<u8>), StoreError> {
        validate_digest(digest)?;
        let _inner = self.lock_inner();
        let meta = self.require_meta(digest)?;
        let bytes = self.read_blob(digest, meta.size)?;
        let active = self.active_for_state(meta.kind);
        Ok((meta.to_stored(state_of(digest, active.as_ref())), bytes))
    }

    /// Every stored policy with its state, ownership policies first, most
    /// recent upload first. Blob contents are not re-hashed here.
    pub fn list(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        let _inner = self.lock_inner();
        let mut metas = self.all_metas()?;
        metas.sort_by_key(|m| (m.kind == PolicyKind::Kill, std::cmp::Reverse(m.seq)));
        let ownership = self.active_for_state(PolicyKind::Ownership);
        let kill = self.active_for_state(PolicyKind::Kill);
        Ok(metas
            .iter()
            .map(|m| {
                let active = match m.kind {
                    PolicyKind::Ownership => ownership.as_ref(),
                    PolicyKind::Kill => kill.as_ref(),
                };
                m.to_stored(state_of(&m.sha256, active))
            })
            .collect())
    }

    /// Makes `digest` the active policy of `kind` in `mode`. The policy that
    /// was active goes to the front of the history. Activating the active
    /// digest again only changes its mode. An unreadable pointer file is
    /// replaced, with an empty history.
    pub fn activate(
        &self,
        kind: PolicyKind,
        digest: &str,
        mode: PolicyMode,
    ) -> Result<ActiveRecord, StoreError> {
        validate_digest(digest)?;
        let _inner = self.lock_inner();
        self.verify_activatable(kind, digest)?;
        let now = unix_now();
        // An unreadable pointer is replaced (that is the repair); its history is lost.
        let current = self.active_for_state(kind);
        let record = match current {
            Some(current) if current.digest == digest => ActiveRecord {
                mode,
                activated_at: now,
                ..current
            },
            Some(current) => {
                let mut previous = vec![Revision {
                    digest: current.digest,
                    mode: current.mode,
                    activated_at: current.activated_at,
                }];
                previous.extend(current.previous.into_iter().filter(|r| r.digest != digest));
                previous.truncate(self.keep_revisions);
                ActiveRecord {
                    kind,
                    digest: digest.to_owned(),
                    mode,
                    activated_at: now,
                    previous,
                }
            }
            None => ActiveRecord {
                kind,
                digest: digest.to_owned(),
                mode,
                activated_at: now,
                previous: Vec::new(),
            },
        };
        self.write_active(&record)?;
        tracing::info!(%kind, digest, %mode, "policy activated");
        self.gc_after_write(kind);
        Ok(record)
    }

    /// Returns `kind` to the revision active before the current one, in the
    /// mode it had then. The current revision leaves the history.
    pub fn rollback(&self, kind: PolicyKind) -> Result<ActiveRecord, StoreError> {
        let _inner = self.lock_inner();
        let current = self
            .read_active(kind)?
            .ok_or(StoreError::NothingToRollBack { kind })?;
        let mut previous = current.previous.into_iter();
        let target = previous
            .next()
            .ok_or(StoreError::NothingToRollBack { kind })?;
        self.verify_activatable(kind, &target.digest)?;
        let record = ActiveRecord {
            kind,
            digest: target.digest,
            mode: target.mode,
            activated_at: unix_now(),
            previous: previous.collect(),
        };
        self.write_active(&record)?;
        tracing::info!(%kind, digest = %record.digest, mode = %record.mode, from = %current.digest, "policy rolled back");
        self.gc_after_write(kind);
        Ok(record)
    }

    /// The active pointer of `kind`, if one was ever activated.
    pub fn active(&self, kind: PolicyKind) -> Result<Option<ActiveRecord>, StoreError> {
        let _inner = self.lock_inner();
        self.read_active(kind)
    }

    /// The active policy of `kind` with its verified bytes: what the host
    /// loads at start-up. `None` when no policy of this kind was activated.
    pub fn load_active(
        &self,
        kind: PolicyKind,
    ) -> Result<Option<(ActiveRecord, StoredPolicy, Vec<u8>)>, StoreError> {
        let _inner = self.lock_inner();
        let Some(record) = self.read_active(kind)? else {
            return Ok(None);
        };
        let meta = self.require_meta(&record.digest)?;
        let bytes = self.read_blob(&record.digest, meta.size)?;
        let stored = meta.to_stored(state_of(&record.digest, Some(&record)));
        Ok(Some((record, stored, bytes)))
    }

    /// Deletes blobs outside the retention rule (see the
    /// [module docs](self)); returns the deleted digests.
    pub fn gc(&self) -> Result<Vec<String>, StoreError> {
        let _inner = self.lock_inner();
        let mut removed = Vec::new();
        for kind in BOTH_KINDS {
            removed.extend(self.gc_kind(kind)?);
        }
        Ok(removed)
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        // The guarded state is only a counter; the files are the truth.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs.join(blob_name(digest))
    }

    fn meta_path(&self, digest: &str) -> PathBuf {
        self.blobs.join(meta_name(digest))
    }

    fn active_path(&self, kind: PolicyKind) -> PathBuf {
        self.active.join(format!("{kind}.json"))
    }

    /// Digests with a `.wasm` and with a `.json` file; other names are ignored.
    fn scan_blobs(&self) -> Result<(HashSet<String>, HashSet<String>), StoreError> {
        let mut wasm = HashSet::new();
        let mut json = HashSet::new();
        let entries =
            fs::read_dir(&self.blobs).map_err(|e| StoreError::io("list", &self.blobs, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.blobs, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let (set, stem) = if let Some(stem) = name.strip_suffix(".wasm") {
                (&mut wasm, stem)
            } else if let Some(stem) = name.strip_suffix(".json") {
                (&mut json, stem)
            } else {
                continue;
            };
            if validate_digest(stem).is_ok() {
                set.insert(stem.to_owned());
            }
        }
        Ok((wasm, json))
    }

    /// Metadata of every blob; unreadable files are logged and skipped.
    fn all_metas(&self) -> Result<Vec<BlobMeta>, StoreError> {
        let (_, json) = self.scan_blobs()?;
        let mut metas = Vec::with_capacity(json.len());
        for digest in json {
            match self.read_meta(&digest) {
                Ok(Some(meta)) => metas.push(meta),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%digest, %error, "skipping unreadable policy metadata")
                }
            }
        }
        Ok(metas)
    }

    fn read_meta(&self, digest: &str) -> Result<Option<BlobMeta>, StoreError> {
        let path = self.meta_path(digest);
        let Some(bytes) = fsio::read_optional(&path, MAX_RECORD_BYTES)? else {
            return Ok(None);
        };
        let meta: BlobMeta =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if meta.sha256 != digest {
            return Err(StoreError::CorruptFile {
                path,
                reason: format!("names sha256 {:?}, not its own", meta.sha256),
            });
        }
        Ok(Some(meta))
    }

    fn require_meta(&self, digest: &str) -> Result<BlobMeta, StoreError> {
        self.read_meta(digest)?.ok_or_else(|| StoreError::NotFound {
            digest: digest.to_owned(),
        })
    }

    /// The blob's bytes, checked against its name and recorded size.
    fn read_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            digest: digest.to_owned(),
            reason,
        };
        let bytes = match fsio::read_optional(&self.blob_path(digest), MAX_POLICY_BYTES as u64) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(corrupt("its blob file is missing".to_owned())),
            Err(StoreError::CorruptFile { reason, .. }) => return Err(corrupt(reason)),
            Err(other) => return Err(other),
        };
        if bytes.len() as u64 != size {
            return Err(corrupt(format!(
                "blob is {} bytes, {size} were stored",
                bytes.len()
            )));
        }
        let actual = sha256_hex(&bytes);
        if actual != digest {
            return Err(corrupt(format!("blob content has sha256 {actual}")));
        }
        Ok(bytes)
    }

    /// `digest` exists, is of `kind` and its blob verifies.
    fn verify_activatable(&self, kind: PolicyKind, digest: &str) -> Result<(), StoreError> {
        let meta = self.require_meta(digest)?;
        if meta.kind != kind {
            return Err(StoreError::WrongKind {
                digest: digest.to_owned(),
                expected: kind,
                actual: meta.kind,
            });
        }
        self.read_blob(digest, meta.size).map(drop)
    }

    fn read_active(&self, kind: PolicyKind) -> Result<Option<ActiveRecord>, StoreError> {
        let path = self.active_path(kind);
        let Some(bytes) = fsio::read_optional(&path, MAX_RECORD_BYTES)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::CorruptFile {
            path: path.clone(),
            reason,
        };
        let record: ActiveRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.kind != kind {
            return Err(corrupt(format!("holds the {} pointer", record.kind)));
        }
        // The digests become file names: check them like caller input.
        for digest in referenced_digests(&record) {
            validate_digest(digest).map_err(|e| corrupt(e.to_string()))?;
        }
        Ok(Some(record))
    }

    /// The pointer, for reporting states: a damaged pointer is logged and
    /// treated as absent, so that listing, reading and uploading keep
    /// working and activating a revision can repair it.
    fn active_for_state(&self, kind: PolicyKind) -> Option<ActiveRecord> {
        self.read_active(kind).unwrap_or_else(|error| {
            tracing::error!(%kind, %error, "active policy pointer unreadable");
            None
        })
    }

    fn write_active(&self, record: &ActiveRecord) -> Result<(), StoreError> {
        let bytes = to_json(record, &self.active_path(record.kind))?;
        fsio::write_atomic(&self.active, &format!("{}.json", record.kind), &bytes)
    }
}

fn referenced_digests(record: &ActiveRecord) -> impl Iterator<Item = &str> {
    std::iter::once(record.digest.as_str()).chain(record.previous.iter().map(|r| r.digest.as_str()))
}

fn blob_name(digest: &str) -> String {
    format!("{digest}.wasm")
}

fn meta_name(digest: &str) -> String {
    format!("{digest}.json")
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::io("create directory", dir, e))
}

fn validate_meta_field(field: &'static str, value: &str) -> Result<(), StoreError> {
    let reason = if value.trim().is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > MAX_POLICY_INFO_FIELD_BYTES {
        format!(
            "is {} bytes, more than {MAX_POLICY_INFO_FIELD_BYTES}",
            value.len()
        )
    } else if value.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidMeta { field, reason })
}

fn to_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::io("serialise", path, std::io::Error::other(e)))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
