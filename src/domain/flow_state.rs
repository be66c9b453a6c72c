//! The OAuth `state`: who started the flow, for what, until when, sealed into the state
//! itself so that `start` writes nothing.
//!
//! A state is `base64url(version ‖ nonce ‖ AES-256-GCM(flow))`. Only the broker's keys open
//! it or make one, so its contents are neither readable nor forgeable by the browser or
//! the provider. The secrets a flow needs besides (the PKCE verifier, the value of the
//! browser-binding cookie) are HMACs of the nonce under a key of their own: never in
//! the state, so never in the browser's hands, and the same on every replica. Single use
//! is the store's job (`store::flow_states`): the redirect creates a document named by
//! [`OpenedFlow::spent_id`], which only one redirect can do.

use super::flow_wire::{self, TooLong, MAX_STATE_CHARS};
use super::secret::{hmac_sha256, sha256_hex};
use super::{Domain, Slug};
use crate::domain::ErrorCode;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// A flow in progress, as sealed into its `state`.
#[derive(Clone, PartialEq, Eq)]
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
    pub slug: Slug,
    /// Unix seconds after which the state is refused.
    pub expires_at: i64,
    /// Whether the flow uses PKCE (its verifier is derived, see [`OpenedFlow`]).
    pub pkce: bool,
    /// Whether the flow is bound to the starting browser by a cookie.
    pub bound: bool,
    /// The account a reconnection updates in place.
    pub account_id: Option<String>,
    /// The provider origin of a per-account type, checked at start.
    pub provider_url: Option<String>,
    /// The scope `start` asked for.
    pub scope: AskedScope,
}

/// The scope a flow asked for, as far as its state records it (the redirect compares it
/// with what the provider granted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskedScope {
    /// The type's default (none named, or the default named).
    TypeDefault,
    /// One the app named.
    Named(String),
    /// One too long to keep within the state's length: what was granted is not compared.
    Unrecorded,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("instance", &self.instance)
            .field("account_type", &self.account_type)
            .field("slug", &self.slug)
            .field("expires_at", &self.expires_at)
            .field("pkce", &self.pkce)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// Why a presented state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRejection {
    /// Not made by this broker's keys (forged, damaged, or made before a key was dropped).
    #[error("this sign-in link is not known here: it was not started by this broker")]
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
    /// Name of the cookie binding the flow of `state` to a browser: one per flow, so that
    /// two connections started side by side do not overwrite each other.
    pub fn binding_cookie_name(state: &str) -> String {
        format!("oauth_broker_flow_{}", &sha256_hex(state)[..16])
    }
}

/// What sealing a flow yields: the `state` and the secrets derived from it.
pub struct SealedFlow {
    /// The value sent to the provider as `state`.
    pub state: String,
    /// The PKCE verifier, when the flow uses PKCE; its challenge goes to the provider.
    pub pkce_verifier: Option<String>,
    /// The binding cookie's value, when the flow is bound to the browser.
    pub binding_cookie: Option<String>,
}

impl std::fmt::Debug for SealedFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedFlow([redacted])")
    }
}

/// A state that opened: the flow, its derived secrets and its single-use id.
pub struct OpenedFlow {
    /// The flow as `start` sealed it.
    pub flow: FlowState,
    /// The PKCE verifier, sent only to the token endpoint.
    pub pkce_verifier: Option<String>,
    /// The binding cookie's expected value.
    binding_cookie: Option<String>,
    /// The id of the document whose creation spends the state (hex SHA-256 of the state).
    pub spent_id: String,
}

impl std::fmt::Debug for OpenedFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedFlow")
            .field("flow", &self.flow)
            .finish_non_exhaustive()
    }
}

/// What ties the browser finishing a flow to the one that started it.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// The binding cookie the browser presented, if any.
    Cookie(Option<&'a str>),
    /// None: the person confirmed, on a page naming the instance and the service, that
    /// the connection is theirs (a return leg in another browser looks like the attack
    /// the cookie stops, so it never completes without this).
    Confirmed,
}

