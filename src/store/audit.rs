//! The audit trail in `broker/audit`: one document per state-changing operator or
//! konnector action, ids sortable by time, never a secret in them.

use super::{SharedStore, StoreError, AUDIT_DB};
use crate::domain::Timestamp;
use serde::{Deserialize, Serialize};

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who: `admin:<token fingerprint>`, `cli:<user>` or `konnector:<instance>`.
    pub actor: String,
    /// What, e.g. `account_type.put`.
    pub action: String,
    /// On what: an account type id, a domain, a registration id, `<domain>/<account>`.
    pub target: String,
    /// The HTTP request's id (`X-Request-Id`), for an admin API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Appends to and reads the trail.
#[derive(Clone)]
pub struct AuditLog {
    store: SharedStore,
}

/// The id of an entry made at `at`: its time first, so ids sort as entries happened.
fn entry_id(at: Timestamp) -> String {
    format!(
        "{:015}-{}",
        at.unix_millis(),
        crate::domain::secret::random_hex(6)
    )
}

impl AuditLog {
    /// The trail over the store.
    pub fn new(store: SharedStore) -> AuditLog {
        AuditLog { store }
    }

    /// Appends an entry made at `at`.
    pub async fn append(&self, at: Timestamp, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(entry)
            .map_err(|e| StoreError::Invalid(format!("audit entry: {e}")))?;
        doc["_id"] = entry_id(at).into();
        self.store.put(AUDIT_DB, &doc).await.map(|_| ())
    }

    /// Removes the entries made before `before`, oldest first, a page per request;
    /// returns how many went.
    pub async fn prune_before(&self, before: Timestamp) -> Result<usize, StoreError> {
        const PAGE: usize = 500;
        let floor = format!("{:015}", before.unix_millis().max(0));
        let mut gone = 0;
        loop {
            let page = match self.store.docs_in_range(AUDIT_DB, "", None, PAGE).await {
                Err(StoreError::NoDatabase(_)) => return Ok(gone),
                other => other?,
            };
            let old: Vec<(String, String)> = page
                .iter()
                .filter_map(|d| {
                    let id = super::id_of(d)?;
                    (id < floor.as_str())
                        .then(|| Some((id.to_owned(), super::rev_of(d)?.to_owned())))?
                })
                .collect();
            if old.is_empty() {
                return Ok(gone);
            }
            let deleted = self.store.delete_many(AUDIT_DB, &old).await?;
            gone += deleted;
            // A short page was the last; nothing deleted means another replica races us.
            if old.len() < PAGE || deleted == 0 {
                return Ok(gone);
            }
        }
    }

    /// Up to `limit` entries made at or after `since`, oldest first, and the cursor of
    /// the next page (`after`), if any.
    pub async fn since(
        &self,
        since: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        // Every id made at `since` or later sorts after this one.
        let floor = format!("{:015}", since.unix_millis().max(0));
        let start = match after {
            Some(a) if a > floor.as_str() => a.to_owned(),
            _ => floor,
        };
        let docs = self
            .store
            .docs_in_range(AUDIT_DB, "", Some(&start), limit.max(1))
            .await?;
        let next = (docs.len() == limit.max(1))
            .then(|| {
                docs.last()
                    .and_then(|d| d.get("_id")?.as_str().map(str::to_owned))
            })
            .flatten();
        let entries = docs
            .into_iter()
            .filter_map(|d| serde_json::from_value(d).ok())
            .collect();
        Ok((entries, next))
    }
}
