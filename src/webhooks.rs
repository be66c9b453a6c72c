//! Webhooks: the broker tells an operator's endpoint when an account is created, when its
//! refresh fails for good, and when its user reconnects it. Bodies are signed with
//! HMAC-SHA256 (`X-Broker-Signature: sha256=<hex>`). [`Webhooks::emit`] writes the signed
//! event to the store (`broker/webhook_outbox`); the delivery task sends what is due, with
//! retries, from any replica, so an event outlives a crash until it is delivered.

use crate::domain::{Clock, Timestamp};
use crate::store::webhook_outbox::{OutboxEntry, WebhookOutbox};
use crate::store::{SharedStore, StoreError};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Delivery attempts per event.
const ATTEMPTS: u64 = 4;
/// Events one delivery pass attempts, at most.
const BATCH: usize = 200;
/// Pending events one pass reads (due or not), to keep each account's in order.
const OUTBOX_SCAN: usize = 2000;
/// How long a replica has to deliver an event it claimed before another may.
const CLAIM: Duration = Duration::from_secs(60);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A flow created a new account.
    AccountCreated,
    /// The provider refused the refresh token: the user must reconnect.
    RefreshFailed,
    /// A reconnection renewed an account's tokens.
    AccountReconnected,
    /// A failing account refreshed again.
    AccountRecovered,
    /// The provider granted less than the flow asked for.
    ScopeMissing,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::AccountCreated => "account.created",
            Kind::RefreshFailed => "refresh.failed",
            Kind::AccountReconnected => "account.reconnected",
            Kind::AccountRecovered => "account.recovered",
            Kind::ScopeMissing => "account.scope_missing",
        }
    }
}

/// An event about one account.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// What happened.
    pub(crate) kind: Kind,
    /// Instance domain.
    pub(crate) instance: String,
    /// Account id.
    pub(crate) account_id: String,
    /// Account type (service id).
    pub(crate) account_type: String,
    /// OAuth error code, for failures.
    pub(crate) error: Option<String>,
    /// When it happened.
    pub(crate) at: Timestamp,
}

/// The emitting side: signs events and stores them for delivery.
#[derive(Clone)]
pub(crate) struct Webhooks {
    on: Option<Arc<Target>>,
}

/// Where and how events go.
pub(crate) struct Target {
    url: url::Url,
    secret: Vec<u8>,
    http: reqwest::Client,
    retry_base: Duration,
    /// Deliveries under way at once.
    concurrency: usize,
    outbox: WebhookOutbox,
    clock: Clock,
    /// Wakes the delivery task when an event is stored.
    stored: Notify,
}

impl Webhooks {
    /// Webhooks to `url`, signed with `secret`, kept in `store`; off without a URL.
    pub(crate) fn new(
        url: Option<url::Url>,
        secret: &str,
        retry_base: Duration,
        concurrency: usize,
        store: SharedStore,
        clock: Clock,
    ) -> Result<Webhooks, reqwest::Error> {
        let Some(url) = url else {
            return Ok(Webhooks { on: None });
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Webhooks {
            on: Some(Arc::new(Target {
                url,
                secret: secret.as_bytes().to_vec(),
                http,
                retry_base,
                concurrency,
                outbox: WebhookOutbox::new(store),
                clock,
                stored: Notify::new(),
            })),
        })
    }

    /// What the delivery task works on; none when webhooks are off.
    pub(crate) fn target(&self) -> Option<Arc<Target>> {
        self.on.clone()
    }

    /// Stores the signed event for delivery. A store failure is logged: the account the
    /// event is about is already safe.
    pub(crate) async fn emit(&self, event: Event) {
        let Some(t) = &self.on else {
            return;
        };
        let body = json!({
            "event": event.kind.as_str(),
            "instance": event.instance,
            "account_id": event.account_id,
            "account_type": event.account_type,
            "error": event.error,
            "at": event.at.to_rfc3339(),
        })
        .to_string();
        let signature = format!("sha256={}", sign(&t.secret, body.as_bytes()));
        let now = t.clock.now();
        let entry = OutboxEntry {
            // Sortable by time, unique by chance.
            id: format!(
                "{:015}-{}",
                now.unix_millis(),
                crate::domain::secret::random_hex(8)
            ),
            rev: None,
            event: event.kind.as_str().to_owned(),
            body,
            signature,
            key: format!("{}/{}", event.instance, event.account_id),
            attempts: 0,
            next_at: now.unix_secs(),
        };
        match t.outbox.add(&entry).await {
            Ok(()) => t.stored.notify_one(),
            Err(e) => {
                tracing::error!(event = event.kind.as_str(), error = %e, "webhook event not stored: dropped")
            }
        }
    }
}

