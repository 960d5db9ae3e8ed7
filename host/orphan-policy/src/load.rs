//! Turning untrusted bytes into a [`LoadedPolicy`], refusing anything that is
//! not a component of the expected world importing only the contract.
//!
//! Checks run cheapest first: size, precompiled-code detection, the binary
//! header (garbage vs core module vs component), the import allowlist (read
//! by a parser, without compiling), then compilation under a permit (or a
//! cache hit), the expected exports, linking, and finally a `describe()`
//! call under the usual limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use wasmparser::{ComponentTypeRef, Parser, Payload, TypeBounds};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{KillPre, OwnershipPre};
use crate::decision::PolicyKind;
use crate::engine::{Compiled, EngineShared};
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
    /// The component's sections could not be read (before compiling).
    #[error("not a readable WebAssembly component: {0}")]
    Malformed(String),
    /// wasmtime could not compile it (invalid or unsupported component).
    #[error("compiling the policy failed: {0}")]
    Compile(String),
    /// The caller gave up (see
    /// [`PolicyEngine::load_cancellable`](crate::PolicyEngine::load_cancellable))
    /// before the policy was compiled, or while it was.
    #[error("loading the policy was cancelled; nothing was kept")]
    Cancelled,
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
    cancelled: &AtomicBool,
) -> Result<LoadedPolicy, LoadError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            max: MAX_POLICY_BYTES,
        });
    }
    check_binary_kind(bytes)?;
    check_imports(&parsed_imports(bytes)?)?;
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let (compiled, source) = compile_or_fetch(shared, &digest, bytes, cancelled)?;
    let component = &compiled.component;
    // The parsed imports were checked above; wasmtime's own view of them is
    // checked again, so a parser disagreement cannot let an import through.
    check_imports(&component_imports(&shared.engine, component))?;
    check_exports(&shared.engine, component, kind)?;
    let link = |e: wasmtime::Error| LoadError::Link {
        expected: kind,
        message: e.root_cause().to_string(),
    };
    let pre = shared.linker.instantiate_pre(component).map_err(link)?;
    let pre = match kind {
        PolicyKind::Ownership => PolicyPre::Ownership(OwnershipPre::new(pre).map_err(link)?),
        PolicyKind::Kill => PolicyPre::Kill(KillPre::new(pre).map_err(link)?),
    };
    let policy = LoadedPolicy::new(
        shared.clone(),
        compiled.clone(),
        kind,
        digest,
        pre,
        source,
        bytes.len(),
    )
    .map_err(LoadError::Describe)?;
    if !contract_compatible(&policy.info().contract_version) {
        return Err(LoadError::ContractVersion {
            found: policy.info().contract_version.clone(),
        });
    }
    // Only policies that passed every check are remembered, so rejected
    // uploads do not accumulate; and only for as long as a loaded policy
    // uses them.
    shared.compiled_insert(digest, &compiled);
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

/// How often a load waiting for a compile permit looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

