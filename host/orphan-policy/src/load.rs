//! Turning untrusted bytes into a [`LoadedPolicy`], refusing anything that is
//! not a component of the expected world importing only the contract.
//!
//! Checks run cheapest first: size, precompiled-code detection, the binary
//! header (garbage vs core module vs component), then compilation (or a
//! cache hit), the import allowlist, the expected exports, linking, and
//! finally a `describe()` call under the usual limits.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{KillPre, OwnershipPre};
use crate::decision::PolicyKind;
use crate::engine::EngineShared;
use crate::limits::MAX_POLICY_BYTES;
use crate::policy::{CompileSource, EvalError, LoadedPolicy, PolicyPre};

/// The contract version this host implements; a policy must name `0.3.x`.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// The only imports a policy may have: the contract's own interfaces.
pub const ALLOWED_IMPORTS: [&str; 2] = ["dockhand:policy/types@0.3.0", "dockhand:policy/log@0.3.0"];

/// Why a policy was refused at load time.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error("policy is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly binary: {detail}")]
    NotWasm { detail: &'static str },
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component; build it for wasm32-unknown-unknown \
         and convert it with `wasm-tools component new` (or the wit-component crate)"
    )]
    CoreModule,
    /// Precompiled native code (`.cwasm`), which is never accepted from outside.
    #[error("precompiled (.cwasm) policies are refused; supply the .wasm component")]
    PrecompiledRejected,
    /// wasmtime could not compile it (invalid or unsupported component).
    #[error("compiling the policy failed: {0}")]
    Compile(String),
    /// Imports outside the contract (filesystem, sockets, ...).
    #[error("policy imports {} outside the dockhand:policy contract (allowed: {})", .imports.join(", "), ALLOWED_IMPORTS.join(", "))]
    ForbiddenImports { imports: Vec<String> },
    /// Lacks the exports of the requested world (for example a kill policy
    /// loaded as an ownership policy).
    #[error("not a `{expected}` policy: it does not export {}", .missing.join(", "))]
    WrongWorld {
        expected: PolicyKind,
        missing: Vec<String>,
    },
    /// Exports or imports have the right names but the wrong types.
    #[error("policy does not match the `{expected}` world of dockhand:policy@0.3.0: {message}")]
    Link {
        expected: PolicyKind,
        message: String,
    },
    /// `describe()` failed or returned something invalid.
    #[error("calling describe() failed")]
    Describe(#[source] EvalError),
    /// Built against an incompatible contract version.
    #[error("policy was built for contract version {found}, this host supports {CONTRACT_VERSION}")]
    ContractVersion { found: String },
}

pub(crate) fn load(
    shared: &Arc<EngineShared>,
    kind: PolicyKind,
    bytes: &[u8],
) -> Result<LoadedPolicy, LoadError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            max: MAX_POLICY_BYTES,
        });
    }
    check_binary_kind(bytes)?;
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let (component, source) = compile_or_fetch(shared, &digest, bytes)?;
    check_imports(&shared.engine, &component)?;
    check_exports(&shared.engine, &component, kind)?;
    let link = |e: wasmtime::Error| LoadError::Link {
        expected: kind,
        message: e.root_cause().to_string(),
    };
    let pre = shared.linker.instantiate_pre(&component).map_err(link)?;
    let pre = match kind {
        PolicyKind::Ownership => PolicyPre::Ownership(OwnershipPre::new(pre).map_err(link)?),
        PolicyKind::Kill => PolicyPre::Kill(KillPre::new(pre).map_err(link)?),
    };
    let policy = LoadedPolicy::new(shared.clone(), kind, digest, pre, source, bytes.len())
        .map_err(LoadError::Describe)?;
    if !contract_compatible(&policy.info().contract_version) {
        return Err(LoadError::ContractVersion {
            found: policy.info().contract_version.clone(),
        });
    }
    // Only policies that passed every check are kept compiled in memory, so
    // rejected uploads do not accumulate.
    shared.compiled().insert(digest, component);
    tracing::info!(
        policy = %policy.digest_hex(),
        kind = %kind,
        name = %policy.info().name,
        version = %policy.info().version,
        source = ?source,
        "policy loaded"
    );
    Ok(policy)
}