impl Target {
    /// Resolves when an event was stored (or at once if one was stored since last time).
    pub(crate) async fn stored(&self) {
        self.stored.notified().await;
    }

    /// How often due retries are looked for.
    pub(crate) fn poll(&self) -> Duration {
        self.retry_base
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Delivers the events that are due, up to `concurrency` at once; returns how many
    /// were attempted. Events about one account go one at a time in the order they were
    /// stored, and one waits while an earlier one about its account is pending (a retry
    /// not yet due, or a delivery another replica claimed), so a consumer never sees an
    /// account's `refresh.failed` before its `account.created`.
    pub(crate) async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        // Every pending event, oldest first.
        let pending = self.outbox.pending(now.unix_secs(), OUTBOX_SCAN).await?;
        let mut queues: Vec<Vec<OutboxEntry>> = Vec::new();
        let mut queue_of: std::collections::HashMap<String, usize> = Default::default();
        let mut blocked = std::collections::HashSet::new();
        let mut taken = 0;
        for doc in pending {
            let key = doc.key.clone();
            let due = doc.next_at <= now.unix_secs();
            if blocked.contains(&key) {
                continue;
            }
            if !due || taken >= BATCH {
                blocked.insert(key);
                continue;
            }
            taken += 1;
            let i = *queue_of.entry(key).or_insert_with(|| {
                queues.push(Vec::new());
                queues.len() - 1
            });
            queues[i].push(doc);
        }
        let outcomes: Vec<Result<usize, StoreError>> = futures::stream::iter(queues)
            .map(|queue| self.deliver_in_order(queue))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        outcomes.into_iter().sum()
    }

    /// One account's due events, one after the other; stops at the first that is not
    /// delivered, so the next waits behind it.
    async fn deliver_in_order(&self, queue: Vec<OutboxEntry>) -> Result<usize, StoreError> {
        let mut attempted = 0;
        for mut claimed in queue {
            // Claimed first: another replica seeing it due meanwhile gets a conflict.
            let until = self.clock.now().plus(CLAIM).unix_secs();
            if !self.outbox.claim(&mut claimed, until).await? {
                return Ok(attempted);
            }
            attempted += 1;
            if !self.attempt(claimed).await? {
                break;
            }
        }
        Ok(attempted)
    }

    /// Sends one event; `true` when it is done with (delivered, or dropped after its
    /// last attempt), `false` when it waits for a retry.
    async fn attempt(&self, mut doc: OutboxEntry) -> Result<bool, StoreError> {
        let event = doc.event.clone();
        let sent = self
            .http
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header("X-Broker-Event", &doc.event)
            .header("X-Broker-Signature", &doc.signature)
            .body(doc.body.clone())
            .send()
            .await;
        let attempts = doc.attempts + 1;
        match sent {
            Ok(r) if r.status().is_success() => {
                return self.outbox.remove(&doc).await.map(|()| true)
            }
            Ok(r) => tracing::warn!(status = r.status().as_u16(), attempts, "webhook refused"),
            Err(e) => tracing::warn!(error = %e.without_url(), attempts, "webhook not delivered"),
        }
        if attempts >= ATTEMPTS {
            tracing::error!(event = %event, "webhook dropped after {ATTEMPTS} attempts");
            return self.outbox.remove(&doc).await.map(|()| true);
        }
        let wait = self.retry_base * 2u32.pow((attempts - 1) as u32);
        let next_at = self.clock.now().plus(wait).unix_secs();
        self.outbox.retry_at(&mut doc, attempts, next_at).await?;
        Ok(false)
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
