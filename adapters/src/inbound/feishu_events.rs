//! Feishu / Lark event subscription, webhook mode (docs/feishu-api.md §E): verifying, decrypting
//! and reading one push into [`FeishuPush`]. Pure: no I/O; the route is
//! [`crate::inbound::http::feishu_events`].
//!
//! - Encryption (§E.4): with an Encrypt Key every push is `{"encrypt": base64(iv ‖ AES-256-CBC)}`
//!   with `key = SHA256(encrypt_key)`, a random 16-byte IV and PKCS#7 padding.
//! - Signature (§E.5): `X-Lark-Signature = hex(SHA256(timestamp + nonce + encrypt_key ‖ body))` over
//!   the raw body. Required for events when an Encrypt Key is configured; not checked for
//!   `url_verification` (as the official SDKs do).
//! - The Verification Token (§E.1) must match the payload's `token` (`url_verification`) or
//!   `header.token` (v2.0 events), compared in constant time.
//! - Contact events (§E.7) become [`ContactEvent`]s in the feed's vocabulary:
//!   `contact.user.created_v3` → `user_add_org`, `contact.user.updated_v3` → `user_modify_org`,
//!   `contact.user.deleted_v3` → `user_leave_org`, keyed by `header.tenant_key` and the object's
//!   `user_id` (what members are stored under); `header.event_id` is the dedup key (Feishu delivers
//!   at least once, §E.1).

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use application::ports::{ContactEvent, DirectoryChange};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::{CorpId, Timestamp, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeishuEventError {
    /// The signature headers are missing or do not match the body (§E.5).
    #[error("the X-Lark-Signature does not verify")]
    SignatureMismatch,
    /// The Verification Token in the payload is missing or wrong (§E.1).
    #[error("the verification token does not match")]
    TokenMismatch,
    /// An encrypted push arrived but no Encrypt Key is configured.
    #[error("the push is encrypted but feishu.encrypt_key is not configured")]
    NotEncryptable,
    /// The body is not what §E.2–§E.4 describe (names what is wrong).
    #[error("invalid push: {0}")]
    Invalid(String),
}

/// What one verified push asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeishuPush {
    /// `url_verification` (§E.2): answer `{"challenge": …}`.
    UrlVerification {
        /// The challenge to echo.
        challenge: String,
    },
    /// A v2.0 event (§E.3) of app `app_id` in tenant `tenant_key`; `contact` holds the contact
    /// event it becomes, `None` for event types dingbridge does not follow (or a contact event
    /// without the member's `user_id`, which needs the `contact:user.employee_id:readonly` scope).
    Event {
        /// `header.event_type`.
        event_type: String,
        /// `header.app_id`.
        app_id: String,
        /// `header.tenant_key`.
        tenant_key: String,
        /// The feed entry, if any.
        contact: Option<ContactEvent>,
    },
}

/// The verification settings of one Feishu app's event subscription (§E.1).
pub struct FeishuEventCrypto {
    encrypt_key: Option<SecretString>,
    verification_token: SecretString,
}

impl std::fmt::Debug for FeishuEventCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuEventCrypto").field("encrypted", &self.encrypt_key.is_some()).finish_non_exhaustive()
    }
}

/// The signature headers of a push (§E.5), as received.
#[derive(Debug, Clone, Default)]
pub struct SignatureHeaders {
    /// `X-Lark-Request-Timestamp`.
    pub timestamp: Option<String>,
    /// `X-Lark-Request-Nonce`.
    pub nonce: Option<String>,
    /// `X-Lark-Signature` (lower-case hex).
    pub signature: Option<String>,
}

#[derive(Deserialize)]
struct Encrypted {
    encrypt: String,
}

#[derive(Deserialize)]
struct Plain {
    #[serde(rename = "type")]
    kind: Option<String>,
    challenge: Option<String>,
    token: Option<String>,
    schema: Option<String>,
    header: Option<Header>,
    event: Option<Event>,
}

#[derive(Deserialize)]
struct Header {
    event_id: String,
    event_type: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    tenant_key: String,
}

#[derive(Deserialize)]
struct Event {
    object: Option<EventUser>,
}

#[derive(Deserialize)]
struct EventUser {
    user_id: Option<String>,
}

impl FeishuEventCrypto {
    /// Settings with the Verification Token and, when the console has one, the Encrypt Key.
    pub fn new(encrypt_key: Option<SecretString>, verification_token: SecretString) -> Self {
        Self { encrypt_key: encrypt_key.filter(|k| !k.expose_secret().is_empty()), verification_token }
    }

