//! Dynamic client registration (RFC 7591) and its management (RFC 7592).
//!
//! An account type with a `registration_endpoint` names no client: the broker registers
//! one on first use, keeps it in `broker/registered_clients` (fields of cozy's
//! `io.cozy.oauth.clients`, secrets sealed), reuses it, and registers again once
//! `client_secret_expires_at` has passed. Operators read, update, rotate the secret of and
//! unregister clients through the admin API and the CLI.

use super::keyed_locks::KeyedLocks;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::sealed::{Keyring, SealError};
use crate::domain::ErrorCode;
use crate::domain::{AccountType, TokenMode};
use crate::domain::{Classified, ErrorKind, Timestamp};
use crate::oauth::{ProviderClient, ProviderError};
use crate::store::account_types::LookupError;
use crate::store::cache::ChangesCache;
use crate::store::{put_creating_db, rev_of, SharedStore, StoreError, REGISTERED_CLIENTS_DB};
use oauth2::{ClientId, ClientSecret};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use url::Url;

/// Secret members of a registered client: sealed at rest, redacted on reads.
pub(crate) const SECRET_MEMBERS: [&str; 2] = ["client_secret", "registration_access_token"];

/// Why a registered client could not be had or managed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The provider failed or refused.
    #[error("client registration at the provider failed: {0}")]
    Provider(ProviderError),
    /// The provider's answer has no `client_id`.
    #[error("the provider's registration answer has no client_id")]
    NoClientId,
    /// No registered client by that id.
    #[error("no registered client `{0}`")]
    NotRegistered(String),
    /// The provider gave no registration access token, so the client cannot be managed.
    #[error("registered client `{0}` cannot be managed: the provider gave no registration_access_token, or a registration_client_uri off its registration endpoint's origin (RFC 7592)")]
    NotManageable(String),
    /// A sealed secret cannot be opened with the configured keys.
    #[error("registered client `{0}`: {1}")]
    Sealed(String, SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account type the client was registered for is gone or broken.
    #[error(transparent)]
    AccountType(#[from] LookupError),
}

impl Classified for RegistrationError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistrationError::Provider(p) => p.kind(),
            RegistrationError::NoClientId => ErrorKind::Upstream,
            RegistrationError::NotRegistered(_) => ErrorKind::NotFound,
            RegistrationError::NotManageable(_) => ErrorKind::Conflict,
            RegistrationError::Sealed(_, e) => e.kind(),
            RegistrationError::Store(e) => e.kind(),
            RegistrationError::AccountType(e) => e.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            RegistrationError::Provider(ProviderError::Timeout) => ErrorCode::ProviderTimeout,
            RegistrationError::Provider(_) | RegistrationError::NoClientId => {
                ErrorCode::RegistrationFailed
            }
            RegistrationError::NotRegistered(_) => ErrorCode::NotRegistered,
            RegistrationError::NotManageable(_) => ErrorCode::NotManageable,
            RegistrationError::Sealed(_, e) => e.code(),
            RegistrationError::Store(e) => e.code(),
            RegistrationError::AccountType(e) => e.code(),
        }
    }
}

// Not `#[from]`: the message already says the provider's error, and a source would
// print it twice in `{:#}` chains.
impl From<ProviderError> for RegistrationError {
    fn from(e: ProviderError) -> Self {
        RegistrationError::Provider(e)
    }
}

/// A registered client, ready for token requests; `Debug` hides its secrets.
#[derive(Clone)]
pub(crate) struct RegisteredClient {
    /// Stored document id: `{account type}` or `{account type}@{provider host}`.
    pub id: String,
    /// OAuth client id.
    pub client_id: ClientId,
    /// OAuth client secret, when the provider issued one.
    pub client_secret: Option<ClientSecret>,
    /// Unix seconds after which the secret is dead; 0 means never (RFC 7591 §3.2.1).
    pub secret_expires_at: i64,
    registration_access_token: Option<String>,
    registration_client_uri: Option<Url>,
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
    pub(crate) fn expired(&self, now: Timestamp) -> bool {
        self.secret_expires_at != 0 && self.secret_expires_at <= now.unix_secs()
    }

    /// `at` with this client's credentials.
    pub(crate) fn apply(&self, at: &AccountType) -> AccountType {
        let mut at = at.clone();
        at.client_id = Some(self.client_id.clone());
        at.client_secret = self.client_secret.clone();
        at
    }
}

