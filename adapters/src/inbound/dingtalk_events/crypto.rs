//! DingTalk HTTP event-callback cryptography (docs/dingtalk-api.md §E, "DingTalkCrypto" /
//! "DingCallbackCrypto").
//!
//! - [`CallbackCrypto`]: one subscription's `token`, `aes_key` and owner key
//!   (docs/dingtalk-api.md §E.1); computes the SHA-1 signature (§E.3), encrypts and decrypts
//!   the `encrypt` field (§E.4), checks an incoming request (§E.2) and builds
//!   the JSON reply every event needs (§E.5).
//! - [`CallbackQuery`]: the query parameters of an incoming callback (§E.2).
//! - [`CallbackReply`]: the JSON reply (§E.5).
//! - [`CryptoError`]: every way an input can be rejected; each maps to a clean
//!   HTTP 4xx (400 or 401/403) and, where one exists, to a library code of §E.8.
//!
//! Unlike the Python seed (docs/seed.md §5) this module counts lengths and
//! padding in bytes, draws the random prefix and the nonce from a CSPRNG, emits
//! base64 without line breaks, compares signatures and owner keys in constant
//! time, rejects a zero or inconsistent padding byte and checks the timestamp's
//! freshness. Nothing here panics on malformed input, and no secret (token, AES
//! key) appears in `Debug` output or in an error.
//!
//! Like the seed, it accepts the seed's own output: MIME base64 (a line break
//! every 76 characters) in a received `encrypt`. ASCII whitespace is ignored
//! when decoding, never when verifying the signature, which covers `encrypt`
//! exactly as sent (docs/dingtalk-api.md §E.3).
//!
//! AES-CBC is not authenticated: call [`CallbackCrypto::decrypt`] directly only
//! on data whose signature has been checked, or use
//! [`CallbackCrypto::verify_and_decrypt`], which checks the signature first (so
//! the distinct decryption errors cannot serve as a padding oracle).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::RngExt as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};
use subtle::ConstantTimeEq as _;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Default freshness window for a callback's `timestamp` (see
/// [`CallbackCrypto::with_window`]): ten minutes either way.
pub const DEFAULT_WINDOW: Duration = Duration::from_mins(10);

/// Padding block of the framed plaintext: PKCS#7 to **32** bytes (docs/dingtalk-api.md §E.4,
/// Java `BLOCK_SIZE = 32`), not the AES block size.
const PAD_BLOCK: usize = 32;
/// AES block size; a ciphertext is a whole number of these.
const AES_BLOCK: usize = 16;
/// Length of the random prefix (docs/dingtalk-api.md §E.4).
const PREFIX_LEN: usize = 16;
/// Random prefix plus the 4-byte big-endian length field (docs/dingtalk-api.md §E.4).
const HEADER_LEN: usize = PREFIX_LEN + 4;
/// Length of an `EncodingAESKey` (docs/dingtalk-api.md §E.1).
const AES_KEY_CHARS: usize = 43;
/// Accepted token lengths: console 3–32, legacy registration < 64 (docs/dingtalk-api.md §E.1).
const TOKEN_CHARS: std::ops::RangeInclusive<usize> = 3..=64;
/// Accepted nonce lengths, in characters.
const NONCE_CHARS: std::ops::RangeInclusive<usize> = 1..=64;
/// Length of the nonce [`CallbackCrypto::success_reply`] generates (Java uses 16).
const REPLY_NONCE_CHARS: usize = 16;
/// Timestamps above this are epoch milliseconds, at or below it epoch seconds
/// (10^11 s is the year 5138; 10^11 ms is March 1973).
const MS_THRESHOLD: u64 = 100_000_000_000;

