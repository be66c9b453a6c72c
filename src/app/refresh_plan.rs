//! [`RefreshPlan`]: when each account is next refreshed, by its type's timing (a margin
//! before expiry, no longer than an idle period), written to the schedule whenever an
//! account is written.

use crate::domain::account::Account;
use crate::domain::account_health::AccountHealth;
use crate::domain::{AccountType, Clock, GrantMode, Instance};
use crate::store::schedule::Schedule;
use crate::store::StoreError;
use std::time::Duration;

/// The refresh plan of every account written.
#[derive(Clone)]
pub(crate) struct RefreshPlan {
    schedule: Schedule,
    clock: Clock,
    /// Default time before expiry at which a token is refreshed.
    margin: Duration,
    /// Default longest time between refreshes.
    idle: Duration,
}

impl RefreshPlan {
    /// A plan over `schedule`, with the default timing types may override.
    pub(crate) fn new(schedule: Schedule, clock: Clock, margin: Duration, idle: Duration) -> Self {
        RefreshPlan {
            schedule,
            clock,
            margin,
            idle,
        }
    }

    /// The schedule the plans are written to.
    pub(crate) fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The refresh margin and idle period of a type, in seconds.
    fn timing(&self, at: &AccountType) -> (i64, i64) {
        let margin = at
            .refresh_margin_secs
            .map_or(self.margin.as_secs() as i64, |s| s as i64);
        let every = at
            .refresh_every_secs
            .map_or(self.idle.as_secs() as i64, |s| s as i64);
        (margin, every)
    }

    /// When `doc` is next due, by the type's timing; `None` when it cannot be refreshed.
    pub(crate) fn next_due(&self, doc: &Account, at: &AccountType) -> Option<i64> {
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

    /// [`RefreshPlan::plan`], telling whether the plan was written.
    pub(crate) async fn try_plan(
        &self,
        inst: &Instance,
        id: &str,
        doc: &Account,
        at: &AccountType,
        first: Option<&AccountHealth>,
    ) -> Result<(), StoreError> {
        match self.next_due(doc, at) {
            Some(due_at) => self.schedule.set(&inst.domain, id, due_at, 0, first).await,
            // A new account has no plan to forget, and no health to follow.
            None if first.is_some() => Ok(()),
            None => self.schedule.clear(&inst.domain, id).await,
        }
    }

    /// Takes the account off the schedule (deleted, or waiting for its user); a failure
    /// is logged.
    pub(crate) async fn forget(&self, inst: &Instance, id: &str) {
        if let Err(e) = self.schedule.clear(&inst.domain, id).await {
            tracing::warn!(error = %e, "could not clear the refresh schedule");
        }
    }
}

/// Client credentials accounts get new tokens from the type's own credentials.
pub(crate) fn renews_without_refresh_token(at: &AccountType) -> bool {
    at.grant_mode == Some(GrantMode::ClientCredentials)
}
