//! Who changed what: every state-changing action of an operator (admin API, command line)
//! or a konnector (an account deleted) is appended to the audit trail, with the actor and
//! the request id, never a secret.

use crate::domain::secret::fingerprint;
use crate::domain::{Clock, Timestamp};
use crate::store::audit::{AuditEntry, AuditLog};
use crate::store::StoreError;

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    /// `admin:<fingerprint>`, `cli:<user>` or `konnector:<instance>`.
    pub(crate) who: String,
    /// The HTTP request's id, when it came through the API.
    pub(crate) request_id: Option<String>,
}

impl Actor {
    /// The operator holding the admin token, named by its fingerprint.
    pub(crate) fn admin(token: &str, request_id: Option<String>) -> Actor {
        Actor {
            who: format!("admin:{}", fingerprint(token)),
            request_id,
        }
    }

    /// The user running the command line (`$USER`, else `unknown`).
    pub(crate) fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty() && u.len() <= 64 && !u.contains(char::is_control))
            .unwrap_or_else(|| "unknown".into());
        Actor {
            who: format!("cli:{user}"),
            request_id: None,
        }
    }

    /// The broker itself (a repair it made on its own).
    pub(crate) fn broker() -> Actor {
        Actor {
            who: "broker".into(),
            request_id: None,
        }
    }

    /// A konnector acting with an instance's API token.
    pub(crate) fn konnector(instance: &str, request_id: Option<String>) -> Actor {
        Actor {
            who: format!("konnector:{instance}"),
            request_id,
        }
    }
}

/// The audit trail, as the use cases write and operators read it.
#[derive(Clone)]
pub(crate) struct Audit {
    pub(crate) log: AuditLog,
    pub(crate) clock: Clock,
}

impl Audit {
    /// Records that `actor` did `action` on `target`. The action is done by then: a store
    /// failure is logged loudly rather than undoing it.
    pub(crate) async fn record(&self, actor: &Actor, action: &str, target: &str) {
        let now = self.clock.now();
        let entry = AuditEntry {
            at: now.to_rfc3339(),
            actor: actor.who.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            request_id: actor.request_id.clone(),
        };
        if let Err(e) = self.log.append(now, &entry).await {
            tracing::error!(error = %e, action, "audit entry not stored");
        }
    }

    /// Entries since `since`, oldest first, a page at a time.
    pub(crate) async fn since(
        &self,
        since: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        self.log.since(since, after, limit).await
    }
}