/// The id a registration is stored under.
pub(crate) fn registration_id(account_type_id: &str, provider: Option<&ProviderUrl>) -> String {
    match provider {
        Some(p) => format!("{account_type_id}@{}", p.authority()),
        None => account_type_id.to_owned(),
    }
}

/// A copy of a stored registration with its secrets replaced by `[redacted]`.
pub(crate) fn redacted(doc: &Value) -> Value {
    let mut out = doc.clone();
    if let Some(obj) = out.as_object_mut() {
        for k in SECRET_MEMBERS {
            if obj.get(k).is_some_and(|v| !v.is_null()) {
                obj.insert(k.into(), crate::domain::account_type::REDACTED.into());
            }
        }
    }
    out
}

/// Registered clients: the store, the keys that seal them, and the provider client.
pub(crate) struct Registrations {
    store: SharedStore,
    keyring: Arc<Keyring>,
    provider: ProviderClient,
    /// One registration, update or deletion at a time per id in this process, so a
    /// provider's answers are stored in the order it gave them.
    locks: KeyedLocks,
    /// Registered clients as last read, by id: flows read them on every start and
    /// redirect. Forgotten on this process's writes and through the changes feed.
    cache: Arc<ChangesCache<Option<RegisteredClient>>>,
}

/// Registered clients remembered at most; the table is emptied when full.
const MAX_CACHED_CLIENTS: usize = 10_000;
/// How long a cached client is trusted if the changes feed were to stall.
const CLIENT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a changes-feed request waits for a change.
const CHANGES_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

impl Registrations {
    /// The service over a store.
    pub(crate) fn new(store: SharedStore, keyring: Arc<Keyring>, provider: ProviderClient) -> Self {
        Registrations {
            store,
            keyring,
            provider,
            locks: KeyedLocks::default(),
            cache: Arc::new(ChangesCache::new(MAX_CACHED_CLIENTS, CLIENT_CACHE_TTL)),
        }
    }

    /// Forgets a cached client (after this process wrote or deleted it).
    fn forget(&self, id: &str) {
        self.cache.forget([id]);
    }

