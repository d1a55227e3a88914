//! Tests of the callback crypto: the official vectors of docs/dingtalk-api.md §E.7, round
//! trips, request verification, malformed inputs, and a randomized no-panic
//! sweep.

use std::time::Duration;

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::{Rng as _, RngExt as _};
use serde_json::Value;

use super::{CallbackCrypto, CallbackQuery, CallbackReply, CryptoError, DEFAULT_WINDOW};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One official vector of docs/dingtalk-api.md §E.7.
struct Vector {
    token: &'static str,
    aes_key: &'static str,
    owner: &'static str,
    timestamp: &'static str,
    nonce: &'static str,
    msg_signature: &'static str,
    encrypt: &'static str,
    plaintext: &'static str,
    prefix: &'static [u8; 16],
    /// Epoch ms at which the vector was fresh.
    now_ms: i64,
}

const VECTORS: [Vector; 3] = [
    Vector {
        token: "123456",
        aes_key: "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
        owner: "suite4xxxxxxxxxxxxxxx",
        timestamp: "1445827045067",
        nonce: "nEXhMP4r",
        msg_signature: "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
        encrypt: "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==",
        plaintext: r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#,
        prefix: b"hU3bEfGZZewzhG5a",
        now_ms: 1_445_827_045_067,
    },
    Vector {
        token: "123456",
        aes_key: "1234567890123456789012345678901234567890123",
        owner: "dingsnotzck6pm5veliw",
        timestamp: "1614767836",
        nonce: "A7Co0cJLMzIDtMMI",
        msg_signature: "9a95a004dd16f5c307e849b994173f76aa26e5eb",
        encrypt: "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==",
        plaintext: "success",
        prefix: b"dICkEDLj0eb6yAbc",
        now_ms: 1_614_767_836_000,
    },
    Vector {
        token: "mryue",
        aes_key: "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
        owner: "ding6ccabc44d2c8d38b",
        timestamp: "1608001896814",
        nonce: "WL4PK6yA",
        msg_signature: "03044561471240d4a14bb09372dfcfd4fd0e40cb",
        encrypt: "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
        plaintext: r#"{"EventType":"check_url"}"#,
        prefix: b"l7Y3EcX2CU5w8av3",
        now_ms: 1_608_001_896_814,
    },
];

const TOKEN: &str = "mryue";
const AES_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
const OWNER: &str = "ding6ccabc44d2c8d38b"; // 20 bytes
const NOW_MS: i64 = 1_785_000_000_000;

fn crypto() -> Result<CallbackCrypto, CryptoError> {
    CallbackCrypto::new(TOKEN, AES_KEY, OWNER)
}

fn vector_crypto(v: &Vector) -> Result<CallbackCrypto, CryptoError> {
    CallbackCrypto::new(v.token, v.aes_key, v.owner)
}

fn query(sig: Option<&str>, msg_sig: Option<&str>, ts: Option<&str>, nonce: Option<&str>) -> CallbackQuery {
    CallbackQuery {
        signature: sig.map(str::to_owned),
        msg_signature: msg_sig.map(str::to_owned),
        timestamp: ts.map(str::to_owned),
        nonce: nonce.map(str::to_owned),
    }
}

/// A signed query (both signature names) for `encrypt` at `timestamp`.
fn signed(c: &CallbackCrypto, timestamp: &str, nonce: &str, encrypt: &str) -> CallbackQuery {
    let sig = c.signature(timestamp, nonce, encrypt);
    query(Some(&sig), Some(&sig), Some(timestamp), Some(nonce))
}

/// AES-256-CBC encryption of an already padded buffer with `c`'s key, no
/// framing and no padding: builds malformed ciphertexts.
fn raw_encrypt(c: &CallbackCrypto, mut buf: Vec<u8>) -> String {
    assert!(buf.len().is_multiple_of(16));
    let mut enc = cbc::Encryptor::<aes::Aes256>::new(&c.key.into(), &c.iv.into());
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut buf);
    enc.encrypt_blocks(blocks);
    STANDARD.encode(&buf)
}

/// AES-256-CBC decryption without any unpadding or framing.
fn raw_decrypt(c: &CallbackCrypto, encrypt: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let mut buf = STANDARD.decode(encrypt)?;
    let mut dec = cbc::Decryptor::<aes::Aes256>::new(&c.key.into(), &c.iv.into());
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut buf);
    dec.decrypt_blocks(blocks);
    Ok(buf)
}

