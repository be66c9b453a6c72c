//! Refreshing an account's tokens: the one path the refresh route and the background
//! refresher take, and the refresh plan of every account written. Concurrent callers make
//! one provider call: callers in this process share one flight (one lease attempt, one
//! provider call, one answer), processes compete for a lease in the store, and a process
//! that waits for another's lease looks again with backoff until the winner's tokens are
//! stored. A refresh asked within `refresh.fresh_window_secs` of the last one answers the
//! tokens it stored without calling the provider, unless `force=true`.

use super::callers::{InstanceAccess, Scope, Verb};
use super::clients::Clients;
use super::keyed_locks::KeyedLocks;
use super::single_flight::{Flights, Role};
use super::Error;
use crate::domain::account::{self, Account};
use crate::domain::health::AccountHealth;
use crate::domain::secret::sha256_hex;
use crate::domain::{AccountType, Classified, Clock, Domain, GrantMode, Instance};
use crate::metrics::Metrics;
use crate::oauth::{provider_request, ProviderClient};
use crate::store::accounts::Accounts;
use crate::store::accounts::Applied;
use crate::store::health::HealthRecords;
use crate::store::instances::Instances;
use crate::store::leases::{Lease, Leases};
use crate::store::pending_grants::{PendingGrants, PendingRefresh};
use crate::store::schedule::Schedule;
use crate::webhooks::{Event, Kind, Webhooks};
use std::sync::Arc;
use std::time::Duration;

/// The first pause of a process waiting for another's lease; it doubles up to
/// [`LEASE_POLL_MAX`], so a wait costs a few store reads, not twenty a second.
const LEASE_POLL_FIRST: Duration = Duration::from_millis(25);
/// The longest pause between two looks at another process's lease.
const LEASE_POLL_MAX: Duration = Duration::from_millis(250);

/// When accounts are refreshed, and how long a refresh may hold an account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshPolicy {
    /// Default time before expiry at which a token is refreshed.
    pub(crate) margin: Duration,
    /// Default longest time between refreshes.
    pub(crate) idle: Duration,
    /// How long a lease lasts: longer than any provider call can take.
    pub(crate) lease_ttl: Duration,
    /// A refresh asked this soon after the last one answers its tokens (zero: never).
    pub(crate) fresh_window: Duration,
}

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

/// The refresh use case and the refresh plan.
pub(crate) struct Refreshes {
    pub(crate) accounts: Accounts,
    pub(crate) clients: Arc<Clients>,
    pub(crate) leases: Leases,
    pub(crate) schedule: Schedule,
    pub(crate) instances: Instances,
    pub(crate) provider: ProviderClient,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) webhooks: Webhooks,
    pub(crate) clock: Clock,
    pub(crate) policy: RefreshPolicy,
    /// This process's name as a lease owner.
    pub(crate) process_id: String,
    pub(crate) locks: KeyedLocks,
    /// Refreshes in flight in this process, by account and mode.
    pub(crate) flights: Flights<Result<Account, Arc<Error>>>,
    /// Tokens a provider issued that are not yet in their account.
    pub(crate) pending: PendingGrants,
    /// Each account's refresh health.
    pub(crate) health: HealthRecords,
    /// Token lifetimes and endpoint times seen, for expiry inference and health.
    pub(crate) observed: super::health::Observed,
}

/// What an on-demand refresh learnt of the account before it ended.
#[derive(Default)]
struct Attempt {
    /// Its type (service id), once the account was read and the caller let in.
    account_type: Option<String>,
    /// Whether its type refreshes at a token endpoint (the broker keeps it fresh).
    kept_fresh: bool,
    /// Whether this caller made the refresh (led this process's flight), rather than
    /// share another caller's: only the one who made it records its health.
    led: bool,
}

enum Taken {
    Lease(Lease),
    RefreshedMeanwhile(Account),
}

