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
    /// When it was taken or last renewed, in milliseconds since the epoch.
    since_ms: i64,
}

impl Lease {
    /// Whether more than half of `ttl` has passed since it was taken or renewed, so that
    /// it should be renewed before a write that must happen under it.
    pub fn half_spent(&self, now: Timestamp, ttl: Duration) -> bool {
        now.unix_millis() - self.since_ms > (ttl.as_millis() as i64) / 2
    }
}

/// Takes and releases leases.
#[derive(Clone)]
pub struct Leases {
    store: SharedStore,
    takeovers: Option<prometheus::IntCounter>,
}

impl Leases {
    /// Leases over the store.
    pub fn new(store: SharedStore) -> Leases {
        Leases {
            store,
            takeovers: None,
        }
    }

    /// The same, counting each lease taken over from a dead or hung holder into `c`.
    pub fn counting_takeovers(self, c: prometheus::IntCounter) -> Leases {
        Leases {
            takeovers: Some(c),
            ..self
        }
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
        let doc = lease_doc(key, owner, now, ttl);
        // Usually nobody holds it: one write takes it.
        match self.store.put(REFRESH_LEASES_DB, &doc).await {
            Ok(rev) => {
                return Ok(Some(Lease {
                    id: key.to_owned(),
                    rev,
                    since_ms: now_ms,
                }))
            }
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        self.take_over(key, owner, now, ttl).await
    }

    /// Takes a lease someone holds, if theirs has expired (its holder died or hung).
    async fn take_over(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let now_ms = now.unix_millis();
        let mut doc = lease_doc(key, owner, now, ttl);
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
            Ok(rev) => {
                if let Some(c) = &self.takeovers {
                    c.inc();
                }
                Ok(Some(Lease {
                    id: key.to_owned(),
                    rev,
                    since_ms: now_ms,
                }))
            }
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Leases::try_acquire`] for many keys: one bulk write takes every lease nobody
    /// holds; only the ones held (rare) are looked at one by one.
    pub async fn try_acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<Option<Lease>>, StoreError> {
        let now_ms = now.unix_millis();
        let docs: Vec<Value> = keys.iter().map(|k| lease_doc(k, owner, now, ttl)).collect();
        let outcomes = self.store.put_many(REFRESH_LEASES_DB, &docs).await?;
        let mut leases = Vec::with_capacity(keys.len());
        for (key, outcome) in keys.iter().zip(outcomes) {
            leases.push(match outcome {
                Ok(rev) => Some(Lease {
                    id: key.clone(),
                    rev,
                    since_ms: now_ms,
                }),
                // Held, or left behind by a holder that died.
                Err(StoreError::Conflict) => self.take_over(key, owner, now, ttl).await?,
                Err(e) => return Err(e),
            });
        }
        Ok(leases)
    }

    /// Whether someone holds an unexpired lease on `key` (a read, no write: what a
    /// process waiting for another's refresh looks at).
    pub async fn held(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(REFRESH_LEASES_DB, key)
            .await?
            .and_then(|held| held.get("expires_at_ms").and_then(Value::as_i64))
            .is_some_and(|until| until > now.unix_millis()))
    }

    /// Releases many leases in one request; the ones taken over meanwhile are left to
    /// their new holders.
    pub async fn release_many(&self, leases: Vec<Lease>) {
        let docs: Vec<(String, String)> = leases.into_iter().map(|l| (l.id, l.rev)).collect();
        if let Err(e) = self.store.delete_many(REFRESH_LEASES_DB, &docs).await {
            tracing::warn!(error = %e, "could not release refresh leases; they will expire");
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
        let mut doc = lease_doc(&lease.id, owner, now, ttl);
        doc["_rev"] = lease.rev.clone().into();
        match self.store.put(REFRESH_LEASES_DB, &doc).await {
            Ok(rev) => {
                lease.rev = rev;
                lease.since_ms = now.unix_millis();
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

/// A lease document held by `owner` until `now + ttl`.
fn lease_doc(key: &str, owner: &str, now: Timestamp, ttl: Duration) -> Value {
    json!({"_id": key, "owner": owner, "expires_at_ms": now.plus(ttl).unix_millis()})
}