/// Base64 for the `EncodingAESKey` + `"="`: 43 characters carry 258 bits, so
/// the last character has 2 unused bits that Java's decoder ignores and that
/// DingTalk keys do not zero (vector 1 of §E.7 ends in `j`). Trailing bits are
/// therefore allowed here, and only here.
const AES_KEY_BASE64: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// Why a configuration or a callback was rejected.
///
/// Every variant other than [`CryptoError::InvalidConfig`] is caused by the
/// request and maps to an HTTP 4xx: [`CryptoError::SignatureMismatch`] and
/// [`CryptoError::StaleTimestamp`] to 401/403, the rest to 400. The messages
/// carry no secret and no request data. [`CryptoError::library_code`] gives the
/// DingTalk library code (docs/dingtalk-api.md §E.8) where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The token, `aes_key` or owner key is malformed (docs/dingtalk-api.md §E.1). Library
    /// code 900004 ("不合法的aes key") for the AES key.
    #[error("invalid callback crypto configuration: {0}")]
    InvalidConfig(&'static str),
    /// A required query parameter (`signature`/`msg_signature`, `timestamp`,
    /// `nonce`) is absent (docs/dingtalk-api.md §E.2). No library code.
    #[error("missing callback parameter: {0}")]
    MissingParameter(&'static str),
    /// A query parameter is present but malformed: a `timestamp` that is not a
    /// decimal integer (library code 900002, "加密时间戳参数非法") or a `nonce`
    /// outside 1–64 characters (900003, "加密随机字符串参数非法").
    #[error("invalid callback parameter: {0}")]
    InvalidParameter(&'static str),
    /// The signature does not match (docs/dingtalk-api.md §E.3), or `signature` and
    /// `msg_signature` disagree. Library code 900005 ("签名不匹配"; Java also
    /// throws 900006).
    #[error("callback signature mismatch")]
    SignatureMismatch,
    /// The `timestamp` is outside the freshness window. No library code (the
    /// libraries do not check freshness).
    #[error("callback timestamp outside the accepted window")]
    StaleTimestamp,
    /// `encrypt` is not standard base64 (docs/dingtalk-api.md §E.4): a character outside the
    /// alphabet other than ASCII whitespace, or bad padding. Library code
    /// 900008 ("计算解密文字错误").
    #[error("callback ciphertext is not valid base64")]
    InvalidBase64,
    /// The ciphertext is empty or not a multiple of the AES block size. Library
    /// code 900008.
    #[error("callback ciphertext has an invalid length")]
    InvalidLength,
    /// The PKCS#7 padding (32-byte block, docs/dingtalk-api.md §E.4) is malformed. Library
    /// code 900008.
    #[error("callback plaintext has invalid padding")]
    InvalidPadding,
    /// The framed plaintext is shorter than the 20-byte header, or its length
    /// field points past the end (docs/dingtalk-api.md §E.4). Library code 900009
    /// ("计算解密文字长度不匹配").
    #[error("callback plaintext has an invalid layout")]
    InvalidLayout,
    /// The message is not UTF-8. Library code 900008.
    #[error("callback message is not UTF-8")]
    NotUtf8,
    /// The owner key after the message is not the configured one (docs/dingtalk-api.md
    /// §E.1, §E.4). Library code 900010 ("计算解密文字corpid不匹配").
    #[error("callback owner key mismatch")]
    OwnerMismatch,
}

impl CryptoError {
    /// The DingTalk library error code (docs/dingtalk-api.md §E.8) closest to this error, if
    /// any.
    #[must_use]
    pub fn library_code(&self) -> Option<u32> {
        match self {
            Self::InvalidConfig(_) => Some(900_004),
            Self::MissingParameter(_) | Self::StaleTimestamp => None,
            Self::InvalidParameter(name) if *name == "nonce" => Some(900_003),
            Self::InvalidParameter(_) => Some(900_002),
            Self::SignatureMismatch => Some(900_005),
            Self::InvalidBase64 | Self::InvalidLength | Self::InvalidPadding | Self::NotUtf8 => Some(900_008),
            Self::InvalidLayout => Some(900_009),
            Self::OwnerMismatch => Some(900_010),
        }
    }
}

/// Query parameters of an incoming callback (docs/dingtalk-api.md §E.2):
/// `POST <url>?signature=..&timestamp=..&nonce=..` (newer senders also, or
/// instead, send `msg_signature`). Deserializable from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallbackQuery {
    /// `signature` (documented name, docs/dingtalk-api.md §E.2).
    pub signature: Option<String>,
    /// `msg_signature` (newer docs and demos, docs/dingtalk-api.md §E.2).
    pub msg_signature: Option<String>,
    /// `timestamp`, epoch ms or epoch seconds, as sent (docs/dingtalk-api.md §E.2).
    pub timestamp: Option<String>,
    /// `nonce` (docs/dingtalk-api.md §E.2).
    pub nonce: Option<String>,
}

/// The JSON reply to a callback (docs/dingtalk-api.md §E.5): keys exactly `msg_signature`,
/// `timeStamp`, `nonce`, `encrypt`, all strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackReply {
    /// SHA-1 signature over (token, `timeStamp`, `nonce`, `encrypt`) (§E.3).
    pub msg_signature: String,
    /// The timestamp string that was signed.
    #[serde(rename = "timeStamp")]
    pub timestamp: String,
    /// The nonce that was signed.
    pub nonce: String,
    /// Base64 ciphertext of the reply (§E.4), typically of `success`.
    pub encrypt: String,
}