impl OpenedFlow {
    /// Checks the flow may complete for `service_id` at `now` (unix seconds), in a
    /// browser bound to it by `binding`. Replays are the store's check.
    pub fn check(
        &self,
        service_id: &str,
        now: i64,
        binding: Binding<'_>,
    ) -> Result<(), StateRejection> {
        if self.flow.account_type != service_id {
            return Err(StateRejection::Mismatch);
        }
        if now >= self.flow.expires_at {
            return Err(StateRejection::Expired);
        }
        if let (Some(expected), Binding::Cookie(cookie)) = (&self.binding_cookie, binding) {
            let presented = cookie.unwrap_or_default();
            let same: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
            if !same {
                return Err(StateRejection::BindingMismatch);
            }
        }
        Ok(())
    }
}

const VERSION: u8 = 2;
const VERSION_JSON: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longer than any state this broker made (version 1 states were up to about 600).
const MAX_STATE_LEN: usize = 4096;
const AAD: &[u8] = b"oauth-broker flow state v1";

/// The keys that seal and open states: the first seals, all open (so a state made just
/// before a key rotation still completes).
pub struct FlowSeal {
    keys: Vec<FlowKey>,
}

struct FlowKey {
    cipher: Aes256Gcm,
    derive: [u8; 32],
}

impl std::fmt::Debug for FlowSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowSeal")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl FlowSeal {
    /// Seal keys from 32-byte master keys, newest first; `None` without any.
    pub fn new(masters: &[[u8; 32]]) -> Option<FlowSeal> {
        let keys: Vec<FlowKey> = masters
            .iter()
            .map(|m| FlowKey {
                cipher: Aes256Gcm::new(&hmac_sha256(m, b"flow-state encryption").into()),
                derive: hmac_sha256(m, b"flow-state derivation"),
            })
            .collect();
        (!keys.is_empty()).then_some(FlowSeal { keys })
    }

    /// Seals `flow` into a fresh state; `TooLong` when it would exceed
    /// [`MAX_STATE_CHARS`].
    pub fn seal(&self, flow: &FlowState) -> Result<SealedFlow, TooLong> {
        let key = &self.keys[0];
        let plain = flow_wire::encode(flow)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encrypting a short message cannot fail.
        #[allow(clippy::expect_used)]
        let ct = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        let state = URL_SAFE_NO_PAD.encode(&blob);
        if state.len() > MAX_STATE_CHARS {
            return Err(TooLong);
        }
        Ok(SealedFlow {
            state,
            pkce_verifier: flow.pkce.then(|| derived(key, b"pkce", &nonce)),
            binding_cookie: flow.bound.then(|| derived(key, b"binding", &nonce)),
        })
    }

    /// Opens a presented state; anything this broker's keys did not make is `Unknown`.
    pub fn open(&self, presented: &str) -> Result<OpenedFlow, StateRejection> {
        if presented.is_empty() || presented.len() > MAX_STATE_LEN {
            return Err(StateRejection::Unknown);
        }
        let blob = URL_SAFE_NO_PAD
            .decode(presented)
            .map_err(|_| StateRejection::Unknown)?;
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || ![VERSION, VERSION_JSON].contains(&blob[0]) {
            return Err(StateRejection::Unknown);
        }
        let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
        let (key, plain) = self
            .keys
            .iter()
            .find_map(|key| {
                key.cipher
                    .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
                    .ok()
                    .map(|p| (key, p))
            })
            .ok_or(StateRejection::Unknown)?;
        let flow = if blob[0] == VERSION {
            flow_wire::decode(&plain)
        } else {
            flow_wire::decode_v1(&plain)
        }
        .ok_or(StateRejection::Unknown)?;
        Ok(OpenedFlow {
            pkce_verifier: flow.pkce.then(|| derived(key, b"pkce", nonce)),
            binding_cookie: flow.bound.then(|| derived(key, b"binding", nonce)),
            // Of the canonical encoding, so that no other spelling of the same bytes
            // names another document.
            spent_id: sha256_hex(&URL_SAFE_NO_PAD.encode(&blob)),
            flow,
        })
    }
}

