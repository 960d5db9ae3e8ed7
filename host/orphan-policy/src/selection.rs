//! The inputs a policy reads (`input-selection` in the contract).
//!
//! A policy declares them in `describe()`; the host validates the
//! declaration once at load time and then packs only the selected labels,
//! environment entries and fields into each batch (`pack.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bindings::wit;
use crate::convert::OutputError;

/// Most keys one [`KeySelection::Only`] may list.
pub const MAX_SELECTED_KEYS: usize = 64;
/// Longest selected key or prefix, in bytes.
pub const MAX_SELECTED_KEY_BYTES: usize = 256;

/// Which entries of a keyed input (labels, environment) a policy reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "select", rename_all = "lowercase")]
pub enum KeySelection {
    /// Every entry.
    All,
    /// Entries whose key is in `keys` or starts with one of `prefixes`.
    Only {
        /// Exact keys, sorted and without duplicates.
        keys: Vec<String>,
        /// Key prefixes (declared as `prefix*`), sorted, without duplicates.
        prefixes: Vec<String>,
    },
}

impl KeySelection {
    /// Selects nothing.
    pub fn none() -> Self {
        Self::Only {
            keys: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Parses a declaration: each entry is an exact key, or a prefix when it
    /// ends in `*`. `input` names the input in errors.
    pub fn only<S: AsRef<str>>(input: &'static str, entries: &[S]) -> Result<Self, OutputError> {
        let invalid = |problem: String| OutputError::Selection { input, problem };
        if entries.len() > MAX_SELECTED_KEYS {
            return Err(invalid(format!(
                "lists {} keys, more than {MAX_SELECTED_KEYS}",
                entries.len()
            )));
        }
        let mut keys = Vec::new();
        let mut prefixes = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            if entry.len() > MAX_SELECTED_KEY_BYTES {
                return Err(invalid(format!(
                    "a key of {} bytes is longer than {MAX_SELECTED_KEY_BYTES}",
                    entry.len()
                )));
            }
            if entry.is_empty() {
                return Err(invalid("an empty key".into()));
            }
            let prefix = entry.strip_suffix('*');
            if prefix.unwrap_or(entry).contains('*') {
                return Err(invalid(format!("`{entry}` has a `*` before its end")));
            }
            match prefix {
                // A bare `*` selects everything.
                Some("") => return Ok(Self::All),
                Some(prefix) => prefixes.push(prefix.to_owned()),
                None => keys.push(entry.to_owned()),
            }
        }
        keys.sort_unstable();
        keys.dedup();
        prefixes.sort_unstable();
        prefixes.dedup();
        Ok(Self::Only { keys, prefixes })
    }

    /// Whether the entry named `key` is selected.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only { keys, prefixes } => {
                keys.iter().any(|k| k == key) || prefixes.iter().any(|p| key.starts_with(p))
            }
        }
    }

    /// Whether nothing at all is selected.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::Only { keys, prefixes } if keys.is_empty() && prefixes.is_empty())
    }
}

impl fmt::Display for KeySelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Only { keys, prefixes } => {
                let entries: Vec<String> = keys
                    .iter()
                    .cloned()
                    .chain(prefixes.iter().map(|p| format!("{p}*")))
                    .collect();
                write!(f, "[{}]", entries.join(", "))
            }
        }
    }
}

/// How much of a container's mounts a policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountSelection {
    None,
    /// Destinations only; sources and types are sent empty.
    Destinations,
    All,
}

/// The inputs a policy reads. Container IDs, times, state and exit code are
/// always sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSelection {
    pub names: bool,
    pub image: bool,
    pub labels: KeySelection,
    /// With [`KeySelection::Only`], one entry per selected name (its last
    /// value), sorted by name.
    pub env: KeySelection,
    pub mounts: MountSelection,
}

impl InputSelection {
    /// Every input.
    pub fn all() -> Self {
        Self {
            names: true,
            image: true,
            labels: KeySelection::All,
            env: KeySelection::All,
            mounts: MountSelection::All,
        }
    }
}

