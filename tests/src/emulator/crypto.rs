//! The emulator's own DingTalk crypto, written from `docs/dingtalk-api.md` only (never shared with the client code,
//! so the two cannot share a misreading):
//! - HTTP event callback signature (docs/dingtalk-api.md §E.3) and encryption (§E.4), used by the event pusher to
//!   encrypt events and to verify the app's `success` reply (§E.5);
//! - the ISV request signature of the legacy `service/get_corp_token` (§B.4).
//!
//! The three official vectors of §E.7 are checked in the emulator tests (signature, decryption and
//! byte-exact re-encryption with the recovered random prefix).

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// docs/dingtalk-api.md §E.4: PKCS#7 padding with a **32-byte** block (pad count 1..=32).
const PAD_BLOCK: usize = 32;
/// docs/dingtalk-api.md §E.4: random prefix length.
const PREFIX_LEN: usize = 16;
/// docs/dingtalk-api.md §E.1: EncodingAESKey length.
const AES_KEY_CHARS: usize = 43;

/// Why a callback message could not be handled (names follow docs/dingtalk-api.md §E.8 where one fits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 characters of `[A-Za-z0-9]` (§E.1, library code 900004).
    InvalidAesKey,
    /// `encrypt` is not valid base64.
    Base64,
    /// The ciphertext is empty or not a whole number of AES blocks (900008).
    CipherLength,
    /// The decrypted buffer is too short for prefix + length, or the length field points past the end (900009).
    Frame,
    /// The message is not UTF-8.
    NotUtf8,
    /// The trailing owner key differs from the expected one (900010 "计算解密文字corpid不匹配").
    OwnerKeyMismatch {
        /// The owner key found in the message.
        found: String,
    },
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::InvalidAesKey => f.write_str("aes_key must be 43 characters of [A-Za-z0-9] (900004)"),
            CryptoError::Base64 => f.write_str("encrypt is not valid base64"),
            CryptoError::CipherLength => f.write_str("ciphertext is not a whole number of AES blocks (900008)"),
            CryptoError::Frame => f.write_str("decrypted buffer has a bad length field (900009)"),
            CryptoError::NotUtf8 => f.write_str("decrypted message is not UTF-8"),
            CryptoError::OwnerKeyMismatch { found } => {
                write!(f, "decrypted owner key {found:?} does not match (900010)")
            }
        }
    }
}

impl std::error::Error for CryptoError {}

/// A decrypted callback message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The 16-byte random prefix (lets a test re-encrypt byte-exactly).
    pub prefix: [u8; PREFIX_LEN],
    /// The message (UTF-8 JSON for events, `success` for replies).
    pub msg: String,
}

/// Signs, encrypts and decrypts callback messages for one `(token, aes_key, owner key)` triple.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    owner_key: String,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto").field("owner_key", &self.owner_key).finish_non_exhaustive()
    }
}

/// Base64 that tolerates non-zero trailing bits: 43 key characters carry 258 bits for 256 key bits,
/// and real keys (e.g. §E.7 vectors 2 and 3) have the two spare bits set — the reference libraries
/// decode them anyway, a strict decoder would reject them.
const LENIENT: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// docs/dingtalk-api.md §E.4: `AESKey = Base64_Decode(aes_key + "=")` → 32 bytes.
pub fn aes_key_bytes(aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if aes_key.len() != AES_KEY_CHARS || !aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CryptoError::InvalidAesKey);
    }
    let bytes = LENIENT.decode(format!("{aes_key}=")).map_err(|_| CryptoError::InvalidAesKey)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| CryptoError::InvalidAesKey)
}

/// docs/dingtalk-api.md §E.3: `hex_lower(SHA1(concat(sort([token, timestamp, nonce, encrypt]))))`.
pub fn callback_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    // Byte-wise lexicographic order, which is Java's `Arrays.sort` order for ASCII.
    parts.sort_unstable();
    let digest = Sha1::digest(parts.concat().as_bytes());
    hex_lower(digest.as_slice())
}

/// docs/dingtalk-api.md §B.4: `Base64(HmacSHA256(key = suiteSecret, msg = timestamp + "\n" + suiteTicket))`
/// (before URL-encoding; the query carries it URL-encoded).
pub fn suite_signature(suite_secret: &str, timestamp: &str, suite_ticket: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty tag defensively.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(suite_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp}\n{suite_ticket}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A random string over `[A-Za-z0-9]` (the Java library's prefix and nonce alphabet, §E.4/§E.5).
pub(crate) fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())])).collect()
}