/// A framed plaintext (docs/dingtalk-api.md §E.4) before padding.
fn frame(msg: &[u8], len_field: u32, owner: &[u8]) -> Vec<u8> {
    let mut buf = b"0123456789abcdef".to_vec();
    buf.extend_from_slice(&len_field.to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(owner);
    buf
}

/// PKCS#7 padding to `block` bytes.
fn pad(mut buf: Vec<u8>, block: usize) -> Vec<u8> {
    let n = block - buf.len() % block;
    buf.resize(buf.len() + n, u8::try_from(n).unwrap_or(0));
    buf
}

// ---------------------------------------------------------------- vectors

#[test]
fn official_vectors_signature() -> TestResult {
    for v in &VECTORS {
        let c = vector_crypto(v)?;
        assert_eq!(c.signature(v.timestamp, v.nonce, v.encrypt), v.msg_signature, "vector {}", v.nonce);
    }
    Ok(())
}

#[test]
fn official_vectors_decrypt() -> TestResult {
    for v in &VECTORS {
        let c = vector_crypto(v)?;
        assert_eq!(c.decrypt(v.encrypt)?, v.plaintext, "vector {}", v.nonce);
        let q = query(None, Some(v.msg_signature), Some(v.timestamp), Some(v.nonce));
        assert_eq!(c.verify_and_decrypt(&q, v.encrypt, v.now_ms)?, v.plaintext);
        let q = query(Some(v.msg_signature), None, Some(v.timestamp), Some(v.nonce));
        assert_eq!(c.verify_and_decrypt(&q, v.encrypt, v.now_ms)?, v.plaintext);
    }
    Ok(())
}

#[test]
fn official_vectors_recovered_prefix_and_padding() -> TestResult {
    // Pad values 22/17/31 (docs/dingtalk-api.md §E.7) prove the 32-byte PKCS#7 block.
    for (v, pad) in VECTORS.iter().zip([22u8, 17, 31]) {
        let c = vector_crypto(v)?;
        let raw = raw_decrypt(&c, v.encrypt)?;
        assert_eq!(raw.get(..16), Some(&v.prefix[..]), "vector {}", v.nonce);
        assert_eq!(raw.last(), Some(&pad), "vector {}", v.nonce);
    }
    Ok(())
}

#[test]
fn official_vectors_reencrypt_byte_exact() -> TestResult {
    for v in &VECTORS {
        let c = vector_crypto(v)?;
        assert_eq!(c.encrypt_with_prefix(v.plaintext, *v.prefix), v.encrypt, "vector {}", v.nonce);
        let reply = c.reply(v.plaintext, v.timestamp, v.nonce);
        assert_eq!(c.decrypt(&reply.encrypt)?, v.plaintext);
    }
    Ok(())
}

#[test]
fn official_vectors_wrong_owner() -> TestResult {
    for v in &VECTORS {
        let c = CallbackCrypto::new(v.token, v.aes_key, "dingWRONGowner000000")?;
        assert_eq!(c.decrypt(v.encrypt), Err(CryptoError::OwnerMismatch), "vector {}", v.nonce);
        let q = query(None, Some(v.msg_signature), Some(v.timestamp), Some(v.nonce));
        assert_eq!(c.verify_and_decrypt(&q, v.encrypt, v.now_ms), Err(CryptoError::OwnerMismatch));
        // A prefix or an extension of the owner key is no match either.
        let shorter = v.owner.get(..v.owner.len() - 1).ok_or("owner")?;
        let c = CallbackCrypto::new(v.token, v.aes_key, shorter)?;
        assert_eq!(c.decrypt(v.encrypt), Err(CryptoError::OwnerMismatch));
        let c = CallbackCrypto::new(v.token, v.aes_key, &format!("{}x", v.owner))?;
        assert_eq!(c.decrypt(v.encrypt), Err(CryptoError::OwnerMismatch));
    }
    Ok(())
}

#[test]
fn raw_aes_vector_decrypts_but_is_not_a_framed_message() -> TestResult {
    let encrypt = "DwCJ9BMxu4r+VTe9TD+AWc1yfxqs7d2YgepFe4XruMgh1+6pTjCCq4nqAM6StRcafOx5a1OfwmX3ckSBifatlA==";
    let owner = "suite4xxxxxxxxxxxxxxx221";
    let c = CallbackCrypto::new("123456", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", owner)?;
    let mut expected = b"5p7b4jXMWUshiBCosucc111esssuite4xxxxxxxxxxxxxxx221".to_vec();
    expected.extend_from_slice(&[0x0e; 14]);
    assert_eq!(raw_decrypt(&c, encrypt)?, expected);
    // "succ" as a length field points far past the end.
    assert_eq!(c.decrypt(encrypt), Err(CryptoError::InvalidLayout));
    Ok(())
}

// ---------------------------------------------------------------- config

#[test]
fn config_validation() {
    let ok = CallbackCrypto::new;
    assert!(ok("abc", AES_KEY, OWNER).is_ok());
    assert!(ok(&"a".repeat(64), AES_KEY, OWNER).is_ok());
    for token in ["", "ab", "has space", "tok-en", "tökén", &"a".repeat(65)] {
        assert!(matches!(ok(token, AES_KEY, OWNER), Err(CryptoError::InvalidConfig(_))), "token {token:?}");
    }
    let key42 = AES_KEY.get(..42).unwrap_or_default();
    for key in ["", key42, &format!("{AES_KEY}a"), &format!("{key42}+"), &format!("{key42}="), &format!("{key42}é")] {
        assert!(matches!(ok(TOKEN, key, OWNER), Err(CryptoError::InvalidConfig(_))), "key {key:?}");
    }
    assert!(matches!(ok(TOKEN, AES_KEY, ""), Err(CryptoError::InvalidConfig(_))));
    assert_eq!(CryptoError::InvalidConfig("x").library_code(), Some(900_004));
}

#[test]
fn debug_has_no_secrets() -> TestResult {
    let c = CallbackCrypto::new("SecretTok123", AES_KEY, OWNER)?;
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains("SecretTok123"), "{debug}");
    assert!(!debug.contains(AES_KEY), "{debug}");
    assert!(!debug.contains(AES_KEY.get(..10).ok_or("key")?), "{debug}");
    assert!(!debug.contains(&format!("{:?}", c.key)), "{debug}");
    assert!(!debug.contains(&format!("{:?}", c.iv)), "{debug}");
    assert!(debug.contains(OWNER));
    Ok(())
}

#[test]
fn error_codes() {
    assert_eq!(CryptoError::SignatureMismatch.library_code(), Some(900_005));
    assert_eq!(CryptoError::InvalidPadding.library_code(), Some(900_008));
    assert_eq!(CryptoError::InvalidLayout.library_code(), Some(900_009));
    assert_eq!(CryptoError::OwnerMismatch.library_code(), Some(900_010));
    assert_eq!(CryptoError::InvalidParameter("timestamp").library_code(), Some(900_002));
    assert_eq!(CryptoError::InvalidParameter("nonce").library_code(), Some(900_003));
    assert_eq!(CryptoError::StaleTimestamp.library_code(), None);
    assert_eq!(CryptoError::MissingParameter("nonce").library_code(), None);
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trips() -> TestResult {
    let c = crypto()?;
    let chinese = "钉钉回调：用户加入组织 👋 — “测试”";
    let json = r#"{"EventType":"user_add_org","userId":["015xxxx227"],"CorpId":"ding..."}"#;
    for msg in ["success", "", chinese, json, &"x".repeat(5000), &chinese.repeat(100)] {
        let encrypt = c.encrypt(msg);
        assert!(!encrypt.contains('\n') && !encrypt.contains('\r'));
        assert_eq!(c.decrypt(&encrypt)?, msg);
        let ciphertext = STANDARD.decode(&encrypt)?;
        let framed = 20 + msg.len() + OWNER.len();
        assert!(ciphertext.len().is_multiple_of(32));
        assert!(ciphertext.len() > framed && ciphertext.len() <= framed + 32, "{} {framed}", ciphertext.len());
    }
    // Lengths are counted in bytes, not characters (seed bug, docs/seed.md §5).
    let raw = raw_decrypt(&c, &c.encrypt(chinese))?;
    let len_field = raw.get(16..20).ok_or("short")?;
    assert_eq!(len_field, u32::try_from(chinese.len())?.to_be_bytes());
    Ok(())
}

#[test]
fn every_length_round_trips() -> TestResult {
    let c = crypto()?;
    for n in 0..200 {
        let msg: String = "é".repeat(n / 2) + &"a".repeat(n % 2);
        let encrypt = c.encrypt(&msg);
        assert!(!encrypt.contains('\n'));
        assert_eq!(c.decrypt(&encrypt)?, msg);
    }
    Ok(())
}

#[test]
fn aligned_message_gets_a_full_pad_block() -> TestResult {
    let c = crypto()?;
    // 20 (header) + 24 + 20 (owner) = 64: a multiple of 32.
    for msg in ["a".repeat(24), "b".repeat(56), "钉".repeat(8)] {
        let framed = 20 + msg.len() + OWNER.len();
        assert!(framed.is_multiple_of(32));
        let encrypt = c.encrypt(&msg);
        let raw = raw_decrypt(&c, &encrypt)?;
        assert_eq!(raw.len(), framed + 32);
        assert!(raw.get(framed..).ok_or("short")?.iter().all(|&b| b == 32));
        assert_eq!(c.decrypt(&encrypt)?, msg);
    }
    Ok(())
}

#[test]
fn random_prefixes_differ() -> TestResult {
    let c = crypto()?;
    let a = c.encrypt("success");
    let b = c.encrypt("success");
    assert_ne!(a, b);
    let prefix = raw_decrypt(&c, &a)?;
    assert!(prefix.get(..16).ok_or("short")?.iter().all(u8::is_ascii_alphanumeric));
    Ok(())
}

// ---------------------------------------------------------------- malformed plaintexts

#[test]
fn padding_and_layout_checks() -> TestResult {
    let c = crypto()?;
    let good = frame(b"hello", 5, OWNER.as_bytes());
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(good.clone(), 32)))?, "hello");
    // A decryptor that strips `last byte` also accepts 16-byte padding (Go sample, §E.4).
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(good.clone(), 16)))?, "hello");

    // Pad byte 0.
    let mut buf = good.clone();
    buf.resize(64, 0);
    assert_eq!(c.decrypt(&raw_encrypt(&c, buf)), Err(CryptoError::InvalidPadding));
    // Pad byte 33.
    let mut buf = good.clone();
    buf.resize(96, 33);
    assert_eq!(c.decrypt(&raw_encrypt(&c, buf)), Err(CryptoError::InvalidPadding));
    // Inconsistent pad bytes.
    let mut buf = pad(good.clone(), 32);
    let n = buf.len();
    if let Some(b) = buf.get_mut(n - 2) {
        *b ^= 1;
    }
    assert_eq!(c.decrypt(&raw_encrypt(&c, buf)), Err(CryptoError::InvalidPadding));
    // Pad 32 on a 16-byte ciphertext.
    assert_eq!(c.decrypt(&raw_encrypt(&c, vec![32; 16])), Err(CryptoError::InvalidPadding));
    // Pad 16 on a 16-byte ciphertext: nothing left.
    assert_eq!(c.decrypt(&raw_encrypt(&c, vec![16; 16])), Err(CryptoError::InvalidLayout));
    // Shorter than the header.
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(vec![b'a'; 19], 32))), Err(CryptoError::InvalidLayout));
    // Length field past the end, by one and by a lot.
    let over = u32::try_from(5 + OWNER.len() + 1)?;
    let buf = frame(b"hello", over, OWNER.as_bytes());
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(buf, 32))), Err(CryptoError::InvalidLayout));
    let buf = frame(b"hello", u32::MAX, OWNER.as_bytes());
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(buf, 32))), Err(CryptoError::InvalidLayout));
    // Length field swallowing the owner key: the owner is then empty.
    let all = u32::try_from(5 + OWNER.len())?;
    let buf = frame(b"hello", all, OWNER.as_bytes());
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(buf, 32))), Err(CryptoError::OwnerMismatch));
    // Not UTF-8.
    let buf = frame(b"\xff\xfe", 2, OWNER.as_bytes());
    assert_eq!(c.decrypt(&raw_encrypt(&c, pad(buf, 32))), Err(CryptoError::NotUtf8));
    Ok(())
}

