//! [`Leasing`]: this process's hold on the accounts it refreshes, across processes
//! (`broker/refresh_leases`): one owner name, one lifetime longer than any provider call.

use crate::domain::secret::random_hex;
use crate::domain::Clock;
use crate::store::leases::{Lease, Leases};
use crate::store::StoreError;
use std::time::Duration;

/// Refresh leases as this process takes them.
pub(crate) struct Leasing {
    leases: Leases,
    /// This process's name as a lease owner.
    owner: String,
    /// How long a lease lasts: longer than any provider call can take.
    ttl: Duration,
    clock: Clock,
}

impl Leasing {
    /// Leases over the store's, under a fresh owner name.
    pub(crate) fn new(leases: Leases, ttl: Duration, clock: Clock) -> Leasing {
        Leasing {
            leases,
            owner: random_hex(8),
            ttl,
            clock,
        }
    }

    /// How long a lease lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease on `key` unless another process holds it.
    pub(crate) async fn try_acquire(&self, key: &str) -> Result<Option<Lease>, StoreError> {
        self.leases
            .try_acquire(key, &self.owner, self.clock.now(), self.ttl)
            .await
    }

    /// Takes the leases on `keys` in one write; `None` where another process holds one.
    pub(crate) async fn try_acquire_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Lease>>, StoreError> {
        self.leases
            .try_acquire_many(keys, &self.owner, self.clock.now(), self.ttl)
            .await
    }

    /// Whether someone holds an unexpired lease on `key`.
    pub(crate) async fn held(&self, key: &str) -> Result<bool, StoreError> {
        self.leases.held(key, self.clock.now()).await
    }

    /// Extends `lease` when half its time is spent (a slow provider ate into it), so that
    /// the write after the provider call is under it; a lost lease is logged (the write is
    /// safe without it, being made only over the token used).
    pub(crate) async fn extend_if_half_spent(&self, lease: &mut Lease) {
        let now = self.clock.now();
        if !lease.half_spent(now, self.ttl) {
            return;
        }
        let renewed = self.leases.renew(lease, &self.owner, now, self.ttl).await;
        if !matches!(renewed, Ok(true)) {
            tracing::warn!("refresh lease lost before the write; writing only over the token used");
        }
    }

    /// Releases a lease.
    pub(crate) async fn release(&self, lease: Lease) {
        self.leases.release(lease).await;
    }

    /// Releases leases in one write.
    pub(crate) async fn release_many(&self, leases: Vec<Lease>) {
        self.leases.release_many(leases).await;
    }
}
