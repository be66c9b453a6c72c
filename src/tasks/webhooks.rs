//! Delivers queued webhook events, each with its retries, several at once; on a stop,
//! deliveries under way get the rest of the grace period.

use super::Shutdown;
use crate::webhooks::Outbox;
use tokio::task::JoinSet;

/// Runs until a stop is asked, then waits for the deliveries under way.
pub(super) async fn run(mut outbox: Outbox, mut shutdown: Shutdown) {
    let mut sending = JoinSet::new();
    loop {
        tokio::select! {
            next = outbox.next() => match next {
                Some(d) => {
                    sending.spawn(outbox.sender(d));
                }
                None => break,
            },
            Some(_) = sending.join_next(), if !sending.is_empty() => {}
            () = shutdown.requested() => break,
        }
    }
    while sending.join_next().await.is_some() {}
}
