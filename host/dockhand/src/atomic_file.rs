//! Replacing a file atomically: the bytes go to a temporary file in the same directory, are
//! synced, then renamed over the target, so a reader or a crash sees the old file or the new
//! one, never a part.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// No temporary file could be made beside the target.
    #[error("cannot create a file in {}", .dir.display())]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Replaces `path` with `contents`. A relative path without a directory is written in the
/// current directory; the directory must exist.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|source| AtomicWriteError::Create {
            dir: dir.to_owned(),
            source,
        })?;
    let write_error = |source| AtomicWriteError::Write {
        path: path.to_owned(),
        source,
    };
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(write_error)?;
    tmp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_directory_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent").join("f.json");
        let err = write_atomically(&missing, b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create a file in {}",
                dir.path().join("absent").display()
            )
        );
        // The cause is the chain's next link, not part of the message.
        let cause = std::error::Error::source(&err).expect("the I/O error is the source");
        assert_eq!(nomad_plugin::error_chain(&err), format!("{err}: {cause}"));
        // A directory where the file should go: the rename fails.
        let taken = dir.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("inside"), "").unwrap();
        let err = write_atomically(&taken, b"x").unwrap_err();
        assert_eq!(err.to_string(), format!("cannot write {}", taken.display()));
        assert!(std::error::Error::source(&err).is_some());
    }
}