/// One callback subscription's crypto (docs/dingtalk-api.md §E): token, AES key and owner
/// key (AppKey, corpId or SuiteKey, §E.1), plus the timestamp freshness
/// window. Cheap to clone; `Debug` shows neither the token nor the key.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    iv: [u8; 16],
    owner_key: String,
    window: Duration,
}

impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("token", &"<redacted>")
            .field("aes_key", &"<redacted>")
            .field("owner_key", &self.owner_key)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl CallbackCrypto {
    /// Builds the crypto for one subscription (docs/dingtalk-api.md §E.1).
    ///
    /// - `token`: 3–64 characters from `[A-Za-z0-9]` (console allows 3–32,
    ///   legacy registration < 64);
    /// - `aes_key`: the 43-character `EncodingAESKey` from `[A-Za-z0-9]`,
    ///   decoded as standard base64 with `"="` appended to 32 bytes (AES-256);
    /// - `owner_key`: the AppKey (app-level subscription), corpId (org-level
    ///   registration) or SuiteKey (third-party app); non-empty.
    ///
    /// # Errors
    /// [`CryptoError::InvalidConfig`] naming the bad part (never its value).
    pub fn new(token: &str, aes_key: &str, owner_key: &str) -> Result<Self, CryptoError> {
        if !TOKEN_CHARS.contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CryptoError::InvalidConfig("token must be 3-64 characters [A-Za-z0-9]"));
        }
        if aes_key.len() != AES_KEY_CHARS || !aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CryptoError::InvalidConfig("aes_key must be exactly 43 characters [A-Za-z0-9]"));
        }
        let decoded = AES_KEY_BASE64
            .decode(format!("{aes_key}="))
            .map_err(|_| CryptoError::InvalidConfig("aes_key is not valid base64"))?;
        let key: [u8; 32] =
            decoded.try_into().map_err(|_| CryptoError::InvalidConfig("aes_key does not decode to 32 bytes"))?;
        // IV = AESKey[0:16] (docs/dingtalk-api.md §E.4).
        let iv = *key.first_chunk::<16>().ok_or(CryptoError::InvalidConfig("aes_key is too short"))?;
        if owner_key.is_empty() {
            return Err(CryptoError::InvalidConfig("owner key (AppKey, corpId or SuiteKey) must not be empty"));
        }
        Ok(Self { token: token.to_owned(), key, iv, owner_key: owner_key.to_owned(), window: DEFAULT_WINDOW })
    }

    /// Sets the timestamp freshness window used by
    /// [`CallbackCrypto::verify_and_decrypt`] (default [`DEFAULT_WINDOW`], 10
    /// minutes): a request is rejected when `|now - timestamp| > window`.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The timestamp freshness window. A replay store keyed by
    /// [`CallbackCrypto::replay_key`] must keep keys at least twice this long
    /// (timestamps are accepted up to one window in the past or the future).
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The owner key (AppKey, corpId or SuiteKey) this crypto checks and appends
    /// (docs/dingtalk-api.md §E.1). Not a secret.
    #[must_use]
    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// The signature of docs/dingtalk-api.md §E.3: the four strings (token, `timestamp`,
    /// `nonce`, `encrypt`) sorted byte-wise, concatenated without separator,
    /// SHA-1, 40 lowercase hex characters. `encrypt` is the base64 text exactly
    /// as in the JSON. (Byte order equals Java's `Arrays.sort` for ASCII.)
    #[must_use]
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for part in parts {
            sha.update(part.as_bytes());
        }
        hex_lower(&sha.finalize())
    }

    /// Encrypts `plaintext` as docs/dingtalk-api.md §E.4 describes, with a fresh random
    /// prefix of 16 characters `[A-Za-z0-9]` (like Java) from the thread-local
    /// CSPRNG. Returns standard base64 without line breaks.
    ///
    /// Plaintexts longer than `u32::MAX` bytes (4 GiB) cannot be framed; their
    /// length field saturates and the peer will reject them.
    #[must_use]
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut rng = rand::rng();
        let prefix: [u8; PREFIX_LEN] = std::array::from_fn(|_| rng.sample(Alphanumeric));
        self.encrypt_with_prefix(plaintext, prefix)
    }

    /// [`CallbackCrypto::encrypt`] with a given random prefix: `prefix` ‖ u32
    /// big-endian byte length of `plaintext` ‖ `plaintext` ‖ owner key, PKCS#7
    /// padded to 32 bytes (1–32 pad bytes, a full block when aligned),
    /// AES-256-CBC without further padding, IV = key[..16], standard base64.
    ///
    /// Deterministic; meant for tests (byte-exact re-encryption of the official
    /// vectors, docs/dingtalk-api.md §E.7). Production code should call
    /// [`CallbackCrypto::encrypt`].
    #[must_use]
    pub fn encrypt_with_prefix(&self, plaintext: &str, prefix: [u8; PREFIX_LEN]) -> String {
        let msg = plaintext.as_bytes();
        let msg_len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        let framed_len = HEADER_LEN + msg.len() + self.owner_key.len();
        let pad = PAD_BLOCK - framed_len % PAD_BLOCK; // 1..=32
        let mut buf = Vec::with_capacity(framed_len + pad);
        buf.extend_from_slice(&prefix);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(self.owner_key.as_bytes());
        // `pad` is at most 32, so the cast cannot truncate.
        buf.resize(framed_len + pad, pad as u8);

        let mut encryptor = Aes256CbcEnc::new(&self.key.into(), &self.iv.into());
        // The buffer is a multiple of 32 bytes, so there is no tail.
        let (blocks, _tail) = Array::<u8, U16>::slice_as_chunks_mut(&mut buf);
        encryptor.encrypt_blocks(blocks);
        STANDARD.encode(&buf)
    }

    /// Decrypts an `encrypt` value (docs/dingtalk-api.md §E.4) and returns the message.
    ///
    /// Checks, in order: strict standard base64 once ASCII whitespace (space,
    /// `\t`, `\r`, `\n`: MIME line breaks) is removed; a positive multiple of 16
    /// bytes; after AES-256-CBC, a padding byte in 1..=32 whose bytes all
    /// agree; at least the 20-byte header; a length field that fits; a UTF-8
    /// message; and an owner key equal (in constant time) to the configured
    /// one.
    ///
    /// Does not check the signature: see the module docs, and prefer
    /// [`CallbackCrypto::verify_and_decrypt`] for incoming requests.
    ///
    /// # Errors
    /// [`CryptoError::InvalidBase64`], [`CryptoError::InvalidLength`],
    /// [`CryptoError::InvalidPadding`], [`CryptoError::InvalidLayout`],
    /// [`CryptoError::NotUtf8`] or [`CryptoError::OwnerMismatch`].
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut buf =
            STANDARD.decode(strip_base64_whitespace(encrypt).as_ref()).map_err(|_| CryptoError::InvalidBase64)?;
        if buf.is_empty() || !buf.len().is_multiple_of(AES_BLOCK) {
            return Err(CryptoError::InvalidLength);
        }
        let mut decryptor = Aes256CbcDec::new(&self.key.into(), &self.iv.into());
        let (blocks, _tail) = Array::<u8, U16>::slice_as_chunks_mut(&mut buf);
        decryptor.decrypt_blocks(blocks);

        let unpadded = strip_padding(&buf)?;
        let (header, rest) = unpadded.split_at_checked(HEADER_LEN).ok_or(CryptoError::InvalidLayout)?;
        let len_bytes: [u8; 4] =
            header.get(PREFIX_LEN..).and_then(|b| b.try_into().ok()).ok_or(CryptoError::InvalidLayout)?;
        let msg_len = usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::InvalidLayout)?;
        let (msg, owner) = rest.split_at_checked(msg_len).ok_or(CryptoError::InvalidLayout)?;
        let msg = std::str::from_utf8(msg).map_err(|_| CryptoError::NotUtf8)?;
        if !bool::from(owner.ct_eq(self.owner_key.as_bytes())) {
            return Err(CryptoError::OwnerMismatch);
        }
        Ok(msg.to_owned())
    }

    /// Checks an incoming callback (docs/dingtalk-api.md §E.2, §E.3) and decrypts its
    /// `encrypt` field (§E.4).
    ///
    /// 1. The signature is `msg_signature` or `signature`; when both are
    ///    present they must be equal.
    /// 2. `timestamp` must be present and a decimal integer; `nonce` present
    ///    and 1–64 characters.
    /// 3. The signature over (token, `timestamp`, `nonce`, `encrypt`) must
    ///    match, compared in constant time.
    /// 4. The timestamp must be within the window of `now_ms` (epoch ms):
    ///    values above 10^11 are read as epoch milliseconds (DingTalk's usual
    ///    form, §E.2), smaller ones as epoch seconds (the Python library, §E.5).
    /// 5. [`CallbackCrypto::decrypt`].
    ///
    /// The signature covers `encrypt` exactly as sent (docs/dingtalk-api.md
    /// §E.3), line breaks included; only the decryption ignores ASCII
    /// whitespace inside the base64 (MIME base64 with a line break every 76
    /// characters, as Python's `base64.encodebytes` produces).
    ///
    /// Replay protection (a nonce seen twice within the window) needs storage
    /// and is the caller's job; see [`CallbackCrypto::replay_key`].
    ///
    /// # Errors
    /// [`CryptoError::MissingParameter`], [`CryptoError::InvalidParameter`],
    /// [`CryptoError::SignatureMismatch`], [`CryptoError::StaleTimestamp`], or
    /// any error of [`CallbackCrypto::decrypt`].
    pub fn verify_and_decrypt(&self, query: &CallbackQuery, encrypt: &str, now_ms: i64) -> Result<String, CryptoError> {
        let provided = match (query.msg_signature.as_deref(), query.signature.as_deref()) {
            (Some(a), Some(b)) if a != b => return Err(CryptoError::SignatureMismatch),
            (Some(sig), _) | (None, Some(sig)) => sig,
            (None, None) => return Err(CryptoError::MissingParameter("signature")),
        };
        let timestamp = query.timestamp.as_deref().ok_or(CryptoError::MissingParameter("timestamp"))?;
        let nonce = query.nonce.as_deref().ok_or(CryptoError::MissingParameter("nonce"))?;
        if !NONCE_CHARS.contains(&nonce.chars().count()) {
            return Err(CryptoError::InvalidParameter("nonce"));
        }
        let ts_ms = timestamp_ms(timestamp)?;

        let expected = self.signature(timestamp, nonce, encrypt);
        if !bool::from(expected.as_bytes().ct_eq(provided.as_bytes())) {
            return Err(CryptoError::SignatureMismatch);
        }

        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if now_ms.abs_diff(ts_ms) > window_ms {
            return Err(CryptoError::StaleTimestamp);
        }

        self.decrypt(encrypt)
    }

    /// A key identifying a callback for replay detection: the owner key and
    /// the nonce, `"<owner_key>:<nonce>"`, or `None` without a nonce. Record
    /// it after a successful [`CallbackCrypto::verify_and_decrypt`] and reject
    /// a request whose key is already recorded; keep keys for at least twice
    /// [`CallbackCrypto::window`].
    #[must_use]
    pub fn replay_key(&self, query: &CallbackQuery) -> Option<String> {
        query.nonce.as_deref().map(|nonce| format!("{}:{nonce}", self.owner_key))
    }

    /// Builds the reply of docs/dingtalk-api.md §E.5 for `plaintext`: encrypted with a fresh
    /// random prefix, signed over (token, `timestamp`, `nonce`, `encrypt`).
    #[must_use]
    pub fn reply(&self, plaintext: &str, timestamp: &str, nonce: &str) -> CallbackReply {
        let encrypt = self.encrypt(plaintext);
        CallbackReply {
            msg_signature: self.signature(timestamp, nonce, &encrypt),
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }

    /// The reply every event (including `check_url`) needs (docs/dingtalk-api.md §E.5): the
    /// literal `success`, encrypted, with `timeStamp` = `now_ms` as a string
    /// (like Java) and a fresh 16-character `[A-Za-z0-9]` nonce.
    #[must_use]
    pub fn success_reply(&self, now_ms: i64) -> CallbackReply {
        let mut rng = rand::rng();
        let nonce: String = (0..REPLY_NONCE_CHARS).map(|_| char::from(rng.sample(Alphanumeric))).collect();
        self.reply("success", &now_ms.to_string(), &nonce)
    }
}

