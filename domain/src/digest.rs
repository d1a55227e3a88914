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

/// Unpadded base64url of the SHA-256 of `value`: the PKCE `S256` transform of a `code_verifier`
/// (RFC 7636 §4.2: `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`).
pub fn sha256_base64url(value: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(value))
}

/// The ID token's `at_hash` of an access token signed with a SHA-256 algorithm (RS256, ES256):
/// unpadded base64url of the left half of the SHA-256 of the token's ASCII (OpenID Connect Core
/// 1.0 §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
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

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        // RFC 7636 Appendix B: the verifier and challenge of the worked example.
        assert_eq!(
            sha256_base64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // The first 16 bytes of SHA-256("token") in unpadded base64url (computed independently).
        assert_eq!(at_hash("token"), "PEaenWxYddN6Q_NT1PiOYQ");
    }
}