#[test]
fn base64_and_length_checks() -> TestResult {
    let c = crypto()?;
    let good = c.encrypt("success");
    assert_eq!(c.decrypt(""), Err(CryptoError::InvalidLength));
    assert_eq!(c.decrypt("AAAA"), Err(CryptoError::InvalidLength));
    assert_eq!(c.decrypt(&STANDARD.encode([0u8; 17])), Err(CryptoError::InvalidLength));
    assert_eq!(c.decrypt("not base64!"), Err(CryptoError::InvalidBase64));
    assert_eq!(c.decrypt(&good.replace('=', "")), Err(CryptoError::InvalidBase64));
    Ok(())
}

/// MIME base64 as Python's `base64.encodebytes` writes it (the seed's crypto): a `\n` after every
/// 76 characters and at the end.
fn mime_wrap(encrypt: &str) -> String {
    encrypt.as_bytes().chunks(76).map(|chunk| String::from_utf8_lossy(chunk).into_owned() + "\n").collect()
}

#[test]
fn ascii_whitespace_inside_the_base64_is_ignored() -> TestResult {
    let c = crypto()?;
    let msg = "x".repeat(300);
    let good = c.encrypt(&msg);
    assert!(good.len() > 2 * 76);
    let wrapped = mime_wrap(&good);
    assert!(wrapped.matches('\n').count() >= 3);
    assert_eq!(c.decrypt(&wrapped)?, msg);
    let crlf = wrapped.replace('\n', "\r\n");
    assert_eq!(c.decrypt(&crlf)?, msg);
    for spaced in [format!("{good}\n"), format!(" {good}"), format!("\t{good} \r\n"), good.replace('A', "A \t")] {
        assert_eq!(c.decrypt(&spaced)?, msg, "{spaced:?}");
    }
    Ok(())
}

