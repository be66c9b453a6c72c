//! [`Refreshes`]: a refresh a konnector asks for (`POST /accounts/{type}/{id}/refresh`).
//! The work under the lease is [`Renewal`]'s, shared with the background refresher.
//! Concurrent callers make
//! one provider call: callers in this process share one flight (one lease attempt, one
//! provider call, one answer), processes compete for a lease in the store, and a process
//! that waits for another's lease looks again with backoff until the winner's tokens are
//! stored. A refresh asked within `refresh.fresh_window_secs` of the last one answers the
//! tokens it stored without calling the provider, unless `force=true`.

use super::account_health::HealthLog;
use super::callers::{InstanceAccess, Scope, Verb};
use super::clients::Clients;
use super::leasing::Leasing;
use super::refresh_plan::{renews_without_refresh_token, RefreshPlan};
pub(crate) use super::renewal::Mode;
use super::renewal::{account_key, Renewal, Target};
use super::single_flight::{Flights, Role};
use super::Error;
use crate::domain::account::Account;
use crate::domain::{AccountType, Clock, Instance};
use crate::store::accounts::Accounts;
use crate::store::leases::Lease;
use std::sync::Arc;
use std::time::Duration;

/// The first pause of a process waiting for another's lease; it doubles up to
/// [`LEASE_POLL_MAX`], so a wait costs a few store reads, not twenty a second.
const LEASE_POLL_FIRST: Duration = Duration::from_millis(25);
/// The longest pause between two looks at another process's lease.
const LEASE_POLL_MAX: Duration = Duration::from_millis(250);

/// The refresh a konnector asks for.
pub(crate) struct Refreshes {
    renewal: Arc<Renewal>,
    accounts: Accounts,
    clients: Arc<Clients>,
    leasing: Arc<Leasing>,
    plan: RefreshPlan,
    health: Arc<HealthLog>,
    clock: Clock,
    /// A refresh asked this soon after the last one answers its tokens (zero: never).
    fresh_window: Duration,
    /// Refreshes in flight in this process, by account and mode.
    flights: Flights<Result<Account, Arc<Error>>>,
}

