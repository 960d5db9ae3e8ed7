//! Configuration compatible with Nomad's builtin `docker` driver.
//!
//! # Shape
//!
//! Configuration arrives in two places: the agent's `plugin "…" { config { … } }` stanza
//! (`SetConfig`) and each task's `config { … }` (`StartTask`). Both reach the driver as go-cty
//! MessagePack produced by Nomad's `hcldec` from the schemas this module declares
//! ([`plugin_config_spec`], [`task_config_spec`]). Decoding happens in two steps:
//!
//! 1. **wire → `Raw*`** ([`raw`]): type checks only, via [`nomad_plugin::cty`]; every field is
//!    optional because `nil` means absent;
//! 2. **`Raw*` → domain** (`TryFrom`): defaults, Go-duration parsing, and every rule the
//!    builtin driver enforces, with errors that name the field and the rule.
//!
//! Task rules that need the agent's settings (privileged gate, runtime and capability
//! allow-lists, volumes gate, `pids_limit` ceiling) are a third, separate step,
//! [`TaskConfig::validate_against`], which reports all problems at once.
//!
//! # Defaults
//!
//! Defaults live in [`defaults`] only. The schema literals sent to Nomad are rendered from
//! those constants, and the domain conversion falls back to the same constants, so an absent
//! value and a schema-defaulted value always agree (a test decodes both ways). Every literal is
//! an HCL expression of the attribute's own type; a test parses each with hcl-rs, so an
//! unquoted `3m` (hashicorp/nomad#6246) cannot slip in. The task engine's and the
//! reconciler's settings are derived from a validated [`PluginConfig`]
//! (`EngineSettings::from_config`, `ReconcileSettings::from_config`); their defaults are
//! those of `PluginConfig::default()`, never restated.
//!
//! # Offline validation
//!
//! `dockhand config validate` uses [`hcl_file`] to read agent configs and jobspecs (HCL or
//! JSON) the way Nomad does, [`nomad_plugin::hcldec`] to apply the schema, and then the *same*
//! msgpack → raw → domain path as the plugin, so the command cannot disagree with the driver.

mod daemon;
pub mod defaults;
pub mod duration;
pub mod hcl_file;
pub mod label_filter;
pub mod plugin;
pub mod raw;
pub mod task;
pub mod validate;

use std::fmt;

use nomad_plugin::cty::{self, CtyError, Cursor};

pub use plugin::{
    AdminConfig, AllowedModes, AuthSources, DaemonSharing, DanglingConfig, DockhandConfig,
    GcConfig, LoggingConfig, PluginConfig, PolicyFile, PolicyMode, TlsConfig, VolumesConfig,
};
pub use raw::{RawPluginConfig, RawTaskConfig, plugin_config_spec, task_config_spec};
pub use task::{Device, Mount, MountKind, TaskAuth, TaskConfig, TaskLogging, Ulimit};
pub use validate::TaskContext;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The wire value has the wrong shape (message names the path).
    #[error(transparent)]
    Decode(#[from] CtyError),
    /// A value breaks a rule.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `gc.dangling_containers.creation_grace`.
        field: String,
        /// The rule broken, e.g. `creation_grace is less than minimum, 1m0s`.
        message: String,
    },
}

impl ConfigError {
    /// A rule violation on `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The field the error concerns, as a dotted path.
    pub fn field(&self) -> String {
        match self {
            ConfigError::Decode(CtyError::Type { path, .. } | CtyError::Invalid { path, .. }) => {
                path.to_string()
            }
            ConfigError::Decode(_) => String::new(),
            ConfigError::Invalid { field, .. } => field.clone(),
        }
    }
}

/// Every problem found in one configuration (never empty).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<CtyError> for ConfigErrors {
    fn from(e: CtyError) -> ConfigErrors {
        ConfigErrors(vec![ConfigError::Decode(e)])
    }
}

fn decode_root<T>(
    bytes: &[u8],
    decode: impl FnOnce(&cty::Object<'_>, &mut raw::Collector) -> T,
) -> Result<T, ConfigErrors>
where
    T: Default,
{
    let value = cty::decode(bytes)?;
    if value.is_nil() {
        return Ok(T::default());
    }
    let root = Cursor::root(&value).object()?;
    let mut collector = raw::Collector::default();
    let raw = decode(&root, &mut collector);
    if collector.errors.is_empty() {
        Ok(raw)
    } else {
        Err(ConfigErrors(collector.errors))
    }
}

impl RawPluginConfig {
    /// Decode `SetConfigRequest.msgpack_config` (empty bytes = all defaults).
    pub fn from_msgpack(bytes: &[u8]) -> Result<RawPluginConfig, ConfigErrors> {
        decode_root(bytes, RawPluginConfig::decode)
    }
}

impl RawTaskConfig {
    /// Decode `TaskConfig.msgpack_driver_config`.
    pub fn from_msgpack(bytes: &[u8]) -> Result<RawTaskConfig, ConfigErrors> {
        decode_root(bytes, RawTaskConfig::decode)
    }
}

impl PluginConfig {
    /// Decode and validate `SetConfigRequest.msgpack_config`.
    pub fn from_msgpack(bytes: &[u8]) -> Result<PluginConfig, ConfigErrors> {
        PluginConfig::try_from(RawPluginConfig::from_msgpack(bytes)?)
    }
}

impl TaskConfig {
    /// Decode and validate `TaskConfig.msgpack_driver_config` (plugin-independent rules only;
    /// follow with [`TaskConfig::validate_against`]).
    pub fn from_msgpack(bytes: &[u8]) -> Result<TaskConfig, ConfigErrors> {
        TaskConfig::try_from(RawTaskConfig::from_msgpack(bytes)?)
    }
}

#[cfg(test)]
mod tests;
