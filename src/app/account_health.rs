//! Keeping account health as tokens are obtained and refreshed, telling the app about the
//! transitions (`refresh.failed`, `account.recovered`), and inferring expiries a reply did
//! not tell (so no token dies before its refresh).

use super::Error;
use crate::domain::account::TokenGrant;
use crate::domain::account_health::{Outcome, Transition};
use crate::domain::expiry::{self, ExpirySource};
use crate::domain::{AccountType, Classified, Clock, ErrorKind};
use crate::metrics::Metrics;
use crate::oauth::ProviderError;
use crate::store::health_records::{HealthRecords, Record};
use crate::store::StoreError;
use crate::webhooks::{Event, Kind, Webhooks};
use std::collections::HashMap;
use std::sync::Arc;

/// Which accounts a health listing keeps (as the outer layers name it).
pub(crate) use crate::store::health_records::Filter;
use std::sync::Mutex;
use std::time::Duration;

/// Account health as tokens are obtained and refreshed: the records, the refresh
/// counters, the webhooks of the transitions, and what was observed of the providers.
pub(crate) struct HealthLog {
    records: HealthRecords,
    observed: Observed,
    metrics: Arc<Metrics>,
    webhooks: Webhooks,
    clock: Clock,
}

/// Per account type, the lifetime (seconds) of the last token whose reply told one; and
/// per account being refreshed, how long its token endpoint took.
#[derive(Default)]
struct Observed {
    lifetimes: Mutex<HashMap<String, i64>>,
    token_ms: Mutex<HashMap<String, u64>>,
}

impl Observed {
    fn token_time(&self, key: &str, took: Duration) {
        lock(&self.token_ms).insert(key.to_owned(), took.as_millis() as u64);
    }

    fn take_token_time(&self, key: &str) -> Option<u64> {
        lock(&self.token_ms).remove(key)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a failed refresh says of the account: the provider's OAuth code when it gave a
/// sane one, else the error's kind (never free text, which may echo a token).
fn cause_of(e: &Error) -> String {
    match e.unjoined() {
        Error::Provider(p @ ProviderError::OAuth { .. }) => p.app_error_code(),
        // What the provider said, as the `refresh.failed` webhook tells it.
        Error::RefreshTokenRevoked => "invalid_grant".to_owned(),
        other => other.kind().as_str().to_owned(),
    }
}

impl HealthLog {
    /// A log over the health records.
    pub(crate) fn new(
        records: HealthRecords,
        metrics: Arc<Metrics>,
        webhooks: Webhooks,
        clock: Clock,
    ) -> HealthLog {
        HealthLog {
            records,
            observed: Observed::default(),
            metrics,
            webhooks,
            clock,
        }
    }

    /// Notes a token endpoint time for the account `key` (taken back by the recording).
    pub(crate) fn token_time(&self, key: &str, took: Duration) {
        self.observed.token_time(key, took);
    }

    /// Counts a refresh by outcome (`ok`, or the failure's kind) and account type.
    pub(crate) fn count(&self, failure: Option<&Error>, account_type: &str) {
        let label = failure.map_or("ok", |e| e.kind().as_str());
        self.metrics
            .refreshes
            .with_label_values(&[label, account_type])
            .inc();
    }

    /// Records one outcome now (a reconnection's success).
    pub(crate) async fn record(&self, record: &Record) -> Result<(), StoreError> {
        self.records
            .record(record, self.clock.now().unix_secs())
            .await
            .map(|_| ())
    }

    /// Forgets a deleted account's health; a failure is logged.
    pub(crate) async fn forget(&self, instance: &str, id: &str) {
        if let Err(e) = self.records.forget(instance, id).await {
            tracing::warn!(error = %e, "could not forget a deleted account's health");
        }
    }

    /// Completes a grant's expiry when the reply told none (JWT `exp`, then the type's
    /// last lifetime), and remembers the lifetime when it did.
    pub(crate) fn settle_expiry(&self, at: &AccountType, grant: &mut TokenGrant) -> ExpirySource {
        let now = self.clock.now().to_datetime();
        let type_id = at.service_id();
        if let Some(told) = grant.expires_at {
            let secs = (told - now).num_seconds();
            if secs > 0 {
                lock(&self.observed.lifetimes).insert(type_id.to_owned(), secs);
            }
            return ExpirySource::Provider;
        }
        let last_seen = lock(&self.observed.lifetimes).get(type_id).copied();
        let (at_, source) = expiry::infer(None, &grant.access_token, last_seen, now);
        grant.expires_at = at_;
        tracing::info!(
            account_type = type_id,
            source = source.as_str(),
            "token reply without expires_in: expiry inferred"
        );
        source
    }

    /// The record of one refresh's outcome for account `id`, or `None` when the failure
    /// says nothing of the account's tokens (it is gone, or the caller may not refresh it).
    pub(crate) fn outcome_record(
        &self,
        instance: &str,
        id: &str,
        service_id: &str,
        outcome: Result<(), &Error>,
    ) -> Option<Record> {
        let token_ms = self.observed.take_token_time(&format!("{instance}/{id}"));
        let outcome = match outcome {
            Ok(()) => Outcome::Success { token_ms },
            // Only what the provider said counts: a refused caller, a missing account, a
            // store cut or an account with nothing to refresh with tell nothing of it.
            Err(e)
                if !matches!(
                    e.unjoined(),
                    Error::Provider(_) | Error::RefreshTokenRevoked
                ) =>
            {
                return None
            }
            Err(e) => Outcome::Failure {
                cause: cause_of(e),
                token_ms,
                reconnect: e.kind() == ErrorKind::GrantRevoked,
            },
        };
        Some(Record {
            instance: instance.to_owned(),
            account_id: id.to_owned(),
            account_type: service_id.to_owned(),
            outcome,
            scope_missing: None,
        })
    }

    /// Records outcomes (in bulk) and tells the app of each account that started failing
    /// or recovered. A store failure is logged: health is a report, tokens come first.
    pub(crate) async fn note(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let now = self.clock.now().unix_secs();
        let transitions = match self.records.record_many(&records, now).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not record account health");
                return;
            }
        };
        for (r, t) in records.into_iter().zip(transitions) {
            let (kind, error) = match (t, &r.outcome) {
                (Transition::StartedFailing, Outcome::Failure { cause, .. }) => {
                    (Kind::RefreshFailed, Some(cause.clone()))
                }
                (Transition::Recovered, _) => (Kind::AccountRecovered, None),
                // The refused refresh token is told by `wait_for_user`.
                _ => continue,
            };
            self.webhooks
                .emit(Event {
                    kind,
                    instance: r.instance,
                    account_id: r.account_id,
                    account_type: r.account_type,
                    error,
                    at: self.clock.now(),
                })
                .await;
        }
    }
}
