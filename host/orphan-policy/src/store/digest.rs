//! sha256 digests as the store's only names for blobs.
//!
//! A digest arrives from clients (admin API, CLI) and from pointer files on
//! disk, and becomes part of a file name. It is therefore checked to be
//! exactly 64 lowercase hex characters before any path is built from it, so
//! `../`, `/`, NUL or an over-long name can never reach the file system.

use sha2::{Digest as _, Sha256};

use super::StoreError;

/// Length of a sha256 digest in hex characters.
pub const DIGEST_HEX_LEN: usize = 64;

/// Longest prefix of a rejected digest quoted back in an error.
const MAX_QUOTED_CHARS: usize = 80;

/// Checks that `digest` is a sha256 digest in lowercase hex.
pub fn validate_digest(digest: &str) -> Result<(), StoreError> {
    let reason = if digest.len() != DIGEST_HEX_LEN {
        Some("must be exactly 64 hex characters")
    } else if digest
        .bytes()
        .any(|b| b.is_ascii_uppercase() && b.is_ascii_hexdigit())
    {
        Some("hex digits must be lowercase")
    } else if !digest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Some("must contain only hex characters 0-9 and a-f")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(StoreError::InvalidDigest {
            digest: digest.chars().take(MAX_QUOTED_CHARS).collect(),
            reason,
        }),
    }
}

/// The sha256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_real_digest() {
        validate_digest(&sha256_hex(b"x")).unwrap();
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rejects_traversal_and_malformed_digests() {
        let good = sha256_hex(b"x");
        let cases = [
            ("", "exactly 64"),
            ("../../etc/passwd", "exactly 64"),
            (&*format!("../{}", &good[3..]), "only hex"),
            (&*format!("{}/..", &good[3..]), "only hex"),
            (&*format!("{}\0", &good[1..]), "only hex"),
            (&*good.to_uppercase(), "lowercase"),
            (&*format!("{good}0"), "exactly 64"),
            (&*format!("{}g", &good[1..]), "only hex"),
            (&*format!("{}é", &good[2..]), "only hex"),
        ];
        for (input, expected) in cases {
            let err = validate_digest(input).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{input:?}: {err} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn quotes_at_most_80_characters() {
        let long = "a".repeat(10_000);
        let err = validate_digest(&long).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }
}
