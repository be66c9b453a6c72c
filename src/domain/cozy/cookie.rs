//! cozy-stack's session cookie (`pkg/crypto/mac.go`): not gorilla's securecookie, but
//! `base64url_nopad(ts || session id || HMAC-SHA256(key, name || ts || session id))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest cookie value cozy-stack decodes (`cookieSessionMACConfig.MaxLen`).
pub const MAX_COOKIE_LEN: usize = 256;
const MAC_LEN: usize = 32;
const TS_LEN: usize = 8;

/// Why a session cookie is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Longer than cozy-stack accepts.
    #[error("the session cookie is too long")]
    TooLong,
    /// Not unpadded base64url, or too short to hold a timestamp and a MAC.
    #[error("the session cookie is malformed")]
    Malformed,
    /// The MAC does not match this instance's key and this cookie name.
    #[error("the session cookie is not signed by this instance")]
    BadMac,
}

/// The MAC key of an instance's cookies and `app`/`konn` tokens: `"2:"` and the raw
/// session secret (`Instance.SessionSecret()`).
pub fn session_key(session_secret: &[u8]) -> Vec<u8> {
    let mut key = b"2:".to_vec();
    key.extend_from_slice(session_secret);
    key
}

fn mac_of(key: &[u8], name: &str, message: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(name.as_bytes());
    mac.update(message);
    mac
}

/// The cookie value cozy-stack would set for session `session_id` at `ts` (unix seconds).
pub fn encode(name: &str, key: &[u8], session_id: &str, ts: i64) -> String {
    let mut message = (ts as u64).to_be_bytes().to_vec();
    message.extend_from_slice(session_id.as_bytes());
    let tag = mac_of(key, name, &message).finalize().into_bytes();
    message.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(message)
}

/// The session id a cookie named `name` carries, if `key` signed it. The timestamp is not
/// checked, as in cozy-stack (`MaxAge = 0`): the session document's `last_seen` decides.
pub fn decode(name: &str, key: &[u8], value: &str) -> Result<String, CookieError> {
    if value.len() > MAX_COOKIE_LEN {
        return Err(CookieError::TooLong);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| CookieError::Malformed)?;
    if raw.len() < TS_LEN + MAC_LEN {
        return Err(CookieError::Malformed);
    }
    let (message, tag) = raw.split_at(raw.len() - MAC_LEN);
    mac_of(key, name, message)
        .verify_slice(tag)
        .map_err(|_| CookieError::BadMac)?;
    String::from_utf8(message[TS_LEN..].to_vec()).map_err(|_| CookieError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's test vector (cozy-auth.md §8): session secret 0..63, ts 1700000000.
    pub(crate) fn vector_key() -> Vec<u8> {
        session_key(&(0u8..64).collect::<Vec<_>>())
    }
    const SID: &str = "5d2f6c1e0a4b4c3d9e8f7a6b5c4d3e2f";
    const NESTED: &str = "AAAAAGVT8QA1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZqfaUJn6c9odHIHaikISNKLS_eKLYE5tYmxVj6AZN5ma";
    const FLAT_NAME: &str = "sess-cozy52ac21bb66f83534306e559fbb030c21";
    const FLAT: &str = "AAAAAGVT8QA1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZkL5_o6yS-tHIzGm3V9iqGynbRBa-I1iVxrw2ciEseor";

    #[test]
    fn encodes_the_spec_vectors() {
        assert_eq!(
            encode("cozysessid", &vector_key(), SID, 1_700_000_000),
            NESTED
        );
        assert_eq!(encode(FLAT_NAME, &vector_key(), SID, 1_700_000_000), FLAT);
    }

    #[test]
    fn decodes_the_spec_vectors() {
        assert_eq!(decode("cozysessid", &vector_key(), NESTED).unwrap(), SID);
        assert_eq!(decode(FLAT_NAME, &vector_key(), FLAT).unwrap(), SID);
    }

    #[test]
    fn a_cookie_checked_under_another_name_is_refused() {
        assert_eq!(
            decode(FLAT_NAME, &vector_key(), NESTED),
            Err(CookieError::BadMac)
        );
    }

    #[test]
    fn a_padded_cookie_is_refused() {
        // 88 bytes decoded: base64 of it needs no padding, so add a character and pad.
        let padded = format!("{}A=", &NESTED[..NESTED.len() - 1]);
        assert_eq!(
            decode("cozysessid", &vector_key(), &padded),
            Err(CookieError::Malformed)
        );
    }

    #[test]
    fn an_over_long_cookie_is_refused_before_decoding() {
        let long = "A".repeat(MAX_COOKIE_LEN + 1);
        assert_eq!(
            decode("cozysessid", &vector_key(), &long),
            Err(CookieError::TooLong)
        );
    }

    #[test]
    fn a_cookie_signed_without_the_2_prefix_is_refused() {
        let raw_secret: Vec<u8> = (0u8..64).collect();
        let forged = encode("cozysessid", &raw_secret, SID, 1_700_000_000);
        assert_eq!(
            decode("cozysessid", &vector_key(), &forged),
            Err(CookieError::BadMac)
        );
    }

    #[test]
    fn short_and_garbled_cookies_are_refused() {
        for bad in ["", "AAAA", "not base64!", &NESTED[..50]] {
            assert!(decode("cozysessid", &vector_key(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tampered_session_id_is_refused() {
        let mut raw = URL_SAFE_NO_PAD.decode(NESTED).unwrap();
        raw[9] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            decode("cozysessid", &vector_key(), &tampered),
            Err(CookieError::BadMac)
        );
    }
}
