//! Session codes and instance API tokens, stored hashed in broker databases.

use super::{rev_of, SharedStore, StoreError, API_TOKENS_DB, SESSION_CODES_DB};
use crate::domain::secret::Credential;
use crate::domain::{Domain, Timestamp, TokenScope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// API tokens remembered at most; the table is emptied when full.
const MAX_CACHED_TOKENS: usize = 10_000;
/// How long a cached token is trusted if the changes feed were to stall.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a changes-feed request waits for a change.
const CHANGES_WAIT: Duration = Duration::from_secs(25);

/// What a token hash was found to be: its instance and limits, or unknown.
type Known = Option<(Domain, TokenScope)>;

/// Issues and checks the credentials that let a caller act for an instance. API token
/// lookups are cached by hash and forgotten when their document changes (the changes
/// feed, followed by a task), so a revocation on any replica is in force within a second.
#[derive(Clone)]
pub struct Credentials {
    store: SharedStore,
    tokens: Arc<Mutex<TokenCache>>,
}

/// Cached token lookups, and a count of invalidations: a lookup that read the store
/// before an invalidation does not cache what it read.
#[derive(Default)]
struct TokenCache {
    entries: HashMap<String, (Known, Instant)>,
    generation: u64,
}

impl Credentials {
    /// Credentials over the store.
    pub fn new(store: SharedStore) -> Credentials {
        Credentials {
            store,
            tokens: Arc::default(),
        }
    }

    fn cache(&self) -> MutexGuard<'_, TokenCache> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for changes to the API tokens after `since` and forgets the cached lookups
    /// they touch; returns the sequence to ask from next.
    pub async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = self
            .store
            .changes(API_TOKENS_DB, &since, CHANGES_WAIT)
            .await?;
        if !batch.changes.is_empty() {
            let mut cache = self.cache();
            cache.generation += 1;
            for change in &batch.changes {
                cache.entries.remove(&change.id);
            }
        }
        Ok(batch.last_seq)
    }

    /// A one-time code for `start`, valid until `expires_at`.
    pub async fn issue_session_code(
        &self,
        instance: &Domain,
        expires_at: Timestamp,
    ) -> Result<Credential, StoreError> {
        let code = Credential::generate();
        let doc = json!({"_id": code.hashed(), "instance": instance.as_str(),
                         "expires_at": expires_at.unix_secs()});
        self.store.put(SESSION_CODES_DB, &doc).await?;
        Ok(code)
    }

    /// Redeems a session code once: the instance it was issued for, or `None`.
    pub async fn redeem_session_code(
        &self,
        presented: &str,
        now: Timestamp,
    ) -> Result<Option<Domain>, StoreError> {
        if presented.is_empty() || presented.len() > 128 {
            return Ok(None);
        }
        let id = Credential::from_presented(presented).hashed();
        let Some(doc) = self.store.get(SESSION_CODES_DB, &id).await? else {
            return Ok(None);
        };
        let fresh = doc
            .get("expires_at")
            .and_then(Value::as_i64)
            .is_some_and(|t| now.unix_secs() < t);
        if !fresh {
            // Left for the sweeper: refusing a request changes nothing.
            return Ok(None);
        }
        match self
            .store
            .delete(SESSION_CODES_DB, &id, rev_of(&doc).unwrap_or_default())
            .await
        {
            Ok(()) => {}
            // Someone redeemed it first.
            Err(StoreError::Conflict) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(instance_of(&doc))
    }

    /// Revokes an API token; `false` when it was not known.
    pub async fn revoke_api_token(&self, presented: &str) -> Result<bool, StoreError> {
        if presented.is_empty() || presented.len() > 128 {
            return Ok(false);
        }
        let id = Credential::from_presented(presented).hashed();
        // Forgotten here at once; other replicas forget it through the changes feed.
        {
            let mut cache = self.cache();
            cache.generation += 1;
            cache.entries.remove(&id);
        }
        let Some(doc) = self.store.get(API_TOKENS_DB, &id).await? else {
            return Ok(false);
        };
        match self
            .store
            .delete(API_TOKENS_DB, &id, rev_of(&doc).unwrap_or_default())
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// A new API token for an instance, within `scope`; only its hash is stored.
    pub async fn issue_api_token(
        &self,
        instance: &Domain,
        now: Timestamp,
        scope: &TokenScope,
    ) -> Result<Credential, StoreError> {
        let token = Credential::generate();
        let mut doc = json!({"_id": token.hashed(), "instance": instance.as_str(),
                         "created_at": now.unix_secs()});
        if let (Some(o), Ok(Value::Object(limits))) =
            (doc.as_object_mut(), serde_json::to_value(scope))
        {
            o.extend(limits);
        }
        self.store.put(API_TOKENS_DB, &doc).await?;
        Ok(token)
    }

    /// The instance an API token acts for and its limits, or `None` for an unknown token.
    pub async fn instance_for_api_token(
        &self,
        presented: &str,
    ) -> Result<Option<(Domain, TokenScope)>, StoreError> {
        if presented.is_empty() || presented.len() > 128 {
            return Ok(None);
        }
        // Looked up by hash: no comparison of the secret itself happens here.
        let id = Credential::from_presented(presented).hashed();
        let generation = {
            let cache = self.cache();
            if let Some((known, at)) = cache.entries.get(&id) {
                if at.elapsed() < TOKEN_CACHE_TTL {
                    return Ok(known.clone());
                }
            }
            cache.generation
        };
        let doc = self.store.get(API_TOKENS_DB, &id).await?;
        let known: Known = doc.as_ref().and_then(|d| {
            // Tokens issued before limits existed have none: no expiry, every type.
            let scope = serde_json::from_value(d.clone()).unwrap_or_default();
            instance_of(d).map(|i| (i, scope))
        });
        let mut cache = self.cache();
        if cache.generation == generation {
            if cache.entries.len() >= MAX_CACHED_TOKENS {
                cache.entries.clear();
            }
            cache.entries.insert(id, (known.clone(), Instant::now()));
        }
        Ok(known)
    }
}

fn instance_of(doc: &Value) -> Option<Domain> {
    Domain::parse(doc.get("instance")?.as_str()?).ok()
}
