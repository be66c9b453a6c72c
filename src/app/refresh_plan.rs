//! [`RefreshPlan`]: when each account is next refreshed, by its type's timing (a margin
//! before expiry, no longer than an idle period), written to the schedule whenever an
//! account is written.

use crate::domain::account::{Account, Cadence};
use crate::domain::account_health::AccountHealth;
use crate::domain::{AccountType, Clock, GrantMode, Instance};
use crate::store::schedule::Schedule;
use crate::store::StoreError;

/// The refresh plan of every account written.
#[derive(Clone)]
pub(crate) struct RefreshPlan {
    schedule: Schedule,
    clock: Clock,
    /// The default cadence; types may set their own margin and idle period.
    cadence: Cadence,
}

impl RefreshPlan {
    /// A plan over `schedule`, with the default cadence types may override.
    pub(crate) fn new(schedule: Schedule, clock: Clock, cadence: Cadence) -> Self {
        RefreshPlan {
            schedule,
            clock,
            cadence,
        }
    }

    /// The schedule the plans are written to.
    pub(crate) fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The cadence of a type: its own margin and idle period where it sets them.
    fn cadence(&self, at: &AccountType) -> Cadence {
        Cadence {
            margin: at
                .refresh_margin_secs
                .map_or(self.cadence.margin, |s| s as i64),
            every: at
                .refresh_every_secs
                .map_or(self.cadence.every, |s| s as i64),
            ..self.cadence
        }
    }

    /// When `doc` is next due, by the type's cadence; `None` when it cannot be refreshed.
    pub(crate) fn next_due(&self, doc: &Account, at: &AccountType) -> Option<i64> {
        at.token_endpoint.as_ref().and_then(|_| {
            doc.next_refresh(
                &self.cadence(at),
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
