//! Storage: the [`Store`] trait over CouchDB-shaped JSON documents, its two
//! implementations, and the repositories the broker uses on top of it.

pub mod account_types;
pub mod accounts;
pub mod audit;
pub mod cache;
mod cluster_writes;
pub mod couch;
pub mod cozy;
pub mod cozy_realtime;
pub mod cozy_session_codes;
pub mod credentials;
pub mod embedded;
pub mod flow_states;
pub mod health_records;
pub mod inspect;
pub mod instances;
pub mod instrumented;
pub mod jobs;
pub mod leases;
pub mod newest_grants;
pub mod pending_grants;
pub mod registered_clients;
pub mod schedule;
pub mod selector;
pub mod webhook_outbox;

use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::ErrorCode;
use crate::domain::Timestamp;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub use selector::Selector;

/// Account types, shared with cozy-stack.
pub const ACCOUNT_TYPES_DB: &str = "secrets/io-cozy-account_types";
/// Instances, shared with cozy-stack.
pub const INSTANCES_DB: &str = "global/instances";
/// Spent flow states: one document per `state` a redirect used (single use).
pub const FLOW_STATES_DB: &str = "broker/flow_states";
/// One-time session codes accepted by `start`.
pub const SESSION_CODES_DB: &str = "broker/session_codes";
/// Instance API tokens, stored hashed.
pub const API_TOKENS_DB: &str = "broker/api_tokens";

/// Refresh leases: one refresher per account across processes.
pub const REFRESH_LEASES_DB: &str = "broker/refresh_leases";

/// When each kept-fresh account is next refreshed.
pub const REFRESH_SCHEDULE_DB: &str = "broker/refresh_schedule";

/// Clients the broker registered itself (RFC 7591), in cozy's `io.cozy.oauth.clients` shape.
pub const REGISTERED_CLIENTS_DB: &str = "broker/registered_clients";

/// Webhook events not yet delivered.
pub const WEBHOOK_OUTBOX_DB: &str = "broker/webhook_outbox";

/// Where long operator jobs keep their progress, to resume after an interruption.
pub const JOBS_DB: &str = "broker/jobs";

/// Keys the broker draws itself (the flow-state key, without `encryption_keys`).
pub const KEYS_DB: &str = "broker/keys";

/// Who changed what: operator and konnector actions that change state.
pub const AUDIT_DB: &str = "broker/audit";

/// The newest grant of each refreshed account, and the refresh tokens seen replaced
/// (`store/newest_grants.rs`): where only the broker writes.
pub const NEWEST_GRANTS_DB: &str = "broker/newest_grants";

/// Decision records of writes that only one writer may win on a CouchDB cluster
/// (`store/cluster_writes.rs`); swept when old.
pub const DECISIONS_DB: &str = "broker/decisions";

/// Databases whose writes decide between contenders (first writer wins): on a CouchDB
/// cluster each such write is read back and recorded before it counts.
pub const DECIDING_DBS: [&str; 4] = [FLOW_STATES_DB, SESSION_CODES_DB, REFRESH_LEASES_DB, KEYS_DB];

/// Every database the broker creates at start-up.
pub const BROKER_DBS: [&str; 14] = [
    ACCOUNT_TYPES_DB,
    INSTANCES_DB,
    FLOW_STATES_DB,
    SESSION_CODES_DB,
    API_TOKENS_DB,
    REFRESH_LEASES_DB,
    REFRESH_SCHEDULE_DB,
    REGISTERED_CLIENTS_DB,
    WEBHOOK_OUTBOX_DB,
    JOBS_DB,
    KEYS_DB,
    AUDIT_DB,
    DECISIONS_DB,
    NEWEST_GRANTS_DB,
];

