//! Purges spent flow states, expired session codes and decision records, and audit
//! entries older than `audit.keep_days`.

use super::{Prune, Shutdown};
use crate::app::Services;
use crate::store::sweep_all_expired;
use std::sync::Arc;
use std::time::Duration;

/// How often spent flow states and expired session codes are purged.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// How long a spent state's document outlives the state's own expiry: well past any
/// clock difference between replicas, so a state is refused as expired before its
/// document can go.
const KEEP_SPENT_STATES: Duration = Duration::from_secs(24 * 3600);

/// Runs until a stop is asked.
pub(super) async fn run(services: Arc<Services>, prune: Option<Prune>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        if shutdown.or_stop(tick.tick()).await.is_none() {
            return;
        }
        if let Some(prune) = &prune {
            prune();
        }
        let now = services.clock.now();
        let swept = sweep_all_expired(services.store.as_ref(), now, KEEP_SPENT_STATES).await;
        for (db, outcome) in swept {
            match outcome {
                Ok(0) => {}
                Ok(n) => tracing::info!(db, purged = n, "expired documents purged"),
                Err(e) => tracing::warn!(db, error = %e, "sweep failed"),
            }
        }
        services.prune_audit().await;
    }
}
