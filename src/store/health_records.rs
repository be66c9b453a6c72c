//! Account health records, kept beside the refresh plans in `broker/refresh_schedule`
//! under `health/<instance>/<account id>` ids (they have no `due_at`, so the refresher's
//! query never meets them). Beside the plans, a new account's record goes out in the same
//! grouped write as its first plan, at no extra round-trip.

use super::{rev_of, SharedStore, StoreError, REFRESH_SCHEDULE_DB};
use crate::domain::account_health::{AccountHealth, Outcome, Transition};
use serde_json::Value;

/// Where health records' ids start.
const PREFIX: &str = "health/";
/// Records a filtered listing reads per round-trip.
const SCAN_STEP: usize = 1000;
/// Conflicting writes tried again before giving up.
const ATTEMPTS: usize = 3;

/// The id of an account's health record.
pub fn health_id(instance: &str, account_id: &str) -> String {
    format!("{PREFIX}{instance}/{account_id}")
}

/// The stored document of a record (without `_rev`).
pub fn to_doc(h: &AccountHealth) -> Value {
    let mut doc = serde_json::to_value(h).unwrap_or_default();
    if let Some(o) = doc.as_object_mut() {
        o.insert("_id".into(), health_id(&h.instance, &h.account_id).into());
        o.insert("kind".into(), "health".into());
    }
    doc
}

fn from_doc(doc: &Value) -> Option<AccountHealth> {
    serde_json::from_value(doc.clone()).ok()
}

/// One outcome to record.
#[derive(Debug, Clone)]
pub struct Record {
    /// The instance's domain.
    pub instance: String,
    /// The account.
    pub account_id: String,
    /// Its account type.
    pub account_type: String,
    /// What happened.
    pub outcome: Outcome,
    /// The scopes the last grant lacked, when a flow tells them.
    pub scope_missing: Option<Vec<String>>,
}

/// Which records a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this instance's accounts.
    pub instance: Option<String>,
    /// Only this account type's.
    pub account_type: Option<String>,
    /// Only accounts waiting for their user.
    pub reconnect_needed: bool,
    /// Only accounts whose refreshes fail.
    pub failing: bool,
}

impl Filter {
    /// Whether it keeps only some of an instance's (or every) account.
    fn selective(&self) -> bool {
        self.account_type.is_some() || self.reconnect_needed || self.failing
    }

    fn keeps(&self, h: &AccountHealth) -> bool {
        self.account_type
            .as_deref()
            .is_none_or(|t| t == h.account_type)
            && (!self.reconnect_needed || h.reconnect_needed)
            && (!self.failing || h.failing())
    }
}

/// One page of a listing, and where the next starts.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, in id order.
    pub records: Vec<AccountHealth>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// Reads and writes health records.
#[derive(Clone)]
pub struct HealthRecords {
    store: SharedStore,
}

impl HealthRecords {
    /// Records over the store.
    pub fn new(store: SharedStore) -> HealthRecords {
        HealthRecords { store }
    }

    /// Records outcomes, reading the records in one request and writing them in one; a
    /// record changed meanwhile is read and written again on its own. Returns each
    /// outcome's transition, in order.
    pub async fn record_many(
        &self,
        records: &[Record],
        now: i64,
    ) -> Result<Vec<Transition>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = records
            .iter()
            .map(|r| health_id(&r.instance, &r.account_id))
            .collect();
        let current = self.store.get_many(REFRESH_SCHEDULE_DB, &ids).await?;
        let mut docs = Vec::with_capacity(records.len());
        let mut transitions = Vec::with_capacity(records.len());
        for (r, old) in records.iter().zip(current) {
            let (doc, t) = next_doc(r, old.as_ref(), now);
            docs.push(doc);
            transitions.push(t);
        }
        let outcomes = self.store.put_many(REFRESH_SCHEDULE_DB, &docs).await?;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(_) => {}
                Err(StoreError::Conflict) => transitions[i] = self.record(&records[i], now).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(transitions)
    }

    /// Records one outcome (read, then write over what was read).
    pub async fn record(&self, r: &Record, now: i64) -> Result<Transition, StoreError> {
        let id = health_id(&r.instance, &r.account_id);
        for _ in 0..ATTEMPTS {
            let old = self.store.get(REFRESH_SCHEDULE_DB, &id).await?;
            let (doc, t) = next_doc(r, old.as_ref(), now);
            match self.store.put(REFRESH_SCHEDULE_DB, &doc).await {
                Ok(_) => return Ok(t),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Forgets an account's record (the account is gone).
    pub async fn forget(&self, instance: &str, account_id: &str) -> Result<(), StoreError> {
        let id = health_id(instance, account_id);
        super::delete_if_present(&self.store, REFRESH_SCHEDULE_DB, &id).await
    }

    /// Up to `limit` records the filter keeps, after `after` in id order. Reads the id
    /// index page by page (an instance's records are one range of it), so a page costs
    /// what it reads, however many accounts are stored.
    pub async fn page(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let prefix = match &filter.instance {
            Some(i) => format!("{PREFIX}{i}/"),
            None => PREFIX.to_owned(),
        };
        let limit = limit.max(1);
        // A filter may keep few of what it reads: read in larger steps then, so that a
        // page costs a handful of round-trips even when it scans many accounts.
        let step = if filter.selective() {
            limit.max(SCAN_STEP)
        } else {
            limit
        };
        let mut cursor = after.map(str::to_owned);
        let mut records = Vec::new();
        loop {
            let docs = self
                .store
                .docs_in_range(REFRESH_SCHEDULE_DB, &prefix, cursor.as_deref(), step)
                .await?;
            let full = docs.len() == step;
            for doc in &docs {
                cursor = doc.get("_id").and_then(Value::as_str).map(str::to_owned);
                if let Some(h) = from_doc(doc).filter(|h| filter.keeps(h)) {
                    records.push(h);
                    if records.len() == limit {
                        return Ok(Page {
                            records,
                            next: cursor,
                        });
                    }
                }
            }
            if !full {
                return Ok(Page {
                    records,
                    next: None,
                });
            }
        }
    }

    /// Every record (for the per-provider summary).
    pub async fn all(&self) -> Result<Vec<AccountHealth>, StoreError> {
        const CHUNK: usize = 1000;
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let docs = self
                .store
                .docs_in_range(REFRESH_SCHEDULE_DB, PREFIX, cursor.as_deref(), CHUNK)
                .await?;
            cursor = docs
                .last()
                .and_then(|d| d.get("_id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.extend(docs.iter().filter_map(from_doc));
            if docs.len() < CHUNK {
                return Ok(out);
            }
        }
    }
}

/// The record after `r`, over `old` as stored (its revision kept for the write).
fn next_doc(r: &Record, old: Option<&Value>, now: i64) -> (Value, Transition) {
    let mut h = old
        .and_then(from_doc)
        .unwrap_or_else(|| AccountHealth::new(&r.instance, &r.account_id, &r.account_type));
    // A type may be renamed under an account (a reconnection through another type).
    h.account_type.clone_from(&r.account_type);
    let t = h.apply(&r.outcome, now);
    if let Some(missing) = &r.scope_missing {
        h.scope_missing.clone_from(missing);
    }
    let mut doc = to_doc(&h);
    if let Some(rev) = old.and_then(rev_of) {
        doc["_rev"] = rev.into();
    }
    (doc, t)
}
