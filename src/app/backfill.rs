//! `refresh-plan backfill`: plans a refresh for every account cozy-stack created with a
//! refresh token, so the broker keeps fresh what it did not connect. Instances are taken
//! in domain order and a checkpoint is saved after each, so an interrupted run resumes;
//! an account already planned is left alone, so a second run changes nothing.

use super::refresh_plan::RefreshPlan;
use super::Error;
use crate::domain::account_health::AccountHealth;
use crate::domain::Instance;
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::store::instances::Instances;
use crate::store::jobs::Checkpoints;
use crate::store::schedule::Schedule;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

/// The checkpoint's name in `broker/jobs`.
const JOB: &str = "refresh-plan-backfill";

/// What a backfill did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillSummary {
    /// Instances looked at in this run.
    pub instances: usize,
    /// Instances skipped because an interrupted run had done them.
    pub resumed_past: usize,
    /// Accounts read.
    pub accounts: usize,
    /// Accounts holding a refresh token.
    pub with_refresh_token: usize,
    /// Plans written by this run.
    pub planned: usize,
    /// Accounts already planned, left alone.
    pub already_planned: usize,
    /// Accounts whose type is unknown or has no token endpoint.
    pub skipped: usize,
}

/// Reports progress: called with (instances done, instances in all) after each one.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// The backfill use case.
pub(crate) struct Backfill {
    pub(crate) instances: Instances,
    pub(crate) accounts: Accounts,
    pub(crate) account_types: Arc<AccountTypes>,
    pub(crate) schedule: Schedule,
    pub(crate) plan: RefreshPlan,
    pub(crate) checkpoints: Checkpoints,
}

impl Backfill {
    /// Runs (or resumes) the backfill; `restart` forgets an interrupted run's progress.
    pub(crate) async fn run(
        &self,
        restart: bool,
        progress: Progress<'_>,
    ) -> Result<BackfillSummary, Error> {
        if restart {
            self.checkpoints.clear(JOB).await?;
        }
        let done_up_to = self
            .checkpoints
            .get(JOB)
            .await?
            .and_then(|p| p.get("last_domain")?.as_str().map(str::to_owned));
        let mut all = self.instances.list().await?;
        all.sort_by(|a, b| a.domain.as_str().cmp(b.domain.as_str()));
        let total = all.len();
        let mut summary = BackfillSummary::default();
        for (n, inst) in all.iter().enumerate() {
            if done_up_to
                .as_deref()
                .is_some_and(|last| inst.domain.as_str() <= last)
            {
                summary.resumed_past += 1;
                progress(n + 1, total);
                continue;
            }
            self.instance(inst, &mut summary).await?;
            summary.instances += 1;
            self.checkpoints
                .set(JOB, json!({"last_domain": inst.domain.as_str()}))
                .await?;
            progress(n + 1, total);
        }
        self.checkpoints.clear(JOB).await?;
        Ok(summary)
    }

    async fn instance(&self, inst: &Instance, summary: &mut BackfillSummary) -> Result<(), Error> {
        for doc in self.accounts.all(inst).await? {
            summary.accounts += 1;
            if doc.refresh_token().is_none() {
                continue;
            }
            summary.with_refresh_token += 1;
            let id = doc.id();
            if self.schedule.due_at(&inst.domain, id).await?.is_some() {
                summary.already_planned += 1;
                continue;
            }
            let at = match self
                .account_types
                .lookup(doc.service(), inst.context.as_deref())
                .await
            {
                Ok(at) if at.token_endpoint.is_some() => at,
                _ => {
                    summary.skipped += 1;
                    continue;
                }
            };
            // No refresh seen yet: the first one will say how the account fares.
            let unknown = AccountHealth::new(inst.domain.as_str(), id, at.service_id());
            self.plan
                .try_plan(inst, id, &doc, &at, Some(&unknown))
                .await?;
            summary.planned += 1;
        }
        Ok(())
    }
}
