//! Webhooks: the broker tells an operator's endpoint when an account is created, when its
//! refresh fails for good, and when its user reconnects it. Bodies are signed with
//! HMAC-SHA256 (`X-Broker-Signature: sha256=<hex>`) and delivered with retries.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;

/// Delivery attempts per event.
const ATTEMPTS: u32 = 4;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// Instance domain.
    pub instance: String,
    /// Account id.
    pub account_id: String,
    /// Account type (service id).
    pub account_type: String,
    /// OAuth error code, for failures.
    pub error: Option<String>,
}

/// The configured endpoint, if any.
pub struct Webhooks {
    target: Option<(url::Url, Vec<u8>)>,
    http: reqwest::Client,
    retry_base: Duration,
}

impl Webhooks {
    /// Webhooks to `url`, signed with `secret`; none without a URL.
    pub fn new(url: Option<url::Url>, secret: &str, retry_base: Duration) -> Webhooks {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Webhooks {
            target: url.map(|u| (u, secret.as_bytes().to_vec())),
            http,
            retry_base,
        }
    }

    /// Sends the event in the background; failures are retried, then logged.
    pub fn emit(&self, event: Event) {
        let Some((url, secret)) = self.target.clone() else {
            return;
        };
        let body = json!({
            "event": event.kind.as_str(),
            "instance": event.instance,
            "account_id": event.account_id,
            "account_type": event.account_type,
            "error": event.error,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .to_string();
        let signature = format!("sha256={}", sign(&secret, body.as_bytes()));
        let http = self.http.clone();
        let base = self.retry_base;
        tokio::spawn(async move {
            for attempt in 1..=ATTEMPTS {
                let sent = http
                    .post(url.clone())
                    .header("Content-Type", "application/json")
                    .header("X-Broker-Event", event.kind.as_str())
                    .header("X-Broker-Signature", &signature)
                    .body(body.clone())
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
                tokio::time::sleep(base * 2u32.pow(attempt - 1)).await;
            }
            tracing::error!(
                event = event.kind.as_str(),
                "webhook dropped after {ATTEMPTS} attempts"
            );
        });
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
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