/// Distinguishes precompiled code, garbage, core modules and components by
/// their headers.
pub(crate) fn check_binary_kind(bytes: &[u8]) -> Result<(), LoadError> {
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(LoadError::PrecompiledRejected);
    }
    let Some((magic, version)) = bytes.get(..8).map(|h| h.split_at(4)) else {
        return Err(LoadError::NotWasm {
            detail: "shorter than a WebAssembly header",
        });
    };
    if magic != b"\0asm" {
        return Err(LoadError::NotWasm {
            detail: "missing the \\0asm magic number",
        });
    }
    match version {
        [1, 0, 0, 0] => Err(LoadError::CoreModule),
        [0x0d, 0, 1, 0] => Ok(()),
        _ => Err(LoadError::NotWasm {
            detail: "unsupported binary version or layer",
        }),
    }
}

fn compile_or_fetch(
    shared: &EngineShared,
    digest: &[u8; 32],
    bytes: &[u8],
) -> Result<(Component, CompileSource), LoadError> {
    if let Some(component) = shared.compiled().get(digest) {
        return Ok((component.clone(), CompileSource::Memory));
    }
    let (component, source) = match shared
        .cache
        .as_ref()
        .and_then(|c| c.load(&shared.engine, digest))
    {
        Some(component) => (component, CompileSource::DiskCache),
        None => {
            let component = Component::new(&shared.engine, bytes)
                .map_err(|e| LoadError::Compile(e.root_cause().to_string()))?;
            if let Some(cache) = &shared.cache {
                let stored = component
                    .serialize()
                    .map_err(std::io::Error::other)
                    .and_then(|s| cache.store(digest, &s));
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "could not write compiled policy to the cache");
                }
            }
            (component, CompileSource::Compiled)
        }
    };
    Ok((component, source))
}

fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| !ALLOWED_IMPORTS.contains(&name.as_str()))
        .collect();
    if imports.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImports { imports })
    }
}

fn check_exports(
    engine: &Engine,
    component: &Component,
    kind: PolicyKind,
) -> Result<(), LoadError> {
    let required: &[&str] = match kind {
        PolicyKind::Ownership => &["describe", "classify"],
        PolicyKind::Kill => &["describe", "decide"],
    };
    let ty = component.component_type();
    let missing: Vec<String> = required
        .iter()
        .filter(|name| !ty.exports(engine).any(|(export, _)| export == **name))
        .map(|name| (*name).to_owned())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LoadError::WrongWorld {
            expected: kind,
            missing,
        })
    }
}

fn contract_compatible(version: &str) -> bool {
    let mut parts = version.split('.');
    parts.next() == Some("0") && parts.next() == Some("3")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        assert!(matches!(
            check_binary_kind(b""),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_binary_kind(b"GIF89a\0\0\0\0"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_binary_kind(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_binary_kind(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(
            check_binary_kind(b"\0asm\x02\0\0\0"),
            Err(LoadError::NotWasm { .. })
        ));
    }

    #[test]
    fn contract_versions_compatible_within_minor() {
        assert!(contract_compatible("0.3.0"));
        assert!(contract_compatible("0.3.7"));
        assert!(!contract_compatible("0.1.0"));
        assert!(!contract_compatible("0.2.0"));
        assert!(!contract_compatible("0.4.0"));
        assert!(!contract_compatible("1.1.0"));
        assert!(!contract_compatible(""));
    }

    #[test]
    fn load_errors_read_well() {
        let e = LoadError::ForbiddenImports {
            imports: vec!["wasi:filesystem/preopens@0.2.0".into()],
        };
        assert_eq!(
            e.to_string(),
            "policy imports wasi:filesystem/preopens@0.2.0 outside the dockhand:policy contract \
             (allowed: dockhand:policy/types@0.3.0, dockhand:policy/log@0.3.0)"
        );
        let e = LoadError::WrongWorld {
            expected: PolicyKind::Ownership,
            missing: vec!["classify".into()],
        };
        assert_eq!(
            e.to_string(),
            "not a `ownership` policy: it does not export classify"
        );
    }
}
