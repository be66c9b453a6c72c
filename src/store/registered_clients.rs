//! Registered clients (`broker/registered_clients`), read through a cache that this
//! process's writes and the database's changes feed keep true; documents are kept as
//! stored (secrets sealed), so nothing opened stays in memory.

use super::cache::ChangesCache;
use super::{put_creating_db, SharedStore, StoreError, REGISTERED_CLIENTS_DB};
use crate::domain::registered_client::RegistrationDoc;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Registered clients remembered at most; the table is emptied when full.
const MAX_CACHED: usize = 10_000;
/// How long a cached client is trusted if the changes feed were to stall.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a changes-feed request waits for a change.
const CHANGES_WAIT: Duration = Duration::from_secs(25);

/// The registered clients repository.
#[derive(Clone)]
pub struct RegisteredClients {
    store: SharedStore,
    cache: Arc<ChangesCache<Option<RegistrationDoc>>>,
}

fn parsed(doc: Value) -> Result<RegistrationDoc, StoreError> {
    RegistrationDoc::try_from(doc)
        .map_err(|_| StoreError::Invalid("a registered client must be a JSON object".into()))
}

impl RegisteredClients {
    /// The repository over `store`.
    pub fn new(store: SharedStore) -> RegisteredClients {
        RegisteredClients {
            store,
            cache: Arc::new(ChangesCache::new(MAX_CACHED, CACHE_TTL)),
        }
    }

    /// A registration by id, read from the store.
    pub async fn get(&self, id: &str) -> Result<Option<RegistrationDoc>, StoreError> {
        match self.store.get(REGISTERED_CLIENTS_DB, id).await {
            Ok(d) => d.map(parsed).transpose(),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`RegisteredClients::get`] through the cache: what flows read on every start.
    pub async fn cached(&self, id: &str) -> Result<Option<RegistrationDoc>, StoreError> {
        self.cache.get_or_load(id, || self.get(id)).await
    }

    /// Every registration.
    pub async fn all(&self) -> Result<Vec<RegistrationDoc>, StoreError> {
        match self.store.all_docs(REGISTERED_CLIENTS_DB).await {
            Ok(docs) => docs.into_iter().map(parsed).collect(),
            Err(StoreError::NoDatabase(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Writes `doc` at its revision (creating the database if needed); a conflict says
    /// another writer came first.
    pub async fn put(&self, doc: &mut RegistrationDoc) -> Result<(), StoreError> {
        let written =
            put_creating_db(self.store.as_ref(), REGISTERED_CLIENTS_DB, &doc.document()).await;
        self.forget(doc.id());
        let rev = written?;
        doc.set_rev(Some(&rev));
        Ok(())
    }

    /// Writes `doc` over whatever revision another process wrote meanwhile: a provider's
    /// answer it holds cannot be had again.
    pub async fn put_over(&self, doc: &mut RegistrationDoc) -> Result<(), StoreError> {
        for _ in 0..3 {
            match self.put(doc).await {
                Err(StoreError::Conflict) => {
                    let current = self.get(doc.id()).await?;
                    doc.set_rev(current.as_ref().and_then(RegistrationDoc::rev));
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }

    /// Deletes registration `id` at whatever revision is there.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        for _ in 0..3 {
            let Some(current) = self.get(id).await? else {
                return Ok(());
            };
            let deleted = self
                .store
                .delete(REGISTERED_CLIENTS_DB, id, current.rev().unwrap_or_default())
                .await;
            self.forget(id);
            match deleted {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }

    /// Waits for changes after `since` and forgets the cached registrations they touch;
    /// returns the sequence to ask from next.
    pub async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = match self
            .store
            .changes(REGISTERED_CLIENTS_DB, &since, CHANGES_WAIT)
            .await
        {
            Err(StoreError::NoDatabase(_)) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
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

    fn forget(&self, id: &str) {
        self.cache.forget([id]);
    }
}