impl Refreshes {
    /// Refreshes account `id` for a konnector, within its token's limits; `force` even
    /// when its tokens were refreshed a moment ago.
    pub(crate) async fn refresh_as(
        &self,
        access: &InstanceAccess,
        id: &str,
        force: bool,
    ) -> Result<Account, Error> {
        let mode = if force { Mode::Forced } else { Mode::Always };
        self.refresh_in(&access.instance, &access.scope, id, mode)
            .await
    }

    async fn refresh_in(
        &self,
        inst: &Instance,
        scope: &Scope,
        id: &str,
        mode: Mode,
    ) -> Result<Account, Error> {
        let mut attempt = Attempt::default();
        let outcome = self
            .refresh_unlabelled(inst, scope, id, mode, &mut attempt)
            .await;
        let account_type = attempt.account_type.as_deref().unwrap_or("-");
        self.count(outcome.as_ref().err(), account_type);
        if attempt.kept_fresh && attempt.led {
            let record = self.health_record(
                inst.domain.as_str(),
                id,
                account_type,
                outcome.as_ref().map(|_| ()),
            );
            self.note_health(record.into_iter().collect()).await;
        }
        outcome
    }

    /// Counts a refresh by outcome (`ok`, or the failure's kind) and account type.
    pub(super) fn count(&self, failure: Option<&Error>, account_type: &str) {
        let label = failure.map_or("ok", |e| e.kind().as_str());
        self.metrics
            .refreshes
            .with_label_values(&[label, account_type])
            .inc();
    }

