//! On-disk cache of compiled policies (`.cwasm`), written only by this host.
//!
//! Compiled code is executable: loading a tampered or foreign file would
//! hand a sandbox escape to whoever wrote it. So:
//!
//! * files are keyed by the policy's sha256 **and** the engine's
//!   compatibility hash (`Engine::precompile_compatibility_hash`), so a
//!   different wasmtime or `Config` never even looks at them;
//! * the directory must belong to the user running the host and must not be
//!   group- or world-writable (it is created `0700`);
//! * each file carries a header with both keys and the sha256 of its payload,
//!   checked before wasmtime sees a byte; a mismatch (corruption, truncation,
//!   a file from elsewhere) deletes the entry and the policy is recompiled;
//! * files are written to a temporary file in the same directory and renamed
//!   into place, so readers never see a partial file.
//!
//! Precompiled bytes handed to `load` by an operator are refused elsewhere
//! (`LoadError::PrecompiledRejected`); only this module deserialises code.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// First bytes of every cache file (format version 1).
const MAGIC: &[u8; 16] = b"dockhand-cwasm\x00\x01";
/// MAGIC + policy digest + compatibility hash + payload digest.
const HEADER_LEN: usize = MAGIC.len() + 32 * 3;

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory cannot be created, inspected or written.
    #[error("cannot use the policy cache directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory belongs to another user.
    #[error(
        "policy cache directory {path} is owned by uid {owner}, not by this process (uid {uid})"
    )]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
}

/// A content-addressed, integrity-checked `.cwasm` store.
#[derive(Debug)]
pub(crate) struct PrecompiledCache {
    dir: PathBuf,
    compat: [u8; 32],
}

/// Feeds `Hash` output into sha256, so the compatibility hash is stable and
/// wide (std's hashers are neither).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// sha256 of the engine's compatibility hash.
pub(crate) fn compatibility_hash(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

impl PrecompiledCache {
    /// Opens (creating it `0700` if needed) and vets the directory.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let io_err = |source| CacheError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        // Our uid, learnt from a file we create, so no libc call is needed.
        let probe = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
        let uid = probe.as_file().metadata().map_err(io_err)?.uid();
        drop(probe);
        let meta = fs::metadata(dir).map_err(io_err)?;
        if meta.uid() != uid {
            return Err(CacheError::NotOwned {
                path: dir.to_path_buf(),
                owner: meta.uid(),
                uid,
            });
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            compat: compatibility_hash(engine),
        })
    }

    /// Path of the entry for `digest`.
    pub(crate) fn path_for(&self, digest: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(digest),
            hex::encode(&self.compat[..8])
        ))
    }

    /// The compiled component for `digest`, if a valid entry exists. Invalid
    /// entries are logged and deleted.
    pub(crate) fn load(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Component> {
        let path = self.path_for(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached policy; recompiling");
                return None;
            }
        };
        let payload = match self.verify(&path, &bytes, digest) {
            Ok(payload) => payload,
            Err(problem) => {
                tracing::warn!(path = %path.display(), problem, "discarding invalid cached policy");
                let _ = fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: `payload` was written by `store` below from
        // `Component::serialize` of this engine configuration (the file name
        // and header carry the compatibility hash) and its sha256 matches the
        // one recorded then, in a directory only this user can write. This is
        // the only place the crate deserialises code.
        #[allow(unsafe_code)] // Deserialising our own verified `.cwasm` is the point of the cache.
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cached policy rejected by wasmtime; recompiling");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    fn verify<'a>(
        &self,
        path: &Path,
        bytes: &'a [u8],
        digest: &[u8; 32],
    ) -> Result<&'a [u8], &'static str> {
        let meta = fs::metadata(path).map_err(|_| "cannot stat file")?;
        let dir_meta = fs::metadata(&self.dir).map_err(|_| "cannot stat directory")?;
        if meta.uid() != dir_meta.uid() || meta.mode() & 0o022 != 0 {
            return Err("file not owned by the cache owner or writable by others");
        }
        if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("bad header");
        }
        let (header, payload) = bytes.split_at(HEADER_LEN);
        let keys = &header[MAGIC.len()..];
        if &keys[..32] != digest || keys[32..64] != self.compat {
            return Err("header keys do not match the file name");
        }
        if keys[64..96] != Sha256::digest(payload)[..] {
            return Err("payload checksum mismatch");
        }
        Ok(payload)
    }

    /// Stores `serialized` (from `Component::serialize`) atomically.
    pub(crate) fn store(&self, digest: &[u8; 32], serialized: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(digest)?;
        tmp.write_all(&self.compat)?;
        tmp.write_all(&Sha256::digest(serialized))?;
        tmp.write_all(serialized)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path_for(digest)).map_err(|e| e.error)?;
        Ok(())
    }
}
