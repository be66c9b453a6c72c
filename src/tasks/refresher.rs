//! The background refresher: every process looks for due accounts in the schedule, on a
//! timer, and refreshes them (`Refresher::refresh_due`).

use super::Shutdown;
use crate::app::refresher::BATCH;
use crate::app::Services;
use std::sync::Arc;
use std::time::Duration;

/// Runs a pass every `interval` until a stop is asked; a refresh under way when the stop
/// comes is finished (dropping it could lose a token the provider just rotated), no new
/// one is begun.
pub(super) async fn run(services: Arc<Services>, interval: Duration, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shutdown.or_stop(tick.tick()).await.is_none() {
            return;
        }
        // A full batch means more are due: go on without waiting for the next tick,
        // within a bound, so entries that keep failing cannot spin the loop.
        for _ in 0..50 {
            let stop = || shutdown.is_requested();
            if services.refresher.refresh_due(&stop).await < BATCH || shutdown.is_requested() {
                break;
            }
        }
    }
}