/// `encrypt` without ASCII whitespace (space, `\t`, `\r`, `\n`): senders
/// using MIME base64 (Python's `base64.encodebytes`) break the text every 76
/// characters (docs/dingtalk-api.md §E.4). Borrowed unchanged when there is
/// none. Any other character stays, so the strict decoder still refuses it.
fn strip_base64_whitespace(encrypt: &str) -> Cow<'_, str> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    if encrypt.contains(is_space) {
        Cow::Owned(encrypt.chars().filter(|&c| !is_space(c)).collect())
    } else {
        Cow::Borrowed(encrypt)
    }
}

/// Removes PKCS#7 padding with a 32-byte block (docs/dingtalk-api.md §E.4): the last byte
/// must be 1..=32 and no more than the length, and all pad bytes must equal it.
fn strip_padding(buf: &[u8]) -> Result<&[u8], CryptoError> {
    let pad = *buf.last().ok_or(CryptoError::InvalidPadding)?;
    let pad_len = usize::from(pad);
    if pad == 0 || pad_len > PAD_BLOCK {
        return Err(CryptoError::InvalidPadding);
    }
    let keep = buf.len().checked_sub(pad_len).ok_or(CryptoError::InvalidPadding)?;
    let (data, padding) = buf.split_at_checked(keep).ok_or(CryptoError::InvalidPadding)?;
    if padding.iter().any(|&b| b != pad) {
        return Err(CryptoError::InvalidPadding);
    }
    Ok(data)
}

/// Parses a callback timestamp (decimal digits only) to epoch milliseconds:
/// values above 10^11 are already milliseconds, smaller ones seconds.
fn timestamp_ms(timestamp: &str) -> Result<i64, CryptoError> {
    const INVALID: CryptoError = CryptoError::InvalidParameter("timestamp");
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(INVALID);
    }
    let value: u64 = timestamp.parse().map_err(|_| INVALID)?;
    let ms = if value > MS_THRESHOLD { value } else { value.checked_mul(1000).ok_or(INVALID)? };
    i64::try_from(ms).map_err(|_| INVALID)
}

/// Lowercase hex (sha1 0.11's output has no `{:x}`, docs/stack-notes.md F10).
fn hex_lower(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