/// The Mango indexes the broker's queries need (database, field); CouchDB would read
/// every document of the database without them.
pub const INDEXES: [(&str, &str); 9] = [
    // cozy-stack's index for secret lookups by konnector slug, and the refresher's.
    (ACCOUNT_TYPES_DB, "slug"),
    (REFRESH_SCHEDULE_DB, "due_at"),
    // cozy-stack's instance documents are found by `domain`, not by id, and by an alias:
    // CouchDB answers `$elemMatch` from a JSON index on the array (only documents with
    // aliases are in it) instead of reading every instance.
    (INSTANCES_DB, "domain"),
    (INSTANCES_DB, "old_domain"),
    (INSTANCES_DB, "domain_aliases"),
    // The sweeper finds what expired without reading everything.
    (FLOW_STATES_DB, "expires_at"),
    (SESSION_CODES_DB, "expires_at"),
    (WEBHOOK_OUTBOX_DB, "next_at"),
    (DECISIONS_DB, "expires_at"),
];

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database does not exist.
    #[error("database `{0}` does not exist")]
    NoDatabase(String),
    /// The write carried a stale or missing `_rev`.
    #[error("document update conflict")]
    Conflict,
    /// The store could not be reached or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something unexpected.
    #[error("unexpected store answer: {0}")]
    Invalid(String),
}

/// One document change, for the account-type cache.
#[derive(Debug, Clone)]
pub struct DocChange {
    /// Document id.
    pub id: String,
    /// The document, absent when deleted.
    pub doc: Option<Value>,
}

/// A batch of changes and the sequence to ask from next.
#[derive(Debug, Clone)]
pub struct Changes {
    /// Changes since the asked sequence.
    pub changes: Vec<DocChange>,
    /// Opaque sequence (CouchDB's `last_seq`).
    pub last_seq: Value,
}

