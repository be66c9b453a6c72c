//! The server side of an OAuth `state`: who started the flow, for what, until when.

use super::secret::sha256_hex;
use super::{Domain, Slug};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A flow in progress, stored under the hash of its `state` in `broker/flow_states`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// Instance the flow belongs to.
    pub instance: Domain,
    /// Service id of the account type (`google`, never `ctx/google`).
    pub account_type: String,
    /// The app's own `state`, echoed back to it at the end.
    pub client_state: String,
    /// The app's `nonce`, forwarded to the token endpoint as cozy-stack does.
    pub nonce: String,
    /// App to return to.
    #[serde(with = "slug_serde")]
    pub slug: Slug,
    /// Redirect URI used on the authorization URL, reused at the token endpoint.
    pub redirect_uri: String,
    /// Unix seconds after which the state is refused.
    pub expires_at: i64,
    /// Set once the redirect consumed it; a second use is a replay.
    #[serde(default)]
    pub used: bool,
    /// PKCE verifier, sent only to the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    /// SHA-256 of the browser-binding cookie set at start, when flow binding is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// The account a reconnection updates in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The provider origin of a per-account type, checked at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_url: Option<String>,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("instance", &self.instance)
            .field("account_type", &self.account_type)
            .field("slug", &self.slug)
            .field("expires_at", &self.expires_at)
            .field("used", &self.used)
            .field("pkce", &self.pkce_verifier.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a presented state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRejection {
    /// No flow was started with it here.
    #[error(
        "this sign-in link is not known here: it was not started by this broker or has been purged"
    )]
    Unknown,
    /// Older than its time to live.
    #[error("this sign-in link has expired; start the connection again")]
    Expired,
    /// Already consumed by an earlier redirect.
    #[error("this sign-in link was already used; start the connection again")]
    Replayed,
    /// Started for another account type.
    #[error("this sign-in link was started for another account type")]
    Mismatch,
    /// The browser finishing the flow is not the one that started it.
    #[error("this sign-in was started in another browser (or its cookie was blocked); start the connection again from this browser")]
    BindingMismatch,
}

impl FlowState {
    /// Checks the state may complete a flow for `service_id` at `now` (unix seconds), in
    /// a browser presenting `cookie` as its binding cookie.
    pub fn check(
        &self,
        service_id: &str,
        now: i64,
        cookie: Option<&str>,
    ) -> Result<(), StateRejection> {
        if self.used {
            return Err(StateRejection::Replayed);
        }
        if self.account_type != service_id {
            return Err(StateRejection::Mismatch);
        }
        if now >= self.expires_at {
            return Err(StateRejection::Expired);
        }
        if let Some(expected) = &self.binding {
            let presented = sha256_hex(cookie.unwrap_or_default());
            let same: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
            if cookie.is_none() || !same {
                return Err(StateRejection::BindingMismatch);
            }
        }
        Ok(())
    }

    /// Name of the cookie binding the flow of `state` to a browser: one per flow, so that
    /// two connections started side by side do not overwrite each other.
    pub fn binding_cookie_name(state: &str) -> String {
        format!("oauth_broker_flow_{}", &sha256_hex(state)[..16])
    }
}

mod slug_serde {
    use super::Slug;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(s: &Slug, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Slug, D::Error> {
        let raw = String::deserialize(de)?;
        Slug::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl crate::domain::error_kind::Classified for StateRejection {
    fn kind(&self) -> crate::domain::ErrorKind {
        crate::domain::ErrorKind::Invalid
    }

    fn code(&self) -> &'static str {
        match self {
            StateRejection::Unknown => "state_unknown",
            StateRejection::Expired => "state_expired",
            StateRejection::Replayed => "state_replayed",
            StateRejection::Mismatch => "state_mismatch",
            StateRejection::BindingMismatch => "flow_binding_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FlowState {
        FlowState {
            instance: Domain::parse("alice.example").unwrap(),
            account_type: "google".into(),
            client_state: "c".into(),
            nonce: "n".into(),
            slug: Slug::home(),
            redirect_uri: "https://b/accounts/google/redirect".into(),
            expires_at: 1000,
            used: false,
            pkce_verifier: Some("verifier-secret".into()),
            binding: None,
            account_id: None,
            provider_url: None,
        }
    }

    #[test]
    fn fresh_state_for_its_type_is_accepted() {
        assert_eq!(state().check("google", 999, None), Ok(()));
    }

    #[test]
    fn expired_used_and_cross_type_states_are_refused() {
        assert_eq!(
            state().check("google", 1000, None),
            Err(StateRejection::Expired)
        );
        assert_eq!(
            state().check("github", 10, None),
            Err(StateRejection::Mismatch)
        );
        let used = FlowState {
            used: true,
            ..state()
        };
        assert_eq!(
            used.check("google", 10, None),
            Err(StateRejection::Replayed)
        );
    }

    #[test]
    fn a_bound_state_needs_its_cookie() {
        let bound = FlowState {
            binding: Some(sha256_hex("cookie")),
            ..state()
        };
        assert_eq!(bound.check("google", 10, Some("cookie")), Ok(()));
        assert_eq!(
            bound.check("google", 10, Some("other")),
            Err(StateRejection::BindingMismatch)
        );
        assert_eq!(
            bound.check("google", 10, None),
            Err(StateRejection::BindingMismatch)
        );
    }

    #[test]
    fn debug_hides_the_pkce_verifier() {
        assert!(!format!("{:?}", state()).contains("verifier-secret"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let s = state();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<FlowState>(v).unwrap(), s);
    }
}