    /// The refresh; `attempt` says what it learnt of the account on the way, for the
    /// metrics and the health record (read once, whatever the outcome).
    async fn refresh_unlabelled(
        &self,
        inst: &Instance,
        scope: &Scope,
        id: &str,
        mode: Mode,
        attempt: &mut Attempt,
    ) -> Result<Account, Error> {
        let seen = self
            .accounts
            .get(inst, id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        scope.check_account(Verb::Get, &seen)?;
        attempt.account_type = Some(seen.service().to_owned());
        if !seen.has_oauth() {
            return Err(Error::NotRefreshable("this account has no OAuth tokens"));
        }
        let at = self
            .clients
            .for_account(inst.context.as_deref(), &seen)
            .await?;
        if at.token_endpoint.is_none() {
            return self.hand_client_to_konnector(inst, seen, &at).await;
        }
        attempt.kept_fresh = true;

        if mode == Mode::Always && self.just_refreshed(&seen) {
            return Ok(seen);
        }
        let key = format!("{}/{id}", inst.domain);
        let flight_key = format!("{key} {mode:?}");
        loop {
            match self.flights.join(&flight_key) {
                Role::Follow(mut leader) => match Role::outcome(&mut leader).await {
                    Some(outcome) => return outcome.map_err(Error::Joined),
                    // The leader was cancelled: join again (and perhaps lead).
                    None => continue,
                },
                Role::Lead(flight) => {
                    attempt.led = true;
                    let outcome = self
                        .refresh_leading(inst, id, &key, &seen, &at, mode)
                        .await
                        .map_err(Arc::new);
                    flight.land(outcome.clone());
                    return outcome.map_err(Error::Joined);
                }
            }
        }
    }

    /// Whether `doc`'s tokens are so new (refreshed within the fresh window, and the access
    /// token outlives the window) that a refresh now would only repeat the last one.
    fn just_refreshed(&self, doc: &Account) -> bool {
        let window = self.policy.fresh_window;
        let Ok(window) = chrono::Duration::from_std(window) else {
            return false;
        };
        let Some(refreshed) = doc.refreshed_at() else {
            return false;
        };
        let now = self.clock.now().to_datetime();
        // A time ahead of this clock is not trusted.
        let age = now - refreshed;
        if window.is_zero() || age < chrono::Duration::zero() || age > window {
            return false;
        }
        doc.expires_at().is_none_or(|expiry| expiry - now > window)
    }

    /// This process's one refresh of the account, for every caller waiting on it: under
    /// the account's lock and the store's lease.
    async fn refresh_leading(
        &self,
        inst: &Instance,
        id: &str,
        key: &str,
        seen: &Account,
        at: &AccountType,
        mode: Mode,
    ) -> Result<Account, Error> {
        let local = self.locks.lock_for(key);
        let _queued = local.lock().await;
        let mut lease = match self.take_lease(inst, id, key, seen).await? {
            Taken::Lease(lease) => lease,
            Taken::RefreshedMeanwhile(doc) => return Ok(doc),
        };
        let outcome = self
            .refresh_with_lease(inst, id, key, &mut lease, seen, at, mode)
            .await;
        self.leases.release(lease).await;
        match &outcome {
            Ok(doc) => self.plan(inst, id, doc, at, None).await,
            Err(Error::RefreshTokenRevoked) => {
                self.give_up_until_reconnected(inst, id, at.service_id())
                    .await
            }
            Err(_) => {}
        }
        outcome
    }

    /// Permanent failure: the user must reconnect; no refresh is planned until then.
    async fn give_up_until_reconnected(&self, inst: &Instance, id: &str, service_id: &str) {
        self.wait_for_user(inst, id, service_id).await;
        if let Err(e) = self.schedule.clear(&inst.domain, id).await {
            tracing::warn!(error = %e, "could not clear the refresh schedule");
        }
    }

    /// Tells the app and marks the account: its refresh token was refused.
    pub(super) async fn wait_for_user(&self, inst: &Instance, id: &str, service_id: &str) {
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

    /// The refresh margin and idle period of a type, in seconds.
    fn timing(&self, at: &AccountType) -> (i64, i64) {
        let margin = at
            .refresh_margin_secs
            .map_or(self.policy.margin.as_secs() as i64, |s| s as i64);
        let every = at
            .refresh_every_secs
            .map_or(self.policy.idle.as_secs() as i64, |s| s as i64);
        (margin, every)
    }

    /// When `doc` is next due, by the type's timing; `None` when it cannot be refreshed.
    pub(super) fn next_due(&self, doc: &Account, at: &AccountType) -> Option<i64> {
        let (margin, every) = self.timing(at);
        at.token_endpoint.as_ref().and_then(|_| {
            doc.next_refresh(
                margin,
                every,
                self.clock.now().unix_secs(),
                renews_without_refresh_token(at),
            )
        })
    }

    /// Plans the next refresh of an account just written, or forgets it when it has
    /// nothing to refresh with; `first` is a new account's first health record, written
    /// beside its first plan. A failure is logged: the account itself is safe.
    pub(crate) async fn plan(
        &self,
        inst: &Instance,
        id: &str,
        doc: &Account,
        at: &AccountType,
        first: Option<&AccountHealth>,
    ) {
        if let Err(e) = self.try_plan(inst, id, doc, at, first).await {
            tracing::warn!(error = %e, "could not plan the next refresh");
        }
    }

    /// [`Refreshes::plan`], telling whether the plan was written.
    pub(crate) async fn try_plan(
        &self,
        inst: &Instance,
        id: &str,
        doc: &Account,
        at: &AccountType,
        first: Option<&AccountHealth>,
    ) -> Result<(), crate::store::StoreError> {
        match self.next_due(doc, at) {
            Some(due_at) => self.schedule.set(&inst.domain, id, due_at, 0, first).await,
            // A new account has no plan to forget, and no health to follow.
            None if first.is_some() => Ok(()),
            None => self.schedule.clear(&inst.domain, id).await,
        }
    }

    /// Waits for the account's lease, unless someone refreshes the account meanwhile.
    async fn take_lease(
        &self,
        inst: &Instance,
        id: &str,
        key: &str,
        seen: &Account,
    ) -> Result<Taken, Error> {
        let ttl = self.policy.lease_ttl;
        let give_up = tokio::time::Instant::now() + ttl + ttl / 2;
        let mut pause = LEASE_POLL_FIRST;
        loop {
            if let Some(lease) = self
                .leases
                .try_acquire(key, &self.process_id, self.clock.now(), ttl)
                .await?
            {
                return Ok(Taken::Lease(lease));
            }
            // Held elsewhere: look at the account (a read) until its holder stores the new
            // tokens, and at the lease only once it could have expired or been released.
            loop {
                if tokio::time::Instant::now() >= give_up {
                    return Err(Error::Busy);
                }
                tokio::time::sleep(jittered(pause)).await;
                pause = (pause * 2).min(LEASE_POLL_MAX);
                if let Some(doc) = self.refreshed_since(inst, id, seen).await? {
                    return Ok(Taken::RefreshedMeanwhile(doc));
                }
                if !self.leases.held(key, self.clock.now()).await? {
                    break;
                }
            }
        }
    }

    /// The account, if another caller stored new tokens since `seen` was read.
    async fn refreshed_since(
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

    /// The provider call and the write, under the lease.
    #[allow(clippy::too_many_arguments)]
    async fn refresh_with_lease(
        &self,
        inst: &Instance,
        id: &str,
        key: &str,
        lease: &mut Lease,
        seen: &Account,
        at: &AccountType,
        mode: Mode,
    ) -> Result<Account, Error> {
        // Tokens a provider issued earlier and the store did not take yet go in first: the
        // refresh token in the account is already spent.
        if let Some(record) = self.pending.get(key).await? {
            return self.replay(inst, id, key, &record, None).await;
        }
        // Re-read under the lease: the refresh token to use is the stored one now.
        let current = self
            .accounts
            .get(inst, id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        self.refresh_current(inst, id, key, lease, seen, current, at, mode)
            .await
    }

    /// Under the lease, with `current` read under it (`seen` is what the caller read
    /// before waiting for the lease): the provider call and the write.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn refresh_current(
        &self,
        inst: &Instance,
        id: &str,
        key: &str,
        lease: &mut Lease,
        seen: &Account,
        current: Account,
        at: &AccountType,
        mode: Mode,
    ) -> Result<Account, Error> {
        if current.changed_since(seen) {
            return Ok(current);
        }
        // Another process may have refreshed it after the schedule was read.
        if mode == Mode::IfDue
            && self
                .next_due(&current, at)
                .is_some_and(|due| due > self.clock.now().unix_secs())
        {
            return Ok(current);
        }
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
        self.observed.token_time(key, took);
        let grant = match answer {
            Ok(mut grant) => {
                self.settle_expiry(at, &mut grant);
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
        // A slow provider may have eaten into the lease: extend it over the write (the
        // write is safe without it, being made only over the token used).
        let (now, ttl) = (self.clock.now(), self.policy.lease_ttl);
        if lease.half_spent(now, ttl) {
            let renewed = self.leases.renew(lease, &self.process_id, now, ttl).await;
            if !matches!(renewed, Ok(true)) {
                tracing::warn!(
                    "refresh lease lost before the write; writing only over the token used"
                );
            }
        }
        let saved = self.replay(inst, id, key, &record, Some(current)).await?;
        tracing::info!(account_type = at.service_id(), "account refreshed");
        Ok(saved)
    }

    /// Writes a journalled refresh into its account, over the refresh token it used only,
    /// and forgets it once the account holds it (or newer tokens); a store failure keeps
    /// it for the next attempt.
    pub(super) async fn replay(
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

    /// For types without token endpoint the konnector refreshes by itself: hand it the
    /// client, as cozy-stack does.
    async fn hand_client_to_konnector(
        &self,
        inst: &Instance,
        doc: Account,
        at: &AccountType,
    ) -> Result<Account, Error> {
        let client_id = at.client_id.as_ref().map(|c| c.as_str().to_owned());
        let client_secret = at.client_secret.as_ref().map(|c| c.secret().clone());
        Ok(self
            .accounts
            .update_with(inst, doc, |d| {
                d.hand_client(client_id.as_deref(), client_secret.as_deref())
            })
            .await?)
    }
}

/// Client credentials accounts get new tokens from the type's own credentials.
fn renews_without_refresh_token(at: &AccountType) -> bool {
    at.grant_mode == Some(GrantMode::ClientCredentials)
}

/// `pause` give or take a quarter, so that waiting processes do not look in step.
fn jittered(pause: Duration) -> Duration {
    use rand::Rng;
    pause.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}
