//! One pass of the background refresher, in bulk: the due accounts of a batch are read
//! from the schedule in one query, their leases taken in one write, their documents read
//! in one request per instance, and their new plans and lease releases written in one
//! request each. Per refresh that leaves the account's own write, plus a read when its
//! instance has no other account in the batch, plus the instance's own read the first
//! time the process meets it (then cached): from about one round-trip to a little over
//! three when every due account is alone on an instance seen for the first time.

use super::account_health::HealthLog;
use super::clients::Clients;
use super::leasing::Leasing;
use super::refresh_plan::RefreshPlan;
use super::renewal::{account_key, Mode, Renewal, Target};
use super::Error;
use crate::domain::account::Account;
use crate::domain::{AccountType, Classified, Clock, Domain, ErrorKind, Instance};
use crate::store::accounts::Accounts;
use crate::store::health_records::Record;
use crate::store::instances::Instances;
use crate::store::leases::Lease;
use crate::store::schedule::{Due, Replan};
use futures::StreamExt;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;

/// Accounts taken from the schedule per pass.
pub(crate) const BATCH: usize = 200;
/// Refreshes running at once in one process.
const CONCURRENCY: usize = 16;

/// One due account of a batch, with what the pass gathered for it.
struct Item {
    entry: Due,
    inst: Instance,
    lease: Option<Lease>,
    doc: Option<Account>,
}

/// The background refresher's pass.
pub(crate) struct Refresher {
    renewal: Arc<Renewal>,
    accounts: Accounts,
    clients: Arc<Clients>,
    instances: Instances,
    leasing: Arc<Leasing>,
    plan: RefreshPlan,
    health: Arc<HealthLog>,
    clock: Clock,
}

/// What a [`Refresher`] works with.
pub(crate) struct RefresherParts {
    /// The work under the lease.
    pub(crate) renewal: Arc<Renewal>,
    /// The accounts repository.
    pub(crate) accounts: Accounts,
    /// Clients of account types.
    pub(crate) clients: Arc<Clients>,
    /// The instances repository.
    pub(crate) instances: Instances,
    /// This process's leases.
    pub(crate) leasing: Arc<Leasing>,
    /// The refresh plan (and its schedule, which the pass reads).
    pub(crate) plan: RefreshPlan,
    /// Account health.
    pub(crate) health: Arc<HealthLog>,
    /// The clock.
    pub(crate) clock: Clock,
}

impl Refresher {
    /// The refresher over its parts.
    pub(crate) fn new(p: RefresherParts) -> Refresher {
        Refresher {
            renewal: p.renewal,
            accounts: p.accounts,
            clients: p.clients,
            instances: p.instances,
            leasing: p.leasing,
            plan: p.plan,
            health: p.health,
            clock: p.clock,
        }
    }

    /// Writes every journalled refresh whose account the store can take now; returns
    /// how many were settled.
    pub(crate) async fn settle_pending(&self) -> usize {
        self.renewal.settle_pending().await
    }

    /// One pass of the background refresher: refreshes what is due now, until `stop`
    /// says so; returns how many accounts were taken from the schedule.
    pub(crate) async fn refresh_due(&self, stop: &(dyn Fn() -> bool + Sync)) -> usize {
        let now = self.clock.now();
        let due = match self.plan.schedule().due(now, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the refresh schedule");
                return 0;
            }
        };
        let n = due.len();
        let mut plans: Vec<(Due, Replan)> = Vec::with_capacity(n);
        let mut items = self.gather(due, &mut plans).await;

