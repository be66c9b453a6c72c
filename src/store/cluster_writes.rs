//! Writes that decide something on a CouchDB cluster, where an answer is not a decision.
//!
//! On a cluster (`n` > 1 copies of each document) CouchDB answers a write 201 once `w`
//! copies took it and 202 when fewer did; two writers of one new id (or of one revision)
//! can both be answered 201 or 202, each revision kept on some copies, and the cluster
//! later keeps both, one winning. A "first writer wins" document (a spent sign-in state,
//! a refresh lease, a spent session code, the flow key) cannot take such an answer as
//! its decision. So, in the databases of [`super::DECIDING_DBS`], a write counts only when:
//!
//! 1. it is answered 201 or 202 (409: someone else's revision is everywhere: lost);
//! 2. read back from every copy (`r` = `n`), its revision is the one CouchDB makes the
//!    winner (the same deterministic choice on every copy: highest generation, then
//!    highest revision hash), so contenders that all got an answer agree on one of them;
//! 3. and its writer then creates the decision record `<db>/<id>@<generation>` in
//!    `broker/decisions` with a 201 at `w` = a majority (asked for explicitly, so a lowered
//!    `[cluster] w` cannot weaken it), that is, on a majority of the copies: two majorities
//!    share a copy and a copy takes one creation only, so no two writers ever both hold
//!    one decision, whatever step 2 saw.
//!
//! A loser removes its own revision, the winner the others', so that a later deletion of
//! the winner does not bring a loser's revision back. On a single node (`n` = 1) an
//! answer is a decision and none of this is done. Every other database's write, on a
//! cluster, is read back too (step 2): one whose revision lost answers a conflict, so the
//! caller re-reads and writes again rather than believe a write the cluster set aside.

use super::couch::CouchStore;
use super::{StoreError, DECISIONS_DB};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a decision record is kept: longer than any state, lease or code lives.
const KEEP_DECISIONS: Duration = Duration::from_secs(2 * 24 * 3600);

/// How a write was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answered {
    /// 201 (200 for a deletion): `w` copies took it.
    Quorum(String),
    /// 202: fewer than `w` copies took it (a copy down, or another writer's there).
    Accepted(String),
}

impl Answered {
    fn rev(&self) -> &str {
        match self {
            Answered::Quorum(r) | Answered::Accepted(r) => r,
        }
    }
}

impl CouchStore {
    /// `PUT <db>/<id>` (a deletion when `doc` has `_deleted`), telling 201 from 202.
    pub(super) async fn put_answered(&self, db: &str, doc: &Value) -> Result<Answered, StoreError> {
        self.put_with_quorum(db, doc, None).await
    }

    /// [`CouchStore::put_answered`], asking for `w` copies when given (else the server's
    /// `[cluster] w`).
    async fn put_with_quorum(
        &self,
        db: &str,
        doc: &Value,
        w: Option<u32>,
    ) -> Result<Answered, StoreError> {
        let id = super::id_of(doc)
            .ok_or_else(|| StoreError::Invalid("a document without _id".into()))?;
        let params = w.map(|w| HashMap::from([("w".to_owned(), w.to_string())]));
        let resp = self
            .client
            .req(Method::PUT, &self.doc_path(db, id), params.as_ref())
            .body(doc.to_string())
            .send()
            .await
            .map_err(super::couch::transport)?;
        let status = resp.status().as_u16();
        let body: Value = match status {
            200..=202 => resp
                .json()
                .await
                .map_err(|e| StoreError::Invalid(format!("write answer: {e}")))?,
            409 => return Err(StoreError::Conflict),
            // A missing database, or (deleting) a document already gone: someone else
            // deleted it first.
            404 => {
                let body: Value = resp.json().await.unwrap_or_default();
                let reason = body["reason"].as_str().unwrap_or_default();
                return Err(if reason.contains("atabase") || reason == "no_db_file" {
                    StoreError::NoDatabase(db.to_owned())
                } else {
                    StoreError::Conflict
                });
            }
            s => {
                return Err(StoreError::Unavailable(format!(
                    "write: CouchDB answered HTTP {s}"
                )))
            }
        };
        let rev = body
            .get("rev")
            .and_then(Value::as_str)
            .ok_or_else(|| StoreError::Invalid("write answer without rev".into()))?
            .to_owned();
        // A deletion is answered 200 where a creation or update is answered 201.
        Ok(if status != 202 {
            Answered::Quorum(rev)
        } else {
            Answered::Accepted(rev)
        })
    }

