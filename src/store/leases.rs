//! Refresh leases in `broker/refresh_leases`: one holder per account across every
//! broker process, taken and released with CouchDB revisions.

use super::{rev_of, SharedStore, StoreError, REFRESH_LEASES_DB};
use crate::domain::Timestamp;
use serde_json::{json, Value};
use std::time::Duration;

/// A lease this process holds.
#[derive(Debug, Clone)]
pub struct Lease {
    id: String,
    rev: String,
}

/// Takes and releases leases.
#[derive(Clone)]
pub struct Leases {
    store: SharedStore,
}

impl Leases {
    /// Leases over the store.
    pub fn new(store: SharedStore) -> Leases {
        Leases { store }
    }

    /// Takes the lease on `key` for `owner` until `now + ttl`, unless another owner
    /// holds an unexpired one. A lost race (409) means someone else got it.
    pub async fn try_acquire(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let now_ms = now.unix_millis();
        let until_ms = now.plus(ttl).unix_millis();
        let mut doc = json!({"_id": key, "owner": owner, "expires_at_ms": until_ms});
        // Usually nobody holds it: one write takes it.
        match self.store.put(REFRESH_LEASES_DB, &doc).await {
            Ok(rev) => {
                return Ok(Some(Lease {
                    id: key.to_owned(),
                    rev,
                }))
            }
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        let Some(held) = self.store.get(REFRESH_LEASES_DB, key).await? else {
            return Ok(None); // released meanwhile: the next attempt takes it
        };
        let until = held
            .get("expires_at_ms")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if until > now_ms {
            return Ok(None);
        }
        // Expired: its holder died or hung; take it over at its revision.
        doc["_rev"] = rev_of(&held).unwrap_or_default().into();
        match self.store.put(REFRESH_LEASES_DB, &doc).await {
            Ok(rev) => Ok(Some(Lease {
                id: key.to_owned(),
                rev,
            })),
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Extends a lease this process holds to `now + ttl`; `false` when another process
    /// took it over meanwhile (the lease is then theirs).
    pub async fn renew(
        &self,
        lease: &mut Lease,
        owner: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let doc = json!({"_id": lease.id, "_rev": lease.rev, "owner": owner,
                         "expires_at_ms": now.plus(ttl).unix_millis()});
        match self.store.put(REFRESH_LEASES_DB, &doc).await {
            Ok(rev) => {
                lease.rev = rev;
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases a lease; one already taken over by another process is left to it.
    pub async fn release(&self, lease: Lease) {
        match self
            .store
            .delete(REFRESH_LEASES_DB, &lease.id, &lease.rev)
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not release a refresh lease; it will expire")
            }
        }
    }
}