    /// Verifies and reads one push: its raw `body` and signature `headers`; `now` stamps the
    /// contact event. Errors: [`FeishuEventError`] — nothing in the push is trusted then.
    pub fn open(
        &self,
        headers: &SignatureHeaders,
        body: &[u8],
        now: Timestamp,
    ) -> Result<FeishuPush, FeishuEventError> {
        let plaintext = match serde_json::from_slice::<Encrypted>(body) {
            Ok(Encrypted { encrypt }) => self.decrypt(&encrypt)?,
            Err(_) => String::from_utf8(body.to_vec()).map_err(|_| invalid("the body is not UTF-8"))?,
        };
        let plain: Plain =
            serde_json::from_str(&plaintext).map_err(|e| invalid(format!("the event is not the JSON of §E.3: {e}")))?;
        if plain.kind.as_deref() == Some("url_verification") {
            self.check_token(plain.token.as_deref())?;
            let challenge = plain.challenge.ok_or_else(|| invalid("url_verification without a challenge"))?;
            return Ok(FeishuPush::UrlVerification { challenge });
        }
        if plain.schema.as_deref() != Some("2.0") {
            return Err(invalid("only v2.0 events are read (schema \"2.0\", §E.3)"));
        }
        self.check_signature(headers, body)?;
        let header = plain.header.ok_or_else(|| invalid("a v2.0 event without a header"))?;
        self.check_token(Some(&header.token))?;
        let leave = match header.event_type.as_str() {
            "contact.user.created_v3" => Some(DirectoryChange::MemberJoined),
            "contact.user.updated_v3" => Some(DirectoryChange::MemberChanged),
            "contact.user.deleted_v3" => Some(DirectoryChange::MemberLeft),
            _ => None,
        };
        let userid = plain.event.and_then(|e| e.object).and_then(|o| o.user_id).filter(|u| !u.is_empty());
        let contact = match (leave, userid, CorpId::parse(&header.tenant_key)) {
            (Some(change), Some(userid), Ok(corp_id)) => Some(ContactEvent {
                corp_id,
                event_id: header.event_id.clone(),
                change,
                userids: vec![UserId::parse(&userid).map_err(|e| invalid(e.message))?],
                dept_ids: Vec::new(),
                received_at: now,
            }),
            _ => None,
        };
        Ok(FeishuPush::Event {
            event_type: header.event_type,
            app_id: header.app_id,
            tenant_key: header.tenant_key,
            contact,
        })
    }

    /// §E.4: `base64(iv ‖ AES-256-CBC(SHA256(encrypt_key), iv, PKCS#7(plaintext)))` → plaintext.
    fn decrypt(&self, encrypt: &str) -> Result<String, FeishuEventError> {
        let key = self.encrypt_key.as_ref().ok_or(FeishuEventError::NotEncryptable)?;
        let raw = STANDARD.decode(encrypt.trim()).map_err(|_| invalid("encrypt is not base64"))?;
        if raw.len() < 32 || !raw.len().is_multiple_of(16) {
            return Err(invalid("encrypt is not an IV and whole AES blocks"));
        }
        let (iv, rest) = raw.split_at(16);
        let mut buf = rest.to_vec();
        let key: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
        let iv: [u8; 16] = iv.try_into().map_err(|_| invalid("no IV"))?;
        let mut decryptor = Aes256CbcDec::new(&key.into(), &iv.into());
        let (blocks, _tail) = Array::<u8, U16>::slice_as_chunks_mut(&mut buf);
        decryptor.decrypt_blocks(blocks);
        let pad = usize::from(*buf.last().ok_or_else(|| invalid("empty ciphertext"))?);
        let keep = buf.len().checked_sub(pad).filter(|_| (1..=16).contains(&pad));
        let keep = keep.ok_or(FeishuEventError::Invalid("bad PKCS#7 padding (wrong Encrypt Key?)".into()))?;
        if buf[keep..].iter().any(|&b| usize::from(b) != pad) {
            return Err(invalid("bad PKCS#7 padding (wrong Encrypt Key?)"));
        }
        buf.truncate(keep);
        String::from_utf8(buf).map_err(|_| invalid("the decrypted event is not UTF-8 (wrong Encrypt Key?)"))
    }

    /// §E.5, when an Encrypt Key is configured.
    fn check_signature(&self, headers: &SignatureHeaders, body: &[u8]) -> Result<(), FeishuEventError> {
        let Some(key) = &self.encrypt_key else {
            return Ok(());
        };
        let (Some(timestamp), Some(nonce), Some(signature)) = (&headers.timestamp, &headers.nonce, &headers.signature)
        else {
            return Err(FeishuEventError::SignatureMismatch);
        };
        let expected = signature_of(timestamp, nonce, key.expose_secret(), body);
        if bool::from(expected.as_bytes().ct_eq(signature.trim().to_ascii_lowercase().as_bytes())) {
            Ok(())
        } else {
            Err(FeishuEventError::SignatureMismatch)
        }
    }

