//! What decoding a list-heavy configuration at the size limit costs in memory, measured with a
//! counting global allocator (its own test binary, one test, so nothing else allocates
//! meanwhile).

// A global allocator cannot be written without `unsafe`; this one only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use nomad_plugin::cty::{CtyError, Cursor, MAX_CONFIG_BYTES, MAX_VALUES, decode};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f`'s result and the most memory it held at once beyond what was allocated before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

const MIB: usize = 1024 * 1024;

/// `{"args": [<n> strings of `len` bytes]}`, the last element `last` instead when given.
fn args_config(n: usize, len: usize, last: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![0x81, 0xa4];
    b.extend_from_slice(b"args");
    b.push(0xdd);
    b.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    for i in 0..n {
        if i + 1 == n
            && let Some(last) = last
        {
            b.extend_from_slice(last);
            break;
        }
        b.push(0xd9);
        b.push(u8::try_from(len).unwrap());
        b.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
    }
    b
}

fn args(bytes: &[u8]) -> Result<Vec<String>, CtyError> {
    let value = decode(bytes)?;
    let root = Cursor::root(&value).object()?;
    Ok(root.opt_string_list("args")?.unwrap_or_default())
}

#[test]
fn a_list_heavy_4_mib_config_decodes_in_bounded_memory_and_errors_name_the_full_path() {
    // 1. One-byte elements up to the byte limit: millions of values, refused before any is
    //    built.
    let n = MAX_CONFIG_BYTES - 16;
    let mut tiny = vec![0x81, 0xa4];
    tiny.extend_from_slice(b"args");
    tiny.push(0xdd);
    tiny.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    tiny.extend(std::iter::repeat_n(0xa0u8, n));
    assert!(tiny.len() <= MAX_CONFIG_BYTES);
    let (result, peak) = peak_of(|| args(&tiny));
    assert_eq!(
        result.unwrap_err(),
        CtyError::TooManyValues { limit: MAX_VALUES }
    );
    assert!(peak < MIB, "refusing took {peak} bytes");
    drop(tiny);

    // 2. The most elements accepted, filling the byte limit: decoded, and the memory held is
    //    the decoded tree and the result, not a path per element.
    let elements = MAX_VALUES - 8;
    let len = (MAX_CONFIG_BYTES - 64) / elements - 2;
    let heavy = args_config(elements, len, None);
    assert!(
        heavy.len() <= MAX_CONFIG_BYTES && heavy.len() > MAX_CONFIG_BYTES - 2 * MIB,
        "{}",
        heavy.len()
    );
    let (decoded, peak) = peak_of(|| args(&heavy).map(|v| v.len()));
    assert_eq!(decoded, Ok(elements));
    eprintln!(
        "decoding {} bytes, {elements} strings: peak {} KiB",
        heavy.len(),
        peak / 1024
    );
    assert!(peak < 40 * MIB, "decoding held {} MiB at once", peak / MIB);
    drop(heavy);

    // 3. An error deep in such a list still names the element.
    let bad = args_config(elements, len, Some(&[0x2a]));
    let (result, peak) = peak_of(|| args(&bad));
    assert_eq!(
        result.unwrap_err().to_string(),
        format!("args[{}]: expected string, found integer", elements - 1)
    );
    assert!(peak < 40 * MIB, "decoding held {} MiB at once", peak / MIB);
}
