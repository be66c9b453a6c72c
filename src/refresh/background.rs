//! The background refresher: every process looks for due accounts in the schedule and
//! refreshes them through the shared path (leases make that one provider call per account).

use super::{refresh, Mode, RefreshError};
use crate::broker::{now, Broker};
use crate::domain::{Domain, Instance};
use crate::store::schedule::Due;
use futures::StreamExt;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Accounts taken from the schedule per pass.
const BATCH: usize = 200;
/// Refreshes running at once in one process.
const CONCURRENCY: usize = 16;

/// Runs the refresher every `interval` for the life of the process.
pub fn spawn(broker: Arc<Broker>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch means more are due: go on without waiting for the next tick,
            // within a bound, so entries that keep failing cannot spin the loop.
            for _ in 0..50 {
                if run_once(&broker).await < BATCH {
                    break;
                }
            }
        }
    });
}

/// One pass: refreshes what is due now; returns how many accounts were handled.
pub async fn run_once(broker: &Broker) -> usize {
    let due = match broker.schedule.due(now(), BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the refresh schedule");
            return 0;
        }
    };
    let n = due.len();
    // One instance read per instance of the batch, not per account.
    let mut instances: HashMap<Domain, Option<Instance>> = HashMap::new();
    for entry in &due {
        if instances.contains_key(&entry.instance) {
            continue;
        }
        match broker.instances.get(&entry.instance).await {
            Ok(inst) => {
                instances.insert(entry.instance.clone(), inst);
            }
            Err(e) => tracing::warn!(error = %e, "refresher could not read an instance"),
        }
    }
    let instances = &instances;
    futures::stream::iter(due)
        .for_each_concurrent(CONCURRENCY, |entry| async move {
            match instances.get(&entry.instance) {
                Some(Some(inst)) => handle(broker, entry, inst).await,
                // The instance is gone: nothing to keep fresh.
                Some(None) => {
                    let _ = broker
                        .schedule
                        .clear(&entry.instance, &entry.account_id)
                        .await;
                }
                None => {}
            }
        })
        .await;
    n
}

async fn handle(broker: &Broker, entry: Due, inst: &Instance) {
    match refresh(broker, inst, &entry.account_id, Mode::IfDue).await {
        Ok(_) => {}
        Err(RefreshError::InvalidToken) => {
            tracing::info!(instance = %inst.domain, "refresh token refused: the account waits for its user to reconnect");
        }
        Err(e @ (RefreshError::Provider(_) | RefreshError::Store(_) | RefreshError::Busy)) => {
            let attempts = entry.attempts + 1;
            let wait = backoff(attempts);
            tracing::warn!(error = %e, attempts, retry_in_secs = wait, "refresh failed; backing off");
            if let Err(e) = broker
                .schedule
                .set(
                    &inst.domain,
                    &entry.account_id,
                    now() + wait,
                    attempts,
                    false,
                )
                .await
            {
                tracing::warn!(error = %e, "could not record the back-off");
            }
        }
        Err(e) => {
            tracing::info!(error = %e, "account cannot be kept fresh; removed from the schedule");
            let _ = broker.schedule.clear(&inst.domain, &entry.account_id).await;
        }
    }
}

/// Seconds before attempt `attempts + 1`: 30 s doubling to at most an hour, ±20 % jitter so
/// that a provider outage does not end in a thundering herd.
pub fn backoff(attempts: u32) -> i64 {
    let base = (30i64 << attempts.saturating_sub(1).min(7)).min(3600);
    let jitter = rand::thread_rng().gen_range(-base / 5..=base / 5);
    (base + jitter).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            assert!((24..=36).contains(&backoff(1)));
            assert!((48..=72).contains(&backoff(2)));
            assert!((2880..=4320).contains(&backoff(20)));
        }
    }
}
