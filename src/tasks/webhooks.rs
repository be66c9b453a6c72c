//! Delivers stored webhook events: at once when one is stored, and every poll period for
//! retries and for events other replicas stored. A delivery under way when a stop comes is
//! finished; what is left waits in the store for the next start.

use super::Shutdown;
use crate::webhooks::Target;
use std::sync::Arc;

/// Runs until a stop is asked.
pub(super) async fn run(target: Arc<Target>, mut shutdown: Shutdown) {
    loop {
        if let Err(e) = target.deliver_due().await {
            tracing::warn!(error = %e, "webhook outbox unreadable; retrying");
        }
        let wait = async {
            tokio::select! {
                () = target.stored() => {},
                () = tokio::time::sleep(target.poll()) => {},
            }
        };
        if shutdown.or_stop(wait).await.is_none() {
            return;
        }
    }
}
