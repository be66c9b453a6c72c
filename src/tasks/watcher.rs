//! Follows the account types' changes feed, so a document written with curl, by the CLI
//! or by another replica is in force within a second.

use super::Shutdown;
use crate::app::Services;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Runs until a stop is asked.
pub(super) async fn run(services: Arc<Services>, mut shutdown: Shutdown) {
    let mut since = Value::from(0);
    loop {
        let Some(step) = shutdown
            .or_stop(services.account_types.follow_changes(since.clone()))
            .await
        else {
            return;
        };
        match step {
            Ok(next) => since = next,
            Err(e) => {
                tracing::warn!(error = %e, "account type changes feed failed; retrying");
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