/// What [`Refreshes`] works with.
pub(crate) struct RefreshesParts {
    /// The work under the lease.
    pub(crate) renewal: Arc<Renewal>,
    /// The accounts repository.
    pub(crate) accounts: Accounts,
    /// Clients of account types.
    pub(crate) clients: Arc<Clients>,
    /// This process's leases.
    pub(crate) leasing: Arc<Leasing>,
    /// The refresh plan.
    pub(crate) plan: RefreshPlan,
    /// Account health.
    pub(crate) health: Arc<HealthLog>,
    /// The clock.
    pub(crate) clock: Clock,
    /// `refresh.fresh_window_secs`.
    pub(crate) fresh_window: Duration,
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
    /// The use case over its parts.
    pub(crate) fn new(p: RefreshesParts) -> Refreshes {
        Refreshes {
            renewal: p.renewal,
            accounts: p.accounts,
            clients: p.clients,
            leasing: p.leasing,
            plan: p.plan,
            health: p.health,
            clock: p.clock,
            fresh_window: p.fresh_window,
            flights: Flights::default(),
        }
    }

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
        let (attempt, outcome) = self.refresh_unlabelled(inst, scope, id, mode).await;
        let account_type = attempt.account_type.as_deref().unwrap_or("-");
        self.health.count(outcome.as_ref().err(), account_type);
        if attempt.kept_fresh && attempt.led {
            let record = self.health.outcome_record(
                inst.domain.as_str(),
                id,
                account_type,
                outcome.as_ref().map(|_| ()),
            );
            self.health.note(record.into_iter().collect()).await;
        }
        outcome
    }

    /// The refresh, and what it learnt of the account on the way, for the metrics and
    /// the health record (read once, whatever the outcome).
    async fn refresh_unlabelled(
        &self,
        inst: &Instance,
        scope: &Scope,
        id: &str,
        mode: Mode,
    ) -> (Attempt, Result<Account, Error>) {
        let mut attempt = Attempt::default();
        let seen = match self.accounts.get(inst, id).await {
            Ok(Some(seen)) => seen,
            Ok(None) => return (attempt, Err(Error::NotFound("account"))),
            Err(e) => return (attempt, Err(e.into())),
        };
        if let Err(e) = scope.check_account(Verb::Get, &seen) {
            return (attempt, Err(e));
        }
        if !seen.has_oauth() {
            let none = Error::NotRefreshable("this account has no OAuth tokens");
            return (attempt, Err(none));
        }
        let at = match self
            .clients
            .for_account(inst.context.as_deref(), &seen)
            .await
        {
            Ok(at) => at,
            Err(e) => return (attempt, Err(e)),
        };
        // A label only once the broker knows the type: the account's own `account_type`
        // is the tenant's to write, and every new one would be a new metric series.
        attempt.account_type = Some(at.service_id().to_owned());
        if at.token_endpoint.is_none() {
            return (
                attempt,
                self.hand_client_to_konnector(inst, seen, &at).await,
            );
        }
        // Nothing to refresh with (a provider that issues no refresh token): the account
        // as it is, as cozy-stack answers, so a konnector that refreshes on every run
        // (toutatice) goes on with its access token. Nothing is written.
        if seen.refresh_token().is_none() && !renews_without_refresh_token(&at) {
            return (attempt, Ok(seen));
        }
        attempt.kept_fresh = true;

        if mode == Mode::Always && self.just_refreshed(&seen) {
            return (attempt, Ok(seen));
        }
        let key = account_key(inst, id);
        let target = Target {
            inst,
            id,
            at: &at,
            key: &key,
        };
        let flight_key = format!("{key} {mode:?}");
        loop {
            match self.flights.join(&flight_key) {
                Role::Follow(mut leader) => match Role::outcome(&mut leader).await {
                    Some(outcome) => return (attempt, outcome.map_err(Error::Joined)),
                    // The leader was cancelled: join again (and perhaps lead).
                    None => continue,
                },
                Role::Lead(flight) => {
                    attempt.led = true;
                    let outcome = self
                        .refresh_leading(&target, &seen, mode)
                        .await
                        .map_err(Arc::new);
                    flight.land(outcome.clone());
                    return (attempt, outcome.map_err(Error::Joined));
                }
            }
        }
    }

    /// Whether `doc`'s tokens are so new (refreshed within the fresh window, and the access
    /// token outlives the window) that a refresh now would only repeat the last one.
    fn just_refreshed(&self, doc: &Account) -> bool {
        let Ok(window) = chrono::Duration::from_std(self.fresh_window) else {
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
        target: &Target<'_>,
        seen: &Account,
        mode: Mode,
    ) -> Result<Account, Error> {
        let Target { inst, id, at, key } = *target;
        let local = self.renewal.lock_for(key);
        let _queued = local.lock().await;
        let mut lease = match self.take_lease(target, seen).await? {
            Taken::Lease(lease) => lease,
            Taken::RefreshedMeanwhile(doc) => return Ok(doc),
        };
        let outcome = self
            .refresh_with_lease(target, &mut lease, seen, mode)
            .await;
        self.leasing.release(lease).await;
        match &outcome {
            Ok(doc) => self.plan.plan(inst, id, doc, at, None).await,
            Err(Error::RefreshTokenRevoked) => {
                self.renewal
                    .give_up_until_reconnected(inst, id, at.service_id())
                    .await
            }
            Err(_) => {}
        }
        outcome
    }

    /// Waits for the account's lease, unless someone refreshes the account meanwhile.
    async fn take_lease(&self, target: &Target<'_>, seen: &Account) -> Result<Taken, Error> {
        let ttl = self.leasing.ttl();
        let give_up = tokio::time::Instant::now() + ttl + ttl / 2;
        let mut pause = LEASE_POLL_FIRST;
        loop {
            if let Some(lease) = self.leasing.try_acquire(target.key).await? {
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
                if let Some(doc) = self
                    .renewal
                    .refreshed_since(target.inst, target.id, seen)
                    .await?
                {
                    return Ok(Taken::RefreshedMeanwhile(doc));
                }
                if !self.leasing.held(target.key).await? {
                    break;
                }
            }
        }
    }

    /// The provider call and the write, under the lease.
    async fn refresh_with_lease(
        &self,
        target: &Target<'_>,
        lease: &mut Lease,
        seen: &Account,
        mode: Mode,
    ) -> Result<Account, Error> {
        let Target { inst, id, key, .. } = *target;
        // Tokens a provider issued earlier and the store did not take yet go in first: the
        // refresh token in the account is already spent.
        if let Some(record) = self.renewal.pending(key).await? {
            return self.renewal.replay(inst, id, key, &record, None).await;
        }
        // Re-read under the lease: the refresh token to use is the stored one now.
        let current = self
            .accounts
            .get(inst, id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        self.renewal.renew(target, lease, seen, current, mode).await
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

/// `pause` give or take a quarter, so that waiting processes do not look in step.
fn jittered(pause: Duration) -> Duration {
    use rand::Rng;
    pause.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}
