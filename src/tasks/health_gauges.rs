//! Publishes the accounts failing and needing reconnection, per account type, as gauges
//! (`broker_accounts_failing`, `broker_accounts_reconnect_needed`), from the health
//! records every replica shares: every replica reports the same numbers.

use super::Shutdown;
use crate::app::Services;
use std::sync::Arc;
use std::time::Duration;

/// How often the gauges are brought up to date.
const EVERY: Duration = Duration::from_secs(30);

/// Runs until a stop is asked.
pub(super) async fn run(services: Arc<Services>, mut shutdown: Shutdown) {
    loop {
        match services.admin.providers_health().await {
            Ok(providers) => {
                let m = &services.metrics;
                // Types with no account left drop out rather than stay at their last value.
                m.accounts_failing.reset();
                m.accounts_reconnect_needed.reset();
                for p in providers {
                    let t = [p.account_type.as_str()];
                    m.accounts_failing
                        .with_label_values(&t)
                        .set(p.failing as i64);
                    m.accounts_reconnect_needed
                        .with_label_values(&t)
                        .set(p.reconnect_needed as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not sum up account health"),
        }
        if shutdown.or_stop(tokio::time::sleep(EVERY)).await.is_none() {
            return;
        }
    }
}