    /// Waits for changes to the registered clients after `since` and forgets the cached
    /// ones they touch; returns the sequence to ask from next.
    pub(crate) async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = match self
            .store
            .changes(REGISTERED_CLIENTS_DB, &since, CHANGES_WAIT)
            .await
        {
            Err(StoreError::NoDatabase(_)) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return Ok(since);
            }
            other => other?,
        };
        if !batch.changes.is_empty() {
            self.cache
                .forget(batch.changes.iter().map(|c| c.id.as_str()));
        }
        Ok(batch.last_seq)
    }

    /// [`Registrations::load`]'s client through the cache.
    async fn cached_client(&self, id: &str) -> Result<Option<RegisteredClient>, RegistrationError> {
        self.cache
            .get_or_load(id, || async {
                Ok(self.load(id).await?.map(|(_, client)| client))
            })
            .await
    }

    pub(crate) fn aad(id: &str, member: &str) -> String {
        format!("registered_client:{id}:{member}")
    }

    /// The client to use for `at` (already pointed at its provider): the stored one,
    /// or a new registration when there is none or its secret has expired.
    pub(crate) async fn client_for(
        &self,
        at: &AccountType,
        id: &str,
        provider: Option<&ProviderUrl>,
        redirect_uri: &str,
        now: Timestamp,
    ) -> Result<RegisteredClient, RegistrationError> {
        if let Some(client) = self.cached_client(id).await? {
            if !client.expired(now) {
                return Ok(client);
            }
        }
        // Flows starting together in this process register once: the first one in
        // registers, the others find its client.
        let lock = self.locks.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        let stored = self.load(id).await?;
        if let Some((_, client)) = &stored {
            if !client.expired(now) {
                return Ok(client.clone());
            }
            tracing::info!(
                registration = id,
                "client secret expired: registering again"
            );
        }
        let Some(endpoint) = at.registration_endpoint.as_ref() else {
            return Err(RegistrationError::NotRegistered(id.to_owned()));
        };
        let metadata = metadata_for(at, redirect_uri);
        let (_, answer) = self
            .provider
            .json(Method::POST, endpoint, None, Some(&Value::Object(metadata)))
            .await?;
        let mut doc = self.document(id, at, provider, endpoint, answer, now)?;
        if let Some(rev) = stored.as_ref().and_then(|(d, _)| rev_of(d)) {
            doc["_rev"] = rev.into();
        }
        let stored_now = put_creating_db(self.store.as_ref(), REGISTERED_CLIENTS_DB, &doc).await;
        self.forget(id);
        match stored_now {
            Ok(_) => {
                tracing::info!(registration = id, "client registered");
                self.client_of(id, &doc)
            }
            Err(StoreError::Conflict) => {
                // Another request registered meanwhile: keep theirs, drop ours.
                let ours = self.client_of(id, &doc)?;
                self.delete_at_provider(&ours).await.ok();
                self.load(id)
                    .await?
                    .map(|(_, c)| c)
                    .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn document(
        &self,
        id: &str,
        at: &AccountType,
        provider: Option<&ProviderUrl>,
        endpoint: &Url,
        answer: Map<String, Value>,
        now: Timestamp,
    ) -> Result<Value, RegistrationError> {
        let has_id = answer
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has_id {
            return Err(RegistrationError::NoClientId);
        }
        let mut doc = Map::new();
        doc.insert("_id".into(), id.into());
        // The provider's members, as io.cozy.oauth.clients has them; CouchDB's own
        // `_` members are not the provider's to set.
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
            if let Some(sealed) = plain.and_then(|p| self.keyring.seal(&p, &Self::aad(id, m))) {
                doc.insert(m.into(), sealed.into());
            }
        }
        Ok(Value::Object(doc))
    }

    fn client_of(&self, id: &str, doc: &Value) -> Result<RegisteredClient, RegistrationError> {
        let open = |m: &str| -> Result<Option<String>, RegistrationError> {
            match doc.get(m).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                Some(v) => self
                    .keyring
                    .open(v, &Self::aad(id, m))
                    .map(Some)
                    .map_err(|e| RegistrationError::Sealed(id.to_owned(), e)),
                None => Ok(None),
            }
        };
        let client_id = doc
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or(RegistrationError::NoClientId)?;
        let endpoint = doc.get("registration_endpoint").and_then(Value::as_str);
        let client_uri = match doc.get("registration_client_uri").and_then(Value::as_str) {
            Some(given) => managed_at(id, given, endpoint),
            // cozy-stack answers without it: its management URL is the endpoint + id.
            None => endpoint.and_then(|e| {
                Url::parse(&format!("{}/{}", e.trim_end_matches('/'), client_id)).ok()
            }),
        };
        Ok(RegisteredClient {
            id: id.to_owned(),
            client_id: ClientId::new(client_id.to_owned()),
            client_secret: open("client_secret")?.map(ClientSecret::new),
            secret_expires_at: doc
                .get("client_secret_expires_at")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            registration_access_token: open("registration_access_token")?,
            registration_client_uri: client_uri,
        })
    }

    async fn load(&self, id: &str) -> Result<Option<(Value, RegisteredClient)>, RegistrationError> {
        let doc = match self.store.get(REGISTERED_CLIENTS_DB, id).await {
            Ok(d) => d,
            Err(StoreError::NoDatabase(_)) => None,
            Err(e) => return Err(e.into()),
        };
        match doc {
            Some(d) => {
                let c = self.client_of(id, &d)?;
                Ok(Some((d, c)))
            }
            None => Ok(None),
        }
    }

    /// Re-seals every registered client's secret and registration access token with the
    /// newest key; returns how many changed and the registrations that could not be (id,
    /// why), which are left as they are.
    pub(crate) async fn reseal_all(
        &self,
    ) -> Result<(usize, Vec<(String, String)>), RegistrationError> {
        let docs = match self.store.all_docs(REGISTERED_CLIENTS_DB).await {
            Ok(d) => d,
            Err(StoreError::NoDatabase(_)) => return Ok((0, Vec::new())),
            Err(e) => return Err(e.into()),
        };
        let mut changed = 0;
        let mut failed = Vec::new();
        for mut doc in docs {
            let id = doc
                .get("_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let stale: Vec<&str> = SECRET_MEMBERS
                .into_iter()
                .filter(|m| {
                    doc.get(*m)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty() && self.keyring.needs_reseal(v))
                })
                .collect();
            if stale.is_empty() {
                continue;
            }
            let lock = self.locks.lock_for(&id);
            let _one_at_a_time = lock.lock().await;
            let mut opened = true;
            for m in stale {
                let raw = doc.get(m).and_then(Value::as_str).unwrap_or_default();
                match self.keyring.open(raw, &Self::aad(&id, m)) {
                    Ok(plain) => {
                        if let Some(v) = self.keyring.seal(&plain, &Self::aad(&id, m)) {
                            doc[m] = v.into();
                        }
                    }
                    Err(e) => {
                        failed.push((id.clone(), format!("{m}: {e}")));
                        opened = false;
                        break;
                    }
                }
            }
            if !opened {
                continue;
            }
            let resealed = self.store.put(REGISTERED_CLIENTS_DB, &doc).await;
            self.forget(&id);
            match resealed {
                Ok(_) => changed += 1,
                Err(StoreError::Conflict) => {
                    failed.push((id, "changed meanwhile; run the rotation again".into()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((changed, failed))
    }

    /// A stored registration, secrets redacted.
    pub(crate) async fn get(&self, id: &str) -> Result<Value, RegistrationError> {
        match self.load(id).await? {
            Some((d, _)) => Ok(redacted(&d)),
            None => Err(RegistrationError::NotRegistered(id.to_owned())),
        }
    }

    /// Every stored registration, secrets redacted.
    pub(crate) async fn list(&self) -> Result<Vec<Value>, RegistrationError> {
        match self.store.all_docs(REGISTERED_CLIENTS_DB).await {
            Ok(docs) => Ok(docs.iter().map(redacted).collect()),
            Err(StoreError::NoDatabase(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    fn management(&self, c: &RegisteredClient) -> Result<(Url, String), RegistrationError> {
        match (&c.registration_client_uri, &c.registration_access_token) {
            (Some(u), Some(t)) => Ok((u.clone(), t.clone())),
            _ => Err(RegistrationError::NotManageable(c.id.clone())),
        }
    }

    /// What the provider says of the client now (RFC 7592 read), secrets redacted.
    pub(crate) async fn read_at_provider(&self, id: &str) -> Result<Value, RegistrationError> {
        let (_, c) = self
            .load(id)
            .await?
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        let (uri, token) = self.management(&c)?;
        let (_, answer) = self
            .provider
            .json(Method::GET, &uri, Some(&token), None)
            .await?;
        Ok(redacted(&Value::Object(answer)))
    }

    /// Sends the account type's metadata again (RFC 7592 update); with `reset_secret`,
    /// asks for a new secret the way cozy-stack does (the current one in the body).
    /// Returns the stored registration, redacted.
    pub(crate) async fn update(
        &self,
        id: &str,
        at: &AccountType,
        provider: Option<&ProviderUrl>,
        redirect_uri: &str,
        reset_secret: bool,
        now: Timestamp,
    ) -> Result<Value, RegistrationError> {
        let lock = self.locks.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        let (stored, c) = self
            .load(id)
            .await?
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        let (uri, token) = self.management(&c)?;
        let mut body = metadata_for(at, redirect_uri);
        body.insert("client_id".into(), c.client_id.as_str().into());
        if reset_secret {
            if let Some(s) = &c.client_secret {
                body.insert("client_secret".into(), s.secret().clone().into());
            }
        }
        let (_, mut answer) = self
            .provider
            .json(Method::PUT, &uri, Some(&token), Some(&Value::Object(body)))
            .await?;
        // RFC 7592 §2.2: members left out of the answer are unchanged, the management
        // token among them.
        for m in ["registration_access_token", "registration_client_uri"] {
            if !answer.contains_key(m) {
                if let Some(v) = c_member(&c, m) {
                    answer.insert(m.into(), v.into());
                }
            }
        }
        let endpoint = stored
            .get("registration_endpoint")
            .and_then(Value::as_str)
            .and_then(|e| Url::parse(e).ok())
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        let mut doc = self.document(id, at, provider, &endpoint, answer, now)?;
        if let Some(first) = stored.get("registered_at") {
            doc["registered_at"] = first.clone();
        }
        doc["updated_at"] = now.unix_secs().into();
        if let Some(rev) = rev_of(&stored) {
            doc["_rev"] = rev.into();
        }
        self.put_over(&mut doc).await?;
        Ok(redacted(&doc))
    }

    /// Deletes the client at the provider (RFC 7592 delete), then here. A provider that no
    /// longer knows the client (401, 403, 404) counts as done.
    pub(crate) async fn unregister(&self, id: &str) -> Result<(), RegistrationError> {
        let lock = self.locks.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        let (_, c) = self
            .load(id)
            .await?
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        match self.delete_at_provider(&c).await {
            Ok(()) => {}
            Err(RegistrationError::Provider(
                ProviderError::OAuth { status, .. } | ProviderError::Garbage { status },
            )) if matches!(status, 401 | 403 | 404) => {
                tracing::info!(
                    registration = id,
                    status,
                    "provider no longer knows the client"
                );
            }
            Err(e) => return Err(e),
        }
        // Another process may have written it meanwhile: delete whatever revision is there.
        for _ in 0..3 {
            let Some(current) = self.store.get(REGISTERED_CLIENTS_DB, id).await? else {
                return Ok(());
            };
            let rev = rev_of(&current).unwrap_or_default().to_owned();
            let deleted = self.store.delete(REGISTERED_CLIENTS_DB, id, &rev).await;
            self.forget(id);
            match deleted {
                Err(StoreError::Conflict) => continue,
                other => return Ok(other?),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// Stores the provider's newest answer over whatever revision another process wrote
    /// meanwhile: the provider has already acted, so losing its answer would lose a secret.
    async fn put_over(&self, doc: &mut Value) -> Result<(), RegistrationError> {
        let id = doc["_id"].as_str().unwrap_or_default().to_owned();
        for _ in 0..3 {
            let written = put_creating_db(self.store.as_ref(), REGISTERED_CLIENTS_DB, doc).await;
            self.forget(&id);
            match written {
                Ok(rev) => {
                    doc["_rev"] = rev.into();
                    return Ok(());
                }
                Err(StoreError::Conflict) => {
                    let current = self.store.get(REGISTERED_CLIENTS_DB, &id).await?;
                    match (current.as_ref().and_then(rev_of), doc.as_object_mut()) {
                        (Some(rev), Some(o)) => {
                            o.insert("_rev".into(), rev.into());
                        }
                        (None, Some(o)) => {
                            o.remove("_rev");
                        }
                        _ => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    async fn delete_at_provider(&self, c: &RegisteredClient) -> Result<(), RegistrationError> {
        let (uri, token) = self.management(c)?;
        self.provider
            .json(Method::DELETE, &uri, Some(&token), None)
            .await?;
        Ok(())
    }
}

/// The management URL a provider gave, if it is on the registration endpoint's origin:
/// the broker sends the registration access token there, so a provider (or whoever
/// answered for it) may not point it at another host or scheme.
fn managed_at(id: &str, given: &str, endpoint: Option<&str>) -> Option<Url> {
    let given = Url::parse(given).ok()?;
    let endpoint = Url::parse(endpoint?).ok()?;
    if given.origin() == endpoint.origin() {
        Some(given)
    } else {
        tracing::warn!(
            registration = id,
            "registration_client_uri is not on the registration endpoint's origin: ignored"
        );
        None
    }
}

fn c_member(c: &RegisteredClient, member: &str) -> Option<String> {
    match member {
        "registration_access_token" => c.registration_access_token.clone(),
        "registration_client_uri" => c.registration_client_uri.as_ref().map(Url::to_string),
        _ => None,
    }
}

/// The metadata registered for `at`: its `client_metadata`, with RFC 7591 defaults for a
/// code flow client of this broker.
pub(crate) fn metadata_for(at: &AccountType, redirect_uri: &str) -> Map<String, Value> {
    let mut m = at.client_metadata.clone();
    m.entry("redirect_uris")
        .or_insert_with(|| json!([redirect_uri]));
    m.entry("grant_types")
        .or_insert_with(|| json!(["authorization_code", "refresh_token"]));
    m.entry("response_types").or_insert_with(|| json!(["code"]));
    m.entry("token_endpoint_auth_method").or_insert_with(|| {
        match at.token_mode {
            TokenMode::Basic => "client_secret_basic",
            _ => "client_secret_post",
        }
        .into()
    });
    m.entry("client_name")
        .or_insert_with(|| format!("oauth-broker ({})", at.service_id()).into());
    m.entry("software_id")
        .or_insert_with(|| "github.com/oauth-broker/oauth-broker".into());
    m.entry("software_version")
        .or_insert_with(|| env!("CARGO_PKG_VERSION").into());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_management_url_must_share_the_registration_endpoints_origin() {
        let ep = Some("https://p.example/auth/register");
        assert!(managed_at("r", "https://p.example/auth/register/c1", ep).is_some());
        for elsewhere in [
            "https://evil.example/auth/register/c1",
            "http://p.example/auth/register/c1",
            "https://p.example:8443/auth/register/c1",
            "file:///etc/passwd",
        ] {
            assert!(managed_at("r", elsewhere, ep).is_none(), "{elsewhere}");
        }
    }
}
