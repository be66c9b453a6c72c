//! Session codes and instance API tokens, stored hashed in broker databases.

use super::{rev_of, SharedStore, StoreError, API_TOKENS_DB, SESSION_CODES_DB};
use crate::domain::secret::Credential;
use crate::domain::{Domain, Timestamp, TokenScope};
use serde_json::{json, Value};

/// Issues and checks the credentials that let a caller act for an instance.
#[derive(Clone)]
pub struct Credentials {
    store: SharedStore,
}

impl Credentials {
    /// Credentials over the store.
    pub fn new(store: SharedStore) -> Credentials {
        Credentials { store }
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
        let doc = self
            .store
            .get(
                API_TOKENS_DB,
                &Credential::from_presented(presented).hashed(),
            )
            .await?;
        Ok(doc.as_ref().and_then(|d| {
            // Tokens issued before limits existed have none: no expiry, every type.
            let scope = serde_json::from_value(d.clone()).unwrap_or_default();
            instance_of(d).map(|i| (i, scope))
        }))
    }
}

fn instance_of(doc: &Value) -> Option<Domain> {
    Domain::parse(doc.get("instance")?.as_str()?).ok()
}
