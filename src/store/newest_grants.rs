//! The newest grant of each account the broker refreshed, where only the broker writes
//! (`broker/newest_grants`): the members its last refresh wrote (tokens and expiry, sealed
//! under the keyring when keys are set), and the SHA-256 of every refresh token it has
//! seen replaced. An account lives in the user's database, where other writers save it
//! too; Harvest's `updateAccount` merges its stale copy over the stored one on a conflict
//! (`cozy-clients.md` §1.8), so a rotated refresh token can be overwritten by the one it
//! replaced, which the provider has revoked. With this record the broker recognises such
//! a token and puts the newest grant back before refreshing (`Renewal::renew`).

use super::{SharedStore, StoreError, NEWEST_GRANTS_DB};
use crate::domain::sealed::Keyring;
use crate::domain::secret::sha256_hex;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Replaced refresh tokens remembered per account (the oldest are forgotten).
const SUPERSEDED_KEPT: usize = 32;

/// What an account's refresh token is, measured against the newest grant.
#[derive(Debug)]
pub enum Standing {
    /// No record, or the record's newest token: nothing to do.
    Current,
    /// A token the broker saw replaced: someone wrote an older copy back. The newest
    /// grant's members, to put back.
    Superseded(Map<String, Value>),
    /// A token the broker never saw (another writer's new grant): it is adopted as is.
    Foreign,
}

/// Reads and writes the newest grants.
#[derive(Clone)]
pub struct NewestGrants {
    store: SharedStore,
    keyring: Arc<Keyring>,
}

impl NewestGrants {
    /// Over the store, sealing with `keyring`.
    pub fn new(store: SharedStore, keyring: Arc<Keyring>) -> NewestGrants {
        NewestGrants { store, keyring }
    }

    fn aad(key: &str) -> String {
        format!("newest-grant:{key}")
    }

    /// Where account `key`'s refresh token (`token`, plain) stands.
    pub async fn standing(&self, key: &str, token: &str) -> Result<Standing, StoreError> {
        let Some(doc) = self.store.get(NEWEST_GRANTS_DB, key).await? else {
            return Ok(Standing::Current);
        };
        let hash = sha256_hex(token);
        if doc.get("hash").and_then(Value::as_str) == Some(hash.as_str()) {
            return Ok(Standing::Current);
        }
        let superseded = doc
            .get("superseded")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|h| h.as_str() == Some(hash.as_str())));
        if !superseded {
            return Ok(Standing::Foreign);
        }
        let raw = doc
            .get("members")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plain = if doc.get("sealed").and_then(Value::as_bool) == Some(true) {
            self.keyring
                .open(raw, &Self::aad(key))
                .map_err(|e| StoreError::Invalid(format!("the newest grant of `{key}`: {e}")))?
        } else {
            raw.to_owned()
        };
        let members: Map<String, Value> = serde_json::from_str(&plain)
            .map_err(|e| StoreError::Invalid(format!("the newest grant of `{key}`: {e}")))?;
        Ok(Standing::Superseded(members))
    }

    /// Forgets account `key`'s newest grant (the account is deleted).
    pub async fn forget(&self, key: &str) -> Result<(), StoreError> {
        for _ in 0..3 {
            let Some(doc) = self.store.get(NEWEST_GRANTS_DB, key).await? else {
                return Ok(());
            };
            let rev = doc.get("_rev").and_then(Value::as_str).unwrap_or_default();
            match self.store.delete(NEWEST_GRANTS_DB, key, rev).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Records that a refresh of account `key` replaced the token of SHA-256 `used` with
    /// `members` (whose `oauth.refresh_token` is `token`, plain). A conflict with another
    /// writer is read again: the replaced tokens of both are kept.
    pub async fn keep(
        &self,
        key: &str,
        used: &str,
        token: &str,
        members: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let plain = Value::Object(members.clone()).to_string();
        let (stored, sealed) = match self.keyring.seal(&plain, &Self::aad(key)) {
            Some(s) => (s, true),
            None => (plain, false),
        };
        let hash = sha256_hex(token);
        for _ in 0..5 {
            let existing = self.store.get(NEWEST_GRANTS_DB, key).await?;
            let mut superseded: Vec<String> = existing
                .as_ref()
                .and_then(|d| d.get("superseded"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let previous = existing
                .as_ref()
                .and_then(|d| d.get("hash"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            for h in [Some(used.to_owned()), previous].into_iter().flatten() {
                if h != hash && !superseded.contains(&h) {
                    superseded.push(h);
                }
            }
            superseded.retain(|h| *h != hash);
            let excess = superseded.len().saturating_sub(SUPERSEDED_KEPT);
            superseded.drain(..excess);
            let mut doc = json!({"_id": key, "hash": hash, "members": stored,
                                 "sealed": sealed, "superseded": superseded});
            if let Some(rev) = existing.as_ref().and_then(|d| d.get("_rev")) {
                doc["_rev"] = rev.clone();
            }
            match self.store.put(NEWEST_GRANTS_DB, &doc).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}
