//! The [`TokenSigner`] over `jsonwebtoken` (JWS compact serialization, RFC 7515; claims, RFC
//! 7519) with aws-lc-rs as its crypto provider — the same library rustls already uses here — for
//! signing, verification and key generation (RSA 2048 for RS256, P-256 for ES256).
//!
//! Keys are stored as PKCS#8 DER. `jsonwebtoken` signs RSA with a PKCS#1 `RSAPrivateKey`, which is
//! the PKCS#8 document's `privateKey` field: the `pkcs8` crate unwraps it. The published JWK is
//! derived from the private key by `jsonwebtoken` itself, so it cannot disagree with it.

use std::collections::HashMap;
use std::sync::RwLock;

use application::ports::{SignerError, SigningAlgorithm, SigningKey, TokenSigner};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
use domain::Timestamp;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::Value;

/// One installed key.
struct Installed {
    algorithm: SigningAlgorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    retired: bool,
    created_at: Timestamp,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Installed>,
    /// The kid that signs, per algorithm: the newest unretired key.
    current: HashMap<SigningAlgorithm, String>,
    jwks: Value,
}

/// Signs with the newest unretired key of an algorithm; verifies with any installed key.
pub struct JoseSigner {
    keys: RwLock<KeySet>,
}

impl Default for JoseSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl JoseSigner {
    /// A signer with no keys (install some before signing).
    pub fn new() -> Self {
        Self { keys: RwLock::new(KeySet { jwks: serde_json::json!({"keys": []}), ..KeySet::default() }) }
    }
}

fn jose_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::Rs256 => Algorithm::RS256,
        SigningAlgorithm::Es256 => Algorithm::ES256,
    }
}

fn key_error(what: &str, err: impl std::fmt::Display) -> SignerError {
    SignerError::Key(format!("{what}: {err}"))
}

/// The key `jsonwebtoken` signs with: PKCS#1 inside the PKCS#8 document for RSA, the PKCS#8
/// document itself for ECDSA.
fn encoding_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<EncodingKey, SignerError> {
    match algorithm {
        SigningAlgorithm::Rs256 => {
            let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8).map_err(|e| key_error("PKCS#8", e))?;
            Ok(EncodingKey::from_rsa_der(info.private_key.as_bytes()))
        }
        SigningAlgorithm::Es256 => {
            // Parse once, so a damaged key is refused at install rather than at first signature.
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|e| key_error("P-256 key", e))?;
            Ok(EncodingKey::from_ec_der(pkcs8))
        }
    }
}

/// The public JWK of a key (RFC 7517 §4: `kty`, `kid`, `alg`, `use: sig` and its parameters).
fn public_jwk(algorithm: SigningAlgorithm, kid: &str, encoding: &EncodingKey) -> Result<Jwk, SignerError> {
    let mut jwk = Jwk::from_encoding_key(encoding, jose_algorithm(algorithm)).map_err(|e| key_error("JWK", e))?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match algorithm {
        SigningAlgorithm::Rs256 => KeyAlgorithm::RS256,
        SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
    });
    Ok(jwk)
}

fn install_one(key: &SigningKey) -> Result<(Installed, Jwk), SignerError> {
    let encoding = encoding_key(key.algorithm, key.private_pkcs8.expose_secret())?;
    let jwk = public_jwk(key.algorithm, &key.kid, &encoding)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| key_error("JWK", e))?;
    let installed = Installed {
        algorithm: key.algorithm,
        encoding,
        decoding,
        retired: key.retired_at.is_some(),
        created_at: key.created_at,
    };
    Ok((installed, jwk))
}

