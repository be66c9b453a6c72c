//! Follows changes feeds so that what another process or cozy-stack writes is in force
//! within a second: the account types (written with curl, by the CLI or another replica)
//! the instances (a new alias, a moved domain, a rotated session secret), the API
//! tokens (a revocation) and the registered clients (a rotated secret, a deletion).

use super::Shutdown;
use crate::app::Services;
use crate::store::StoreError;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Follows the account types' feed until a stop is asked.
pub(super) async fn account_types(services: Arc<Services>, shutdown: Shutdown) {
    let follow = |since| {
        let s = services.clone();
        Box::pin(async move { s.account_types.follow_changes(since).await }) as BoxFuture<'_, _>
    };
    follow_until_stopped("account type", Value::from(0), follow, shutdown).await;
}

/// Follows the API tokens' feed until a stop is asked: a revocation on another replica is
/// in force here within a second.
pub(super) async fn api_tokens(services: Arc<Services>, shutdown: Shutdown) {
    let follow = |since| {
        let s = services.clone();
        Box::pin(async move { s.callers.credentials.follow_changes(since).await })
            as BoxFuture<'_, _>
    };
    follow_until_stopped("API token", Value::from("now"), follow, shutdown).await;
}

/// Follows the registered clients' feed until a stop is asked: a client rotated or
/// deleted by another replica is in force here within a second.
pub(super) async fn registered_clients(services: Arc<Services>, shutdown: Shutdown) {
    let follow = |since| {
        let s = services.clone();
        Box::pin(async move { s.flows.clients.registrations.follow_changes(since).await })
            as BoxFuture<'_, _>
    };
    follow_until_stopped("registered client", Value::from("now"), follow, shutdown).await;
}

/// Follows the instances' feed until a stop is asked.
pub(super) async fn instances(services: Arc<Services>, shutdown: Shutdown) {
    let follow = |since| {
        let s = services.clone();
        Box::pin(async move { s.callers.instances.follow_changes(since).await }) as BoxFuture<'_, _>
    };
    // The cache starts empty: only changes from now on matter.
    follow_until_stopped("instance", Value::from("now"), follow, shutdown).await;
}

/// The first pause after a failed feed request; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between attempts while the store keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

async fn follow_until_stopped<'a>(
    what: &str,
    mut since: Value,
    follow: impl Fn(Value) -> BoxFuture<'a, Result<Value, StoreError>>,
    mut shutdown: Shutdown,
) {
    // Consecutive failures: the first is logged with its cause, the rest quietly until the
    // feed answers again, so a store that is down for an hour writes two lines, not 3,600.
    let mut failures: u32 = 0;
    loop {
        let Some(step) = shutdown.or_stop(follow(since.clone())).await else {
            return;
        };
        match step {
            Ok(next) => {
                if failures > 0 {
                    tracing::info!(failures, "{what} changes feed answers again");
                }
                failures = 0;
                since = next;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "{what} changes feed failed; retrying with backoff");
                } else {
                    tracing::debug!(error = %e, failures, "{what} changes feed still failing");
                }
                if shutdown
                    .or_stop(tokio::time::sleep(backoff(failures)))
                    .await
                    .is_none()
                {
                    return;
                }
            }
        }
    }
}

/// The pause after `failures` consecutive failures: doubling from [`FIRST_BACKOFF`] up
/// to [`MAX_BACKOFF`], with up to a quarter more at random so replicas do not retry
/// in step.
fn backoff(failures: u32) -> Duration {
    use rand::Rng;
    let base = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_BACKOFF);
    base + base.mul_f64(rand::thread_rng().gen_range(0.0..0.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stays_bounded() {
        assert!(backoff(1) >= FIRST_BACKOFF && backoff(1) < FIRST_BACKOFF * 2);
        assert!(backoff(2) >= FIRST_BACKOFF * 2);
        for n in [6, 7, 50, u32::MAX] {
            let b = backoff(n);
            assert!(
                b >= MAX_BACKOFF && b <= MAX_BACKOFF.mul_f64(1.25),
                "{n}: {b:?}"
            );
        }
    }
}
