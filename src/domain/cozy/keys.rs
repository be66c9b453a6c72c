//! An instance's secrets as cozy-stack stores them in `global/instances`: standard padded
//! base64 of random bytes, in clear.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use std::fmt;

/// The keys that sign an instance's cookies and tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InstanceKeys {
    /// `session_secret`: cookies and `app`/`konn` tokens (behind `"2:"`).
    pub session: Vec<u8>,
    /// `oauth_secret`: `access`, `refresh` and `share` tokens.
    pub oauth: Vec<u8>,
    /// `cli_secret`: `cli` tokens.
    pub cli: Vec<u8>,
}

impl InstanceKeys {
    /// The keys of an instance document; a missing or undecodable one is empty (nothing
    /// verifies against an empty key).
    pub fn from_document(doc: &Value) -> InstanceKeys {
        let bytes = |field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .and_then(|s| STANDARD.decode(s).ok())
                .unwrap_or_default()
        };
        InstanceKeys {
            session: bytes("session_secret"),
            oauth: bytes("oauth_secret"),
            cli: bytes("cli_secret"),
        }
    }

    /// Whether the instance has a session secret (a cozy-stack instance, not one the
    /// broker's operator added).
    pub fn has_session_secret(&self) -> bool {
        !self.session.is_empty()
    }

    /// `Instance.SessionSecret()`: `"2:"` and the session secret.
    pub fn session_key(&self) -> Vec<u8> {
        if self.session.is_empty() {
            return Vec::new();
        }
        super::cookie::session_key(&self.session)
    }
}

impl fmt::Debug for InstanceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstanceKeys([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_spec_instance_secrets_and_hides_them() {
        let doc = json!({"session_secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="});
        let k = InstanceKeys::from_document(&doc);
        assert_eq!(k.session, (0u8..64).collect::<Vec<_>>());
        assert!(k.oauth.is_empty() && k.session_key().starts_with(b"2:"));
        assert_eq!(format!("{k:?}"), "InstanceKeys([redacted])");
    }
}
