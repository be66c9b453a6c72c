//! Secrets at rest: AES-256-GCM envelopes that name their key, so keys can rotate.
//!
//! A sealed value is a string, `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, so a
//! document keeps its JSON types. The associated data names the document and field, so a
//! sealed value copied into another document does not open.

use crate::domain::ErrorCode;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;

const PREFIX: &str = "enc:v1:";

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key it names is not configured.
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    /// Tampered, truncated, or moved from another document.
    #[error("sealed value is damaged or belongs to another document")]
    Damaged,
}

/// The configured keys; the first seals, all open.
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
    /// Keys for other purposes, one per configured key in the same order (see [`Keyring::derive`]).
    derived_from: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

/// Whether a stored value is an envelope.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

impl Keyring {
    /// Parses `id:base64-of-32-bytes[,id:...]`, newest first.
    pub fn parse(spec: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        let mut derived_from = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, b64) = item
                .split_once(':')
                .ok_or_else(|| "each key is `id:base64-of-32-bytes`".to_owned())?;
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("key id `{id}` must be letters, digits, `-` or `_`"));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("key id `{id}` appears twice"));
            }
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| format!("key `{id}` is not base64"))?;
            let cipher = Aes256Gcm::new_from_slice(&raw)
                .map_err(|_| format!("key `{id}` must be 32 bytes"))?;
            keys.push((id.to_owned(), cipher));
            let mut raw32 = [0u8; 32];
            raw32.copy_from_slice(&raw);
            derived_from.push(raw32);
        }
        Ok(Keyring { keys, derived_from })
    }

    /// One 32-byte key per configured key, newest first, for the purpose `label`
    /// (HMAC-SHA256 of the label under the key), so no key serves two purposes.
    pub fn derive(&self, label: &str) -> Vec<[u8; 32]> {
        self.derived_from
            .iter()
            .map(|k| super::secret::hmac_sha256(k, label.as_bytes()))
            .collect()
    }

    /// The key id new envelopes use.
    pub fn primary_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// Seals `plaintext` for the field named by `aad`; `None` without keys.
    // AES-GCM refuses only messages of gigabytes; returning `None` there would store the
    // secret in clear, so a failure must stop instead.
    #[allow(clippy::expect_used)]
    pub fn seal(&self, plaintext: &str, aad: &str) -> Option<String> {
        let (id, cipher) = self.keys.first()?;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short string cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Some(format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens an envelope; a value that is not one is returned as it is (plaintext
    /// documents provisioned with curl keep working).
    pub fn open(&self, value: &str, aad: &str) -> Result<String, SealError> {
        let Some(rest) = value.strip_prefix(PREFIX) else {
            return Ok(value.to_owned());
        };
        let (id, b64) = rest.split_once(':').ok_or(SealError::Damaged)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| SealError::Damaged)?;
        if blob.len() < 12 + 16 {
            return Err(SealError::Damaged);
        }
        let (nonce, ct) = blob.split_at(12);
        let pt = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(pt).map_err(|_| SealError::Damaged)
    }

    /// Whether a stored value should be sealed again: plaintext while a key exists, or
    /// sealed with a key that is not the newest.
    pub fn needs_reseal(&self, value: &str) -> bool {
        match (self.primary_id(), value.strip_prefix(PREFIX)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(primary), Some(rest)) => rest.split_once(':').map(|(id, _)| id) != Some(primary),
        }
    }
}

impl crate::domain::error_kind::Classified for SealError {
    fn kind(&self) -> crate::domain::ErrorKind {
        crate::domain::ErrorKind::KeyUnavailable
    }

    fn code(&self) -> ErrorCode {
        ErrorCode::KeyUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_values_open_with_their_key_and_aad_only() {
        let ring = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let sealed = ring.seal("s3cr3t", "at/google/client_secret").unwrap();
        assert!(sealed.starts_with("enc:v1:k1:") && !sealed.contains("s3cr3t"));
        assert_eq!(
            ring.open(&sealed, "at/google/client_secret").unwrap(),
            "s3cr3t"
        );
        assert_eq!(
            ring.open(&sealed, "at/github/client_secret"),
            Err(SealError::Damaged)
        );
        assert_eq!(ring.open("plain", "x").unwrap(), "plain");
    }

    #[test]
    fn rotation_keeps_old_keys_for_opening() {
        let old = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let sealed = old.seal("v", "a").unwrap();
        let both = Keyring::parse(&format!("k2:{},k1:{}", key(2), key(1))).unwrap();
        assert_eq!(both.open(&sealed, "a").unwrap(), "v");
        assert!(both.needs_reseal(&sealed));
        assert!(!both.needs_reseal(&both.seal("v", "a").unwrap()));
        let only_new = Keyring::parse(&format!("k2:{}", key(2))).unwrap();
        assert_eq!(
            only_new.open(&sealed, "a"),
            Err(SealError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_key_specs_are_refused() {
        for bad in [
            "k1",
            "k1:notbase64!",
            &format!("k1:{}", STANDARD.encode([0u8; 16])),
            &format!("k 1:{}", key(1)),
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad}");
        }
        assert!(Keyring::parse(&format!("a:{},a:{}", key(1), key(2))).is_err());
    }

    #[test]
    fn tampering_is_detected_and_debug_shows_ids_only() {
        let ring = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let mut sealed = ring.seal("v", "a").unwrap();
        // Flip one character inside the ciphertext.
        let at = sealed.len() - 10;
        let flipped = if &sealed[at..=at] == "A" { "B" } else { "A" };
        sealed.replace_range(at..=at, flipped);
        assert!(ring.open(&sealed, "a").is_err());
        assert_eq!(format!("{ring:?}"), "Keyring { key_ids: [\"k1\"] }");
    }
}
