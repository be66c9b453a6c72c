//! Webhooks: the broker tells an operator's endpoint when an account is created, when its
//! refresh fails for good, and when its user reconnects it. Bodies are signed with
//! HMAC-SHA256 (`X-Broker-Signature: sha256=<hex>`). [`Webhooks::emit`] only queues an
//! event; the delivery task (`tasks::webhooks`) sends it with retries.

use crate::domain::Timestamp;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::mpsc;

/// Delivery attempts per event.
const ATTEMPTS: u32 = 4;
/// Events waiting for delivery at most; past that new ones are dropped and logged.
const QUEUE: usize = 10_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A flow created a new account.
    AccountCreated,
    /// The provider refused the refresh token: the user must reconnect.
    RefreshFailed,
    /// A reconnection renewed an account's tokens.
    AccountReconnected,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::AccountCreated => "account.created",
            Kind::RefreshFailed => "refresh.failed",
            Kind::AccountReconnected => "account.reconnected",
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

/// A signed event body ready to send.
#[derive(Debug)]
pub(crate) struct Delivery {
    event: &'static str,
    body: String,
    signature: String,
}

/// The sending side: queues events for the delivery task.
#[derive(Clone)]
pub(crate) struct Webhooks {
    secret: Vec<u8>,
    queue: Option<mpsc::Sender<Delivery>>,
}

/// The receiving side, owned by the delivery task.
pub(crate) struct Outbox {
    url: url::Url,
    http: reqwest::Client,
    retry_base: Duration,
    queue: mpsc::Receiver<Delivery>,
}

impl Webhooks {
    /// Webhooks to `url`, signed with `secret`, and the outbox the delivery task drains;
    /// no outbox without a URL.
    pub(crate) fn new(
        url: Option<url::Url>,
        secret: &str,
        retry_base: Duration,
    ) -> Result<(Webhooks, Option<Outbox>), reqwest::Error> {
        let Some(url) = url else {
            let off = Webhooks {
                secret: Vec::new(),
                queue: None,
            };
            return Ok((off, None));
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let outbox = Outbox {
            url,
            http,
            retry_base,
            queue: rx,
        };
        let webhooks = Webhooks {
            secret: secret.as_bytes().to_vec(),
            queue: Some(tx),
        };
        Ok((webhooks, Some(outbox)))
    }

    /// Queues the event for delivery; never waits.
    pub(crate) fn emit(&self, event: Event) {
        let Some(queue) = &self.queue else {
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
        let signature = format!("sha256={}", sign(&self.secret, body.as_bytes()));
        let delivery = Delivery {
            event: event.kind.as_str(),
            body,
            signature,
        };
        if queue.try_send(delivery).is_err() {
            tracing::error!(
                event = event.kind.as_str(),
                "webhook queue full or closed: event dropped"
            );
        }
    }
}

impl Outbox {
    /// The next event to deliver; `None` once every sender is gone.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        self.queue.recv().await
    }

    /// A sender of one delivery with its retries, to run as its own task.
    pub(crate) fn sender(&self, d: Delivery) -> impl std::future::Future<Output = ()> + use<> {
        let (url, http, base) = (self.url.clone(), self.http.clone(), self.retry_base);
        async move {
            for attempt in 1..=ATTEMPTS {
                let sent = http
                    .post(url.clone())
                    .header("Content-Type", "application/json")
                    .header("X-Broker-Event", d.event)
                    .header("X-Broker-Signature", &d.signature)
                    .body(d.body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => {
                        tracing::warn!(status = r.status().as_u16(), attempt, "webhook refused")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.without_url(), attempt, "webhook not delivered")
                    }
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(base * 2u32.pow(attempt - 1)).await;
                }
            }
            tracing::error!(event = d.event, "webhook dropped after {ATTEMPTS} attempts");
        }
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
