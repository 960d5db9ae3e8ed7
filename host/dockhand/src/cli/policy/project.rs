//! A policy project as `dockhand policy new` writes it: a directory with a
//! `dockhand-policy.json` manifest naming the policy, its kind and language.
//! `build`, `check` and `test` accept such a directory in place of a file.

use std::path::{Path, PathBuf};

use orphan_policy::PolicyKind;
use serde::{Deserialize, Serialize};

/// File name of the manifest at the root of a project.
pub const MANIFEST: &str = "dockhand-policy.json";

/// Directory of the fixtures `dockhand policy test DIR` runs.
pub const FIXTURES_DIR: &str = "fixtures";

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// A cargo crate using `dockhand-policy-sdk`, built for wasm32-unknown-unknown.
    Rust,
    /// A module using `dockhand_policy.py`, built with componentize-py.
    Python,
}

/// Kind of policy, as the manifest spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    Ownership,
    Kill,
}

impl From<ManifestKind> for PolicyKind {
    fn from(k: ManifestKind) -> Self {
        match k {
            ManifestKind::Ownership => PolicyKind::Ownership,
            ManifestKind::Kill => PolicyKind::Kill,
        }
    }
}

/// `dockhand-policy.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Policy name (also the cargo package name for Rust).
    pub name: String,
    pub kind: ManifestKind,
    pub lang: Lang,
    /// Python: the module componentize-py starts from (`app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// Why a directory is not a usable project.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No manifest, or it cannot be read.
    #[error(
        "{}: cannot read (a policy project has a {MANIFEST}; create one with `dockhand policy new`)",
        .path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid.
    #[error("{}: invalid manifest: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A project directory and its manifest.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Project {
    /// Reads `dir/dockhand-policy.json`.
    pub fn open(dir: &Path) -> Result<Self, ProjectError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| ProjectError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if !is_valid_name(&manifest.name) {
            return Err(ProjectError::Invalid {
                path,
                message: format!("name {:?}: {NAME_RULE}", manifest.name),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// Whether `path` is a project directory (holds a manifest).
    pub fn is_project(path: &Path) -> bool {
        path.is_dir() && path.join(MANIFEST).is_file()
    }

    /// Where `dockhand policy build` writes the component by default:
    /// `DIR/<name>.wasm`.
    pub fn default_output(&self) -> PathBuf {
        self.dir.join(format!("{}.wasm", self.manifest.name))
    }

    /// `DIR/fixtures`.
    pub fn fixtures(&self) -> PathBuf {
        self.dir.join(FIXTURES_DIR)
    }
}

/// What a policy name may be.
pub const NAME_RULE: &str =
    "a name is 1 to 64 lower-case ASCII letters, digits and `-`, starting with a letter";

/// Whether `name` follows [`NAME_RULE`] (it is used as a cargo package name,
/// a file name and a Python identifier once `-` becomes `_`).
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
}

/// Resolves what `check` and `test` were given: a project directory means
/// its built component (and its fixtures); anything else is taken as is.
pub fn resolve_component(path: &Path) -> Result<(PathBuf, Option<Project>), ProjectError> {
    if path.is_dir() {
        let project = Project::open(path)?;
        Ok((project.default_output(), Some(project)))
    } else {
        Ok((path.to_owned(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_usable_as_crate_file_and_module_names() {
        for good in ["p", "my-policy", "own2"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "My",
            "2p",
            "-p",
            "p-",
            "p_q",
            "p q",
            "p/q",
            &"p".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn manifest_round_trips_and_refuses_unknown_fields() {
        let m = Manifest {
            name: "p".into(),
            kind: ManifestKind::Kill,
            lang: Lang::Python,
            module: Some("app".into()),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
        assert!(
            serde_json::from_str::<Manifest>(r#"{"name":"p","kind":"kill","lang":"go"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<Manifest>(
                r#"{"name":"p","kind":"kill","lang":"rust","extra":1}"#
            )
            .is_err()
        );
    }
}