fn compile_or_fetch(
    shared: &EngineShared,
    digest: &[u8; 32],
    bytes: &[u8],
    cancelled: &AtomicBool,
) -> Result<(Arc<Compiled>, CompileSource), LoadError> {
    if let Some(compiled) = shared.compiled_get(digest) {
        return Ok((compiled, CompileSource::Memory));
    }
    let (component, source) = match shared
        .cache
        .as_ref()
        .and_then(|c| c.load(&shared.engine, digest))
    {
        Some(component) => (component, CompileSource::DiskCache),
        None => {
            let component = compile(shared, bytes, cancelled)?;
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
    Ok((shared.new_compiled(component), source))
}

/// Compiles under one of [`MAX_CONCURRENT_COMPILES`](crate::limits::MAX_CONCURRENT_COMPILES) permits. A cancelled
/// load stops while it waits, and does not start compiling; a compile that
/// was running when the load was cancelled is discarded.
fn compile(
    shared: &EngineShared,
    bytes: &[u8],
    cancelled: &AtomicBool,
) -> Result<Component, LoadError> {
    let is_cancelled = || cancelled.load(Ordering::Acquire);
    let _permit = loop {
        if is_cancelled() {
            return Err(LoadError::Cancelled);
        }
        if let Some(permit) = shared.compile_permits.acquire(CANCEL_POLL) {
            break permit;
        }
    };
    if is_cancelled() {
        return Err(LoadError::Cancelled);
    }
    shared.compiles_started.fetch_add(1, Ordering::Relaxed);
    let component = Component::new(&shared.engine, bytes)
        .map_err(|e| LoadError::Compile(e.root_cause().to_string()))?;
    if is_cancelled() {
        shared.compiles_discarded.fetch_add(1, Ordering::Relaxed);
        return Err(LoadError::Cancelled);
    }
    Ok(component)
}

/// The component's own imports (not those of the modules and components
/// nested in it, which it satisfies itself), read without compiling.
fn parsed_imports(bytes: &[u8]) -> Result<Vec<String>, LoadError> {
    let malformed = |e: wasmparser::BinaryReaderError| LoadError::Malformed(e.to_string());
    let mut imports = Vec::new();
    // Nesting depth: the parser walks nested modules and components too.
    let mut depth = 0_usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(malformed)?;
                    // `(type (eq …))` imports name a type the component already
                    // has (wit-component emits them for exported signatures);
                    // they grant nothing, and wasmtime does not list them.
                    if !matches!(import.ty, ComponentTypeRef::Type(TypeBounds::Eq(_))) {
                        imports.push(import.name.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// The compiled component's imports, as wasmtime sees them.
fn component_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn check_imports(imports: &[String]) -> Result<(), LoadError> {
    let forbidden: Vec<String> = imports
        .iter()
        .filter(|name| !ALLOWED_IMPORTS.contains(&name.as_str()))
        .cloned()
        .collect();
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImports { imports: forbidden })
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
    use std::time::Instant;

    use super::*;
    use crate::guests::DEFAULT_OWNERSHIP;
    use crate::limits::MAX_CONCURRENT_COMPILES;
    use crate::{EngineConfig, PolicyEngine};

    #[test]
    fn compiles_are_bounded_and_a_cancelled_load_never_compiles() {
        let engine = PolicyEngine::new(EngineConfig::default()).expect("engine");
        let held: Vec<_> = (0..MAX_CONCURRENT_COMPILES)
            .map(|_| {
                engine
                    .shared
                    .compile_permits
                    .acquire(Duration::ZERO)
                    .expect("a free permit")
            })
            .collect();
        let cancelled = AtomicBool::new(false);
        std::thread::scope(|s| {
            let loading = s.spawn(|| {
                engine.load_cancellable(PolicyKind::Ownership, DEFAULT_OWNERSHIP, &cancelled)
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(!loading.is_finished(), "compiled without a permit");
            cancelled.store(true, Ordering::Release);
            let started = Instant::now();
            let result = loading.join().expect("load thread");
            assert!(matches!(result, Err(LoadError::Cancelled)), "{result:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
        });
        assert_eq!(engine.compiled_in_memory(), 0);
        assert_eq!(engine.compile_counts(), crate::CompileCounts::default());
        drop(held);
        // Cancelled before it starts: no compile either.
        let result = engine.load_cancellable(PolicyKind::Ownership, DEFAULT_OWNERSHIP, &cancelled);
        assert!(matches!(result, Err(LoadError::Cancelled)), "{result:?}");
        // With a permit free and no cancellation, the same load compiles.
        let policy = engine
            .load_cancellable(
                PolicyKind::Ownership,
                DEFAULT_OWNERSHIP,
                &AtomicBool::new(false),
            )
            .expect("load");
        assert_eq!(policy.compile_source(), CompileSource::Compiled);
        assert_eq!(engine.compiled_in_memory(), 1);
        assert_eq!(
            engine.compile_counts(),
            crate::CompileCounts {
                started: 1,
                discarded: 0
            }
        );
    }

    #[test]
    fn imports_are_read_without_compiling() {
        let imports = parsed_imports(DEFAULT_OWNERSHIP).expect("parses");
        assert!(!imports.is_empty());
        assert!(
            imports
                .iter()
                .all(|i| ALLOWED_IMPORTS.contains(&i.as_str())),
            "{imports:?}"
        );
        assert!(matches!(
            parsed_imports(b"\0asm\x0d\0\x01\0\xff\xff"),
            Err(LoadError::Malformed(_))
        ));
    }

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