#[test]
fn base64_stays_strict_apart_from_whitespace() -> TestResult {
    let c = crypto()?;
    let good = c.encrypt("success");
    let wrapped = mime_wrap(&good);
    // Other characters: not whitespace as far as this decoder is concerned.
    for bad in ['\u{0b}', '\u{0c}', '\u{a0}', '-', '_', '.', '*'] {
        let text = format!("{}{bad}{}", &good[..8], &good[8..]);
        assert_eq!(c.decrypt(&text), Err(CryptoError::InvalidBase64), "{bad:?}");
    }
    // Padding: missing, extra, or in the middle.
    let unpadded = good.trim_end_matches('=');
    assert_ne!(unpadded, good, "the vector needs padding");
    assert_eq!(c.decrypt(&mime_wrap(unpadded)), Err(CryptoError::InvalidBase64));
    assert_eq!(c.decrypt(&format!("{wrapped}==")), Err(CryptoError::InvalidBase64));
    assert_eq!(c.decrypt(&format!("{}=\n{}", &good[..8], &good[8..])), Err(CryptoError::InvalidBase64));
    Ok(())
}

#[test]
fn the_signature_covers_encrypt_exactly_as_sent() -> TestResult {
    let c = crypto()?;
    let ts = NOW_MS.to_string();
    let msg = format!("{{\"EventType\":\"check_url\",\"pad\":\"{}\"}}", "p".repeat(200));
    let compact = c.encrypt(&msg);
    let wrapped = mime_wrap(&compact);
    // Signed over the wrapped text (what the seed signs and sends): verifies and decrypts.
    let q = signed(&c, &ts, "n0nce", &wrapped);
    assert_eq!(c.verify_and_decrypt(&q, &wrapped, NOW_MS)?, msg);
    // Signed over the stripped text but sent wrapped (or the reverse): refused.
    let q = signed(&c, &ts, "n0nce", &compact);
    assert_eq!(c.verify_and_decrypt(&q, &wrapped, NOW_MS), Err(CryptoError::SignatureMismatch));
    let q = signed(&c, &ts, "n0nce", &wrapped);
    assert_eq!(c.verify_and_decrypt(&q, &compact, NOW_MS), Err(CryptoError::SignatureMismatch));
    // A signed but otherwise invalid character is still refused after the signature check.
    let bad = format!("{}-{}", &wrapped[..8], &wrapped[8..]);
    let q = signed(&c, &ts, "n0nce", &bad);
    assert_eq!(c.verify_and_decrypt(&q, &bad, NOW_MS), Err(CryptoError::InvalidBase64));
    Ok(())
}

