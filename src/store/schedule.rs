//! The refresh schedule in `broker/refresh_schedule`: one document per account the
//! broker keeps fresh, indexed on `due_at`, so finding what is due is one query however
//! many instances there are.

use super::health_records::to_doc as health_doc;
use super::{rev_of, Selector, SharedStore, StoreError, REFRESH_SCHEDULE_DB};
use crate::domain::account_health::AccountHealth;
use crate::domain::{Domain, Timestamp};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

/// An account due for a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Its instance.
    pub instance: Domain,
    /// Its id in the instance's accounts database.
    pub account_id: String,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// The revision of its schedule document as read.
    pub rev: String,
}

/// What becomes of an account's plan after a refresher pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replan {
    /// Next refresh at `due_at` (unix seconds), after `attempts` failures.
    At {
        /// Unix seconds.
        due_at: i64,
        /// Failures since the last success.
        attempts: u32,
    },
    /// Off the schedule.
    Clear,
    /// Left as it is (someone else handles the account).
    Keep,
}

/// Reads and writes the schedule.
#[derive(Clone)]
pub struct Schedule {
    store: SharedStore,
    first_plans: Arc<FirstPlans>,
}

/// A plan (and the documents written beside it) waiting for its group's write, and where
/// the plan's outcome goes.
type QueuedPlan = (Vec<Value>, oneshot::Sender<Result<(), StoreError>>);

/// The first plans of new accounts, written in groups: whoever holds `writer` writes every
/// plan queued meanwhile in one request and answers each waiter, so concurrent flows share
/// one store round-trip (and each flow still returns only once its plan is stored).
#[derive(Default)]
struct FirstPlans {
    queue: std::sync::Mutex<Vec<QueuedPlan>>,
    writer: tokio::sync::Mutex<()>,
}

fn key(instance: &Domain, account_id: &str) -> String {
    format!("{instance}/{account_id}")
}

impl Schedule {
    /// The schedule over the store.
    pub fn new(store: SharedStore) -> Schedule {
        Schedule {
            store,
            first_plans: Arc::default(),
        }
    }

    /// Plans the next refresh of an account at `due_at` (unix seconds), after `attempts` failures.
    /// `first` says the account was just created, with its first health record: the plan
    /// is written without a read first, the record beside it in the same grouped write.
    pub async fn set(
        &self,
        instance: &Domain,
        account_id: &str,
        due_at: i64,
        attempts: u32,
        first: Option<&AccountHealth>,
    ) -> Result<(), StoreError> {
        let id = key(instance, account_id);
        let mut doc = json!({"_id": id, "instance": instance.as_str(), "account_id": account_id,
                             "due_at": due_at, "attempts": attempts});
        if let Some(health) = first {
            match self.put_first(vec![doc.clone(), health_doc(health)]).await {
                Err(StoreError::Conflict) => {}
                other => return other,
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

    /// Creates a plan document (the first of `docs`, the others beside it), in a group
    /// with the others queued meanwhile; answers the plan's outcome.
    async fn put_first(&self, docs: Vec<Value>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.first_plans
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((docs, tx));
        {
            let _writing = self.first_plans.writer.lock().await;
            let group = std::mem::take(
                &mut *self
                    .first_plans
                    .queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            // Empty when an earlier holder wrote ours with its group.
            if !group.is_empty() {
                // In a task of its own, so that a caller going away (a browser closing
                // the connection) cannot drop the others' plans half-way.
                let store = self.store.clone();
                let write = tokio::spawn(async move {
                    let mut docs = Vec::with_capacity(group.len() * 2);
                    let mut waiters = Vec::with_capacity(group.len());
                    for (mine, waiter) in group {
                        waiters.push((docs.len(), waiter));
                        docs.extend(mine);
                    }
                    match store.put_many(REFRESH_SCHEDULE_DB, &docs).await {
                        Ok(mut outcomes) => {
                            for (first, waiter) in waiters {
                                let outcome = outcomes.get_mut(first).map_or_else(
                                    || Err(StoreError::Invalid("a bulk write answer short".into())),
                                    |o| std::mem::replace(o, Err(StoreError::Conflict)),
                                );
                                let _ = waiter.send(outcome.map(|_| ()));
                            }
                        }
                        Err(e) => {
                            for (_, waiter) in waiters {
                                let _ = waiter.send(Err(e.clone()));
                            }
                        }
                    }
                });
                let _ = write.await;
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("plan writer gone".into())))
    }

    /// Stops refreshing an account (deleted, unrefreshable, or waiting for its user).
    pub async fn clear(&self, instance: &Domain, account_id: &str) -> Result<(), StoreError> {
        let id = key(instance, account_id);
        super::delete_if_present(&self.store, REFRESH_SCHEDULE_DB, &id).await
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
            // Only plans: the health records beside them have no `due_at`.
            .filter(|d| d.get("due_at").is_some_and(Value::is_number))
            .filter_map(|d| {
                Some(Due {
                    instance: Domain::parse(d.get("instance")?.as_str()?).ok()?,
                    account_id: d.get("account_id")?.as_str()?.to_owned(),
                    attempts: d.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32,
                    rev: rev_of(d)?.to_owned(),
                })
            })
            .collect())
    }

    /// Writes the new plans of a refresher pass: the changed ones in one request, the
    /// cleared ones in another, each at the revision the pass read. A plan someone else
    /// changed meanwhile (a reconnection, a konnector's refresh) is read again and written
    /// one by one, so the newest decision wins.
    pub async fn replan_many(&self, plans: &[(Due, Replan)]) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        let mut set_plans = Vec::new();
        let mut clears = Vec::new();
        for (due, plan) in plans {
            match plan {
                Replan::At { due_at, attempts } => {
                    sets.push(
                        json!({"_id": key(&due.instance, &due.account_id), "_rev": due.rev,
                        "instance": due.instance.as_str(), "account_id": due.account_id,
                        "due_at": due_at, "attempts": attempts}),
                    );
                    set_plans.push((due, *due_at, *attempts));
                }
                Replan::Clear => {
                    clears.push((key(&due.instance, &due.account_id), due.rev.clone()))
                }
                Replan::Keep => {}
            }
        }
        if !sets.is_empty() {
            let outcomes = self.store.put_many(REFRESH_SCHEDULE_DB, &sets).await?;
            for ((due, due_at, attempts), outcome) in set_plans.into_iter().zip(outcomes) {
                match outcome {
                    Ok(_) => {}
                    Err(StoreError::Conflict) => {
                        self.set(&due.instance, &due.account_id, due_at, attempts, None)
                            .await?
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !clears.is_empty() {
            self.store.delete_many(REFRESH_SCHEDULE_DB, &clears).await?;
        }
        Ok(())
    }
}