/// CouchDB-shaped document storage: ids, `_rev` revisions, conflicts on stale writes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Creates a database when it does not exist.
    async fn ensure_db(&self, db: &str) -> Result<(), StoreError>;
    /// Reads a document with its `_id` and `_rev`; `None` when missing or deleted.
    async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError>;
    /// Reads many documents in one request (`_all_docs` with `keys`), in the order asked;
    /// `None` for each missing or deleted one (all of them when the database is missing).
    async fn get_many(&self, db: &str, ids: &[String]) -> Result<Vec<Option<Value>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get(db, id).await?);
        }
        Ok(out)
    }
    /// Writes a document that has an `_id`; with a `_rev` it updates that revision.
    /// Returns the new revision.
    async fn put(&self, db: &str, doc: &Value) -> Result<String, StoreError>;
    /// Deletes a revision of a document.
    async fn delete(&self, db: &str, id: &str, rev: &str) -> Result<(), StoreError>;
    /// Writes many documents in one request (`_bulk_docs`; one transaction on the embedded
    /// store); each has its own outcome (a stale `_rev` is that one's conflict).
    async fn put_many(
        &self,
        db: &str,
        docs: &[Value],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            out.push(self.put(db, d).await);
        }
        Ok(out)
    }
    /// Deletes many `(id, rev)` in one request; returns how many went (the others
    /// changed or went meanwhile).
    async fn delete_many(&self, db: &str, docs: &[(String, String)]) -> Result<usize, StoreError> {
        let mut n = 0;
        for (id, rev) in docs {
            if self.delete(db, id, rev).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
    /// Forgets deleted documents for good where the store keeps them (the embedded store's
    /// tombstones); returns how many. A no-op on CouchDB, whose compaction keeps them small.
    async fn purge_deleted(&self, _db: &str) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Every live document of a database.
    async fn all_docs(&self, db: &str) -> Result<Vec<Value>, StoreError>;
    /// Up to `limit` live documents whose id starts with `prefix` and sorts after `after`
    /// (from the first when `None`), in id order: one page of a listing, read through the
    /// id index (`_all_docs` ranges on CouchDB) however large the database.
    async fn docs_in_range(
        &self,
        db: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError>;
    /// Documents matching a selector, at most `limit`.
    async fn find(
        &self,
        db: &str,
        selector: &Selector,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError>;
    /// Creates a Mango index on `field` when the store needs one (CouchDB); a no-op elsewhere.
    async fn ensure_index(&self, _db: &str, _field: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Changes after `since`, waiting up to `wait` for one to happen.
    async fn changes(&self, db: &str, since: &Value, wait: Duration)
        -> Result<Changes, StoreError>;
}

/// The store shared by every handler.
pub type SharedStore = Arc<dyn Store>;

/// Deletes a document if it is there; one deleted meanwhile by someone else is as good.
pub async fn delete_if_present(store: &SharedStore, db: &str, id: &str) -> Result<(), StoreError> {
    if let Some(doc) = store.get(db, id).await? {
        match store.delete(db, id, rev_of(&doc).unwrap_or_default()).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates the databases the broker uses (and the indexes cozy-stack's lookups and the
/// refresher rely on).
pub async fn ensure_databases(store: &SharedStore) -> Result<(), StoreError> {
    for db in BROKER_DBS {
        store.ensure_db(db).await?;
    }
    for (db, field) in INDEXES {
        store.ensure_index(db, field).await?;
    }
    Ok(())
}

/// `put`, creating the database first when it is missing.
pub async fn put_creating_db(
    store: &dyn Store,
    db: &str,
    doc: &Value,
) -> Result<String, StoreError> {
    match store.put(db, doc).await {
        Err(StoreError::NoDatabase(_)) => {
            store.ensure_db(db).await?;
            store.put(db, doc).await
        }
        other => other,
    }
}

/// Documents a sweep deletes per request.
const SWEEP_BATCH: usize = 500;

/// What expires in the store, swept by the sweeper: spent flow states (kept `keep_spent`
/// past their own expiry, so a state is refused as expired before its document can go),
/// session codes and decision records. Returns how many went, by database; a database
/// whose sweep failed says why.
pub async fn sweep_all_expired(
    store: &dyn Store,
    now: Timestamp,
    keep_spent: std::time::Duration,
) -> Vec<(&'static str, Result<usize, StoreError>)> {
    let mut swept = Vec::new();
    for (db, before) in [
        (FLOW_STATES_DB, now.minus(keep_spent)),
        (SESSION_CODES_DB, now),
        (DECISIONS_DB, now),
    ] {
        swept.push((db, sweep_expired(store, db, before).await));
    }
    swept
}

/// Deletes every document of `db` whose `expires_at` (unix seconds) is before `before`, a
/// batch per request (found through the `expires_at` index), then purges what the store
/// keeps of deleted ones; returns how many went.
pub async fn sweep_expired(
    store: &dyn Store,
    db: &str,
    before: Timestamp,
) -> Result<usize, StoreError> {
    let mut n = 0;
    // Bounded, so a store that keeps answering the same documents cannot spin it.
    for _ in 0..10_000 {
        let old = store
            .find(
                db,
                &Selector::Lt("expires_at", before.unix_secs()),
                SWEEP_BATCH,
            )
            .await?;
        let batch: Vec<(String, String)> = old
            .iter()
            .filter_map(|d| Some((id_of(d)?.to_owned(), rev_of(d)?.to_owned())))
            .collect();
        // A conflict means another replica swept or used it first.
        let deleted = store.delete_many(db, &batch).await?;
        n += deleted;
        if old.len() < SWEEP_BATCH || deleted == 0 {
            break;
        }
    }
    store.purge_deleted(db).await?;
    Ok(n)
}

/// `_rev` of a document read from the store.
pub fn rev_of(doc: &Value) -> Option<&str> {
    doc.get("_rev").and_then(Value::as_str)
}

/// `_id` of a document read from the store.
pub fn id_of(doc: &Value) -> Option<&str> {
    doc.get("_id").and_then(Value::as_str)
}

impl Classified for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict => ErrorKind::Conflict,
            StoreError::NoDatabase(_) | StoreError::Unavailable(_) | StoreError::Invalid(_) => {
                ErrorKind::Unavailable
            }
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict => ErrorCode::Conflict,
            _ => ErrorCode::StoreUnavailable,
        }
    }
}