impl TokenSigner for JoseSigner {
    fn generate_key(&self, algorithm: SigningAlgorithm, kid: &str, now: Timestamp) -> Result<SigningKey, SignerError> {
        let pkcs8: Vec<u8> = match algorithm {
            SigningAlgorithm::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| key_error("RSA generation", e))?;
                pair.as_der().map_err(|e| key_error("RSA PKCS#8", e))?.as_ref().to_vec()
            }
            SigningAlgorithm::Es256 => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| key_error("P-256 generation", e))?;
                document.as_ref().to_vec()
            }
        };
        let encoding = encoding_key(algorithm, &pkcs8)?;
        let jwk = public_jwk(algorithm, kid, &encoding)?;
        let public_jwk = serde_json::to_string(&jwk).map_err(|e| key_error("JWK", e))?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            algorithm,
            private_pkcs8: SecretSlice::from(pkcs8),
            public_jwk,
            created_at: now,
            retired_at: None,
        })
    }

    fn install(&self, keys: &[SigningKey]) -> Result<(), SignerError> {
        let mut set = KeySet::default();
        let mut jwks = Vec::with_capacity(keys.len());
        for key in keys {
            let (installed, jwk) = install_one(key)?;
            jwks.push(jwk);
            set.by_kid.insert(key.kid.clone(), installed);
        }
        for (kid, key) in &set.by_kid {
            if key.retired {
                continue;
            }
            let newer = match set.current.get(&key.algorithm).and_then(|k| set.by_kid.get(k)) {
                Some(current) => (key.created_at, kid.as_str()) > (current.created_at, ""),
                None => true,
            };
            if newer {
                set.current.insert(key.algorithm, kid.clone());
            }
        }
        set.jwks = serde_json::to_value(JwkSet { keys: jwks }).map_err(|e| key_error("JWKS", e))?;
        let mut guard = self.keys.write().map_err(|_| SignerError::Key("key set lock poisoned".into()))?;
        *guard = set;
        Ok(())
    }

    fn sign(&self, algorithm: SigningAlgorithm, typ: &str, claims: &Value) -> Result<String, SignerError> {
        let keys = self.keys.read().map_err(|_| SignerError::Key("key set lock poisoned".into()))?;
        let kid = keys.current.get(&algorithm).ok_or(SignerError::NoKey(algorithm.as_str()))?;
        let key = keys.by_kid.get(kid).ok_or(SignerError::NoKey(algorithm.as_str()))?;
        let mut header = Header::new(jose_algorithm(algorithm));
        header.kid = Some(kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| key_error("signing", e))
    }

    fn verify(&self, token: &str, typ: Option<&str>) -> Result<Value, SignerError> {
        let invalid = |why: &str| SignerError::Invalid(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed JWT"))?;
        let kid = header.kid.as_deref().ok_or_else(|| invalid("no kid"))?;
        let keys = self.keys.read().map_err(|_| SignerError::Key("key set lock poisoned".into()))?;
        let key = keys.by_kid.get(kid).ok_or_else(|| invalid("unknown kid"))?;
        if header.alg != jose_algorithm(key.algorithm) {
            return Err(invalid("alg does not match the key"));
        }
        if let Some(expected) = typ
            && !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(expected))
        {
            return Err(invalid("wrong typ"));
        }
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| invalid("signature does not verify"))
    }

    fn jwks(&self) -> Value {
        self.keys.read().map(|k| k.jwks.clone()).unwrap_or_else(|_| serde_json::json!({"keys": []}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signer_with(algorithms: &[SigningAlgorithm]) -> Result<(JoseSigner, Vec<SigningKey>), SignerError> {
        let signer = JoseSigner::new();
        let keys = algorithms
            .iter()
            .enumerate()
            .map(|(i, alg)| signer.generate_key(*alg, &format!("k{i}"), Timestamp::from_millis(1_000 + i as i64)))
            .collect::<Result<Vec<_>, _>>()?;
        signer.install(&keys)?;
        Ok((signer, keys))
    }

    #[test]
    fn rs256_and_es256_round_trip_with_kid_and_typ() -> Result<(), SignerError> {
        let (signer, _) = signer_with(&[SigningAlgorithm::Rs256, SigningAlgorithm::Es256])?;
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256] {
            let token = signer.sign(algorithm, "at+jwt", &json!({"sub": "u1", "exp": 1}))?;
            let header = jsonwebtoken::decode_header(&token).map_err(|e| SignerError::Invalid(e.to_string()))?;
            assert_eq!(header.alg, jose_algorithm(algorithm));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert!(header.kid.is_some());
            assert_eq!(signer.verify(&token, Some("at+jwt"))?["sub"], "u1");
            assert!(signer.verify(&token, Some("JWT")).is_err(), "typ is checked");
        }
        Ok(())
    }

    #[test]
    fn jwks_has_public_parts_only_and_verifies_elsewhere() -> Result<(), SignerError> {
        let (signer, _) = signer_with(&[SigningAlgorithm::Rs256])?;
        let jwks = signer.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], "k0");
        assert!(key.get("d").is_none() && key.get("p").is_none(), "no private parameters: {key}");
        // A verifier that knows only the published JWK accepts the token.
        let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| SignerError::Invalid(e.to_string()))?;
        let decoding = DecodingKey::from_jwk(&set.keys[0]).map_err(|e| SignerError::Invalid(e.to_string()))?;
        let token = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({"sub": "x"}))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok());
        Ok(())
    }

    #[test]
    fn the_newest_unretired_key_signs_and_retired_ones_still_verify() -> Result<(), SignerError> {
        let signer = JoseSigner::new();
        let mut old = signer.generate_key(SigningAlgorithm::Rs256, "old", Timestamp::from_millis(1))?;
        signer.install(std::slice::from_ref(&old))?;
        let before = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({"n": 1}))?;
        old.retired_at = Some(Timestamp::from_millis(5));
        let new = signer.generate_key(SigningAlgorithm::Rs256, "new", Timestamp::from_millis(5))?;
        signer.install(&[old, new])?;
        let after = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({"n": 2}))?;
        let kid = |t: &str| jsonwebtoken::decode_header(t).ok().and_then(|h| h.kid);
        assert_eq!(kid(&after).as_deref(), Some("new"));
        assert_eq!(signer.verify(&before, None)?["n"], 1);
        assert_eq!(signer.jwks()["keys"].as_array().map(Vec::len), Some(2));
        Ok(())
    }

    #[test]
    fn forged_unknown_and_alg_confused_tokens_are_refused() -> Result<(), SignerError> {
        let (signer, _) = signer_with(&[SigningAlgorithm::Rs256])?;
        let token = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({"sub": "a"}))?;
        let other = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({"sub": "b"}))?;
        let (parts, other_parts): (Vec<&str>, Vec<&str>) = (token.split('.').collect(), other.split('.').collect());
        // A payload swapped under another token's signature fails.
        let swapped = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert!(signer.verify(&swapped, None).is_err());
        // HS256 with the public key as secret (the classic confusion) is refused by kid/alg.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k0".into());
        let secret = EncodingKey::from_secret(b"whatever").map_err(|e| SignerError::Invalid(e.to_string()))?;
        let hs = jsonwebtoken::encode(&header, &json!({"sub": "a"}), &secret)
            .map_err(|e| SignerError::Invalid(e.to_string()))?;
        assert!(signer.verify(&hs, None).is_err());
        assert!(signer.verify("not.a.jwt", None).is_err());
        // No key for ES256 installed.
        assert_eq!(signer.sign(SigningAlgorithm::Es256, "JWT", &json!({})), Err(SignerError::NoKey("ES256")));
        Ok(())
    }

    #[test]
    fn damaged_key_material_is_refused_and_changes_nothing() -> Result<(), SignerError> {
        let (signer, mut keys) = signer_with(&[SigningAlgorithm::Rs256])?;
        let token = signer.sign(SigningAlgorithm::Rs256, "JWT", &json!({}))?;
        keys[0].private_pkcs8 = SecretSlice::from(vec![1u8, 2, 3]);
        assert!(matches!(signer.install(&keys), Err(SignerError::Key(_))));
        assert!(signer.verify(&token, None).is_ok(), "the previous keys stay installed");
        Ok(())
    }
}
