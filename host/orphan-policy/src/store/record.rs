//! What the store keeps about each policy, as serde types.
//!
//! These are also the on-disk JSON formats: `blobs/<sha256>.json` holds a
//! [`BlobMeta`], `active/<kind>.json` holds an [`ActiveRecord`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::decision::PolicyKind;

/// How an active policy's decisions are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Decisions are logged and metered, never carried out.
    Audit,
    /// Decisions are carried out.
    Enforce,
}

impl PolicyMode {
    /// The wire and file name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Enforce => "enforce",
        }
    }
}

impl fmt::Display for PolicyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name other than `audit` or `enforce`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy mode {0:?}: expected \"audit\" or \"enforce\"")]
pub struct UnknownMode(pub String);

impl FromStr for PolicyMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "audit" => Ok(Self::Audit),
            "enforce" => Ok(Self::Enforce),
            other => Err(UnknownMode(other.chars().take(40).collect())),
        }
    }
}

/// What the uploader says about a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMeta {
    /// Human name, for listings and logs.
    pub name: String,
    /// Free-form version string chosen by the author.
    pub version: String,
}

/// Where a stored policy stands for its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyState {
    /// The active policy, decisions carried out.
    ActiveEnforce,
    /// The active policy, decisions only logged.
    ActiveAudit,
    /// Was active before; a `rollback` target.
    Previous,
    /// Uploaded, never active or no longer in the history.
    Inactive,
}

impl fmt::Display for PolicyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ActiveEnforce => "active-enforce",
            Self::ActiveAudit => "active-audit",
            Self::Previous => "previous",
            Self::Inactive => "inactive",
        })
    }
}

/// A stored policy as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// sha256 of the component, lowercase hex.
    pub digest: String,
    /// The world it implements.
    pub kind: PolicyKind,
    /// From the upload.
    pub name: String,
    /// From the upload.
    pub version: String,
    /// Unix seconds of the first upload.
    pub uploaded_at: u64,
    /// Bytes.
    pub size: u64,
    /// Its standing at the time of the call.
    pub state: PolicyState,
}

/// One activation: which policy, in which mode, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// sha256 of the policy.
    pub digest: String,
    /// Its mode while active.
    pub mode: PolicyMode,
    /// Unix seconds of the activation.
    pub activated_at: u64,
}

/// The active policy of one kind and the revisions before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRecord {
    /// The kind this pointer is for.
    pub kind: PolicyKind,
    /// sha256 of the active policy.
    pub digest: String,
    /// How its decisions are used.
    pub mode: PolicyMode,
    /// Unix seconds of the activation.
    pub activated_at: u64,
    /// Earlier revisions, most recent first, without duplicates and without
    /// the active digest; at most `keep_revisions` long. `rollback` returns
    /// to the first.
    #[serde(default)]
    pub previous: Vec<Revision>,
}

/// The metadata file stored next to each blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BlobMeta {
    pub sha256: String,
    pub kind: PolicyKind,
    pub name: String,
    pub version: String,
    pub uploaded_at: u64,
    pub size: u64,
    /// Store-wide upload order (seconds are too coarse to order by).
    pub seq: u64,
}

impl BlobMeta {
    pub(super) fn to_stored(&self, state: PolicyState) -> StoredPolicy {
        StoredPolicy {
            digest: self.sha256.clone(),
            kind: self.kind,
            name: self.name.clone(),
            version: self.version.clone(),
            uploaded_at: self.uploaded_at,
            size: self.size,
            state,
        }
    }
}

/// The state of `digest` given the active record of its kind.
pub(super) fn state_of(digest: &str, active: Option<&ActiveRecord>) -> PolicyState {
    match active {
        Some(a) if a.digest == digest => match a.mode {
            PolicyMode::Audit => PolicyState::ActiveAudit,
            PolicyMode::Enforce => PolicyState::ActiveEnforce,
        },
        Some(a) if a.previous.iter().any(|r| r.digest == digest) => PolicyState::Previous,
        _ => PolicyState::Inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_and_prints() {
        for mode in [PolicyMode::Audit, PolicyMode::Enforce] {
            assert_eq!(mode.to_string().parse::<PolicyMode>().unwrap(), mode);
        }
        assert_eq!(
            "Enforce".parse::<PolicyMode>().unwrap_err().to_string(),
            "unknown policy mode \"Enforce\": expected \"audit\" or \"enforce\""
        );
    }

    #[test]
    fn state_serialises_kebab_case() {
        assert_eq!(
            serde_json::to_string(&PolicyState::ActiveEnforce).unwrap(),
            "\"active-enforce\""
        );
        assert_eq!(PolicyState::ActiveAudit.to_string(), "active-audit");
    }
}
