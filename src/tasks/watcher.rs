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

async fn follow_until_stopped<'a>(
    what: &str,
    mut since: Value,
    follow: impl Fn(Value) -> BoxFuture<'a, Result<Value, StoreError>>,
    mut shutdown: Shutdown,
) {
    loop {
        let Some(step) = shutdown.or_stop(follow(since.clone())).await else {
            return;
        };
        match step {
            Ok(next) => since = next,
            Err(e) => {
                tracing::warn!(error = %e, "{what} changes feed failed; retrying");
                if shutdown
                    .or_stop(tokio::time::sleep(Duration::from_secs(1)))
                    .await
                    .is_none()
                {
                    return;
                }
            }
        }
    }
}
