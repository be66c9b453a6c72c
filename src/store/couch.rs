//! The CouchDB store, through couch_rs (Apache CouchDB 3, or pouchdb-server in tests).

use super::cluster_writes::Answered;
use super::{Changes, DocChange, Selector, Store, StoreError, DECIDING_DBS};
use async_trait::async_trait;
use couch_rs::database::Database;
use couch_rs::error::CouchError;
use couch_rs::types::find::FindQuery;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// A CouchDB server, reached with the credentials of its URL.
#[derive(Clone)]
pub struct CouchStore {
    pub(super) client: couch_rs::Client,
    db_prefix: String,
    /// Copies kept of each database's documents (`n`), learned on first use.
    pub(super) copies: Arc<Mutex<HashMap<String, u32>>>,
}

impl std::fmt::Debug for CouchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CouchStore")
    }
}

impl CouchStore {
    /// Connects to `url` (`http://user:password@host:5984`); nothing is sent yet.
    pub fn new(url: &str, timeout: Duration, db_prefix: &str) -> Result<CouchStore, StoreError> {
        let mut parsed =
            Url::parse(url).map_err(|e| StoreError::Invalid(format!("CouchDB URL: {e}")))?;
        let user = percent_decode(parsed.username());
        let password = parsed.password().map(percent_decode);
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        let client = couch_rs::Client::new_with_timeout(
            &base,
            (!user.is_empty()).then_some(user.as_str()),
            password.as_deref(),
            Some(timeout.as_secs().max(1)),
        )
        .map_err(|e| StoreError::Invalid(format!("CouchDB URL: {e}")))?;
        Ok(CouchStore {
            client,
            db_prefix: db_prefix.to_owned(),
            copies: Arc::default(),
        })
    }

    /// The database's name in URLs: prefixed, then percent-encoded.
    pub(super) fn path(&self, db: &str) -> String {
        escape_db(&format!("{}{db}", self.db_prefix))
    }

    /// A document's URL path: its id percent-encoded (`ctx/google` is `ctx%2Fgoogle`).
    pub(super) fn doc_path(&self, db: &str, id: &str) -> String {
        let mut escaped = String::with_capacity(id.len());
        for b in id.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                escaped.push(b as char);
            } else {
                escaped.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{}/{escaped}", self.path(db))
    }

    /// `POST _bulk_docs`: one answer per document, in order.
    async fn bulk(&self, db: &str, docs: &[Value]) -> Result<Vec<Value>, StoreError> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let resp = self
            .post_json(db, "_bulk_docs", None, &serde_json::json!({ "docs": docs }))
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(StoreError::NoDatabase(db.to_owned()));
        }
        succeeded(&resp, "bulk write")?;
        let answers: Vec<Value> = resp
            .json()
            .await
            .map_err(|e| StoreError::Invalid(format!("bulk write answer: {e}")))?;
        Ok(answers)
    }

    /// `POST <db>/<endpoint>` with a JSON body.
    async fn post_json(
        &self,
        db: &str,
        endpoint: &str,
        params: Option<&HashMap<String, String>>,
        body: &Value,
    ) -> Result<reqwest::Response, StoreError> {
        self.client
            .req(
                Method::POST,
                &format!("{}/{endpoint}", self.path(db)),
                params,
            )
            // couch_rs's client already sends `Content-Type: application/json`; a second
            // one makes Apache CouchDB answer 415.
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)
    }

    fn db(&self, db: &str) -> Database {
        Database::new(self.path(db), self.client.clone())
    }
}

/// A document to be decided, with a nonce of its writer's: two contenders writing the
/// same content would otherwise make the same revision and both see it win.
fn with_nonce(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if doc.get("_deleted").and_then(Value::as_bool) != Some(true) {
        doc["nonce"] = crate::domain::secret::random_hex(8).into();
    }
    doc
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Database names go into URLs percent-encoded: `secrets%2Fio-cozy-account_types`.
fn escape_db(db: &str) -> String {
    db.replace('/', "%2F").replace('+', "%2B")
}

fn map_err(db: &str, e: CouchError) -> StoreError {
    match e.status().map(|s| s.as_u16()) {
        Some(409) => StoreError::Conflict,
        Some(404) => StoreError::NoDatabase(db.to_owned()),
        Some(s) => {
            tracing::debug!(db, error = ?e, "CouchDB refused a request");
            StoreError::Unavailable(format!("CouchDB answered HTTP {s}"))
        }
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// Ok for a 2xx answer, else the store is unavailable for `what`.
fn succeeded(resp: &reqwest::Response, what: &str) -> Result<(), StoreError> {
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{what}: CouchDB answered HTTP {}",
            resp.status().as_u16()
        )))
    }
}

pub(super) fn transport(e: reqwest::Error) -> StoreError {
    StoreError::Unavailable(format!("CouchDB request failed: {}", e.without_url()))
}

