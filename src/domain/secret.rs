//! Random credentials and their stored hashes.

use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// A credential handed out once (API token, session code); never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Draws 256 bits of randomness, hex encoded.
    pub fn generate() -> Credential {
        Credential(random_hex(32))
    }

    /// Wraps a credential presented by a client.
    pub fn from_presented(raw: &str) -> Credential {
        Credential(raw.to_owned())
    }

    /// The credential itself, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: hex of SHA-256, so a database read does not yield a usable credential.
    pub fn hashed(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Lowercase hex SHA-256 of a string.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Names a secret in the audit trail without giving it away: the first 8 hex digits of
/// its SHA-256, enough to tell two apart, useless to a thief.
pub fn fingerprint(secret: &str) -> String {
    sha256_hex(secret)[..8].to_owned()
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_random_and_hashed() {
        let a = Credential::generate();
        let b = Credential::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.hashed(), a.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