    /// How many copies the cluster keeps of `db`'s documents (1 on a single node and on
    /// pouchdb-server), asked once per database.
    pub(super) async fn copies(&self, db: &str) -> Result<u32, StoreError> {
        if let Some(n) = self
            .copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(db)
        {
            return Ok(*n);
        }
        let resp = self
            .client
            .req(Method::GET, &self.path(db), None)
            .send()
            .await
            .map_err(super::couch::transport)?;
        let info: Value = match resp.status().as_u16() {
            200 => resp.json().await.map_err(super::couch::transport)?,
            404 => return Err(StoreError::NoDatabase(db.to_owned())),
            s => return Err(StoreError::Unavailable(format!("database info: HTTP {s}"))),
        };
        let n = info
            .pointer("/cluster/n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as u32;
        self.copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(db.to_owned(), n);
        Ok(n)
    }

    /// The winning revision of a document as every copy that answers sees it, and the
    /// other live revisions; `None` when it is missing or deleted.
    async fn winner(
        &self,
        db: &str,
        id: &str,
        n: u32,
    ) -> Result<Option<(String, Vec<String>)>, StoreError> {
        let params = HashMap::from([
            ("r".to_owned(), n.to_string()),
            ("conflicts".to_owned(), "true".to_owned()),
        ]);
        let resp = self
            .client
            .req(Method::GET, &self.doc_path(db, id), Some(&params))
            .send()
            .await
            .map_err(super::couch::transport)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            s => {
                return Err(StoreError::Unavailable(format!(
                    "read back: CouchDB answered HTTP {s}"
                )))
            }
        }
        let doc: Value = resp
            .json()
            .await
            .map_err(|e| StoreError::Invalid(format!("read back: {e}")))?;
        let rev = super::rev_of(&doc).unwrap_or_default().to_owned();
        let others = doc
            .get("_conflicts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some((rev, others)))
    }

    /// Removes revisions of a document that lost (best effort: a revision left behind
    /// only waits, as a conflict, for the next winner to remove it).
    async fn remove_revisions(&self, db: &str, id: &str, revs: &[String]) {
        for rev in revs {
            let params = HashMap::from([("rev".to_owned(), rev.clone())]);
            let sent = self
                .client
                .req(Method::DELETE, &self.doc_path(db, id), Some(&params))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e.without_url(), "could not remove a losing revision");
            }
        }
    }

    /// A write to a database of [`super::DECIDING_DBS`], decided as the module says.
    pub(super) async fn put_deciding(&self, db: &str, doc: &Value) -> Result<String, StoreError> {
        let id = super::id_of(doc)
            .ok_or_else(|| StoreError::Invalid("a document without _id".into()))?;
        let n = self.copies(db).await?;
        let answered = self.put_answered(db, doc).await?;
        if n == 1 {
            return Ok(answered.rev().to_owned());
        }
        let ours = answered.rev().to_owned();
        let deletion = doc.get("_deleted").and_then(Value::as_bool) == Some(true);
        // A deletion has no winner to read (a deleted document reads as missing): its
        // decision record alone decides between two deleters.
        let others = if deletion {
            Vec::new()
        } else {
            match self.winner(db, id, n).await? {
                Some((winner, others)) if winner == ours => others,
                _ => {
                    self.remove_revisions(db, id, std::slice::from_ref(&ours))
                        .await;
                    return Err(StoreError::Conflict);
                }
            }
        };
        if self.record_decision(db, id, &ours).await? {
            self.remove_revisions(db, id, &others).await;
            Ok(ours)
        } else {
            if !deletion {
                self.remove_revisions(db, id, std::slice::from_ref(&ours))
                    .await;
            }
            Err(StoreError::Conflict)
        }
    }

    /// Creates the decision record of `rev` of `<db>/<id>`; `true` only when a majority of
    /// the copies took it (201).
    async fn record_decision(&self, db: &str, id: &str, rev: &str) -> Result<bool, StoreError> {
        let generation = rev.split('-').next().unwrap_or("0");
        let expires_at = SystemTime::now()
            .checked_add(KEEP_DECISIONS)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let record = json!({
            "_id": format!("{db}/{id}@{generation}"),
            "rev": rev,
            "expires_at": expires_at,
        });
        // A majority asked for explicitly: a lowered `[cluster] w` must not weaken it.
        let majority = self.copies(DECISIONS_DB).await? / 2 + 1;
        match self
            .put_with_quorum(DECISIONS_DB, &record, Some(majority))
            .await
        {
            Ok(Answered::Quorum(_)) => Ok(true),
            Ok(Answered::Accepted(_)) | Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// On a cluster, whether a write answered `rev` is the document's winner; a losing
    /// revision is removed and answered as a conflict, so the caller writes again over
    /// the winner. A document written (not deleted) that no copy read back has is not
    /// written: the copies that took it may be the ones going down.
    pub(super) async fn confirm(
        &self,
        db: &str,
        id: &str,
        deletion: bool,
        rev: String,
    ) -> Result<String, StoreError> {
        let n = self.copies(db).await?;
        if n == 1 {
            return Ok(rev);
        }
        match self.winner(db, id, n).await? {
            Some((winner, _)) if winner == rev => Ok(rev),
            None if deletion => Ok(rev),
            None => Err(StoreError::Unavailable(
                "written, but no copy read back has the document".into(),
            )),
            Some(_) => {
                self.remove_revisions(db, id, std::slice::from_ref(&rev))
                    .await;
                Err(StoreError::Conflict)
            }
        }
    }
}