impl fmt::Display for InputSelection {
    /// `names, labels [a, b*], env all` — the selected inputs, or `nothing`
    /// beyond the always-sent fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.names {
            parts.push("names".to_owned());
        }
        if self.image {
            parts.push("image".to_owned());
        }
        if !self.labels.is_none() {
            parts.push(format!("labels {}", self.labels));
        }
        if !self.env.is_none() {
            parts.push(format!("env {}", self.env));
        }
        match self.mounts {
            MountSelection::None => {}
            MountSelection::Destinations => parts.push("mount destinations".to_owned()),
            MountSelection::All => parts.push("mounts".to_owned()),
        }
        if parts.is_empty() {
            f.write_str("nothing beyond ids, times and state")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn key_selection(
    input: &'static str,
    selection: wit::KeySelection,
) -> Result<KeySelection, OutputError> {
    match selection {
        wit::KeySelection::All => Ok(KeySelection::All),
        wit::KeySelection::Only(entries) => KeySelection::only(input, &entries),
    }
}

impl TryFrom<wit::InputSelection> for InputSelection {
    type Error = OutputError;

    fn try_from(s: wit::InputSelection) -> Result<Self, Self::Error> {
        Ok(Self {
            names: s.names,
            image: s.image,
            labels: key_selection("labels", s.labels)?,
            env: key_selection("env", s.env)?,
            mounts: match s.mounts {
                wit::MountSelection::None => MountSelection::None,
                wit::MountSelection::Destinations => MountSelection::Destinations,
                wit::MountSelection::All => MountSelection::All,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefixes_select_entries() {
        let s = KeySelection::only("labels", &["b", "com.hashicorp.*", "a", "b"]).unwrap();
        assert_eq!(
            s,
            KeySelection::Only {
                keys: vec!["a".into(), "b".into()],
                prefixes: vec!["com.hashicorp.".into()],
            }
        );
        assert!(s.matches("a"));
        assert!(s.matches("com.hashicorp.nomad.alloc_id"));
        assert!(!s.matches("ab"));
        assert!(!s.matches("com.hashicorp"));
        assert_eq!(s.to_string(), "[a, b, com.hashicorp.*]");
        let none = KeySelection::only::<&str>("env", &[]).unwrap();
        assert!(none.is_none() && !none.matches("PATH"));
        assert_eq!(
            KeySelection::only("env", &["*"]).unwrap(),
            KeySelection::All
        );
        assert!(KeySelection::All.matches(""));
    }

    #[test]
    fn bad_declarations_are_named() {
        let err = |entries: &[&str]| {
            KeySelection::only("labels", entries)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[""]),
            "input-selection for labels is invalid: an empty key"
        );
        assert!(err(&["a*b"]).contains("`a*b` has a `*` before its end"));
        assert!(err(&["a**"]).contains("`a**` has a `*` before its end"));
        assert!(err(&[&"k".repeat(300)]).contains("300 bytes"));
        let many: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
        assert!(
            KeySelection::only("env", &many)
                .unwrap_err()
                .to_string()
                .contains("lists 65 keys")
        );
    }

    #[test]
    fn converts_from_the_contract() {
        let raw = wit::InputSelection {
            names: true,
            image: false,
            labels: wit::KeySelection::Only(vec!["x".into()]),
            env: wit::KeySelection::All,
            mounts: wit::MountSelection::Destinations,
        };
        let s = InputSelection::try_from(raw).unwrap();
        assert_eq!(
            s.to_string(),
            "names, labels [x], env all, mount destinations"
        );
        let nothing = InputSelection {
            names: false,
            image: false,
            labels: KeySelection::none(),
            env: KeySelection::none(),
            mounts: MountSelection::None,
        };
        assert_eq!(nothing.to_string(), "nothing beyond ids, times and state");
    }
}
