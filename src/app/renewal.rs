//! [`Renewal`]: the work under an account's refresh lease, which the refresh route and
//! the background refresher share: the provider call, the new pair journalled on local
//! disk before the account write, the write made only over the refresh token used, and
//! the journal settled after an outage or a restart.

use super::account_health::HealthLog;
use super::audit::{Actor, Audit};
use super::keyed_locks::KeyedLocks;
use super::leasing::Leasing;
use super::refresh_plan::{renews_without_refresh_token, RefreshPlan};
use super::Error;
use crate::domain::account::{self, Account};
use crate::domain::secret::sha256_hex;
use crate::domain::{AccountType, Clock, Domain, Instance};
use crate::metrics::Metrics;
use crate::oauth::{provider_request, ProviderClient};
use crate::store::accounts::{Accounts, Applied};
use crate::store::instances::Instances;
use crate::store::leases::Lease;
use crate::store::newest_grants::{NewestGrants, Standing};
use crate::store::pending_grants::{PendingGrants, PendingRefresh};
use crate::webhooks::{Event, Kind, Webhooks};
use std::sync::Arc;

/// Whether a refresh happens whatever the expiry, or only when the account is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A konnector asked: refresh now, unless the tokens are seconds old.
    Always,
    /// A konnector asked with `force=true`: refresh now, however new the tokens.
    Forced,
    /// The background refresher: refresh only if still due once the lease is held.
    IfDue,
}

/// The account a refresh is about: its instance, id and type, and the key its lock,
/// lease and journal entry go by.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The account's instance.
    pub(crate) inst: &'a Instance,
    /// The account's id.
    pub(crate) id: &'a str,
    /// Its type, resolved to its client.
    pub(crate) at: &'a AccountType,
    /// `<domain>/<id>`.
    pub(crate) key: &'a str,
}

/// The key an account's lock, lease and journal entry go by.
pub(crate) fn account_key(inst: &Instance, id: &str) -> String {
    format!("{}/{id}", inst.domain)
}

/// The refresh under the lease, and the journal of replies not yet written.
pub(crate) struct Renewal {
    accounts: Accounts,
    provider: ProviderClient,
    pending: PendingGrants,
    leasing: Arc<Leasing>,
    plan: RefreshPlan,
    health: Arc<HealthLog>,
    webhooks: Webhooks,
    instances: Instances,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// One lock per account in this process: a journal replay and a refresh of the
    /// same account never run at once.
    locks: KeyedLocks,
    newest: NewestGrants,
    audit: Audit,
}

/// What a [`Renewal`] works with.
pub(crate) struct RenewalParts {
    /// The accounts repository.
    pub(crate) accounts: Accounts,
    /// The provider client.
    pub(crate) provider: ProviderClient,
    /// The local journal of replies not yet in their account.
    pub(crate) pending: PendingGrants,
    /// This process's leases.
    pub(crate) leasing: Arc<Leasing>,
    /// The refresh plan.
    pub(crate) plan: RefreshPlan,
    /// Account health.
    pub(crate) health: Arc<HealthLog>,
    /// Account events.
    pub(crate) webhooks: Webhooks,
    /// The instances repository.
    pub(crate) instances: Instances,
    /// Token endpoint timings.
    pub(crate) metrics: Arc<Metrics>,
    /// The clock.
    pub(crate) clock: Clock,
    /// The newest grant of each account, where only the broker writes.
    pub(crate) newest: NewestGrants,
    /// The audit trail (a grant put back is recorded).
    pub(crate) audit: Audit,
}

impl Renewal {
    /// The renewal over its parts.
    pub(crate) fn new(p: RenewalParts) -> Renewal {
        Renewal {
            accounts: p.accounts,
            provider: p.provider,
            pending: p.pending,
            leasing: p.leasing,
            plan: p.plan,
            health: p.health,
            webhooks: p.webhooks,
            instances: p.instances,
            metrics: p.metrics,
            clock: p.clock,
            locks: KeyedLocks::default(),
            newest: p.newest,
            audit: p.audit,
        }
    }

