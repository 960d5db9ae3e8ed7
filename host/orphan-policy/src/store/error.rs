//! Errors of the policy store.

use std::io;
use std::path::PathBuf;

use crate::decision::PolicyKind;

/// Why a policy store operation failed.
///
/// Every variant names what is wrong; none of them leaves the store in a
/// state other than "before the call" or "after the call".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store could not be read or written.
    #[error("policy store: cannot {op} {path}")]
    Io {
        /// What was being done (`"create directory"`, `"rename"`, …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `PolicyStore` in this one) holds the
    /// store's lock file: one process owns a store directory.
    #[error("policy store {path} is locked by another owner; only one process may use a store")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The store directory belongs to another user.
    #[error(
        "policy store directory {path} is owned by uid {owner}, not by this process (uid {uid})"
    )]
    NotOwned {
        /// The store directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The uid of this process.
        uid: u32,
    },
    /// `keep_revisions` was zero: at least the active revision is kept.
    #[error("keep_revisions must be at least 1, got {0}")]
    InvalidKeepRevisions(usize),
    /// A digest given by a caller (or found in a pointer file) is not 64
    /// lowercase hex characters.
    #[error("invalid sha256 digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The offending value, shortened to at most 80 characters.
        digest: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The uploaded bytes do not hash to the digest the client declared.
    #[error("declared sha256 {declared} does not match the uploaded policy's sha256 {actual}")]
    DigestMismatch {
        /// The digest the client sent.
        declared: String,
        /// The sha256 of the bytes received.
        actual: String,
    },
    /// The policy is larger than [`crate::limits::MAX_POLICY_BYTES`].
    #[error("policy is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The upload is empty.
    #[error("policy is empty (0 bytes)")]
    Empty,
    /// A metadata field (`name`, `version`) is unusable.
    #[error("invalid policy {field}: {reason}")]
    InvalidMeta {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No policy with this digest is stored.
    #[error("no stored policy with sha256 {digest}")]
    NotFound {
        /// The digest asked for.
        digest: String,
    },
    /// The policy exists but implements the other kind.
    #[error("policy {digest} is of kind {actual}, not {expected}")]
    WrongKind {
        /// The policy.
        digest: String,
        /// The kind the caller asked for.
        expected: PolicyKind,
        /// The kind it was uploaded as.
        actual: PolicyKind,
    },
    /// The same bytes were uploaded before as the other kind.
    #[error(
        "policy {digest} is already stored with kind {existing}, cannot store it as {requested}"
    )]
    KindConflict {
        /// The policy.
        digest: String,
        /// The kind it is stored as.
        existing: PolicyKind,
        /// The kind of this upload.
        requested: PolicyKind,
    },
    /// A stored blob is missing, truncated or altered: its content no longer
    /// matches its name.
    #[error("stored policy {digest} is corrupt: {reason}")]
    Corrupt {
        /// The policy.
        digest: String,
        /// What was found.
        reason: String,
    },
    /// A metadata or pointer file cannot be parsed or is inconsistent.
    #[error("policy store file {path} is corrupt: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `rollback` was asked for but no earlier revision is recorded.
    #[error("no previous {kind} policy revision to roll back to")]
    NothingToRollBack {
        /// The kind.
        kind: PolicyKind,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_wrong() {
        let digest = "ab".repeat(32);
        let cases = [
            (
                StoreError::Locked {
                    path: "/d/lock".into(),
                },
                "policy store /d/lock is locked by another owner; only one process may use a store"
                    .to_owned(),
            ),
            (
                StoreError::NotOwned {
                    path: "/d".into(),
                    owner: 0,
                    uid: 1000,
                },
                "policy store directory /d is owned by uid 0, not by this process (uid 1000)"
                    .to_owned(),
            ),
            (
                StoreError::WrongKind {
                    digest: digest.clone(),
                    expected: PolicyKind::Kill,
                    actual: PolicyKind::Ownership,
                },
                format!("policy {digest} is of kind ownership, not kill"),
            ),
            (
                StoreError::CorruptFile {
                    path: "/d/active/kill.json".into(),
                    reason: "EOF".to_owned(),
                },
                "policy store file /d/active/kill.json is corrupt: EOF".to_owned(),
            ),
            (
                StoreError::io("rename into place", "/d/x", io::Error::other("disk full")),
                "policy store: cannot rename into place /d/x".to_owned(),
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(err.to_string(), expected);
        }
    }
}
