//! Checkpoints of long operator jobs (`refresh-plan backfill`) in `broker/jobs`: a job
//! interrupted by a crash or a Ctrl-C resumes where it stopped.

use super::{put_creating_db, rev_of, SharedStore, StoreError, JOBS_DB};
use serde_json::{json, Value};

/// Reads and writes job checkpoints.
#[derive(Clone)]
pub struct Checkpoints {
    store: SharedStore,
}

impl Checkpoints {
    /// Over the store.
    pub fn new(store: SharedStore) -> Checkpoints {
        Checkpoints { store }
    }

    /// The saved progress of job `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Value>, StoreError> {
        match self.store.get(JOBS_DB, name).await {
            Ok(doc) => Ok(doc.and_then(|d| d.get("progress").cloned())),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves the progress of job `name` (the last write wins: one runner per job).
    pub async fn set(&self, name: &str, progress: Value) -> Result<(), StoreError> {
        let mut doc = json!({"_id": name, "progress": progress});
        if let Ok(Some(old)) = self.store.get(JOBS_DB, name).await {
            doc["_rev"] = rev_of(&old).unwrap_or_default().into();
        }
        put_creating_db(self.store.as_ref(), JOBS_DB, &doc).await?;
        Ok(())
    }

    /// Forgets job `name`'s progress: the next run starts from the beginning.
    pub async fn clear(&self, name: &str) -> Result<(), StoreError> {
        match self.store.get(JOBS_DB, name).await {
            Ok(Some(old)) => match self
                .store
                .delete(JOBS_DB, name, rev_of(&old).unwrap_or_default())
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => Ok(()),
                Err(e) => Err(e),
            },
            Ok(None) | Err(StoreError::NoDatabase(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
