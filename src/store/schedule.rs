//! The refresh schedule in `broker/refresh_schedule`: one document per account the
//! broker keeps fresh, indexed on `due_at`, so finding what is due is one query however
//! many instances there are.

use super::{rev_of, Selector, SharedStore, StoreError, REFRESH_SCHEDULE_DB};
use crate::domain::{Domain, Timestamp};
use serde_json::{json, Value};

/// An account due for a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Its instance.
    pub instance: Domain,
    /// Its id in the instance's accounts database.
    pub account_id: String,
    /// Failed attempts since the last success.
    pub attempts: u32,
}

/// Reads and writes the schedule.
#[derive(Clone)]
pub struct Schedule {
    store: SharedStore,
}

fn key(instance: &Domain, account_id: &str) -> String {
    format!("{instance}/{account_id}")
}

impl Schedule {
    /// The schedule over the store.
    pub fn new(store: SharedStore) -> Schedule {
        Schedule { store }
    }

    /// Plans the next refresh of an account at `due_at` (unix seconds), after `attempts` failures.
    /// `new` says the account was just created: its plan is written without a read first.
    pub async fn set(
        &self,
        instance: &Domain,
        account_id: &str,
        due_at: i64,
        attempts: u32,
        new: bool,
    ) -> Result<(), StoreError> {
        let id = key(instance, account_id);
        let mut doc = json!({"_id": id, "instance": instance.as_str(), "account_id": account_id,
                             "due_at": due_at, "attempts": attempts});
        if new {
            match self.store.put(REFRESH_SCHEDULE_DB, &doc).await {
                Err(StoreError::Conflict) => {}
                other => return other.map(|_| ()),
            }
        }
        for _ in 0..3 {
            match self.store.get(REFRESH_SCHEDULE_DB, &id).await? {
                Some(old) => doc["_rev"] = rev_of(&old).unwrap_or_default().into(),
                None => {
                    if let Some(o) = doc.as_object_mut() {
                        o.remove("_rev");
                    }
                }
            }
            match self.store.put(REFRESH_SCHEDULE_DB, &doc).await {
                Err(StoreError::Conflict) => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Stops refreshing an account (deleted, unrefreshable, or waiting for its user).
    pub async fn clear(&self, instance: &Domain, account_id: &str) -> Result<(), StoreError> {
        let id = key(instance, account_id);
        if let Some(doc) = self.store.get(REFRESH_SCHEDULE_DB, &id).await? {
            match self
                .store
                .delete(REFRESH_SCHEDULE_DB, &id, rev_of(&doc).unwrap_or_default())
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// When an account is planned, if it is.
    pub async fn due_at(
        &self,
        instance: &Domain,
        account_id: &str,
    ) -> Result<Option<(i64, u32)>, StoreError> {
        let doc = self
            .store
            .get(REFRESH_SCHEDULE_DB, &key(instance, account_id))
            .await?;
        Ok(doc.and_then(|d| {
            let due = d.get("due_at")?.as_i64()?;
            let attempts = d.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32;
            Some((due, attempts))
        }))
    }

    /// Accounts due at `now`, at most `limit`.
    pub async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Due>, StoreError> {
        let docs = self
            .store
            .find(
                REFRESH_SCHEDULE_DB,
                &Selector::Lt("due_at", now.unix_secs() + 1),
                limit,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(Due {
                    instance: Domain::parse(d.get("instance")?.as_str()?).ok()?,
                    account_id: d.get("account_id")?.as_str()?.to_owned(),
                    attempts: d.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32,
                })
            })
            .collect())
    }
}
