//! Clients the broker registered with providers (RFC 7591/7592): the stored document
//! ([`RegistrationDoc`], in `io.cozy.oauth.clients`' shape, its secrets sealed) and the
//! client it opens to ([`RegisteredClient`], ready for token requests).

use super::provider_url::ProviderUrl;
use super::sealed::{Keyring, SealError};
use super::{AccountType, Timestamp};
use oauth2::{ClientId, ClientSecret};
use serde_json::{Map, Value};
use url::Url;

/// Secret members of a registered client: sealed at rest, redacted on reads.
pub const SECRET_MEMBERS: [&str; 2] = ["client_secret", "registration_access_token"];

/// The id a registration is stored under: the account type's, or
/// `{account type}@{provider host}` for per-account providers.
pub fn registration_id(account_type_id: &str, provider: Option<&ProviderUrl>) -> String {
    match provider {
        Some(p) => format!("{account_type_id}@{}", p.authority()),
        None => account_type_id.to_owned(),
    }
}

/// Associated data of a sealed member of registration `id`.
pub fn aad(id: &str, member: &str) -> String {
    format!("registered_client:{id}:{member}")
}

/// Why a stored registration does not open to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// It has no `client_id`.
    #[error("no client_id")]
    NoClientId,
    /// A sealed member does not open with the configured keys.
    #[error("{0}")]
    Sealed(SealError),
}

/// A stored registration: the provider's members, the broker's own (`account_type`,
/// `provider_url`, `registration_endpoint`, `registered_at`, `updated_at`), secrets sealed.
#[derive(Clone, PartialEq)]
pub struct RegistrationDoc(Map<String, Value>);

impl std::fmt::Debug for RegistrationDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationDoc")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl TryFrom<Value> for RegistrationDoc {
    type Error = Value;

    fn try_from(v: Value) -> Result<RegistrationDoc, Value> {
        match v {
            Value::Object(m) => Ok(RegistrationDoc(m)),
            other => Err(other),
        }
    }
}

impl From<RegistrationDoc> for Value {
    fn from(d: RegistrationDoc) -> Value {
        Value::Object(d.0)
    }
}

impl RegistrationDoc {
    /// The document for a provider's registration `answer` (its members as given, minus
    /// CouchDB's own `_` ones), its secrets sealed; `None` without a `client_id`.
    pub fn from_answer(
        id: &str,
        at: &AccountType,
        provider: Option<&ProviderUrl>,
        endpoint: &Url,
        answer: Map<String, Value>,
        now: Timestamp,
        keyring: &Keyring,
    ) -> Option<RegistrationDoc> {
        let has_id = answer
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has_id {
            return None;
        }
        let mut doc = Map::new();
        doc.insert("_id".into(), id.into());
        for (k, v) in answer {
            if !k.starts_with('_') {
                doc.insert(k, v);
            }
        }
        doc.insert("account_type".into(), at.id.clone().into());
        doc.insert(
            "provider_url".into(),
            provider.map_or(Value::Null, |p| p.as_str().into()),
        );
        doc.insert("registration_endpoint".into(), endpoint.as_str().into());
        doc.insert("registered_at".into(), now.unix_secs().into());
        for m in SECRET_MEMBERS {
            let plain = doc.get(m).and_then(Value::as_str).map(str::to_owned);
            if let Some(sealed) = plain.and_then(|p| keyring.seal(&p, &aad(id, m))) {
                doc.insert(m.into(), sealed.into());
            }
        }
        Some(RegistrationDoc(doc))
    }

    /// The whole document.
    pub fn document(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// Its `_id`.
    pub fn id(&self) -> &str {
        self.text("_id").unwrap_or_default()
    }

    /// Its `_rev`, once stored.
    pub fn rev(&self) -> Option<&str> {
        self.text("_rev")
    }

    /// Records the revision the store answered, or forgets it (`None`).
    pub fn set_rev(&mut self, rev: Option<&str>) {
        match rev {
            Some(r) => self.0.insert("_rev".into(), r.into()),
            None => self.0.remove("_rev"),
        };
    }

    /// Where it was registered.
    pub fn registration_endpoint(&self) -> Option<Url> {
        self.text("registration_endpoint")
            .and_then(|e| Url::parse(e).ok())
    }

    /// Carries over what an update keeps: the first registration time, and the time of
    /// this update.
    pub fn updated_from(&mut self, earlier: &RegistrationDoc, now: Timestamp) {
        if let Some(first) = earlier.0.get("registered_at") {
            self.0.insert("registered_at".into(), first.clone());
        }
        self.0.insert("updated_at".into(), now.unix_secs().into());
    }

    /// A copy with its secrets replaced by `[redacted]`.
    pub fn redacted(&self) -> Value {
        redacted(&self.document())
    }

    /// The sealed members the newest key would seal differently.
    pub fn stale_seals(&self, keyring: &Keyring) -> Vec<&'static str> {
        SECRET_MEMBERS
            .into_iter()
            .filter(|m| {
                self.text(m)
                    .is_some_and(|v| !v.is_empty() && keyring.needs_reseal(v))
            })
            .collect()
    }

