//! A store wrapper that times and counts every request, for `/metrics` and benchmarks.

use super::{Changes, Selector, SharedStore, Store, StoreError};
use async_trait::async_trait;
use prometheus::{HistogramVec, IntCounterVec};
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Wraps a store; `requests` counts every call but `changes` (a long poll).
pub struct Instrumented {
    inner: SharedStore,
    seconds: HistogramVec,
    errors: IntCounterVec,
    requests: AtomicU64,
}

impl Instrumented {
    /// Wraps `inner`, observing latency into `seconds` and counting requests the store
    /// could not serve into `errors` (both labelled `op`).
    pub fn new(inner: SharedStore, seconds: HistogramVec, errors: IntCounterVec) -> Instrumented {
        Instrumented {
            inner,
            seconds,
            errors,
            requests: AtomicU64::new(0),
        }
    }

    /// Store requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn timed<T>(
        &self,
        op: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let out = call.await;
        self.seconds
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(StoreError::Unavailable(_)) = &out {
            self.errors.with_label_values(&[op]).inc();
        }
        out
    }
}

#[async_trait]
impl Store for Instrumented {
    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn ensure_db(&self, db: &str) -> Result<(), StoreError> {
        self.timed("ensure_db", self.inner.ensure_db(db)).await
    }
    async fn ensure_index(&self, db: &str, field: &str) -> Result<(), StoreError> {
        self.timed("ensure_index", self.inner.ensure_index(db, field))
            .await
    }
    async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError> {
        self.timed("get", self.inner.get(db, id)).await
    }
    async fn get_many(&self, db: &str, ids: &[String]) -> Result<Vec<Option<Value>>, StoreError> {
        self.timed("get_many", self.inner.get_many(db, ids)).await
    }
    async fn put(&self, db: &str, doc: &Value) -> Result<String, StoreError> {
        self.timed("put", self.inner.put(db, doc)).await
    }
    async fn delete(&self, db: &str, id: &str, rev: &str) -> Result<(), StoreError> {
        self.timed("delete", self.inner.delete(db, id, rev)).await
    }
    async fn put_many(
        &self,
        db: &str,
        docs: &[Value],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        self.timed("put_many", self.inner.put_many(db, docs)).await
    }
    async fn delete_many(&self, db: &str, docs: &[(String, String)]) -> Result<usize, StoreError> {
        self.timed("delete_many", self.inner.delete_many(db, docs))
            .await
    }
    async fn purge_deleted(&self, db: &str) -> Result<usize, StoreError> {
        self.timed("purge_deleted", self.inner.purge_deleted(db))
            .await
    }
    async fn all_docs(&self, db: &str) -> Result<Vec<Value>, StoreError> {
        self.timed("all_docs", self.inner.all_docs(db)).await
    }
    async fn docs_in_range(
        &self,
        db: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.timed(
            "docs_in_range",
            self.inner.docs_in_range(db, prefix, after, limit),
        )
        .await
    }
    async fn find(
        &self,
        db: &str,
        selector: &Selector,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.timed("find", self.inner.find(db, selector, limit))
            .await
    }
    async fn changes(
        &self,
        db: &str,
        since: &Value,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        self.inner.changes(db, since, wait).await
    }
}