// ---------------------------------------------------------------- verify_and_decrypt

#[test]
fn verify_signature_names() -> TestResult {
    let c = crypto()?;
    let ts = NOW_MS.to_string();
    let encrypt = c.encrypt("{\"EventType\":\"check_url\"}");
    let sig = c.signature(&ts, "n0nce", &encrypt);
    let other = c.signature(&ts, "other", &encrypt);

    let only_signature = query(Some(&sig), None, Some(&ts), Some("n0nce"));
    assert_eq!(c.verify_and_decrypt(&only_signature, &encrypt, NOW_MS)?, "{\"EventType\":\"check_url\"}");
    let only_msg_signature = query(None, Some(&sig), Some(&ts), Some("n0nce"));
    assert!(c.verify_and_decrypt(&only_msg_signature, &encrypt, NOW_MS).is_ok());
    let both = query(Some(&sig), Some(&sig), Some(&ts), Some("n0nce"));
    assert!(c.verify_and_decrypt(&both, &encrypt, NOW_MS).is_ok());

    for q in [
        query(Some(&sig), Some(&other), Some(&ts), Some("n0nce")),
        query(Some(&other), Some(&sig), Some(&ts), Some("n0nce")),
        query(Some(&other), None, Some(&ts), Some("n0nce")),
        query(None, Some(&sig.to_uppercase()), Some(&ts), Some("n0nce")),
        query(None, Some(""), Some(&ts), Some("n0nce")),
        query(None, Some(sig.get(..39).ok_or("sig")?), Some(&ts), Some("n0nce")),
    ] {
        assert_eq!(c.verify_and_decrypt(&q, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch), "{q:?}");
    }
    Ok(())
}