    /// This process's lock on account `key`.
    pub(crate) fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock_for(key)
    }

    /// The reply journalled for account `key`, if one waits (the refresh token in the
    /// account is then already spent).
    pub(crate) async fn pending(&self, key: &str) -> Result<Option<PendingRefresh>, Error> {
        Ok(self.pending.get(key).await?)
    }

    /// Under the lease, with `current` read under it (`seen` is what the caller read
    /// before waiting for the lease): the provider call and the write.
    pub(crate) async fn renew(
        &self,
        target: &Target<'_>,
        lease: &mut Lease,
        seen: &Account,
        current: Account,
        mode: Mode,
    ) -> Result<Account, Error> {
        let Target { inst, id, at, .. } = *target;
        let key = target.key;
        if current.changed_since(seen) {
            return Ok(current);
        }
        // Another process may have refreshed it after the schedule was read.
        if mode == Mode::IfDue
            && self
                .plan
                .next_due(&current, at)
                .is_some_and(|due| due > self.clock.now().unix_secs())
        {
            return Ok(current);
        }
        let current = if renews_without_refresh_token(at) {
            current
        } else {
            self.newest_back(target, current).await?
        };
        let mut used = None;
        let request = if renews_without_refresh_token(at) {
            provider_request::client_credentials(at)
        } else {
            let refresh_token = self
                .accounts
                .refresh_token(inst, &current)
                .map_err(|error| Error::Sealed {
                    what: "the stored refresh token",
                    error,
                })?
                .ok_or(Error::NotRefreshable(
                    "this account has no refresh token; reconnect it",
                ))?;
            used = Some(sha256_hex(&refresh_token));
            provider_request::refresh(at, &oauth2::RefreshToken::new(refresh_token))
        };
        let request = request.ok_or(Error::NotRefreshable(
            "this account's type has no token endpoint",
        ))?;
        let (answer, took) = self
            .metrics
            .time_provider_took("refresh", self.provider.request_token(&request))
            .await;
        self.health.token_time(key, took);
        let grant = match answer {
            Ok(mut grant) => {
                self.health.settle_expiry(at, &mut grant);
                grant
            }
            Err(e) => {
                tracing::warn!(account_type = at.service_id(), error = %e, "refresh failed at the provider");
                if !e.is_invalid_token() {
                    return Err(Error::Provider(e));
                }
                // Another process may have rotated the token just before us.
                return match self.refreshed_since(inst, id, seen).await? {
                    Some(doc) => Ok(doc),
                    None => Err(Error::RefreshTokenRevoked),
                };
            }
        };
        let Some(used) = used else {
            // Client credentials: nothing was spent, a lost reply costs only a new request.
            let now = self.clock.now().to_datetime();
            return Ok(self
                .accounts
                .update_with(inst, current, |d| {
                    d.apply_refresh(&grant);
                    d.set_refreshed_at(now);
                })
                .await?);
        };
        // The old refresh token may be dead now: the new pair is kept on disk until the
        // account holds it, and the lease is extended over the write.
        let mut members = account::refresh_members(&grant);
        members.insert(
            account::REFRESHED_AT.into(),
            self.clock.now().to_datetime().to_rfc3339().into(),
        );
        let record = PendingRefresh {
            instance: inst.domain.to_string(),
            account_id: id.to_owned(),
            used,
            members,
        };
        if let Err(e) = self.pending.keep(key, &record).await {
            tracing::error!(error = %e, "could not journal a refresh reply; writing it straight to the account");
        }
        // A slow provider may have eaten into the lease: extend it over the write.
        self.leasing.extend_if_half_spent(lease).await;
        let saved = self.replay(inst, id, key, &record, Some(current)).await?;
        tracing::info!(account_type = at.service_id(), "account refreshed");
        // The grant now newest, where no other writer reaches it.
        if let Some(token) = grant.refresh_token.as_deref() {
            if let Err(e) = self
                .newest
                .keep(key, &record.used, token, &record.members)
                .await
            {
                tracing::warn!(error = %e, "could not keep the newest grant aside");
            }
        }
        Ok(saved)
    }

    /// The account with its newest grant: when its refresh token is one a refresh of the
    /// broker replaced (an older copy saved over the account by another writer: Harvest's
    /// conflict merge, a konnector), the newest grant is put back first, counted and
    /// audited, so the refresh does not spend a revoked token and lose the grant.
    async fn newest_back(&self, target: &Target<'_>, current: Account) -> Result<Account, Error> {
        let Target { inst, at, key, .. } = *target;
        let token = self
            .accounts
            .refresh_token(inst, &current)
            .map_err(|error| Error::Sealed {
                what: "the stored refresh token",
                error,
            })?;
        let Some(token) = token else {
            return Ok(current);
        };
        let members = match self.newest.standing(key, &token).await {
            Ok(Standing::Superseded(members)) => members,
            Ok(Standing::Current | Standing::Foreign) => return Ok(current),
            Err(e) => {
                tracing::warn!(error = %e, "the newest grant could not be read; refreshing with the account's");
                return Ok(current);
            }
        };
        tracing::warn!(account_type = at.service_id(), account = %key, "an older copy of the account was saved over its newest grant; putting it back");
        let restored = self
            .accounts
            .update_with(inst, current, |d| d.apply_members(&members))
            .await?;
        self.metrics
            .grants_restored
            .with_label_values(&[at.service_id()])
            .inc();
        self.audit
            .record(&Actor::broker(), "account.grant_restored", key)
            .await;
        Ok(restored)
    }

    /// Writes a journalled refresh into its account, over the refresh token it used only,
    /// and forgets it once the account holds it (or newer tokens); a store failure keeps
    /// it for the next attempt.
    pub(crate) async fn replay(
        &self,
        inst: &Instance,
        id: &str,
        key: &str,
        record: &PendingRefresh,
        known: Option<Account>,
    ) -> Result<Account, Error> {
        let outcome = self
            .accounts
            .apply_if_unchanged(inst, id, &record.used, &record.members, known)
            .await?;
        // The account holds it now: a journal that cannot forget only replays it later,
        // which then finds the token moved on and drops it.
        if let Err(e) = self.pending.forget(key).await {
            tracing::warn!(error = %e, "could not clear a settled refresh from the journal");
        }
        match outcome {
            Applied::Written(doc) => Ok(doc),
            Applied::Superseded(doc) => {
                tracing::warn!(account = %key, "newer tokens were stored meanwhile; this refresh's are dropped");
                Ok(doc)
            }
            Applied::Gone => Err(Error::NotFound("account")),
        }
    }

    /// Writes every journalled refresh whose account the store can take now (after an
    /// outage, after a restart); returns how many were settled.
    pub(crate) async fn settle_pending(&self) -> usize {
        let keys = match self.pending.keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pending refresh journal");
                return 0;
            }
        };
        let mut settled = 0;
        for key in keys {
            let Ok(Some(record)) = self.pending.get(&key).await else {
                continue;
            };
            let Ok(domain) = Domain::parse(&record.instance) else {
                let _ = self.pending.forget(&key).await;
                continue;
            };
            let id = record.account_id.as_str();
            let inst = match self.instances.get(&domain).await {
                Ok(Some(inst)) => inst,
                Ok(None) => {
                    let _ = self.pending.forget(&key).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pending refresh waits for the store");
                    continue;
                }
            };
            // Under the account's lock: a konnector's refresh of it waits for this.
            let lock = self.locks.lock_for(&key);
            let _one = lock.lock().await;
            match self.replay(&inst, id, &key, &record, None).await {
                Ok(_) | Err(Error::NotFound(_)) => settled += 1,
                Err(e) => tracing::warn!(error = %e, "pending refresh waits for the store"),
            }
        }
        settled
    }

    /// Permanent failure: the user must reconnect; no refresh is planned until then.
    pub(crate) async fn give_up_until_reconnected(
        &self,
        inst: &Instance,
        id: &str,
        service_id: &str,
    ) {
        self.wait_for_user(inst, id, service_id).await;
        self.plan.forget(inst, id).await;
    }

    /// Tells the app and marks the account: its refresh token was refused.
    pub(crate) async fn wait_for_user(&self, inst: &Instance, id: &str, service_id: &str) {
        self.webhooks
            .emit(Event {
                kind: Kind::RefreshFailed,
                instance: inst.domain.to_string(),
                account_id: id.to_owned(),
                account_type: service_id.to_owned(),
                error: Some("invalid_grant".into()),
                at: self.clock.now(),
            })
            .await;
        if let Ok(Some(doc)) = self.accounts.get(inst, id).await {
            let now = self.clock.now().to_datetime();
            let marked = self
                .accounts
                .update_with(inst, doc, |d| d.mark_reconnect_needed("invalid_grant", now))
                .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "could not mark the account as needing reconnection");
            }
        }
    }

    /// The account, if another caller stored new tokens since `seen` was read.
    pub(crate) async fn refreshed_since(
        &self,
        inst: &Instance,
        id: &str,
        seen: &Account,
    ) -> Result<Option<Account>, Error> {
        let now = self
            .accounts
            .get(inst, id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        Ok(now.changed_since(seen).then_some(now))
    }
}
