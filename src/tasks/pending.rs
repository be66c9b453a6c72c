//! Settles refreshes whose tokens the provider issued but the store did not take (an
//! outage, a process killed between the two): at start-up, then every few seconds.

use super::Shutdown;
use crate::app::Services;
use std::sync::Arc;
use std::time::Duration;

/// How often the journal is looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Runs until a stop is asked.
pub(super) async fn run(services: Arc<Services>, mut shutdown: Shutdown) {
    loop {
        let settled = services.refresher.settle_pending().await;
        if settled > 0 {
            tracing::info!(settled, "pending refreshes written to their accounts");
        }
        if shutdown.or_stop(tokio::time::sleep(EVERY)).await.is_none() {
            return;
        }
    }
}