#[async_trait]
impl Store for CouchStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // `GET /` is what every CouchDB and pouchdb-server answers (`/_up` is CouchDB only).
        let resp = self
            .client
            .req(Method::GET, "/", None)
            .send()
            .await
            .map_err(transport)?;
        succeeded(&resp, "ping")
    }

    async fn ensure_db(&self, db: &str) -> Result<(), StoreError> {
        let resp = self
            .client
            .req(Method::PUT, &self.path(db), None)
            .send()
            .await
            .map_err(transport)?;
        match resp.status().as_u16() {
            201 | 202 | 412 => Ok(()),
            s => Err(StoreError::Unavailable(format!(
                "creating `{db}`: HTTP {s}"
            ))),
        }
    }

    async fn ensure_index(&self, db: &str, field: &str) -> Result<(), StoreError> {
        let body = serde_json::json!({"index": {"fields": [field]}, "ddoc": format!("by-{field}"), "name": format!("by-{field}")});
        let resp = self.post_json(db, "_index", None, &body).await?;
        succeeded(&resp, &format!("creating index by-{field}"))
    }

    async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError> {
        match self.db(db).get_raw(id).await {
            Ok(doc) => Ok(Some(doc)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(map_err(db, e)),
        }
    }

    async fn get_many(&self, db: &str, ids: &[String]) -> Result<Vec<Option<Value>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let params = HashMap::from([("include_docs".to_owned(), "true".to_owned())]);
        let body = serde_json::json!({ "keys": ids });
        let resp = self
            .post_json(db, "_all_docs", Some(&params), &body)
            .await?;
        // As `get`: nothing is found in a database that does not exist.
        if resp.status().as_u16() == 404 {
            return Ok(vec![None; ids.len()]);
        }
        succeeded(&resp, "bulk read")?;
        let answer: Value = resp
            .json()
            .await
            .map_err(|e| StoreError::Invalid(format!("bulk read answer: {e}")))?;
        let rows = answer
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| StoreError::Invalid("bulk read answer without rows".into()))?;
        // One row per key, in order; a missing one has `error`, a deleted one a null `doc`.
        let by_id: std::collections::HashMap<&str, &Value> = rows
            .iter()
            .filter_map(|r| Some((r.get("key")?.as_str()?, r.get("doc")?)))
            .filter(|(_, d)| d.is_object())
            .collect();
        Ok(ids
            .iter()
            .map(|id| by_id.get(id.as_str()).map(|d| (*d).clone()))
            .collect())
    }

    async fn put(&self, db: &str, doc: &Value) -> Result<String, StoreError> {
        if DECIDING_DBS.contains(&db) {
            return self.put_deciding(db, &with_nonce(doc)).await;
        }
        match self.put_answered(db, doc).await? {
            // On a single node a 201 is the whole story; `confirm` knows which this is.
            Answered::Quorum(rev) | Answered::Accepted(rev) => {
                let id = super::id_of(doc).unwrap_or_default();
                self.confirm(db, id, is_deletion(doc), rev).await
            }
        }
    }

    async fn delete(&self, db: &str, id: &str, rev: &str) -> Result<(), StoreError> {
        let doc = serde_json::json!({"_id": id, "_rev": rev, "_deleted": true});
        if DECIDING_DBS.contains(&db) {
            self.put_deciding(db, &doc).await.map(drop)
        } else {
            self.put_answered(db, &doc).await.map(drop)
        }
    }

    async fn docs_in_range(
        &self,
        db: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        // `_all_docs` keys collate raw (by code point): `id\u{0}` is the first id after
        // `id`, and `\u{fff0}` closes the prefix, as CouchDB's guide has it.
        let start = after.map_or_else(|| prefix.to_owned(), |a| format!("{a}\u{0}"));
        let params = HashMap::from([
            ("include_docs".to_owned(), "true".to_owned()),
            ("limit".to_owned(), limit.to_string()),
            ("startkey".to_owned(), Value::from(start).to_string()),
            (
                "endkey".to_owned(),
                Value::from(format!("{prefix}\u{fff0}")).to_string(),
            ),
        ]);
        let resp = self
            .client
            .req(
                Method::GET,
                &format!("{}/_all_docs", self.path(db)),
                Some(&params),
            )
            .send()
            .await
            .map_err(transport)?;
        if resp.status().as_u16() == 404 {
            return Err(StoreError::NoDatabase(db.to_owned()));
        }
        succeeded(&resp, "range read")?;
        let answer: Value = resp
            .json()
            .await
            .map_err(|e| StoreError::Invalid(format!("range read answer: {e}")))?;
        Ok(answer
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| StoreError::Invalid("range read answer without rows".into()))?
            .iter()
            .filter_map(|r| r.get("doc").filter(|d| d.is_object()).cloned())
            .collect())
    }

    async fn all_docs(&self, db: &str) -> Result<Vec<Value>, StoreError> {
        self.db(db)
            .get_all_raw()
            .await
            .map(|c| c.rows)
            .map_err(|e| map_err(db, e))
    }

    async fn put_many(
        &self,
        db: &str,
        docs: &[Value],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        if DECIDING_DBS.contains(&db) && self.copies(db).await? > 1 {
            // Each one decided on its own (see `cluster_writes`), all at once.
            let each = docs.iter().map(|d| async move {
                match self.put(db, d).await {
                    Err(StoreError::NoDatabase(n)) => Err(StoreError::NoDatabase(n)),
                    other => Ok(other),
                }
            });
            return futures::future::try_join_all(each).await;
        }
        let answers = self.bulk(db, docs).await?;
        let outcomes = answers.iter().map(|a| {
            match (
                a.get("id").and_then(Value::as_str),
                a.get("rev").and_then(Value::as_str),
                a.get("error"),
            ) {
                (Some(id), Some(rev), None) => Ok((id, rev.to_owned())),
                (_, _, Some(e)) if e == "conflict" => Err(StoreError::Conflict),
                _ => Err(StoreError::Invalid(a.to_string())),
            }
        });
        // On a cluster every revision written is read back, as `put` does.
        // `_bulk_docs` answers in the order of the documents sent.
        let confirmed = outcomes.zip(docs).map(|(o, doc)| async move {
            match o {
                Ok((id, rev)) => self.confirm(db, id, is_deletion(doc), rev).await,
                Err(e) => Err(e),
            }
        });
        Ok(futures::future::join_all(confirmed).await)
    }

    async fn delete_many(&self, db: &str, docs: &[(String, String)]) -> Result<usize, StoreError> {
        // In bulk even where writes decide: what is deleted many at a time (expired states
        // and codes, released leases) decides nothing; a tombstone that loses to a live
        // revision leaves the live one, which is what a race with a new holder means.
        let gone: Vec<Value> = docs
            .iter()
            .map(|(id, rev)| serde_json::json!({"_id": id, "_rev": rev, "_deleted": true}))
            .collect();
        let answers = self.bulk(db, &gone).await?;
        Ok(answers.iter().filter(|a| a.get("error").is_none()).count())
    }

    async fn find(
        &self,
        db: &str,
        selector: &Selector,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let query = FindQuery::new(selector.to_mango()).limit(limit as u64);
        self.db(db)
            .find_raw(&query)
            .await
            .map(|c| c.rows)
            .map_err(|e| map_err(db, e))
    }

    async fn changes(
        &self,
        db: &str,
        since: &Value,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        // `since=now` as the database's current sequence: pouchdb-server holds a longpoll
        // from `now` open and then breaks it off mid-body.
        if since.as_str() == Some("now") {
            let resp = self
                .client
                .req(Method::GET, &self.path(db), None)
                .send()
                .await
                .map_err(transport)?;
            let info: Value = match resp.status().as_u16() {
                200 => resp.json().await.map_err(transport)?,
                404 => return Err(StoreError::NoDatabase(db.to_owned())),
                s => return Err(StoreError::Unavailable(format!("database info: HTTP {s}"))),
            };
            return Ok(Changes {
                changes: Vec::new(),
                last_seq: info.get("update_seq").cloned().unwrap_or(Value::from(0)),
            });
        }
        let since_param = match since {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut params = HashMap::new();
        params.insert("feed".to_owned(), "longpoll".to_owned());
        params.insert("include_docs".to_owned(), "true".to_owned());
        params.insert("since".to_owned(), since_param);
        // CouchDB ends the longpoll itself a little before our own bound below.
        let server_wait = wait
            .saturating_sub(Duration::from_millis(500))
            .max(Duration::from_millis(100));
        params.insert("timeout".to_owned(), server_wait.as_millis().to_string());
        let path = format!("{}/_changes", self.path(db));
        let request = async {
            // The longpoll outlives the client's per-request timeout (`couchdb.timeout_secs`):
            // this request gets its own, a little past the server's `timeout`, so that a
            // feed that ends normally is never cut mid-body.
            let resp = self
                .client
                .req(Method::GET, &path, Some(&params))
                .timeout(wait + Duration::from_secs(2))
                .send()
                .await
                .map_err(transport)?;
            match resp.status().as_u16() {
                200 => resp.json::<Value>().await.map_err(transport),
                404 => Err(StoreError::NoDatabase(db.to_owned())),
                s => Err(StoreError::Unavailable(format!("_changes: HTTP {s}"))),
            }
        };
        // pouchdb-server ignores `timeout` on longpoll and sends its headers at once, so the
        // whole exchange, body included, is bounded here (before the request's own timeout).
        let body = match tokio::time::timeout(wait, request).await {
            Err(_) => {
                return Ok(Changes {
                    changes: Vec::new(),
                    last_seq: since.clone(),
                })
            }
            Ok(body) => body?,
        };
        let changes = body["results"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        let id = r["id"].as_str()?.to_owned();
                        let deleted = r["deleted"].as_bool().unwrap_or(false);
                        let doc = (!deleted)
                            .then(|| r["doc"].clone())
                            .filter(Value::is_object);
                        Some(DocChange { id, doc })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Changes {
            changes,
            last_seq: body
                .get("last_seq")
                .cloned()
                .unwrap_or_else(|| since.clone()),
        })
    }
}

/// Whether a document written is a deletion (`_deleted: true`).
fn is_deletion(doc: &Value) -> bool {
    doc.get("_deleted").and_then(Value::as_bool) == Some(true)
}
