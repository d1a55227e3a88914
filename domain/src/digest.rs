//! SHA-256 digests as lower-case hex: how secrets are stored (token hashes) and how records
//! without a natural key get a stable one.

use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of `value` (64 characters).
pub fn sha256_hex(value: &[u8]) -> String {
    hex(&Sha256::digest(value))
}

/// Lower-case hex SHA-256 of several fields, each prefixed with its byte length (u64 big-endian),
/// so `["ab", "c"]` and `["a", "bc"]` never collide.
pub fn sha256_hex_of_fields(fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_hex_and_field_boundaries_count() {
        assert_eq!(sha256_hex(b"").len(), 64);
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(sha256_hex_of_fields(&["ab", "c"]), sha256_hex_of_fields(&["a", "bc"]));
        assert_eq!(sha256_hex_of_fields(&["x"]), sha256_hex_of_fields(&["x"]));
    }
}