/// A per-flow secret: HMAC of the state's nonce under the derivation key, base64url
/// (43 characters, also a valid PKCE verifier).
fn derived(key: &FlowKey, purpose: &[u8], nonce: &[u8]) -> String {
    let mut msg = purpose.to_vec();
    msg.push(0);
    msg.extend_from_slice(nonce);
    URL_SAFE_NO_PAD.encode(hmac_sha256(&key.derive, &msg))
}

impl crate::domain::error_kind::Classified for StateRejection {
    fn kind(&self) -> crate::domain::ErrorKind {
        crate::domain::ErrorKind::Invalid
    }

    fn code(&self) -> ErrorCode {
        match self {
            StateRejection::Unknown => ErrorCode::StateUnknown,
            StateRejection::Expired => ErrorCode::StateExpired,
            StateRejection::Replayed => ErrorCode::StateReplayed,
            StateRejection::Mismatch => ErrorCode::StateMismatch,
            StateRejection::BindingMismatch => ErrorCode::FlowBindingMismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowState {
        FlowState {
            instance: Domain::parse("alice.example").unwrap(),
            account_type: "google".into(),
            client_state: "app-state".into(),
            nonce: "app-nonce".into(),
            slug: Slug::home(),
            expires_at: 1000,
            pkce: true,
            bound: false,
            account_id: None,
            provider_url: None,
            scope: AskedScope::TypeDefault,
        }
    }

    fn seal() -> FlowSeal {
        FlowSeal::new(&[[7u8; 32]]).unwrap()
    }

    #[test]
    fn a_sealed_flow_opens_to_itself_with_the_same_secrets() {
        let s = seal();
        let sealed = s.seal(&flow()).unwrap();
        let opened = s.open(&sealed.state).unwrap();
        assert_eq!(opened.flow, flow());
        assert_eq!(opened.pkce_verifier, sealed.pkce_verifier);
        assert_eq!(opened.spent_id, sha256_hex(&sealed.state));
        let verifier = sealed.pkce_verifier.unwrap();
        assert_eq!(verifier.len(), 43);
    }

    #[test]
    fn the_state_shows_nothing_of_the_flow_nor_its_verifier() {
        let sealed = seal().seal(&flow()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed.state).unwrap();
        let text = String::from_utf8_lossy(&raw);
        for hidden in ["alice", "google", "app-state", "app-nonce"] {
            assert!(!text.contains(hidden), "{hidden} visible in the state");
        }
        assert!(!sealed
            .state
            .contains(sealed.pkce_verifier.as_deref().unwrap()));
        assert!(!format!("{sealed:?}").contains(&sealed.state));
    }

    #[test]
    fn two_seals_of_one_flow_differ() {
        let s = seal();
        let (a, b) = (s.seal(&flow()).unwrap(), s.seal(&flow()).unwrap());
        assert_ne!(a.state, b.state);
        assert_ne!(a.pkce_verifier, b.pkce_verifier);
    }

    #[test]
    fn a_tampered_truncated_or_foreign_state_is_unknown() {
        let s = seal();
        let state = s.seal(&flow()).unwrap().state;
        let mut raw = URL_SAFE_NO_PAD.decode(&state).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&raw);
        let other = FlowSeal::new(&[[8u8; 32]])
            .unwrap()
            .seal(&flow())
            .unwrap()
            .state;
        for bad in [
            tampered.as_str(),
            &state[..state.len() - 4],
            &other,
            "",
            "not base64!",
            &"A".repeat(5000),
        ] {
            assert_eq!(s.open(bad).unwrap_err(), StateRejection::Unknown, "{bad}");
        }
    }

    #[test]
    fn a_state_sealed_before_a_rotation_still_opens() {
        let old = FlowSeal::new(&[[7u8; 32]]).unwrap();
        let state = old.seal(&flow()).unwrap().state;
        let rotated = FlowSeal::new(&[[9u8; 32], [7u8; 32]]).unwrap();
        assert!(rotated.open(&state).is_ok());
    }

    #[test]
    fn expired_and_cross_type_flows_are_refused() {
        let s = seal();
        let opened = s.open(&s.seal(&flow()).unwrap().state).unwrap();
        assert_eq!(opened.check("google", 999, Binding::Cookie(None)), Ok(()));
        assert_eq!(
            opened.check("google", 1000, Binding::Cookie(None)),
            Err(StateRejection::Expired)
        );
        assert_eq!(
            opened.check("github", 10, Binding::Cookie(None)),
            Err(StateRejection::Mismatch)
        );
    }

    #[test]
    fn a_bound_flow_needs_its_cookie() {
        let s = seal();
        let sealed = s
            .seal(&FlowState {
                bound: true,
                ..flow()
            })
            .unwrap();
        let cookie = sealed.binding_cookie.clone().unwrap();
        let opened = s.open(&sealed.state).unwrap();
        assert_eq!(
            opened.check("google", 10, Binding::Cookie(Some(&cookie))),
            Ok(())
        );
        assert_eq!(
            opened.check("google", 10, Binding::Cookie(Some("other"))),
            Err(StateRejection::BindingMismatch)
        );
        assert_eq!(
            opened.check("google", 10, Binding::Cookie(None)),
            Err(StateRejection::BindingMismatch)
        );
        // Another flow's cookie does not fit.
        let other = s
            .seal(&FlowState {
                bound: true,
                ..flow()
            })
            .unwrap()
            .binding_cookie
            .unwrap();
        assert_eq!(
            opened.check("google", 10, Binding::Cookie(Some(&other))),
            Err(StateRejection::BindingMismatch)
        );
    }

    #[test]
    fn debug_hides_the_derived_secrets() {
        let s = seal();
        let sealed = s
            .seal(&FlowState {
                bound: true,
                ..flow()
            })
            .unwrap();
        let opened = s.open(&sealed.state).unwrap();
        let shown = format!("{opened:?}");
        assert!(!shown.contains(sealed.pkce_verifier.as_deref().unwrap()));
        assert!(!shown.contains(sealed.binding_cookie.as_deref().unwrap()));
    }

    #[test]
    fn harvests_state_on_a_long_domain_stays_within_256_characters() {
        let f = FlowState {
            instance: Domain::parse("a-rather-long-name.cozy.example-hosting.cloud").unwrap(),
            account_type: "orangeapi".into(),
            client_state: "0f8813fb-816d-4fe5-982f-86328b627cfb".into(),
            nonce: "1796671408740".into(),
            bound: true,
            ..flow()
        };
        let state = seal().seal(&f).unwrap().state;
        assert!(state.len() <= MAX_STATE_CHARS, "{}", state.len());
        assert_eq!(seal().open(&state).unwrap().flow, f);
    }

    #[test]
    fn a_flow_that_would_exceed_256_characters_is_not_sealed() {
        let f = FlowState {
            client_state: "s".repeat(200),
            ..flow()
        };
        assert_eq!(seal().seal(&f).unwrap_err(), TooLong);
    }

    #[test]
    fn a_version_1_state_made_before_an_upgrade_still_opens() {
        // `seal` of the version before 2026-12-07: JSON under the same key and AAD.
        let key = &seal().keys[0];
        let json = br#"{"i":"alice.example","t":"google","s":"app-state","n":"app-nonce","a":"home","r":"https://b/accounts/google/redirect","e":1000,"k":true}"#;
        let nonce = [3u8; NONCE_LEN];
        let ct = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: json,
                    aad: AAD,
                },
            )
            .unwrap();
        let mut blob = vec![VERSION_JSON];
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        let opened = seal().open(&URL_SAFE_NO_PAD.encode(&blob)).unwrap();
        assert_eq!(opened.flow, flow());
        assert!(opened.pkce_verifier.is_some());
    }
}