#[test]
fn verify_missing_and_invalid_parameters() -> TestResult {
    let c = crypto()?;
    let ts = NOW_MS.to_string();
    let encrypt = c.encrypt("x");
    let sig = c.signature(&ts, "n", &encrypt);
    let check = |q: CallbackQuery, e: CryptoError| assert_eq!(c.verify_and_decrypt(&q, &encrypt, NOW_MS), Err(e));
    check(query(None, None, Some(&ts), Some("n")), CryptoError::MissingParameter("signature"));
    check(query(Some(&sig), None, None, Some("n")), CryptoError::MissingParameter("timestamp"));
    check(query(Some(&sig), None, Some(&ts), None), CryptoError::MissingParameter("nonce"));
    check(query(Some(&sig), None, Some(&ts), Some("")), CryptoError::InvalidParameter("nonce"));
    check(query(Some(&sig), None, Some(&ts), Some(&"n".repeat(65))), CryptoError::InvalidParameter("nonce"));
    for bad_ts in ["", "abc", "-1", "+1785000000000", "1785000000000.0", " 1785000000000", "99999999999999999999999"] {
        check(query(Some(&sig), None, Some(bad_ts), Some("n")), CryptoError::InvalidParameter("timestamp"));
    }
    // A 64-character nonce is fine.
    let nonce = "n".repeat(64);
    assert!(c.verify_and_decrypt(&signed(&c, &ts, &nonce, &encrypt), &encrypt, NOW_MS).is_ok());
    Ok(())
}

#[test]
fn verify_tampering() -> TestResult {
    let c = crypto()?;
    let ts = NOW_MS.to_string();
    let encrypt = c.encrypt("payload");
    let q = signed(&c, &ts, "nonce1", &encrypt);
    assert_eq!(c.verify_and_decrypt(&q, &encrypt, NOW_MS)?, "payload");

    // Tampered signature: flip each hex digit.
    let sig = q.msg_signature.clone().unwrap_or_default();
    for i in 0..sig.len() {
        let mut bytes = sig.clone().into_bytes();
        if let Some(b) = bytes.get_mut(i) {
            *b = if *b == b'0' { b'1' } else { b'0' };
        }
        let tampered = String::from_utf8(bytes)?;
        let tq = query(None, Some(&tampered), Some(&ts), Some("nonce1"));
        assert_eq!(c.verify_and_decrypt(&tq, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch));
    }
    // Tampered ciphertext, nonce or timestamp under the original signature.
    let other = c.encrypt("payload");
    assert_eq!(c.verify_and_decrypt(&q, &other, NOW_MS), Err(CryptoError::SignatureMismatch));
    let mut tq = q.clone();
    tq.nonce = Some("nonce2".into());
    assert_eq!(c.verify_and_decrypt(&tq, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch));
    let mut tq = q.clone();
    tq.timestamp = Some((NOW_MS + 1).to_string());
    assert_eq!(c.verify_and_decrypt(&tq, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch));
    // Another token.
    let c2 = CallbackCrypto::new("othertoken", AES_KEY, OWNER)?;
    assert_eq!(c2.verify_and_decrypt(&q, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch));
    Ok(())
}