impl CallbackCrypto {
    /// Checks the EncodingAESKey (§E.1) and keeps the triple.
    pub fn new(token: &str, aes_key: &str, owner_key: &str) -> Result<CallbackCrypto, CryptoError> {
        Ok(CallbackCrypto { token: token.to_owned(), key: aes_key_bytes(aes_key)?, owner_key: owner_key.to_owned() })
    }

    /// The owner key (`$key`: AppKey, corpId or SuiteKey — §E.1).
    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// §E.3 signature with this triple's token.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        callback_signature(&self.token, timestamp, nonce, encrypt)
    }

    /// §E.4 encryption with a fresh random prefix (16 characters of `[A-Za-z0-9]`, as the Java library).
    pub fn encrypt(&self, msg: &str) -> String {
        let prefix = random_alnum(PREFIX_LEN);
        let mut p = [0u8; PREFIX_LEN];
        p.copy_from_slice(&prefix.as_bytes()[..PREFIX_LEN]);
        self.encrypt_with_prefix(&p, msg)
    }

    /// §E.4 encryption with a given prefix: `prefix ‖ be32(len(msg)) ‖ msg ‖ owner key`, PKCS#7 to
    /// 32 bytes, AES-256-CBC with IV = key[0..16], standard base64.
    pub fn encrypt_with_prefix(&self, prefix: &[u8; PREFIX_LEN], msg: &str) -> String {
        let msg = msg.as_bytes();
        let mut buf = Vec::with_capacity(PREFIX_LEN + 4 + msg.len() + self.owner_key.len() + PAD_BLOCK);
        buf.extend_from_slice(prefix);
        // A u32 length: messages over 4 GiB cannot be framed (never happens for events).
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(self.owner_key.as_bytes());
        let pad = PAD_BLOCK - buf.len() % PAD_BLOCK; // 1..=32: a whole block when already aligned
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        let iv = self.iv();
        // The buffer is a multiple of 32, hence of the AES block size, so NoPadding cannot fail.
        let cipher = cbc::Encryptor::<Aes256>::new(&self.key.into(), &iv.into()).encrypt_padded_vec::<NoPadding>(&buf);
        STANDARD.encode(cipher)
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Base64-decodes and AES-decrypts without unpadding or parsing (for the raw-AES vector).
    pub(crate) fn decrypt_raw(&self, encrypt: &str) -> Result<Vec<u8>, CryptoError> {
        let cipher = STANDARD.decode(encrypt.trim()).map_err(|_| CryptoError::Base64)?;
        if cipher.is_empty() {
            return Err(CryptoError::CipherLength);
        }
        let iv = self.iv();
        cbc::Decryptor::<Aes256>::new(&self.key.into(), &iv.into())
            .decrypt_padded_vec::<NoPadding>(&cipher)
            .map_err(|_| CryptoError::CipherLength)
    }

    /// §E.4 decryption: strip the pad (like the Java library: only when the last byte is 1..=32),
    /// read the big-endian length, split message and owner key, and require the owner key to match.
    pub fn decrypt(&self, encrypt: &str) -> Result<Decrypted, CryptoError> {
        let mut buf = self.decrypt_raw(encrypt)?;
        if let Some(&last) = buf.last() {
            let pad = usize::from(last);
            if (1..=PAD_BLOCK).contains(&pad) && pad <= buf.len() {
                buf.truncate(buf.len() - pad);
            }
        }
        let (Some(prefix), Some(len)) = (buf.get(..PREFIX_LEN), buf.get(PREFIX_LEN..PREFIX_LEN + 4)) else {
            return Err(CryptoError::Frame);
        };
        let mut p = [0u8; PREFIX_LEN];
        p.copy_from_slice(prefix);
        let mut l = [0u8; 4];
        l.copy_from_slice(len);
        let len = usize::try_from(u32::from_be_bytes(l)).map_err(|_| CryptoError::Frame)?;
        let start = PREFIX_LEN + 4;
        let end = start.checked_add(len).ok_or(CryptoError::Frame)?;
        let (Some(msg), Some(owner)) = (buf.get(start..end), buf.get(end..)) else {
            return Err(CryptoError::Frame);
        };
        let msg = String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotUtf8)?;
        if owner != self.owner_key.as_bytes() {
            return Err(CryptoError::OwnerKeyMismatch { found: String::from_utf8_lossy(owner).into_owned() });
        }
        Ok(Decrypted { prefix: p, msg })
    }
}