    /// Seals `members` again with the newest key; the member that does not open, if one.
    pub fn reseal(
        &mut self,
        members: &[&'static str],
        keyring: &Keyring,
    ) -> Result<(), (&'static str, SealError)> {
        let id = self.id().to_owned();
        for m in members {
            let raw = self.text(m).unwrap_or_default().to_owned();
            let plain = keyring.open(&raw, &aad(&id, m)).map_err(|e| (*m, e))?;
            if let Some(v) = keyring.seal(&plain, &aad(&id, m)) {
                self.0.insert((*m).into(), v.into());
            }
        }
        Ok(())
    }

    /// The client it registers, its secrets opened.
    pub fn open(&self, keyring: &Keyring) -> Result<RegisteredClient, OpenError> {
        let id = self.id();
        let open = |m: &str| -> Result<Option<String>, OpenError> {
            match self.text(m).filter(|s| !s.is_empty()) {
                Some(v) => keyring
                    .open(v, &aad(id, m))
                    .map(Some)
                    .map_err(OpenError::Sealed),
                None => Ok(None),
            }
        };
        let client_id = self.text("client_id").ok_or(OpenError::NoClientId)?;
        let endpoint = self.text("registration_endpoint");
        let client_uri = match self.text("registration_client_uri") {
            Some(given) => managed_at(given, endpoint),
            // cozy-stack answers without it: its management URL is the endpoint + id.
            None => endpoint.and_then(|e| {
                Url::parse(&format!("{}/{}", e.trim_end_matches('/'), client_id)).ok()
            }),
        };
        Ok(RegisteredClient {
            id: id.to_owned(),
            client_id: ClientId::new(client_id.to_owned()),
            client_secret: open("client_secret")?.map(ClientSecret::new),
            secret_expires_at: self
                .0
                .get("client_secret_expires_at")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            registration_access_token: open("registration_access_token")?,
            registration_client_uri: client_uri,
        })
    }

    fn text(&self, member: &str) -> Option<&str> {
        self.0.get(member).and_then(Value::as_str)
    }
}

/// A copy of a stored registration (or a provider's answer) with its secrets replaced by
/// `[redacted]`.
pub fn redacted(doc: &Value) -> Value {
    let mut out = doc.clone();
    if let Some(obj) = out.as_object_mut() {
        for k in SECRET_MEMBERS {
            if obj.get(k).is_some_and(|v| !v.is_null()) {
                obj.insert(k.into(), super::account_type::REDACTED.into());
            }
        }
    }
    out
}

/// A registered client, ready for token requests; `Debug` hides its secrets.
#[derive(Clone)]
pub struct RegisteredClient {
    /// Stored document id: `{account type}` or `{account type}@{provider host}`.
    pub id: String,
    /// OAuth client id.
    pub client_id: ClientId,
    /// OAuth client secret, when the provider issued one.
    pub client_secret: Option<ClientSecret>,
    /// Unix seconds after which the secret is dead; 0 means never (RFC 7591 §3.2.1).
    pub secret_expires_at: i64,
    /// The RFC 7592 management token.
    pub registration_access_token: Option<String>,
    /// The RFC 7592 management URL, on the registration endpoint's origin.
    pub registration_client_uri: Option<Url>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("id", &self.id)
            .field("client_id", &self.client_id.as_str())
            .field("secret_expires_at", &self.secret_expires_at)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// Whether the secret has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.secret_expires_at != 0 && self.secret_expires_at <= now.unix_secs()
    }

    /// `at` with this client's credentials.
    pub fn apply(&self, at: &AccountType) -> AccountType {
        let mut at = at.clone();
        at.client_id = Some(self.client_id.clone());
        at.client_secret = self.client_secret.clone();
        at
    }

    /// Where and with what token it is managed (RFC 7592), when the provider said.
    pub fn management(&self) -> Option<(Url, String)> {
        match (
            &self.registration_client_uri,
            &self.registration_access_token,
        ) {
            (Some(u), Some(t)) => Some((u.clone(), t.clone())),
            _ => None,
        }
    }
}

/// The management URL a provider gave, if it is on the registration endpoint's origin:
/// the broker sends the registration access token there, so a provider (or whoever
/// answered for it) may not point it at another host or scheme.
fn managed_at(given: &str, endpoint: Option<&str>) -> Option<Url> {
    let given = Url::parse(given).ok()?;
    let endpoint = Url::parse(endpoint?).ok()?;
    // Another origin is ignored: the client is then not manageable, and the error that
    // says so names this cause.
    (given.origin() == endpoint.origin()).then_some(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_management_url_must_share_the_registration_endpoints_origin() {
        let ep = Some("https://p.example/auth/register");
        assert!(managed_at("https://p.example/auth/register/c1", ep).is_some());
        for elsewhere in [
            "https://evil.example/auth/register/c1",
            "http://p.example/auth/register/c1",
            "https://p.example:8443/auth/register/c1",
            "file:///etc/passwd",
        ] {
            assert!(managed_at(elsewhere, ep).is_none(), "{elsewhere}");
        }
    }

    #[test]
    fn debug_of_a_registration_hides_its_secrets() {
        let doc = RegistrationDoc::try_from(serde_json::json!({"_id": "r",
            "client_id": "c", "client_secret": "the-secret"}))
        .unwrap();
        assert!(!format!("{doc:?}").contains("the-secret"));
        let client = doc.open(&Keyring::parse("").unwrap()).unwrap();
        assert!(!format!("{client:?}").contains("the-secret"));
        assert_eq!(doc.redacted()["client_secret"], "[redacted]");
    }
}