#[test]
fn verify_timestamp_window() -> TestResult {
    let c = crypto()?;
    let encrypt = c.encrypt("x");
    let window_ms = i64::try_from(DEFAULT_WINDOW.as_millis())?;
    let at = |ts: String, now: i64| c.verify_and_decrypt(&signed(&c, &ts, "n", &encrypt), &encrypt, now);

    // Milliseconds.
    assert!(at((NOW_MS - window_ms).to_string(), NOW_MS).is_ok());
    assert!(at((NOW_MS + window_ms).to_string(), NOW_MS).is_ok());
    assert_eq!(at((NOW_MS - window_ms - 1).to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at((NOW_MS + window_ms + 1).to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at((NOW_MS - 11 * 60 * 1000).to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    // Seconds (Python library form, §E.5).
    let now_s = NOW_MS / 1000;
    assert!(at(now_s.to_string(), NOW_MS).is_ok());
    assert!(at((now_s - 599).to_string(), NOW_MS).is_ok());
    assert_eq!(at((now_s - 601).to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at((now_s + 601).to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    // The seed accepted `timestamp=1` (docs/seed.md §5).
    assert_eq!(at("1".into(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at("0".into(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at(u64::MAX.to_string(), NOW_MS), Err(CryptoError::InvalidParameter("timestamp")));
    assert_eq!(at(i64::MAX.to_string(), NOW_MS), Err(CryptoError::StaleTimestamp));
    assert_eq!(at(NOW_MS.to_string(), i64::MIN), Err(CryptoError::StaleTimestamp));

    // A configured window.
    let narrow = crypto()?.with_window(Duration::from_secs(5));
    assert_eq!(narrow.window(), Duration::from_secs(5));
    let q = signed(&narrow, &(NOW_MS - 6000).to_string(), "n", &encrypt);
    assert_eq!(narrow.verify_and_decrypt(&q, &encrypt, NOW_MS), Err(CryptoError::StaleTimestamp));
    let q = signed(&narrow, &(NOW_MS - 4000).to_string(), "n", &encrypt);
    assert!(narrow.verify_and_decrypt(&q, &encrypt, NOW_MS).is_ok());
    Ok(())
}

#[test]
fn replay_key_is_per_owner_and_nonce() -> TestResult {
    let c = crypto()?;
    let q = query(None, None, Some("1"), Some("abc"));
    assert_eq!(c.replay_key(&q), Some(format!("{OWNER}:abc")));
    assert_eq!(c.replay_key(&CallbackQuery::default()), None);
    Ok(())
}

#[test]
fn query_deserializes() -> TestResult {
    let q: CallbackQuery = serde_json::from_str(r#"{"signature":"s","timestamp":"1","nonce":"n"}"#)?;
    assert_eq!(q, query(Some("s"), None, Some("1"), Some("n")));
    Ok(())
}

// ---------------------------------------------------------------- replies

#[test]
fn reply_shape_and_signature() -> TestResult {
    let c = crypto()?;
    let reply = c.success_reply(NOW_MS);
    let json: Value = serde_json::to_value(&reply)?;
    let obj = json.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["encrypt", "msg_signature", "nonce", "timeStamp"]);
    assert!(obj.values().all(Value::is_string));
    assert_eq!(reply.timestamp, NOW_MS.to_string());
    assert_eq!(reply.nonce.len(), 16);
    assert!(reply.nonce.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(!reply.encrypt.contains('\n'));
    assert_eq!(reply.msg_signature, c.signature(&reply.timestamp, &reply.nonce, &reply.encrypt));
    assert_eq!(c.decrypt(&reply.encrypt)?, "success");
    // DingTalk's check: the reply verifies like a request would.
    let q = query(None, Some(&reply.msg_signature), Some(&reply.timestamp), Some(&reply.nonce));
    assert_eq!(c.verify_and_decrypt(&q, &reply.encrypt, NOW_MS)?, "success");
    let back: CallbackReply = serde_json::from_value(json)?;
    assert_eq!(back, reply);
    assert_ne!(c.success_reply(NOW_MS).nonce, reply.nonce);

    let r = c.reply("hello", "1608001896814", "WL4PK6yA");
    assert_eq!((r.timestamp.as_str(), r.nonce.as_str()), ("1608001896814", "WL4PK6yA"));
    assert_eq!(r.msg_signature, c.signature("1608001896814", "WL4PK6yA", &r.encrypt));
    assert_eq!(c.decrypt(&r.encrypt)?, "hello");
    Ok(())
}

// ---------------------------------------------------------------- randomized sweep

/// Random base64-looking text: the alphabet plus `=`, whitespace and a few
/// stray characters.
fn random_base64ish(rng: &mut impl rand::Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==== \n-_.";
    (0..len).map(|_| char::from(CHARS.get(rng.random_range(0..CHARS.len())).copied().unwrap_or(b'A'))).collect()
}

#[test]
fn randomized_inputs_never_panic() -> TestResult {
    const PER_KIND: usize = 6_000;
    let c = crypto()?;
    let mut rng = rand::rng();
    let ts = NOW_MS.to_string();
    let mut inputs = 0usize;
    let mut decrypt_ok_after_flip = 0usize;

    for kind in 0..4 {
        for _ in 0..PER_KIND {
            let (encrypt, original) = match kind {
                // Random bytes of random length, as (lossy) text.
                0 => {
                    let mut bytes = vec![0u8; rng.random_range(0..200)];
                    rng.fill_bytes(&mut bytes);
                    (String::from_utf8_lossy(&bytes).into_owned(), None)
                }
                // Random base64-looking text.
                1 => {
                    let len = rng.random_range(0..200);
                    (random_base64ish(&mut rng, len), None)
                }
                // Valid base64 of random bytes; half of them whole AES blocks.
                2 => {
                    let len = if rng.random() { 16 * rng.random_range(0..13) } else { rng.random_range(0..200) };
                    let mut bytes = vec![0u8; len];
                    rng.fill_bytes(&mut bytes);
                    (STANDARD.encode(&bytes), None)
                }
                // A valid ciphertext, untouched or with one bit flipped.
                _ => {
                    let mut msg = vec![0u8; rng.random_range(0..200)];
                    rng.fill_bytes(&mut msg);
                    let msg = String::from_utf8_lossy(&msg).into_owned();
                    let encrypt = c.encrypt(&msg);
                    if rng.random_range(0..4) == 0 {
                        (encrypt, Some((msg, true)))
                    } else {
                        let mut bytes = STANDARD.decode(&encrypt)?;
                        let bit = rng.random_range(0..bytes.len() * 8);
                        if let Some(b) = bytes.get_mut(bit / 8) {
                            *b ^= 1 << (bit % 8);
                        }
                        (STANDARD.encode(&bytes), Some((msg, false)))
                    }
                }
            };
            inputs += 1;

            let decrypted = c.decrypt(&encrypt);
            let nonce_len = rng.random_range(0..70);
            let nonce = random_base64ish(&mut rng, nonce_len);
            let with_sig = signed(&c, &ts, &nonce, &encrypt);
            let verified = c.verify_and_decrypt(&with_sig, &encrypt, NOW_MS);
            let random_sig = query(Some(&random_base64ish(&mut rng, 40)), None, Some(&ts), Some(&nonce));
            assert!(c.verify_and_decrypt(&random_sig, &encrypt, NOW_MS).is_err());
            let random_ts = rng.random::<u64>().to_string();
            let q = signed(&c, &random_ts, "n", &encrypt);
            let stale = c.verify_and_decrypt(&q, &encrypt, NOW_MS);

            match original {
                Some((msg, true)) => {
                    assert_eq!(decrypted.as_ref(), Ok(&msg));
                    let nonce_ok = (1..=64).contains(&nonce.chars().count());
                    assert_eq!(verified, if nonce_ok { Ok(msg) } else { Err(CryptoError::InvalidParameter("nonce")) });
                    assert!(stale.is_err());
                }
                Some((msg, false)) => {
                    // CBC is malleable: a flip may still decrypt (to another
                    // message); with the original signature it never verifies.
                    if let Ok(m) = &decrypted {
                        decrypt_ok_after_flip += 1;
                        assert_ne!(m, &msg);
                    }
                    let q = signed(&c, &ts, "n", &c.encrypt(&msg));
                    assert_eq!(c.verify_and_decrypt(&q, &encrypt, NOW_MS), Err(CryptoError::SignatureMismatch));
                }
                None => {
                    assert!(decrypted.is_err(), "{encrypt:?} decrypted");
                    assert!(verified.is_err());
                    assert!(stale.is_err());
                }
            }
        }
    }
    assert_eq!(inputs, 4 * PER_KIND);
    println!("randomized sweep: {inputs} inputs, {decrypt_ok_after_flip} bit-flipped ciphertexts still decrypted");
    Ok(())
}
