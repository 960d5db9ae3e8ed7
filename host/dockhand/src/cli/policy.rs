//! `dockhand policy …`: offline tools for orphan policies.
//!
//! * `check FILE` loads a policy component with the same engine and limits
//!   the plugin uses and reports its identity, or why it would be refused.
//! * `test FILE --fixtures DIR` runs a policy against JSON fixtures
//!   ([`fixtures::Fixture`]) and compares its answers with the expectations
//!   written in them.
//!
//! * `new NAME` writes a policy project (Rust or Python) and `build [DIR]`
//!   builds one into a checked component ([`project`]).
//!
//! `check` and `test` accept `bundled:ownership` / `bundled:kill` instead of
//! a path to use the defaults embedded in the driver, or a project directory
//! for the component `build` wrote in it. Nothing here talks to Docker.

pub mod build;
pub mod check;
pub mod fixtures;
pub mod new;
pub mod project;
pub mod test;

use std::path::{Path, PathBuf};

use orphan_policy::{EngineConfig, LoadError, LoadedPolicy, PolicyEngine, PolicyKind};

/// Prefix naming an embedded default instead of a file.
pub const BUNDLED_PREFIX: &str = "bundled:";

/// Why a policy could not be loaded for a command.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCliError {
    /// The policy file could not be read.
    #[error("{}: cannot read", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `bundled:` named something other than `ownership` or `kill`.
    #[error("unknown bundled policy {0:?} (expected bundled:ownership or bundled:kill)")]
    UnknownBundled(String),
    /// The engine could not be built.
    #[error("starting the policy engine")]
    Engine(#[from] orphan_policy::EngineError),
    /// The engine refused the policy. The message is the operator's wording of the refusal, so
    /// the [`LoadError`] is not repeated as a cause.
    #[error("{}", describe_load_error(.0))]
    Load(LoadError),
    /// `describe()` trapped, ran out of time or returned invalid fields.
    #[error("calling describe() failed")]
    Describe(#[source] orphan_policy::EvalError),
    /// A project directory was given but is not usable.
    #[error(transparent)]
    Project(#[from] project::ProjectError),
    /// The component exports neither world.
    #[error("not a dockhand policy: it exports neither `classify` (ownership) nor `decide` (kill)")]
    NoWorld,
}

/// Where a policy's bytes came from.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// What the operator typed.
    pub label: String,
    /// The component bytes.
    pub bytes: Vec<u8>,
    /// For `bundled:*`, the kind it is.
    pub bundled_kind: Option<PolicyKind>,
}

impl PolicySource {
    /// Reads `file`, or an embedded default for `bundled:ownership|kill`.
    pub fn open(file: &Path) -> Result<Self, PolicyCliError> {
        let (file, _) = project::resolve_component(file)?;
        let file = file.as_path();
        let label = file.display().to_string();
        if let Some(name) = label.strip_prefix(BUNDLED_PREFIX) {
            let kind = match name {
                "ownership" => PolicyKind::Ownership,
                "kill" => PolicyKind::Kill,
                other => return Err(PolicyCliError::UnknownBundled(other.to_owned())),
            };
            return Ok(Self {
                label,
                bytes: orphan_policy::guests::default_policy(kind).to_vec(),
                bundled_kind: Some(kind),
            });
        }
        let bytes = std::fs::read(file).map_err(|source| PolicyCliError::Read {
            path: file.to_owned(),
            source,
        })?;
        Ok(Self {
            label,
            bytes,
            bundled_kind: None,
        })
    }
}

/// An engine configured like the plugin's.
#[derive(Debug)]
pub struct OfflineEngine {
    /// The engine.
    pub engine: PolicyEngine,
}

impl OfflineEngine {
    /// Builds the engine with the default limits. The pooling allocator is
    /// off: a one-shot command gains nothing from it and it reserves a lot
    /// of address space. Compiled policies are cached per user
    /// ([`orphan_policy::user_cache_dir`]), so a large policy is compiled once.
    pub fn start() -> Result<Self, PolicyCliError> {
        let engine = PolicyEngine::new(EngineConfig {
            pooling_allocator: false,
            cache_dir: orphan_policy::user_cache_dir(),
            ..EngineConfig::default()
        })?;
        Ok(Self { engine })
    }

    /// Loads `source` as `kind`, or, when `kind` is `None`, as whichever
    /// world it implements (ownership tried first).
    pub fn load(
        &self,
        source: &PolicySource,
        kind: Option<PolicyKind>,
    ) -> Result<LoadedPolicy, PolicyCliError> {
        if let Some(kind) = kind.or(source.bundled_kind) {
            return self.load_as(source, kind);
        }
        match self.engine.load(PolicyKind::Ownership, &source.bytes) {
            Ok(policy) => Ok(policy),
            Err(LoadError::WrongWorld { .. }) => {
                match self.engine.load(PolicyKind::Kill, &source.bytes) {
                    Ok(policy) => Ok(policy),
                    Err(LoadError::WrongWorld { .. }) => Err(PolicyCliError::NoWorld),
                    Err(e) => Err(PolicyCliError::from_load(e)),
                }
            }
            Err(e) => Err(PolicyCliError::from_load(e)),
        }
    }

    fn load_as(
        &self,
        source: &PolicySource,
        kind: PolicyKind,
    ) -> Result<LoadedPolicy, PolicyCliError> {
        self.engine
            .load(kind, &source.bytes)
            .map_err(PolicyCliError::from_load)
    }
}

impl PolicyCliError {
    /// A refusal at load time; a failed `describe()` keeps its cause as the chain's next link.
    fn from_load(e: LoadError) -> Self {
        match e {
            LoadError::Describe(inner) => Self::Describe(inner),
            other => Self::Load(other),
        }
    }
}

/// A one-line operator-facing reason for a load failure.
pub fn describe_load_error(e: &LoadError) -> String {
    match e {
        LoadError::NotWasm { detail } => format!("not WebAssembly ({detail})"),
        LoadError::CoreModule => "not a component (core module); build for wasm32-unknown-unknown \
             and turn it into a component with `wasm-tools component new` or the wit-component crate"
            .to_owned(),
        LoadError::ForbiddenImports { imports } => {
            let list = imports
                .iter()
                .map(|i| format!("forbidden import {i}"))
                .collect::<Vec<_>>()
                .join("; ");
            format!(
                "{list} (a policy may import only {})",
                orphan_policy::ALLOWED_IMPORTS.join(" and ")
            )
        }
        LoadError::WrongWorld { expected, missing } => {
            let other = match expected {
                PolicyKind::Ownership => PolicyKind::Kill,
                PolicyKind::Kill => PolicyKind::Ownership,
            };
            format!(
                "wrong kind: not a `{expected}` policy (it does not export {}); is it a `{other}` policy?",
                missing.join(", ")
            )
        }
        other => other.to_string(),
    }
}
