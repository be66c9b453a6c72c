//! Session codes and instance API tokens, stored hashed in broker databases.

use super::cache::ChangesCache;
use super::{rev_of, SharedStore, StoreError, API_TOKENS_DB, SESSION_CODES_DB};
use crate::domain::secret::Credential;
use crate::domain::{Domain, Timestamp, TokenScope};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

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
    tokens: Arc<ChangesCache<Known>>,
}

impl Credentials {
    /// Credentials over the store.
    pub fn new(store: SharedStore) -> Credentials {
        Credentials {
            store,
            tokens: Arc::new(ChangesCache::new(MAX_CACHED_TOKENS, TOKEN_CACHE_TTL)),
        }
    }

    /// Waits for changes to the API tokens after `since` and forgets the cached lookups
    /// they touch; returns the sequence to ask from next.
    pub async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = self
            .store
            .changes(API_TOKENS_DB, &since, CHANGES_WAIT)
            .await?;
        if !batch.changes.is_empty() {
            self.tokens
                .forget(batch.changes.iter().map(|c| c.id.as_str()));
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
        self.tokens.forget([id.as_str()]);
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
        self.tokens
            .get_or_load(&id, || async {
                let doc = self.store.get(API_TOKENS_DB, &id).await?;
                Ok(doc.as_ref().and_then(|d| {
                    // Tokens issued before limits existed have none: no expiry, every type.
                    let scope = serde_json::from_value(d.clone()).unwrap_or_default();
                    instance_of(d).map(|i| (i, scope))
                }))
            })
            .await
    }
}

fn instance_of(doc: &Value) -> Option<Domain> {
    Domain::parse(doc.get("instance")?.as_str()?).ok()
}
