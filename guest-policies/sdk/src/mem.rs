//! Byte comparison for policies: `memcmp` and `bcmp`, eight bytes at a time.
//!
//! `str == str`, `str::cmp` and the bisecting label lookup all end in a call
//! to `memcmp`. On `wasm32-unknown-unknown` the one the standard library
//! brings (from `compiler_builtins`, linked weakly) compares a byte per loop
//! turn. Comparing allocation and node IDs (36 bytes) and label keys that
//! share a 20-byte prefix that way took about 30 % of the time the default
//! policies spent in their own code in the 10,000-snapshot sweep benchmark.
//! The strong definitions below replace it in every policy built with this
//! SDK. Only `wasm32` builds export them; [`compare`] itself is plain Rust
//! and tested on the host.

/// Compares the first `n` bytes of `a` and `b` as unsigned bytes: negative,
/// zero or positive as `a` sorts before, equal to or after `b`.
///
/// The byte loops below are not recognised as a comparison idiom (LLVM turns
/// loops into `memset`/`memcpy` calls, never into `memcmp`), so this cannot
/// call itself.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` and both pointers are valid for `n` bytes;
        // `read_unaligned` has no alignment requirement.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// C's `memcmp`, for the compiler's calls.
///
/// # Safety
/// As for [`compare`].
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise is `compare`'s.
    unsafe { compare(a, b, n) }
}

/// C's `bcmp` (zero when equal, anything else when not).
///
/// # Safety
/// As for [`compare`].
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise is `compare`'s.
    unsafe { compare(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `a.len()` bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    #[test]
    fn agrees_with_slice_ordering_at_every_length_and_position() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=base.len() {
            assert_eq!(cmp(&base[..n], &base[..n]), 0, "equal, {n} bytes");
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base[..n].to_vec();
                    other[at] = other[at].wrapping_add(delta);
                    let got = cmp(&base[..n], &other).signum();
                    let want = match base[..n].cmp(&other) {
                        std::cmp::Ordering::Less => -1,
                        std::cmp::Ordering::Equal => 0,
                        std::cmp::Ordering::Greater => 1,
                    };
                    assert_eq!(got, want, "{n} bytes, differing at {at} by {delta}");
                    assert_eq!(cmp(&other, &base[..n]).signum(), -want);
                }
            }
        }
    }

    #[test]
    fn the_first_difference_decides_even_when_a_later_byte_differs_more() {
        assert!(
            cmp(
                b"com.hashicorp.nomad.alloc_id",
                b"com.hashicorp.nomad.node_id_"
            ) < 0
        );
        assert!(cmp(b"\x01zzzzzzzzz", b"\x02aaaaaaaaa") < 0);
        assert!(cmp(b"aaaaaaaa\xffb", b"aaaaaaaa\x00c") > 0);
    }
}
