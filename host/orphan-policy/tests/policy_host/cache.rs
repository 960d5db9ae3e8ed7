//! The compiled-policy cache: hits, corruption recovery, and refusal of
//! precompiled bytes from outside.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use orphan_policy::guests::DEFAULT_OWNERSHIP;
use orphan_policy::{CompileSource, EngineConfig, LoadError, Ownership, PolicyKind};

use crate::support::{ALLOC, ctx, harness, harness_with, plain_batch};

fn cached_config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..EngineConfig::default()
    }
}

fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

fn assert_serves(policy: &orphan_policy::LoadedPolicy) {
    let verdicts = policy.classify(&ctx(), &plain_batch()).expect("classify");
    assert_eq!(
        verdicts[0].ownership,
        Ownership::Owned {
            alloc_id: ALLOC.into()
        }
    );
}

#[test]
fn second_load_hits_memory_then_disk_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("policies");
    {
        let h = harness_with(cached_config(&cache));
        let first = h
            .engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
        assert_eq!(first.compile_source(), CompileSource::Compiled);
        let again = h
            .engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
        assert_eq!(again.compile_source(), CompileSource::Memory);
        assert_eq!(again.digest(), first.digest());
    }
    let files = cwasm_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let digest = {
        let h = harness();
        h.engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load")
            .digest_hex()
    };
    assert!(
        name.starts_with(&digest),
        "{name} is keyed by the sha256 {digest}"
    );
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let h = harness_with(cached_config(&cache));
    let from_disk = h
        .engine
        .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
        .expect("load");
    assert_eq!(from_disk.compile_source(), CompileSource::DiskCache);
    assert_serves(&from_disk);
}

#[test]
fn corrupted_or_truncated_cache_files_are_ignored_and_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let h = harness_with(cached_config(dir.path()));
        h.engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
    }
    let file = cwasm_files(dir.path()).pop().expect("one entry");
    let good = fs::read(&file).expect("read");

    // Flip one byte of the compiled code.
    let mut corrupt = good.clone();
    let last = corrupt.len() - 100;
    corrupt[last] ^= 0xff;
    fs::write(&file, &corrupt).expect("corrupt");
    {
        let h = harness_with(cached_config(dir.path()));
        let policy = h
            .engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
        assert_eq!(policy.compile_source(), CompileSource::Compiled);
        assert_serves(&policy);
    }
    assert_eq!(
        fs::read(&file).expect("rewritten"),
        good,
        "the entry was rebuilt"
    );

    // Truncate it.
    fs::write(&file, &good[..good.len() / 3]).expect("truncate");
    {
        let h = harness_with(cached_config(dir.path()));
        let policy = h
            .engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
        assert_eq!(policy.compile_source(), CompileSource::Compiled);
    }

    // And it is a hit again afterwards.
    let h = harness_with(cached_config(dir.path()));
    let policy = h
        .engine
        .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
        .expect("load");
    assert_eq!(policy.compile_source(), CompileSource::DiskCache);
}

#[test]
fn a_planted_file_without_our_header_is_not_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let h = harness_with(cached_config(dir.path()));
        h.engine
            .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
            .expect("load");
    }
    let file = cwasm_files(dir.path()).pop().expect("one entry");
    // Replace our entry with raw wasmtime output (valid code, but not written
    // through the cache, so no header and checksum).
    let raw = wasmtime::Engine::default()
        .precompile_component(DEFAULT_OWNERSHIP)
        .expect("precompile");
    fs::write(&file, &raw).expect("plant");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let h = harness_with(cached_config(dir.path()));
    let policy = h
        .engine
        .load(PolicyKind::Ownership, DEFAULT_OWNERSHIP)
        .expect("load");
    assert_eq!(policy.compile_source(), CompileSource::Compiled);
}

#[test]
fn operator_supplied_precompiled_bytes_are_rejected() {
    let h = harness();
    let precompiled = wasmtime::Engine::default()
        .precompile_component(DEFAULT_OWNERSHIP)
        .expect("precompile");
    let err = h
        .engine
        .load(PolicyKind::Ownership, &precompiled)
        .expect_err("refused");
    assert!(matches!(err, LoadError::PrecompiledRejected), "{err:?}");
    assert_eq!(
        err.to_string(),
        "precompiled (.cwasm) policies are refused; supply the .wasm component"
    );
}