    fn check_token(&self, token: Option<&str>) -> Result<(), FeishuEventError> {
        let expected = self.verification_token.expose_secret().as_bytes();
        match token {
            Some(token) if bool::from(token.as_bytes().ct_eq(expected)) => Ok(()),
            _ => Err(FeishuEventError::TokenMismatch),
        }
    }
}

/// `hex_lower(SHA256(utf8(timestamp + nonce + encrypt_key) ‖ body))` (docs/feishu-api.md §E.5).
pub fn signature_of(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}{nonce}{encrypt_key}").into_bytes();
    signed.extend_from_slice(body);
    domain::digest::sha256_hex(&signed)
}

fn invalid(message: impl Into<String>) -> FeishuEventError {
    FeishuEventError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/feishu-api.md §E.6 vector 2 (key `test key`, iv 00..0f, the url_verification plaintext).
    const VECTOR_2: &str = "AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE";

    fn crypto(token: &str) -> FeishuEventCrypto {
        FeishuEventCrypto::new(Some(SecretString::from("test key")), SecretString::from(token))
    }

    #[test]
    fn the_documented_vectors_decrypt_and_sign() {
        // §E.6 vector 2 decrypts to the url_verification of §E.2.
        let body = format!(r#"{{"encrypt":"{VECTOR_2}"}}"#);
        let push = crypto("xxxxxx").open(&SignatureHeaders::default(), body.as_bytes(), Timestamp::from_millis(0));
        assert_eq!(push, Ok(FeishuPush::UrlVerification { challenge: "ajls384kdjx98XX".into() }));
        // §E.6 vector 3.
        assert_eq!(
            signature_of("1603977298", "abc123", "test key", body.as_bytes()),
            "457dbde5ce4ae6829fc19b3ca0a771ba2567ca00f0b94bfe0dcd63ff925622ba"
        );
        // §E.6 vector 1: the official decrypt sample.
        let sample = crypto("t").decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=");
        assert_eq!(sample.as_deref(), Ok("hello world"));
    }

    #[test]
    fn a_wrong_token_or_key_is_refused() {
        let body = format!(r#"{{"encrypt":"{VECTOR_2}"}}"#);
        let wrong_token =
            crypto("other").open(&SignatureHeaders::default(), body.as_bytes(), Timestamp::from_millis(0));
        assert_eq!(wrong_token, Err(FeishuEventError::TokenMismatch));
        let wrong_key = FeishuEventCrypto::new(Some(SecretString::from("other key")), SecretString::from("xxxxxx"))
            .open(&SignatureHeaders::default(), body.as_bytes(), Timestamp::from_millis(0));
        assert!(matches!(wrong_key, Err(FeishuEventError::Invalid(_))), "{wrong_key:?}");
        let unkeyed = FeishuEventCrypto::new(None, SecretString::from("xxxxxx")).open(
            &SignatureHeaders::default(),
            body.as_bytes(),
            Timestamp::from_millis(0),
        );
        assert_eq!(unkeyed, Err(FeishuEventError::NotEncryptable));
    }

    #[test]
    fn a_plaintext_leave_event_becomes_a_feed_entry_and_needs_no_signature_without_a_key() {
        let body = br#"{"schema":"2.0","header":{"event_id":"ev1","event_type":"contact.user.deleted_v3","create_time":"1","token":"tok","app_id":"cli_1","tenant_key":"736588c9260f175d"},"event":{"object":{"open_id":"ou_1","user_id":"fs_1"},"old_object":{"open_id":"ou_1"}}}"#;
        let crypto = FeishuEventCrypto::new(None, SecretString::from("tok"));
        let push = crypto.open(&SignatureHeaders::default(), body, Timestamp::from_millis(5));
        let Ok(FeishuPush::Event { contact: Some(event), app_id, .. }) = push else { panic!("{push:?}") };
        assert_eq!(app_id, "cli_1");
        assert_eq!((event.corp_id.as_str(), event.event_id.as_str()), ("736588c9260f175d", "ev1"));
        assert_eq!((&event.change, event.userids[0].as_str()), (&DirectoryChange::MemberLeft, "fs_1"));
        // With an Encrypt Key, an event must be signed.
        let keyed = FeishuEventCrypto::new(Some(SecretString::from("k")), SecretString::from("tok"));
        assert_eq!(
            keyed.open(&SignatureHeaders::default(), body, Timestamp::from_millis(5)),
            Err(FeishuEventError::SignatureMismatch)
        );
        let headers = SignatureHeaders {
            timestamp: Some("1".into()),
            nonce: Some("n".into()),
            signature: Some(signature_of("1", "n", "k", body)),
        };
        assert!(matches!(keyed.open(&headers, body, Timestamp::from_millis(5)), Ok(FeishuPush::Event { .. })));
    }
}
