//! Refreshing an account's tokens: the one path the refresh route and the background
//! refresher take. Concurrent callers make one provider call: callers in
//! this process queue on a local lock, processes compete for a lease in the store, and
//! everyone who waited re-reads the account and returns the tokens the winner stored.

use crate::broker::{now, Broker};
use crate::domain::account;
use crate::domain::account_type::{service_id_of, AccountType};
use crate::domain::sealed::SealError;
use crate::domain::{GrantMode, Instance};
use crate::oauth::{token_request, ProviderError};
use crate::store::account_types::LookupError;
use crate::store::leases::Lease;
use crate::store::StoreError;
use crate::webhooks::{Event, Kind};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub mod background;
pub mod revoke;

/// How often a caller waiting for another process's lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Why an account was not refreshed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such account in the instance.
    #[error("account not found")]
    AccountNotFound,
    /// The account cannot be refreshed by the broker; the reason says why.
    #[error("{0}")]
    NotRefreshable(&'static str),
    /// The account's type is unknown or misconfigured.
    #[error(transparent)]
    AccountType(#[from] LookupError),
    /// The provider says the refresh token is dead: the user must reconnect.
    #[error("the refresh token is invalid or expired")]
    InvalidToken,
    /// The provider failed otherwise.
    #[error(transparent)]
    Provider(ProviderError),
    /// The stored refresh token cannot be opened with the configured keys.
    #[error("the stored refresh token cannot be opened: {0}")]
    Sealed(SealError),
    /// Another process holds the account's lease for longer than a refresh can take.
    #[error("another broker process is refreshing this account; try again")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account's client (provider, registration) cannot be had.
    #[error(transparent)]
    Client(#[from] crate::broker::ClientError),
}

/// One async lock per account being refreshed in this process.
#[derive(Default)]
pub struct LocalLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl LocalLocks {
    /// The lock of `key`, shared by every holder while one exists.
    pub fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().expect("lock map");
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// Whether a refresh happens whatever the expiry, or only when the account is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A konnector asked: refresh now.
    Always,
    /// The background refresher: refresh only if still due once the lease is held.
    IfDue,
}

/// Refreshes account `id` of `inst` and returns the saved document.
pub async fn refresh_account(
    broker: &Broker,
    inst: &Instance,
    id: &str,
) -> Result<Value, RefreshError> {
    refresh(broker, inst, id, Mode::Always).await
}

/// Refreshes an account in `mode`; see [`refresh_account`].
pub async fn refresh(
    broker: &Broker,
    inst: &Instance,
    id: &str,
    mode: Mode,
) -> Result<Value, RefreshError> {
    let seen = broker
        .accounts
        .get(inst, id)
        .await?
        .ok_or(RefreshError::AccountNotFound)?;
    if !seen.get("oauth").is_some_and(Value::is_object) {
        return Err(RefreshError::NotRefreshable(
            "this account has no OAuth tokens",
        ));
    }
    let type_id = seen
        .get("account_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let at = broker
        .account_types
        .lookup(service_id_of(type_id), inst.context.as_deref())
        .await?;
    let provider = account::provider_url_of(&seen);
    let at = broker.client_type(&at, provider.as_ref()).await?;
    if at.token_endpoint.is_none() {
        return hand_client_to_konnector(broker, inst, seen, &at).await;
    }

    let key = format!("{}/{id}", inst.domain);
    let local = broker.refresh_locks.lock_for(&key);
    let _queued = local.lock().await;
    let lease = match take_lease(broker, inst, id, &key, &seen).await? {
        Taken::Lease(lease) => lease,
        Taken::RefreshedMeanwhile(doc) => return Ok(doc),
    };
    let outcome = refresh_with_lease(broker, inst, id, &seen, &at, mode).await;
    broker.leases.release(lease).await;
    let label = match &outcome {
        Ok(_) => "ok",
        Err(RefreshError::InvalidToken) => "invalid_grant",
        Err(RefreshError::Provider(_)) => "provider_error",
        Err(RefreshError::Busy) => "busy",
        Err(RefreshError::Store(_)) => "store_error",
        Err(_) => "not_refreshable",
    };
    broker.metrics.refreshes.with_label_values(&[label]).inc();
    match &outcome {
        Ok(doc) => reschedule(broker, inst, id, doc, &at, false).await,
        Err(RefreshError::InvalidToken) => {
            give_up_until_reconnected(broker, inst, id, at.service_id()).await
        }
        Err(_) => {}
    }
    outcome
}

/// Permanent failure: the user must reconnect; no refresh is planned until then.
async fn give_up_until_reconnected(broker: &Broker, inst: &Instance, id: &str, service_id: &str) {
    broker.webhooks.emit(Event {
        kind: Kind::RefreshFailed,
        instance: inst.domain.to_string(),
        account_id: id.to_owned(),
        account_type: service_id.to_owned(),
        error: Some("invalid_grant".into()),
    });
    if let Ok(Some(doc)) = broker.accounts.get(inst, id).await {
        let now = chrono::Utc::now();
        let marked = broker
            .accounts
            .update_with(inst, doc, |d| {
                account::mark_reconnect_needed(d, "invalid_grant", now)
            })
            .await;
        if let Err(e) = marked {
            tracing::warn!(error = %e, "could not mark the account as needing reconnection");
        }
    }
    if let Err(e) = broker.schedule.clear(&inst.domain, id).await {
        tracing::warn!(error = %e, "could not clear the refresh schedule");
    }
}

/// Client credentials accounts get new tokens from the type's own credentials.
fn renews_without_refresh_token(at: &AccountType) -> bool {
    at.grant_mode == Some(GrantMode::ClientCredentials)
}

/// The refresh margin and idle period of a type, in seconds.
fn timing(broker: &Broker, at: &AccountType) -> (i64, i64) {
    let margin = at
        .refresh_margin_secs
        .map_or(broker.refresh_margin_secs, |s| s as i64);
    let every = at
        .refresh_every_secs
        .map_or(broker.refresh_idle_secs, |s| s as i64);
    (margin, every)
}

/// Plans the next refresh of an account just written (`new` when just created), or
/// forgets it when it has nothing to refresh with. A failure is logged: the account itself
/// is safe.
pub async fn reschedule(
    broker: &Broker,
    inst: &Instance,
    id: &str,
    doc: &Value,
    at: &AccountType,
    new: bool,
) {
    let (margin, every) = timing(broker, at);
    let due = at.token_endpoint.as_ref().and_then(|_| {
        account::next_refresh(doc, margin, every, now(), renews_without_refresh_token(at))
    });
    let result = match due {
        Some(due_at) => broker.schedule.set(&inst.domain, id, due_at, 0, new).await,
        // A new account has no plan to forget.
        None if new => Ok(()),
        None => broker.schedule.clear(&inst.domain, id).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not plan the next refresh");
    }
}

enum Taken {
    Lease(Lease),
    RefreshedMeanwhile(Value),
}

/// Waits for the account's lease, unless someone refreshes the account meanwhile.
async fn take_lease(
    broker: &Broker,
    inst: &Instance,
    id: &str,
    key: &str,
    seen: &Value,
) -> Result<Taken, RefreshError> {
    let ttl_ms = broker.lease_ttl.as_millis() as i64;
    let give_up = tokio::time::Instant::now() + broker.lease_ttl + broker.lease_ttl / 2;
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(lease) = broker
            .leases
            .try_acquire(key, &broker.process_id, now_ms, ttl_ms)
            .await?
        {
            return Ok(Taken::Lease(lease));
        }
        // Held elsewhere: its holder may finish the refresh for us.
        if let Some(doc) = refreshed_since(broker, inst, id, seen).await? {
            return Ok(Taken::RefreshedMeanwhile(doc));
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(RefreshError::Busy);
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// The account, if another caller stored new tokens since `seen` was read.
async fn refreshed_since(
    broker: &Broker,
    inst: &Instance,
    id: &str,
    seen: &Value,
) -> Result<Option<Value>, RefreshError> {
    let now = broker
        .accounts
        .get(inst, id)
        .await?
        .ok_or(RefreshError::AccountNotFound)?;
    Ok(changed_since(&now, seen).then_some(now))
}

/// Whether `now` holds tokens stored after `seen` was read.
fn changed_since(now: &Value, seen: &Value) -> bool {
    let token = |d: &Value| d.pointer("/oauth/access_token").cloned();
    now.get("_rev") != seen.get("_rev") && token(now) != token(seen)
}

/// The provider call and the write, under the lease.
async fn refresh_with_lease(
    broker: &Broker,
    inst: &Instance,
    id: &str,
    seen: &Value,
    at: &AccountType,
    mode: Mode,
) -> Result<Value, RefreshError> {
    // Re-read under the lease: the refresh token to use is the stored one now.
    let current = broker
        .accounts
        .get(inst, id)
        .await?
        .ok_or(RefreshError::AccountNotFound)?;
    if changed_since(&current, seen) {
        return Ok(current);
    }
    if mode == Mode::IfDue {
        // Another process may have refreshed it after the schedule was read.
        let (margin, every) = timing(broker, at);
        let renewable = renews_without_refresh_token(at);
        if account::next_refresh(&current, margin, every, now(), renewable)
            .is_some_and(|due| due > now())
        {
            return Ok(current);
        }
    }
    let request = if renews_without_refresh_token(at) {
        token_request::client_credentials(at)
    } else {
        let refresh_token = broker
            .accounts
            .refresh_token(&current)
            .map_err(RefreshError::Sealed)?
            .map(oauth2::RefreshToken::new)
            .ok_or(RefreshError::NotRefreshable(
                "this account has no refresh token; reconnect it",
            ))?;
        token_request::refresh(at, &refresh_token)
    }
    .expect("token endpoint checked by the caller");
    let grant = match broker
        .metrics
        .time_provider("refresh", broker.provider.request_token(&request))
        .await
    {
        Ok(grant) => grant,
        Err(e) => {
            tracing::warn!(account_type = at.service_id(), error = %e, "refresh failed at the provider");
            if !e.is_invalid_token() {
                return Err(RefreshError::Provider(e));
            }
            // Another process may have rotated the token just before us.
            return match refreshed_since(broker, inst, id, seen).await? {
                Some(doc) => Ok(doc),
                None => Err(RefreshError::InvalidToken),
            };
        }
    };
    // Stored before anyone is answered: a rotated refresh token must not be lost.
    let saved = broker
        .accounts
        .update_with(inst, current, |d| account::apply_refresh(d, &grant))
        .await?;
    tracing::info!(account_type = at.service_id(), "account refreshed");
    Ok(saved)
}

/// For types without token endpoint the konnector refreshes by itself: hand it the
/// client, as cozy-stack does.
async fn hand_client_to_konnector(
    broker: &Broker,
    inst: &Instance,
    doc: Value,
    at: &AccountType,
) -> Result<Value, RefreshError> {
    let client_id = at.client_id.as_ref().map(|c| c.as_str().to_owned());
    let client_secret = at.client_secret.as_ref().map(|c| c.secret().clone());
    Ok(broker
        .accounts
        .update_with(inst, doc, |d| {
            if let Some(oauth) = d.get_mut("oauth").and_then(Value::as_object_mut) {
                if let Some(id) = &client_id {
                    oauth.insert("client_id".into(), id.clone().into());
                }
                if let Some(secret) = &client_secret {
                    oauth.insert("client_secret".into(), secret.clone().into());
                }
            }
        })
        .await?)
}
