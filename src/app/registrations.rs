//! Dynamic client registration (RFC 7591) and its management (RFC 7592).
//!
//! An account type with a `registration_endpoint` names no client: the broker registers
//! one on first use, keeps it in `broker/registered_clients` (fields of cozy's
//! `io.cozy.oauth.clients`, secrets sealed), reuses it, and registers again once
//! `client_secret_expires_at` has passed. Operators read, update, rotate the secret of and
//! unregister clients through the admin API and the CLI.

use super::keyed_locks::KeyedLocks;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::registered_client::{OpenError, RegisteredClient, RegistrationDoc};
use crate::domain::sealed::{Keyring, SealError};
use crate::domain::AccountType;
use crate::domain::ErrorCode;
use crate::domain::{Classified, ErrorKind, Timestamp};
use crate::oauth::registration::{metadata_for, RegistrationClient};
use crate::oauth::{ProviderClient, ProviderError};
use crate::store::account_types::LookupError;
use crate::store::registered_clients::RegisteredClients;
use crate::store::{SharedStore, StoreError};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

pub(crate) use crate::domain::registered_client::registration_id;

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

/// The registered clients use case: the client a flow needs (registering when there is
/// none or its secret expired), and the operator's reads, updates and deletions.
pub(crate) struct Registrations {
    clients: RegisteredClients,
    keyring: Arc<Keyring>,
    protocol: RegistrationClient,
    /// One registration, update or deletion at a time per id in this process, so a
    /// provider's answers are stored in the order it gave them.
    locks: KeyedLocks,
}

impl Registrations {
    /// The use case over a store.
    pub(crate) fn new(store: SharedStore, keyring: Arc<Keyring>, provider: ProviderClient) -> Self {
        Registrations {
            clients: RegisteredClients::new(store),
            keyring,
            protocol: RegistrationClient::new(provider),
            locks: KeyedLocks::default(),
        }
    }

    /// Waits for changes to the registered clients after `since` and forgets the cached
    /// ones they touch; returns the sequence to ask from next.
    pub(crate) async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        self.clients.follow_changes(since).await
    }

    fn open(&self, doc: &RegistrationDoc) -> Result<RegisteredClient, RegistrationError> {
        doc.open(&self.keyring).map_err(|e| match e {
            OpenError::NoClientId => RegistrationError::NoClientId,
            OpenError::Sealed(s) => RegistrationError::Sealed(doc.id().to_owned(), s),
        })
    }

    /// The stored registration `id` and its client.
    async fn load(
        &self,
        id: &str,
    ) -> Result<Option<(RegistrationDoc, RegisteredClient)>, RegistrationError> {
        match self.clients.get(id).await? {
            Some(d) => {
                let c = self.open(&d)?;
                Ok(Some((d, c)))
            }
            None => Ok(None),
        }
    }

    /// [`Registrations::load`]'s client, through the repository's cache.
    async fn cached_client(&self, id: &str) -> Result<Option<RegisteredClient>, RegistrationError> {
        self.clients
            .cached(id)
            .await?
            .map(|d| self.open(&d))
            .transpose()
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
        let answer = self
            .protocol
            .register(endpoint, metadata_for(at, redirect_uri))
            .await?;
        let mut doc =
            RegistrationDoc::from_answer(id, at, provider, endpoint, answer, now, &self.keyring)
                .ok_or(RegistrationError::NoClientId)?;
        doc.set_rev(stored.as_ref().and_then(|(d, _)| d.rev()));
        match self.clients.put(&mut doc).await {
            Ok(()) => {
                tracing::info!(registration = id, "client registered");
                self.open(&doc)
            }
            Err(StoreError::Conflict) => {
                // Another request registered meanwhile: keep theirs, drop ours.
                let ours = self.open(&doc)?;
                self.delete_at_provider(&ours).await.ok();
                self.load(id)
                    .await?
                    .map(|(_, c)| c)
                    .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Re-seals every registered client's secret and registration access token with the
    /// newest key; returns how many changed and the registrations that could not be (id,
    /// why), which are left as they are.
    pub(crate) async fn reseal_all(
        &self,
    ) -> Result<(usize, Vec<(String, String)>), RegistrationError> {
        let mut changed = 0;
        let mut failed = Vec::new();
        for mut doc in self.clients.all().await? {
            let stale = doc.stale_seals(&self.keyring);
            if stale.is_empty() {
                continue;
            }
            let id = doc.id().to_owned();
            let lock = self.locks.lock_for(&id);
            let _one_at_a_time = lock.lock().await;
            if let Err((member, e)) = doc.reseal(&stale, &self.keyring) {
                failed.push((id, format!("{member}: {e}")));
                continue;
            }
            match self.clients.put(&mut doc).await {
                Ok(()) => changed += 1,
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
            Some((d, _)) => Ok(d.redacted()),
            None => Err(RegistrationError::NotRegistered(id.to_owned())),
        }
    }

    /// Every stored registration, secrets redacted.
    pub(crate) async fn list(&self) -> Result<Vec<Value>, RegistrationError> {
        Ok(self
            .clients
            .all()
            .await?
            .iter()
            .map(RegistrationDoc::redacted)
            .collect())
    }

    fn management(&self, c: &RegisteredClient) -> Result<(Url, String), RegistrationError> {
        c.management()
            .ok_or_else(|| RegistrationError::NotManageable(c.id.clone()))
    }

    /// What the provider says of the client now (RFC 7592 read), secrets redacted.
    pub(crate) async fn read_at_provider(&self, id: &str) -> Result<Value, RegistrationError> {
        let (_, c) = self
            .load(id)
            .await?
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        let (uri, token) = self.management(&c)?;
        let answer = self.protocol.read(&uri, &token).await?;
        Ok(crate::domain::registered_client::redacted(&Value::Object(
            answer,
        )))
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
        let mut answer = self.protocol.update(&uri, &token, body).await?;
        // RFC 7592 §2.2: members left out of the answer are unchanged, the management
        // token among them.
        if !answer.contains_key("registration_access_token") {
            answer.insert("registration_access_token".into(), token.into());
        }
        if !answer.contains_key("registration_client_uri") {
            answer.insert("registration_client_uri".into(), uri.to_string().into());
        }
        let endpoint = stored
            .registration_endpoint()
            .ok_or_else(|| RegistrationError::NotRegistered(id.to_owned()))?;
        let mut doc =
            RegistrationDoc::from_answer(id, at, provider, &endpoint, answer, now, &self.keyring)
                .ok_or(RegistrationError::NoClientId)?;
        doc.updated_from(&stored, now);
        doc.set_rev(stored.rev());
        self.clients.put_over(&mut doc).await?;
        Ok(doc.redacted())
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
        Ok(self.clients.delete(id).await?)
    }

    async fn delete_at_provider(&self, c: &RegisteredClient) -> Result<(), RegistrationError> {
        let (uri, token) = self.management(c)?;
        Ok(self.protocol.delete(&uri, &token).await?)
    }
}
