//! The broker's account writes, told to cozy-stack's realtime: with `cozy.redis_url`, each
//! account it creates, updates or deletes is published on cozy-stack's Redis channel
//! `realtime:events` as cozy-stack's own processes publish theirs
//! (`pkg/realtime/redis_hub.go`: `<doctype>,<event JSON>`, the event `{domain, prefix,
//! verb, doc, old}`), so every cozy-stack process relays it to the apps' websockets
//! (Harvest's `ConnectionFlow`, the Home app). Redis channels span its databases, so the
//! `sessions` database's URL reaches them.
//!
//! A publish never delays nor fails the write it tells of: it runs on its own task, is
//! counted (`broker_realtime_events_total{outcome}`) and a failure is logged once per
//! outage.

use crate::domain::Instance;
use prometheus::IntCounterVec;
use redis::AsyncConnectionConfig;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// cozy-stack's channel of document events.
pub const CHANNEL: &str = "realtime:events";
/// The doctype of accounts.
const ACCOUNTS: &str = "io.cozy.accounts";
const TIMEOUT: Duration = Duration::from_secs(2);

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `CREATED`.
    Created,
    /// `UPDATED`.
    Updated,
    /// `DELETED`.
    Deleted,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Created => "CREATED",
            Verb::Updated => "UPDATED",
            Verb::Deleted => "DELETED",
        }
    }
}

/// The `<doctype>,<json>` message cozy-stack's processes read off the channel.
pub fn message(inst: &Instance, verb: Verb, doc: &Value, old: Option<&Value>) -> String {
    let typed = |d: &Value| {
        let mut d = d.clone();
        if let Some(o) = d.as_object_mut() {
            o.insert("_type".into(), ACCOUNTS.into());
        }
        d
    };
    let mut event = json!({
        "domain": inst.domain.as_str(),
        "prefix": inst.prefix,
        "verb": verb.as_str(),
        "doc": typed(doc),
    });
    if let Some(o) = old {
        event["old"] = typed(o);
    }
    format!("{ACCOUNTS},{event}")
}

/// Publishes account events on cozy-stack's Redis.
pub struct CozyRealtime {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    failing: AtomicBool,
    events: IntCounterVec,
}

impl std::fmt::Debug for CozyRealtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CozyRealtime")
    }
}

impl CozyRealtime {
    /// Over the Redis at `url`, counting into `events` (label `outcome`).
    pub fn new(url: &str, events: IntCounterVec) -> Result<CozyRealtime, String> {
        Ok(CozyRealtime {
            client: redis::Client::open(url).map_err(|e| e.to_string())?,
            connection: Mutex::new(None),
            failing: AtomicBool::new(false),
            events,
        })
    }

    /// Publishes the event on its own task.
    pub fn announce(
        self: &Arc<Self>,
        inst: &Instance,
        verb: Verb,
        doc: &Value,
        old: Option<&Value>,
    ) {
        let payload = message(inst, verb, doc, old);
        let me = self.clone();
        tokio::spawn(async move { me.publish(payload).await });
    }

    async fn publish(&self, payload: String) {
        let outcome = match self.send(&payload).await {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("cozy-stack's realtime reachable again");
                }
                "published"
            }
            Err(e) => {
                *self.connection.lock().await = None;
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "account events cannot be published on cozy-stack's realtime; the writes themselves are done");
                }
                "failed"
            }
        };
        self.events.with_label_values(&[outcome]).inc();
    }

    async fn send(&self, payload: &str) -> Result<(), redis::RedisError> {
        let cached = self.connection.lock().await.clone();
        let mut c = match cached {
            Some(c) => c,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT));
                let c = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                *self.connection.lock().await = Some(c.clone());
                c
            }
        };
        redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async::<i64>(&mut c)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Domain;

    #[test]
    fn an_event_is_cozy_stacks_doctype_comma_json() {
        let inst = Instance::new(Domain::parse("alice.example").unwrap(), None);
        let m = message(
            &inst,
            Verb::Updated,
            &json!({"_id": "a", "_rev": "2-x"}),
            Some(&json!({"_id": "a", "_rev": "1-y"})),
        );
        let (doctype, event) = m.split_once(',').unwrap();
        assert_eq!(doctype, "io.cozy.accounts");
        let e: Value = serde_json::from_str(event).unwrap();
        assert_eq!(e["domain"], "alice.example");
        assert_eq!(e["prefix"], inst.prefix);
        assert_eq!(e["verb"], "UPDATED");
        assert_eq!(e["doc"]["_rev"], "2-x");
        assert_eq!(e["old"]["_rev"], "1-y");
        assert!(message(&inst, Verb::Created, &json!({}), None)
            .split_once(',')
            .is_some_and(|(_, e)| !e.contains("\"old\"")));
    }
}