        let keys: Vec<String> = items.iter().map(|i| lease_key(&i.entry)).collect();
        match self.leasing.try_acquire_many(&keys).await {
            Ok(leases) => {
                for (item, lease) in items.iter_mut().zip(leases) {
                    item.lease = lease;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take refresh leases");
                return n;
            }
        }
        // Held elsewhere: its holder refreshes it and plans it.
        items.retain(|i| i.lease.is_some());
        if let Err(e) = self.read_accounts(&mut items).await {
            tracing::warn!(error = %e, "refresher could not read the accounts");
            let leases = items.into_iter().filter_map(|i| i.lease).collect();
            self.leasing.release_many(leases).await;
            return n;
        }

        let done: Vec<(Due, Replan, Option<Lease>, Option<Record>)> = futures::stream::iter(items)
            .map(|mut item| async move {
                let (plan, record) = match (&mut item.lease, item.doc.take()) {
                    _ if stop() => (Replan::Keep, None),
                    (Some(lease), doc) => {
                        self.refresh_leased(&item.entry, &item.inst, lease, doc)
                            .await
                    }
                    (None, _) => (Replan::Keep, None),
                };
                (item.entry, plan, item.lease, record)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut leases = Vec::with_capacity(done.len());
        let mut records = Vec::with_capacity(done.len());
        for (entry, plan, lease, record) in done {
            plans.push((entry, plan));
            leases.extend(lease);
            records.extend(record);
        }
        if let Err(e) = self.plan.schedule().replan_many(&plans).await {
            tracing::warn!(error = %e, "could not write the next refresh plans");
        }
        self.leasing.release_many(leases).await;
        self.health.note(records).await;
        n
    }

    /// The instance of each due account (one read per instance, cached); an account whose
    /// instance is gone leaves the schedule.
    async fn gather(&self, due: Vec<Due>, plans: &mut Vec<(Due, Replan)>) -> Vec<Item> {
        let mut instances: HashMap<Domain, Option<Instance>> = HashMap::new();
        let mut items = Vec::with_capacity(due.len());
        for entry in due {
            if !instances.contains_key(&entry.instance) {
                match self.instances.get(&entry.instance).await {
                    Ok(inst) => {
                        instances.insert(entry.instance.clone(), inst);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refresher could not read an instance");
                        continue;
                    }
                }
            }
            match instances.get(&entry.instance) {
                Some(Some(inst)) => items.push(Item {
                    entry,
                    inst: inst.clone(),
                    lease: None,
                    doc: None,
                }),
                // The instance is gone: nothing to keep fresh.
                _ => plans.push((entry, Replan::Clear)),
            }
        }
        items
    }

    /// Reads the accounts of the batch, one request per instance.
    async fn read_accounts(&self, items: &mut [Item]) -> Result<(), Error> {
        let mut by_instance: HashMap<Domain, (Instance, Vec<String>)> = HashMap::new();
        for item in items.iter() {
            by_instance
                .entry(item.inst.domain.clone())
                .or_insert_with(|| (item.inst.clone(), Vec::new()))
                .1
                .push(item.entry.account_id.clone());
        }
        let mut docs: HashMap<(Domain, String), Account> = HashMap::new();
        for (domain, (inst, ids)) in by_instance {
            for (id, doc) in self.accounts.get_many(&inst, &ids).await? {
                docs.insert((domain.clone(), id), doc);
            }
        }
        for item in items.iter_mut() {
            item.doc = docs.remove(&(item.inst.domain.clone(), item.entry.account_id.clone()));
        }
        Ok(())
    }

    /// Refreshes one account under the lease the pass took, with its document as read
    /// under that lease; says what becomes of its plan, and what to record of its health.
    async fn refresh_leased(
        &self,
        entry: &Due,
        inst: &Instance,
        lease: &mut Lease,
        doc: Option<Account>,
    ) -> (Replan, Option<Record>) {
        let id = entry.account_id.as_str();
        let Some(doc) = doc else {
            // Deleted meanwhile: its health record goes with it.
            self.health.forget(inst.domain.as_str(), id).await;
            return (Replan::Clear, None);
        };
        let service_id = doc.service().to_owned();
        let outcome = self.refresh_with_doc(inst, id, lease, doc).await;
        // The account's `account_type` is the tenant's to write: a label only once the
        // broker found the type (every new one would be a new metric series).
        let label = match &outcome {
            Err(e)
                if matches!(
                    e.unjoined(),
                    Error::AccountType(_) | Error::NotRefreshable(_)
                ) =>
            {
                "-"
            }
            _ => service_id.as_str(),
        };
        self.health.count(outcome.as_ref().err(), label);
        let record = self.health.outcome_record(
            inst.domain.as_str(),
            id,
            &service_id,
            outcome.as_ref().map(|_| ()),
        );
        let plan = match outcome {
            Ok((saved, at)) => match self.plan.next_due(&saved, &at) {
                Some(due_at) => Replan::At {
                    due_at,
                    attempts: 0,
                },
                None => Replan::Clear,
            },
            Err(e) => self.after_failure(entry, inst, &service_id, &e).await,
        };
        (plan, record)
    }

    async fn refresh_with_doc(
        &self,
        inst: &Instance,
        id: &str,
        lease: &mut Lease,
        doc: Account,
    ) -> Result<(Account, Arc<AccountType>), Error> {
        if !doc.has_oauth() {
            return Err(Error::NotRefreshable("this account has no OAuth tokens"));
        }
        let at = self
            .clients
            .for_account(inst.context.as_deref(), &doc)
            .await?;
        if at.token_endpoint.is_none() {
            // Nothing to refresh with: `next_due` takes it off the schedule.
            return Ok((doc, at));
        }
        let key = account_key(inst, id);
        // Tokens a provider issued earlier and the store did not take yet go in first.
        if let Some(record) = self.renewal.pending(&key).await? {
            let saved = self
                .renewal
                .replay(inst, id, &key, &record, Some(doc))
                .await?;
            return Ok((saved, at));
        }
        let seen = doc.clone();
        let target = Target {
            inst,
            id,
            at: &at,
            key: &key,
        };
        let saved = self
            .renewal
            .renew(&target, lease, &seen, doc, Mode::IfDue)
            .await?;
        Ok((saved, at))
    }

    /// What the refresher does after a failed refresh.
    async fn after_failure(
        &self,
        entry: &Due,
        inst: &Instance,
        service_id: &str,
        e: &Error,
    ) -> Replan {
        match after(e.kind()) {
            After::AwaitReconnection => {
                self.renewal
                    .wait_for_user(inst, &entry.account_id, service_id)
                    .await;
                tracing::info!(instance = %inst.domain, "refresh token refused: the account waits for its user to reconnect");
                Replan::Clear
            }
            After::Drop => {
                tracing::info!(error = %e, "account cannot be kept fresh; removed from the schedule");
                Replan::Clear
            }
            After::BackOff => {
                let attempts = entry.attempts + 1;
                let wait = backoff(attempts);
                tracing::warn!(error = %e, kind = e.kind().as_str(), attempts, retry_in_secs = wait, "refresh failed; backing off");
                Replan::At {
                    due_at: self.clock.now().unix_secs() + wait,
                    attempts,
                }
            }
        }
    }
}

fn lease_key(entry: &Due) -> String {
    format!("{}/{}", entry.instance, entry.account_id)
}

/// What the refresher does after a failure of this kind.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// The account waits for its user (marked, and off the schedule until reconnected).
    AwaitReconnection,
    /// Nothing will make it work: off the schedule.
    Drop,
    /// A passing condition or the operator's to fix: try again later.
    BackOff,
}

fn after(kind: ErrorKind) -> After {
    match kind {
        ErrorKind::GrantRevoked => After::AwaitReconnection,
        k if k.is_permanent() => After::Drop,
        _ => After::BackOff,
    }
}

/// Seconds before attempt `attempts + 1`: 30 s doubling to at most an hour, ±20 % jitter so
/// that a provider outage does not end in a thundering herd.
fn backoff(attempts: u32) -> i64 {
    let base = (30i64 << attempts.saturating_sub(1).min(7)).min(3600);
    let jitter = rand::thread_rng().gen_range(-base / 5..=base / 5);
    (base + jitter).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            assert!((24..=36).contains(&backoff(1)));
            assert!((48..=72).contains(&backoff(2)));
            assert!((2880..=4320).contains(&backoff(20)));
        }
    }

    #[test]
    fn only_permanent_kinds_leave_the_schedule() {
        assert_eq!(after(ErrorKind::GrantRevoked), After::AwaitReconnection);
        assert_eq!(after(ErrorKind::NotFound), After::Drop);
        for kind in [
            ErrorKind::Unavailable,
            ErrorKind::Misconfigured,
            ErrorKind::KeyUnavailable,
            ErrorKind::Busy,
            ErrorKind::Upstream,
            ErrorKind::UpstreamTimeout,
            ErrorKind::Refused,
        ] {
            assert_eq!(after(kind), After::BackOff, "{kind:?}");
        }
    }
}
