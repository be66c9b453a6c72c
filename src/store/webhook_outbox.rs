//! The webhook outbox (`broker/webhook_outbox`): signed events waiting for delivery, one
//! document each, ids sortable by the time they were stored.

use super::{Selector, SharedStore, StoreError, WEBHOOK_OUTBOX_DB};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One signed event waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `<millis, 15 digits>-<random>`: sortable by time, unique by chance.
    #[serde(rename = "_id")]
    pub id: String,
    /// The revision read, once stored.
    #[serde(rename = "_rev", default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// The event's name (`account.created`), sent as `X-Broker-Event`.
    pub event: String,
    /// The JSON body, as signed.
    pub body: String,
    /// `sha256=<hex>`, sent as `X-Broker-Signature`.
    pub signature: String,
    /// `<instance>/<account id>`: one account's events go in order.
    #[serde(default)]
    pub key: String,
    /// Delivery attempts made.
    #[serde(default)]
    pub attempts: u64,
    /// When it is next due (unix seconds): a retry's time, or a claim's end.
    #[serde(default)]
    pub next_at: i64,
}

/// The outbox repository.
#[derive(Clone)]
pub struct WebhookOutbox {
    store: SharedStore,
}

impl WebhookOutbox {
    /// The outbox in `store`.
    pub fn new(store: SharedStore) -> WebhookOutbox {
        WebhookOutbox { store }
    }

    /// Stores a new event.
    pub async fn add(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.store
            .put(WEBHOOK_OUTBOX_DB, &to_doc(entry)?)
            .await
            .map(|_| ())
    }

    /// Every pending event (due or not), up to `limit`, oldest first; an entry that does
    /// not parse is left alone.
    pub async fn pending(
        &self,
        now_secs: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // The `next_at` index holds them all: a century ahead is later than any retry or
        // claim.
        let docs = self
            .store
            .find(
                WEBHOOK_OUTBOX_DB,
                &Selector::Lt("next_at", now_secs + 100 * 365 * 86_400),
                limit,
            )
            .await?;
        let mut entries: Vec<OutboxEntry> = docs
            .into_iter()
            .filter_map(|d| {
                let mut e: OutboxEntry = serde_json::from_value(d).ok()?;
                if e.key.is_empty() {
                    e.key = key_from_body(&e.body);
                }
                Some(e)
            })
            .collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// Claims `entry` until `until` (unix seconds): `false` when another replica changed
    /// it first (it is theirs).
    pub async fn claim(&self, entry: &mut OutboxEntry, until: i64) -> Result<bool, StoreError> {
        entry.next_at = until;
        match self.store.put(WEBHOOK_OUTBOX_DB, &to_doc(entry)?).await {
            Ok(rev) => {
                entry.rev = Some(rev);
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records a failed attempt and when to try again; a conflict leaves it to whoever
    /// changed it.
    pub async fn retry_at(
        &self,
        entry: &mut OutboxEntry,
        attempts: u64,
        next_at: i64,
    ) -> Result<(), StoreError> {
        entry.attempts = attempts;
        entry.next_at = next_at;
        match self.store.put(WEBHOOK_OUTBOX_DB, &to_doc(entry)?).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a delivered (or given up) event.
    pub async fn remove(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let Some(rev) = &entry.rev else {
            return Ok(());
        };
        match self.store.delete(WEBHOOK_OUTBOX_DB, &entry.id, rev).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn to_doc(entry: &OutboxEntry) -> Result<Value, StoreError> {
    serde_json::to_value(entry).map_err(|e| StoreError::Invalid(format!("outbox entry: {e}")))
}

/// The account of an event stored before entries named it, read from its body.
fn key_from_body(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    format!(
        "{}/{}",
        body["instance"].as_str().unwrap_or_default(),
        body["account_id"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use serde_json::json;
    use std::sync::Arc;

    fn entry(id: &str, key: &str) -> OutboxEntry {
        OutboxEntry {
            id: id.into(),
            rev: None,
            event: "account.created".into(),
            body: json!({"instance": "a.example", "account_id": "1"}).to_string(),
            signature: "sha256=00".into(),
            key: key.into(),
            attempts: 0,
            next_at: 10,
        }
    }

    #[tokio::test]
    async fn pending_events_come_oldest_first_and_a_broken_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        store.ensure_db(WEBHOOK_OUTBOX_DB).await.unwrap();
        let outbox = WebhookOutbox::new(store.clone());
        outbox.add(&entry("002-b", "a.example/1")).await.unwrap();
        outbox.add(&entry("001-a", "")).await.unwrap();
        // Written by hand, without a body: not an event, not sent, not deleted.
        store
            .put(WEBHOOK_OUTBOX_DB, &json!({"_id": "000-x", "next_at": 5}))
            .await
            .unwrap();
        let pending = outbox.pending(100, 10).await.unwrap();
        let ids: Vec<&str> = pending.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["001-a", "002-b"]);
        // An entry stored before `key` existed gets it from its body.
        assert_eq!(pending[0].key, "a.example/1");
        // A claim that lost to another replica says so.
        let mut stale = pending[1].clone();
        let mut first = pending[1].clone();
        assert!(outbox.claim(&mut first, 200).await.unwrap());
        assert!(!outbox.claim(&mut stale, 200).await.unwrap());
        outbox.remove(&first).await.unwrap();
        assert_eq!(outbox.pending(100, 10).await.unwrap().len(), 1);
        assert!(store
            .get(WEBHOOK_OUTBOX_DB, "000-x")
            .await
            .unwrap()
            .is_some());
    }
}
