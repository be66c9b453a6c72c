//! What an instance API token may do: until when, and for which account types.

use super::Timestamp;
use serde::{Deserialize, Serialize};

/// The limits of an API token; the default is what tokens had before: no expiry, every
/// account type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenScope {
    /// Unix seconds after which the token is refused; none: it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Service ids (`google`) the token acts on; none: every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_types: Option<Vec<String>>,
}

impl TokenScope {
    /// Whether the token is still valid at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now.unix_secs() < t)
    }

    /// Whether the token may act on accounts of service `service_id`.
    pub fn allows(&self, service_id: &str) -> bool {
        self.account_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == service_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlimited_scope_allows_everything_for_ever() {
        let s = TokenScope::default();
        assert!(s.is_live(Timestamp::from_unix_secs(i64::MAX / 1000)) && s.allows("any"));
    }

    #[test]
    fn limits_apply() {
        let s = TokenScope {
            expires_at: Some(100),
            account_types: Some(vec!["google".into()]),
        };
        assert!(s.is_live(Timestamp::from_unix_secs(99)));
        assert!(!s.is_live(Timestamp::from_unix_secs(100)));
        assert!(s.allows("google") && !s.allows("github"));
    }
}
